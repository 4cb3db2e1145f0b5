"""``RNN``, ``LSTM`` and ``GRU`` layers: drop-in replacements for ``torch.nn``'s, with hand-written BPTT.

Same constructor arguments, parameter names (``weight_ih_l{k}{_reverse}`` ...), shapes and returns
as ``torch.nn.RNN/LSTM/GRU``, so a ``state_dict`` moves either way. On top of those, options that
``torch.nn`` lacks, all running on the same fast time loop: ``layer_norm``, ``zoneout``,
``weight_drop``, ``recurrent_init="orthogonal"``, ``forget_bias`` (LSTM), a ``lengths`` argument for
padded input, and ``step`` for streaming one time step at a time.

Contract for variable lengths (``lengths=`` or a ``PackedSequence``): at padded steps the state is
carried unchanged and the output is zero; ``h_n`` is each sequence's state at its last real step.
This is what ``torch.nn`` gives for packed input.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from . import cells, native
from .recurrent_module import RecurrentModule
from .regularizers import drop_connect, zoneout_weight
from .scan import CELL_CODES, forward_step, linear_into, scan
from .sequences import Layout, Lengths, check_dtype, check_features, check_floating, prepare

State = Union[Tensor, Tuple[Tensor, Tensor]]

# Streaming ``step`` of a plain layer runs as one fused C++ pass up to this many rows; larger
# batches are better served by BLAS. ``python benchmarks/step_rows.py --batches 8,16,32`` measured
# the crossover between 8 and 16 rows here (I = H = 512, 2 threads).
FUSED_STEP_ROWS = 8
#: The dtypes the fused step takes; for bfloat16 it sums and applies the gates in float32.
FUSED_STEP_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def autocast_dtype(device: str) -> Optional[torch.dtype]:
    """The dtype ``torch.autocast`` runs the recurrent loop in on ``device``; None when autocast is off."""
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None


class RNNBase(RecurrentModule):
    """A stack of recurrent layers over time, directions and lengths. Use ``RNN``, ``LSTM`` or ``GRU``."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None, *,
                 layer_norm: bool = False, zoneout: float = 0.0, weight_drop: float = 0.0,
                 recurrent_init: str = "default", forget_bias: Optional[float] = None) -> None:
        super().__init__()
        _check_int("input_size", input_size, 1)
        _check_int("hidden_size", hidden_size, 1)
        _check_int("num_layers", num_layers, 1)
        _check_int("proj_size", proj_size, 0)
        for name, p in (("dropout", dropout), ("zoneout", zoneout), ("weight_drop", weight_drop)):
            if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {p!r}")
        if proj_size and mode != "lstm":
            raise ValueError("proj_size is supported by LSTM only")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({hidden_size}), got {proj_size}")
        if recurrent_init not in ("default", "orthogonal"):
            raise ValueError(f"recurrent_init must be 'default' or 'orthogonal', got {recurrent_init!r}")
        if forget_bias is not None and mode != "lstm":
            raise ValueError("forget_bias is an LSTM option")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.layer_norm = layer_norm
        self.zoneout = float(zoneout)
        self.weight_drop = float(weight_drop)
        self.recurrent_init = recurrent_init
        self.forget_bias = forget_bias

        factory = dict(device=device, dtype=dtype)
        gate_size = self.kind.gates * hidden_size
        real_hidden = proj_size or hidden_size
        num_directions = 2 if bidirectional else 1
        self._weight_names: List[List[str]] = []     # per (layer, direction): its parameter names
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * num_directions
            for direction in range(num_directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                if layer_norm:
                    shapes += [("layer_norm_ih", (gate_size,)), ("layer_norm_hh", (gate_size,))]
                names = []
                for base, shape in shapes:
                    self.register_parameter(base + suffix, nn.Parameter(torch.empty(shape, **factory)))
                    names.append(base + suffix)
                self._weight_names.append(names)
        # per layer: weight_ih, weight_hh, bias_ih, bias_hh ("" without bias), as _fused_step passes them
        self._step_weight_names = [name for k in range(num_layers) for name in (
            f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}" if bias else "", f"bias_hh_l{k}" if bias else "")]
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        """Width of ``h``: ``proj_size`` when set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def flatten_parameters(self) -> None:
        """Nothing to do: ``torch.nn``'s layers pack their weights into one cuDNN buffer here; rnnkit's
        are always used as they are. Kept so that code written for ``torch.nn`` runs unchanged."""

    def reset_parameters(self) -> None:
        """PyTorch's default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)); layer-norm gains 1.

        Opt-ins: ``recurrent_init="orthogonal"`` makes each gate block of ``W_hh`` orthogonal;
        ``forget_bias=b`` sets the LSTM forget-gate bias (``b_ih + b_hh``) to ``b``.
        """
        bound = 1.0 / math.sqrt(self.hidden_size)
        H = self.hidden_size
        for name, param in self.named_parameters():
            if name.startswith("layer_norm"):
                nn.init.ones_(param)
                continue
            nn.init.uniform_(param, -bound, bound)
            if name.startswith("weight_hh") and self.recurrent_init == "orthogonal":
                with torch.no_grad():
                    for block in param.split(H, dim=0):
                        nn.init.orthogonal_(block)
            if name.startswith("bias") and self.forget_bias is not None:
                with torch.no_grad():
                    param[H:2 * H] = self.forget_bias if name.startswith("bias_ih") else 0.0

    def _weights(self, index: int) -> dict:
        """The parameters of layer-direction ``index`` by base name (``weight_ih``, ...)."""
        params = self._parameters                       # (not getattr: nn.Module's __getattr__ is slow per step)
        return {name.rsplit("_l", 1)[0]: params[name] for name in self._weight_names[index]}

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                        proj_size=0, layer_norm=False, zoneout=0.0, weight_drop=0.0,
                        recurrent_init="default", forget_bias=None)
        if self.mode.startswith("rnn_"):
            s += f", nonlinearity={self.mode[4:]!r}"
        for key, default in defaults.items():
            value = getattr(self, key)
            if value != default:
                s += f", {key}={value!r}"
        return s

    # -- forward ------------------------------------------------------------------------------

    def forward(self, input: Union[Tensor, PackedSequence], hx: Optional[State] = None,
                lengths: Lengths = None):
        """Run the stack over the whole sequence.

        Inputs:
            input: (T, B, I), (B, T, I) with ``batch_first``, unbatched (T, I), or a PackedSequence.
            hx: initial state, (L*D, B, Hr) — for the LSTM a pair (h_0, c_0) with c_0 (L*D, B, H) —
                (L*D, Hr) for unbatched input; zeros when None. Rows in the caller's order.
            lengths: (B,) real length of each padded sequence, any order; padded input only.

        Outputs: ``(output, h_n)``, for the LSTM ``(output, (h_n, c_n))``:
            output: (T, B, D*Hr) (batch_first: (B, T, D*Hr)), or a PackedSequence for packed input;
                zero at padded steps.
            h_n: (L*D, B, Hr), each sequence's state at its last real step; c_n: (L*D, B, H).
        """
        self._refuse_tracing()
        layout = prepare(input, lengths, batch_first=self.batch_first, input_size=self.input_size)
        check_dtype(layout.x, self._parameters["weight_ih_l0"], autocast_dtype(layout.x.device.type))
        h0, c0 = self._initial_state(hx, layout)
        x = layout.x
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                index = layer * self.num_directions + direction
                result = self._run_direction(index, x, h0[index], c0[index] if c0 is not None else None,
                                             layout.batch_sizes, reverse=direction == 1, lengths=layout.lengths)
                outputs.append(result.output)
                h_n.append(result.h_n)
                c_n.append(result.c_n)
            x = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)     # (T, B, D*Hr)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        output = layout.to_caller_output(x)
        h_n = self._to_caller_state(torch.stack(h_n), layout)
        if self.kind.has_cell_state:
            return output, (h_n, self._to_caller_state(torch.stack(c_n), layout))
        return output, h_n

    def _run_direction(self, index: int, x: Tensor, h0: Tensor, c0: Optional[Tensor],
                       batch_sizes: Optional[tuple], reverse: bool, lengths: Optional[Tensor] = None):
        """One layer in one direction: ``scan``, the input GEMM for all steps and then the time loop.

        Under ``torch.autocast`` the loop runs in the autocast dtype (as torch.nn's layers do):
        weights and state are cast to it, differentiably, so gradients reach the float32
        parameters.
        """
        w = self._weights(index)
        T, B, _ = x.shape
        w_ih, b_ih = w["weight_ih"], self._input_bias(w)
        if self.layer_norm:                      # scan takes the normalised projection as its input
            x, w_ih, b_ih = self._input_projection(w, x), None, None             # (T, B, G*H)
        device = x.device.type
        loop_dtype = autocast_dtype(device)

        def cast(t: Optional[Tensor]) -> Optional[Tensor]:
            return t.to(loop_dtype) if t is not None and loop_dtype is not None else t

        x = cast(x)
        b_hh = w.get("bias_hh") if self.kind.separate_recurrent else None
        zoneout_h = zoneout_weight(self.zoneout, (T, B, self.state_size), self.training, x)
        zoneout_c = None
        if self.kind.has_cell_state:
            zoneout_c = zoneout_weight(self.zoneout, (T, B, self.hidden_size), self.training, x)
        w_hh = drop_connect(w["weight_hh"], self.weight_drop, self.training)
        with torch.autocast(device, enabled=False):
            return scan(self.kind, x, cast(w_hh), cast(h0), cast(c0), w_ih=cast(w_ih), b_ih=cast(b_ih),
                        batch_sizes=batch_sizes, reverse=reverse, b_hh=cast(b_hh), w_hr=cast(w.get("weight_hr")),
                        ln_weight=cast(w.get("layer_norm_hh")), zoneout_h=zoneout_h, zoneout_c=zoneout_c,
                        lengths=lengths)

    def _input_projection(self, w: dict, x: Tensor) -> Tensor:
        """gx = [LN](x W_ih^T) + b_ih (+ b_hh for the RNN and LSTM, where it is only ever added)."""
        bias = self._input_bias(w)
        if not self.layer_norm:
            return F.linear(x, w["weight_ih"], bias)
        gx = F.layer_norm(F.linear(x, w["weight_ih"]), (w["weight_ih"].shape[0],), w["layer_norm_ih"])
        return gx if bias is None else gx + bias

    def _input_bias(self, w: dict) -> Optional[Tensor]:
        """The bias added to the input projection: b_ih, and b_hh too except for the GRU."""
        if not self.bias:
            return None
        return w["bias_ih"] if self.kind.separate_recurrent else w["bias_ih"] + w["bias_hh"]

    def _initial_state(self, hx: Optional[State], layout: Layout):
        """Check ``hx`` and return (h0, c0) as (L*D, B, .) tensors in internal row order."""
        LD, B = self.num_layers * self.num_directions, layout.batch_size
        x = layout.x
        if self.kind.has_cell_state:
            if hx is None:
                return x.new_zeros(LD, B, self.state_size), x.new_zeros(LD, B, self.hidden_size)
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise ValueError("hx must be a pair (h_0, c_0) for an LSTM")
            h0 = self._check_state(hx[0], "hx[0] (h_0)", self.state_size, layout)
            c0 = self._check_state(hx[1], "hx[1] (c_0)", self.hidden_size, layout)
            return h0, c0
        if hx is None:
            return x.new_zeros(LD, B, self.state_size), None
        if isinstance(hx, (tuple, list)):
            raise ValueError(f"hx must be a single tensor for {type(self).__name__}, got a {type(hx).__name__}")
        return self._check_state(hx, "hx", self.state_size, layout), None

    def _check_state(self, state: Tensor, name: str, size: int, layout: Layout) -> Tensor:
        LD, B = self.num_layers * self.num_directions, layout.batch_size
        expected = (LD, size) if layout.unbatched else (LD, B, size)
        if not isinstance(state, Tensor) or tuple(state.shape) != expected:
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ValueError(f"{name} must have shape {expected} (num_layers*num_directions, batch, "
                             f"{'proj_size' if size == self.proj_size else 'hidden_size'}), got {got}")
        if state.dtype not in (layout.x.dtype, autocast_dtype(layout.x.device.type)):   # or the state autocast returned
            raise ValueError(f"{name} has dtype {state.dtype} but input has {layout.x.dtype}; use the same dtype")
        if layout.unbatched:
            state = state.unsqueeze(1)
        return layout.to_internal_rows(state)

    def _to_caller_state(self, state: Tensor, layout: Layout) -> Tensor:
        state = layout.to_caller_rows(state)                                       # (L*D, B, S)
        return state.squeeze(1) if layout.unbatched else state

    # -- streaming ----------------------------------------------------------------------------

    def step(self, x: Tensor, state: Optional[State] = None) -> Tuple[Tensor, State]:
        """Advance one time step, for streaming inference (unidirectional stacks only).

        Inputs:
            x: (B, I) or (I,) the input of this step.
            state: as ``hx`` of ``forward`` ((L, B, Hr), or a pair for the LSTM), or None for zeros.

        Outputs: ``(y, new_state)``: y (B, Hr) (or (Hr,)) is the top layer's output; new_state has
        the form of ``state``. Running ``step`` over t = 0..T-1 gives ``forward``'s results.

        Up to ``FUSED_STEP_ROWS`` rows, a layer without layer norm, projection or zoneout steps in
        one C++ pass over all its layers, in float32, float64 or bfloat16 (``layer.bfloat16()``
        halves the weights to read, which bounds a step at batch 1; its sums stay in float32).
        """
        self._refuse_tracing()
        if self.bidirectional:
            raise ValueError("step needs a unidirectional layer: a bidirectional layer must see the whole sequence")
        if not isinstance(x, Tensor) or x.dim() not in (1, 2):
            raise ValueError(f"x must be a (batch, features) or (features,) tensor, got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        needs_graph = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
        if needs_graph or (self.training and (self.zoneout or self.weight_drop or self.dropout)) or \
                torch.compiler.is_compiling():
            # Training through steps, or traced by torch.compile/torch.export: the same time loop
            # (the opaque scan operator when traced), one step long.
            time_dim = 1 if (self.batch_first and x.dim() == 2) else 0
            output, new_state = self.forward(x.unsqueeze(time_dim), state)
            return output.squeeze(time_dim), new_state
        return self._inference_step(x, state)

    def _inference_step(self, x: Tensor, state: Optional[State]) -> Tuple[Tensor, State]:
        # No graph: run ``forward_step`` straight on each layer, with no per-sequence machinery.
        check_floating(x, "input")
        check_features(x, self.input_size)
        check_dtype(x, self._parameters["weight_ih_l0"], autocast_dtype(x.device.type))
        unbatched = x.dim() == 1
        x = x.unsqueeze(0) if unbatched else x                                   # (B, I)
        if x.dtype in FUSED_STEP_DTYPES and x.shape[0] <= FUSED_STEP_ROWS and x.device.type == "cpu" \
                and native.load() is not None \
                and x.dtype == self._parameters["weight_ih_l0"].dtype \
                and not (self.layer_norm or self.proj_size or self.zoneout):
            return self._fused_step(x, state, unbatched)
        kind = cells.fastest(self.kind, x.dtype, x.device.type)
        layout = Layout(x.unsqueeze(0), None, None, None, packed=False, unbatched=unbatched,
                        batch_first=False)
        h0, c0 = self._initial_state(state, layout)                              # (L, B, .)
        B, H = x.shape[0], self.hidden_size
        h_n, c_n = torch.empty_like(h0), torch.empty_like(c0) if c0 is not None else None
        zone = float(self.zoneout) if self.zoneout else None
        for layer in range(self.num_layers):
            w = self._weights(layer)
            if self.layer_norm:
                gx = self._input_projection(w, x)                                # (B, G*H)
            else:
                gx = linear_into(x.contiguous(), w["weight_ih"].t(), self._input_bias(w), None)
            act = x.new_empty(B, kind.saved * H)
            needs_cand = "weight_hr" in w or zone is not None
            forward_step(kind, gx.contiguous(), h0[layer], c0[layer] if c0 is not None else None,
                         w["weight_hh"].t(), b_hh=w.get("bias_hh") if kind.separate_recurrent else None,
                         w_hr=w.get("weight_hr"), ln_weight=w.get("layer_norm_hh"), zh=zone,
                         zc=zone if c0 is not None else None, act=act, h_next=h_n[layer],
                         c_next=c_n[layer] if c_n is not None else None,
                         h_cand=x.new_empty(B, H) if needs_cand else None,
                         xhat=gx.new_empty(gx.shape) if self.layer_norm else None,
                         rstd=x.new_empty(B, 1) if self.layer_norm else None)
            x = h_n[layer]
        y = h_n[-1].clone()
        if unbatched:
            y, h_n = y.squeeze(0), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return y, ((h_n, c_n) if c_n is not None else h_n)

    def _fused_step(self, x: Tensor, state: Optional[State], unbatched: bool):
        # A plain layer at a small batch: every layer in one C++ call (native/cells.cpp, step_stack),
        # which reads each layer's weights once, on all cores. x (B, I).
        L, B, H = self.num_layers, x.shape[0], self.hidden_size
        lstm = self.kind.has_cell_state
        given = state if lstm and isinstance(state, tuple) else (state,)
        expected = (L, H) if unbatched else (L, B, H)
        if state is not None and all(isinstance(s, Tensor) and s.shape == expected and s.dtype == x.dtype
                                     for s in given) and len(given) == (2 if lstm else 1):
            h0, c0 = (s.unsqueeze(1) if unbatched else s for s in given) if lstm else \
                (given[0].unsqueeze(1) if unbatched else given[0], None)
        else:   # zeros, or the full check (and its error message)
            h0, c0 = self._initial_state(state, Layout(x.unsqueeze(0), None, None, None, packed=False,
                                                       unbatched=unbatched, batch_first=False))
        empty = x.new_empty(0)
        params = self._parameters
        weights = [params[name] if name else empty for name in self._step_weight_names]
        y, h_n, c_n = native.load().step_stack(CELL_CODES[self.kind.name], x, h0, c0 if lstm else empty, weights)
        if unbatched:
            y, h_n, c_n = y.squeeze(0), h_n.squeeze(1), c_n.squeeze(1) if lstm else c_n
        return y, ((h_n, c_n) if lstm else h_n)


def make_layer(cell: str, input_size: int, hidden_size: int, **kwargs) -> RNNBase:
    """Build a layer by name: ``"rnn"``/``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` or ``"gru"``."""
    name = cell.lower()
    if name in ("rnn", "rnn_tanh", "rnn_relu"):
        return RNN(input_size, hidden_size, nonlinearity="relu" if name == "rnn_relu" else "tanh", **kwargs)
    if name == "lstm":
        return LSTM(input_size, hidden_size, **kwargs)
    if name == "gru":
        return GRU(input_size, hidden_size, **kwargs)
    raise ValueError(f"cell must be one of 'rnn', 'rnn_relu', 'lstm', 'gru', got {cell!r}")


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class RNN(RNNBase):
    """Elman RNN: ``h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, f = tanh or relu.

    Args: as ``torch.nn.RNN`` (input_size, hidden_size, num_layers, nonlinearity, bias, batch_first,
    dropout, bidirectional), plus the keyword-only options of ``RNNBase``: ``layer_norm``, ``zoneout``,
    ``weight_drop``, ``recurrent_init``.

    Example::

        >>> rnn = RNN(10, 20, num_layers=2)
        >>> output, h_n = rnn(torch.randn(5, 3, 10))      # (5, 3, 20), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None, **options):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype, **options)


class LSTM(RNNBase):
    """LSTM, gates i, f, g, o in PyTorch's order, with an optional projection ``h = W_hr h``.

    Args: as ``torch.nn.LSTM`` (input_size, hidden_size, num_layers, bias, batch_first, dropout,
    bidirectional, proj_size), plus ``layer_norm``, ``zoneout``, ``weight_drop``, ``recurrent_init``
    and ``forget_bias``.

    Example::

        >>> lstm = LSTM(10, 20, batch_first=True)
        >>> x = torch.randn(3, 7, 10)
        >>> output, (h_n, c_n) = lstm(x, lengths=[7, 2, 5])   # output zero past each length
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, **options):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype, **options)


class GRU(RNNBase):
    """GRU, gates r, z, n with PyTorch's ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.

    Args: as ``torch.nn.GRU`` (input_size, hidden_size, num_layers, bias, batch_first, dropout,
    bidirectional), plus ``layer_norm``, ``zoneout``, ``weight_drop``, ``recurrent_init``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, **options):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, **options)
