"""rnnkit: recurrent neural networks written from their equations, with hand-written BPTT."""

from . import nn

__version__ = "0.1.0"

__all__ = ["nn", "__version__"]
