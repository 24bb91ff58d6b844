"""mnist-service: train and serve the TensorFlow.js tutorial's handwritten-digit CNN over HTTP."""

__version__ = "0.1.0"
