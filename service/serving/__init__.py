"""Prediction, below the HTTP routes: pictures made MNIST-like, batched forward passes, protocols, export."""
