"""Package attributes imported on first use (PEP 562), so that importing a package, or ``rnnkit
--help``, does not import torch before something needs it."""

from __future__ import annotations

import importlib
from typing import Callable, Dict, List, Tuple


def exports(package: str, names: Dict[str, str]) -> Tuple[Callable, Callable, List[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package`` whose public ``names`` live in
    submodules: ``{"Trainer": ".loop"}`` imports ``package.loop`` when ``package.Trainer`` is first read.

    Use in the package's ``__init__.py``::

        __getattr__, __dir__, __all__ = exports(__name__, {"Trainer": ".loop", "TrainConfig": ".config"})
    """
    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(names[name], package), name)

    def __dir__() -> List[str]:
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
