"""``RecurrentModule``: what rnnkit's layers and cells share as ``nn.Module`` s running native kernels.

- ``kind`` (the cell's equations, ``cells.CellKind``) is looked up from ``mode`` when used, never
  stored, so a pickled layer is plain state: ``torch.save(model)`` and
  ``torch.load(path, weights_only=True)`` work once the layer's class is allow-listed with
  ``torch.serialization.add_safe_globals([rnnkit.nn.LSTM])``.
- TorchScript (``torch.jit.script``, ``torch.jit.trace``) and the legacy ONNX exporter
  (``torch.onnx.export(..., dynamo=False)``, which traces) cannot see inside the native kernels: a
  trace would record their output as a constant and export a model that ignores its input. They
  are refused with one line instead.
"""

from __future__ import annotations

import torch
from torch import nn

from . import cells

TRACING_REFUSED = ("rnnkit layers cannot be traced by torch.jit.trace or exported by torch.onnx.export(dynamo=False): "
                   "the trace would record the native recurrent kernels' output as a constant; run the model eagerly, or "
                   "load the layer's state_dict into torch.nn's layer of the same kind to export it")


class RecurrentModule(nn.Module):
    """Base of ``RNNBase`` and the cells: ``mode`` names the cell (``"lstm"``, ``"gru"``,
    ``"rnn_tanh"``, ``"rnn_relu"``)."""

    mode: str

    @property
    def kind(self) -> "cells.CellKind":
        """The cell's equations and gate layout, from ``mode``."""
        return cells.CELL_KINDS[self.mode]

    def __prepare_scriptable__(self):
        raise RuntimeError(f"{type(self).__name__}: TorchScript cannot compile rnnkit layers (their time loop runs in "
                           f"native kernels): run the model eagerly")

    @staticmethod
    def _refuse_tracing() -> None:
        """Raise the one-line refusal when called under ``torch.jit.trace`` (or the legacy ONNX export)."""
        if torch.jit.is_tracing():
            raise RuntimeError(TRACING_REFUSED)
