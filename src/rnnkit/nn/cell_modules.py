"""``RNNCell``, ``LSTMCell`` and ``GRUCell``: one time step, drop-in for ``torch.nn``'s cells.

A cell module runs the time loop's own step in one C++ call (native/cells.cpp ``cell_step``,
which checks the shapes itself): with a graph, the loops of ``rnnkit.nn.scan`` (``scan_forward``
/ ``scan_backward`` one step long) as one autograd node; without one, the fused step the layers
stream with. Other dtypes and devices, traced models and autocast run ``scan`` itself. So a cell
and a layer share one implementation of the equations and of their gradients, and a single step
pays none of the per-sequence bookkeeping, nor Python checks before it (they run only to name
what is wrong when the C++ step refuses an input). ``benchmarks/cells.py`` measures it against
torch.nn's cells at the sizes of pytorch/examples' time_sequence_prediction.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .recurrent_module import RecurrentModule
from . import native
from .cells import fastest
from .scan import CELL_CODES, scan
from .sequences import check_dtype, check_features, check_floating


_EMPTY = {}                  # an empty CPU tensor of each dtype: the C++ step's "no bias" / "no c"


class _CellBase(RecurrentModule):
    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool, device=None, dtype=None):
        super().__init__()
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = dict(device=device, dtype=dtype)
        gate_size = self.kind.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gate_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gate_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gate_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gate_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def _step(self, x: Tensor, h: Optional[Tensor], c: Optional[Tensor]):
        code = self._native_code(x)
        if code is not None and h is not None and (c is not None or not self.kind.has_cell_state):
            try:                                        # the common case, checked in C++
                return self._native_step(code, x, h, c)
            except RuntimeError:
                pass                                    # the checks below name what is wrong
        self._refuse_tracing()
        if not isinstance(x, Tensor) or x.dim() not in (1, 2):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"input must be a (batch, {self.input_size}) or ({self.input_size},) tensor, got {got}")
        check_floating(x, "input")
        check_features(x, self.input_size)
        check_dtype(x, self.weight_ih)
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
        B = x.shape[0]
        h = self._state(h, "hx", B, unbatched, x)
        c = self._state(c, "cx", B, unbatched, x) if self.kind.has_cell_state else None
        if code is not None:
            h_new, c_new = self._native_step(code, x, h, c)
        else:                                           # PyTorch operations, traced, or autocast: scan
            bias = None
            if self.bias:
                bias = self.bias_ih if self.kind.separate_recurrent else self.bias_ih + self.bias_hh
            result = scan(self.kind, x.unsqueeze(0), self.weight_hh, h, c, w_ih=self.weight_ih, b_ih=bias,
                          b_hh=self.bias_hh if self.kind.separate_recurrent else None)
            h_new, c_new = result.h_n, result.c_n
        if unbatched:
            h_new = h_new.squeeze(0)
            c_new = c_new.squeeze(0) if c_new is not None else None
        return h_new, c_new

    def _native_code(self, x) -> Optional[int]:
        """The C++ step's cell code for this input, or None where ``scan`` must run the step:
        another dtype or device, ``torch.compile`` or ``torch.export`` tracing, autocast."""
        if not isinstance(x, Tensor) or torch.compiler.is_compiling() or torch.is_autocast_enabled(x.device.type):
            return None
        kind = fastest(self.kind, x.dtype, x.device.type)
        return CELL_CODES[kind.name] if kind.native else None

    def _native_step(self, code: int, x: Tensor, h: Tensor, c: Optional[Tensor]) -> tuple:
        """(h', c' or None) of the C++ step (native/cells.cpp ``cell_step``): without a graph the
        layers' fused streaming step, with one a single autograd node. Refuses (RuntimeError) a
        shape or dtype that does not fit, and a call under ``torch.jit.trace``."""
        self._refuse_tracing()
        empty = _EMPTY.get(x.dtype)
        if empty is None:
            empty = _EMPTY[x.dtype] = x.new_empty(0)
        h_new, c_new = native.load().cell_step(code, x, self.weight_ih, self.weight_hh,
                                               self.bias_ih if self.bias else empty,
                                               self.bias_hh if self.bias else empty,
                                               h, c if c is not None else empty)
        return h_new, (c_new if c is not None else None)

    def _state(self, state: Optional[Tensor], name: str, B: int, unbatched: bool, x: Tensor) -> Tensor:
        if state is None:
            return x.new_zeros(B, self.hidden_size)
        expected = (self.hidden_size,) if unbatched else (B, self.hidden_size)
        if not isinstance(state, Tensor) or tuple(state.shape) != expected:
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"{name} must have shape {expected}, got {got}")
        if state.dtype != x.dtype:
            raise ValueError(f"{name}, the state, has dtype {state.dtype} but the input is {x.dtype}; convert the "
                             f"state ({name}.to({x.dtype}))")
        return state.unsqueeze(0) if unbatched else state


class RNNCell(_CellBase):
    """One step of the Elman RNN: ``h' = f(W_ih x + b_ih + W_hh h + b_hh)``.

    Inputs: x (B, I) or (I,); hx (B, H) or None. Outputs: h' (B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        return self._step(input, hx, None)[0]


class LSTMCell(_CellBase):
    """One LSTM step. Inputs: x (B, I); hx a pair (h, c) of (B, H) or None. Outputs: (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("lstm", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None) -> Tuple[Tensor, Tensor]:
        h, c = (None, None) if hx is None else hx
        return self._step(input, h, c)


class GRUCell(_CellBase):
    """One GRU step. Inputs: x (B, I); hx (B, H) or None. Outputs: h' (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("gru", input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        return self._step(input, hx, None)[0]
