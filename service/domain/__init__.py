"""What the API and the worker share: the training config, MNIST, the network, the model store.

Nothing here speaks HTTP or Redis (tests/test_architecture.py checks it), so the worker that imports it
imports nothing of the API.
"""
