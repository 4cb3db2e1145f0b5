"""rnnkit: recurrent neural networks written from their equations, with hand-written BPTT.

``rnnkit.nn`` holds the layers (drop-in for ``torch.nn.RNN/LSTM/GRU``), ``rnnkit.tasks`` the
applications, ``rnnkit.train`` the engine; ``rnnkit.load(DIR)`` rebuilds any trained model from its
checkpoint. Imported on first use, so ``import rnnkit`` (and ``rnnkit --help``) does not import torch.
"""

import importlib

__version__ = "0.1.0"
__all__ = ["nn", "load", "__version__"]


def __getattr__(name: str):
    if name == "nn":
        return importlib.import_module(".nn", __name__)
    if name == "load":
        return importlib.import_module(".tasks", __name__).load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
