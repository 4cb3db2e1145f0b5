"""ONNX export of rnnkit layers: ``rnnkit::scan`` as ONNX's own ``LSTM``, ``GRU`` and ``RNN``, or a ``Scan``.

    torch.onnx.export(model, (x,), "model.onnx", dynamo=True, dynamic_shapes=...,
                      custom_translation_table=rnnkit.nn.onnx_translations())

``torch.onnx.export`` (the ``torch.export``-based exporter) records each layer direction's time
loop as one ``rnnkit::scan`` node (``rnnkit.nn.ops``); this table tells it how to write that node
in ONNX. Each becomes one ONNX recurrent operator with dynamic batch and time axes. ONNX orders
the gates differently from PyTorch (LSTM: i, o, f, c against PyTorch's i, f, g, o; GRU: z, r, h
against r, z, n), so the weight and bias rows are permuted in the graph; the GRU uses
``linear_before_reset=1``, PyTorch's definition. What those operators have no form for (an LSTM
projection, ``proj_size``; layer normalisation of the recurrent projection; zoneout) becomes an
ONNX ``Scan`` whose body is one step of the cell (``onnx_loops``): the layer's own definition,
written out, whatever combination of the three it has. ``lengths`` given as a tensor become the
operators' ``sequence_lens`` (the Scan's mask). Lengths given as a list are refused in one line.

Needs ``onnx`` and ``onnxscript`` (``pip install rnnkit[export]``; onnxruntime runs the result).
"""

from __future__ import annotations

from typing import Callable, Dict

# ONNX's gate order as indices into PyTorch's blocks of rows
_ONNX_GATES = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}

def onnx_translations() -> Dict[object, Callable]:
    """The ``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``."""
    import torch
    from onnxscript import opset18 as op

    from . import ops  # noqa: F401  (registers rnnkit::scan)
    from .onnx_loops import gru_scan, lstm_scan, rnn_scan

    def permuted(rows, gates):
        # (G*H, ...) rows in PyTorch's gate order -> ONNX's, with a leading direction axis
        order = _ONNX_GATES[gates]
        if len(order) > 1:
            blocks = op.Split(rows, axis=0, num_outputs=len(order))
            rows = op.Concat(*[blocks[i] for i in order], axis=0)
        return op.Unsqueeze(rows, [0])

    def nothing_like(x):
        return op.CastLike(op.Constant(value_floats=[]), x)

    def per_step(value: float, x, width: int):
        # (T, B, width) of ``value``, T and B those of x
        shape = op.Concat(op.Shape(x, start=0, end=2), op.Constant(value_ints=[width]), axis=0)
        return op.Expand(op.CastLike(op.Constant(value_float=value), x), shape)

    def fixed(value: float, x, *shape: int):
        # a tensor of ``value`` of this static shape, x's type
        return op.Expand(op.CastLike(op.Constant(value_float=value), x), op.Constant(value_ints=list(shape)))

    def flag(value: bool):
        return op.Cast(op.Constant(value_int=int(value)), to=9)                 # a bool scalar

    def flip(t):
        # t reversed along time (axis 0)
        return op.Slice(t, op.Constant(value_ints=[-1]), op.Constant(value_ints=[-(2 ** 62)]),
                        op.Constant(value_ints=[0]), op.Constant(value_ints=[-1]))

    def loop(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths, mode, reverse):
        # An ONNX Scan over time whose body is one step of the cell (onnx_loops), for the options
        # ONNX's recurrent operators lack; rows past their length carry their state and give zeros,
        # as rnnkit's scan does.
        if w_ih is not None:
            gx = op.MatMul(x, op.Transpose(w_ih, perm=[1, 0]))                 # (T, B, G*H)
            gx = op.Add(gx, b_ih) if b_ih is not None else gx
        else:
            gx = x                                                              # layer norm: x is the projection
        GH, Hr = w_hh.shape[0], w_hh.shape[1]
        if lengths is not None:
            time = op.Range(op.Constant(value_int=0), op.Squeeze(op.Shape(x, start=0, end=1), [0]),
                            op.Constant(value_int=1))                           # (T,)
            active = op.Less(op.Unsqueeze(time, [1]), op.Unsqueeze(lengths, [0]))   # (T, B)
            mask = op.Unsqueeze(op.CastLike(active, x), [2])                     # (T, B, 1)
        else:
            mask = per_step(1.0, x, 1)
        zone_h = zoneout_h if zoneout_h is not None else per_step(0.0, x, Hr)
        gain = ln_weight if ln_weight is not None else fixed(1.0, x, GH)
        recurrent = op.Transpose(w_hh, perm=[1, 0])                             # (Hr, G*H)
        ln_on = flag(ln_weight is not None)
        steps = (gx, mask, zone_h)
        if mode == "lstm":
            H = GH // 4                                                         # the cell state's width
            steps += (zoneout_c if zoneout_c is not None else per_step(0.0, x, H),)
        if reverse:                                                             # the scan walks t = T-1 .. 0
            steps = tuple(flip(t) for t in steps)
        c_n = None if mode == "lstm" else nothing_like(x)
        if mode == "lstm":
            projection = op.Transpose(w_hr, perm=[1, 0]) if w_hr is not None else \
                op.EyeLike(fixed(0.0, x, H, H))                                 # (H, Hr)
            output, h_n, c_n = lstm_scan(*steps, h0, c0, recurrent, gain, ln_on, projection)
        elif mode == "gru":
            bias = b_hh if b_hh is not None else fixed(0.0, x, GH)
            output, h_n = gru_scan(*steps, h0, recurrent, bias, gain, ln_on)
        else:
            output, h_n = rnn_scan(*steps, h0, recurrent, gain, ln_on, flag(mode == "rnn_relu"))
        return (flip(output) if reverse else output), h_n, c_n

    def scan(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths, mode,
             batch_sizes, reverse, save):
        if batch_sizes:
            raise ValueError("rnnkit layers run with lengths given as a list (or a PackedSequence) cannot be exported: "
                             "give lengths as a (batch,) tensor input of the model")
        if w_ih is None or any(t is not None for t in (w_hr, ln_weight, zoneout_h, zoneout_c)):
            return loop(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths, mode,
                        reverse) + (nothing_like(x),) * 6
        hidden = w_hh.shape[1]
        W, R = permuted(w_ih, mode), permuted(w_hh, mode)
        B = None
        if b_ih is not None:
            wb = permuted(b_ih, mode)                                           # (1, G*H)
            rb = permuted(b_hh, mode) if b_hh is not None else op.Mul(wb, op.CastLike(0.0, wb))
            B = op.Concat(wb, rb, axis=1)                                      # (1, 2*G*H)
        initial_h = op.Unsqueeze(h0, [0])                                      # (1, B, H)
        sequence_lens = op.Cast(lengths, to=6) if lengths is not None else None   # (B,) int32
        direction = "reverse" if reverse else "forward"
        nothing = nothing_like(x)
        if mode == "lstm":
            Y, Y_h, Y_c = op.LSTM(x, W, R, B, sequence_lens, initial_h, op.Unsqueeze(c0, [0]), hidden_size=hidden,
                                  direction=direction)
            c_n = op.Squeeze(Y_c, [0])
        elif mode == "gru":
            Y, Y_h = op.GRU(x, W, R, B, sequence_lens, initial_h, hidden_size=hidden, direction=direction,
                            linear_before_reset=1)
            c_n = nothing
        else:
            Y, Y_h = op.RNN(x, W, R, B, sequence_lens, initial_h, hidden_size=hidden, direction=direction,
                            activations=["Relu" if mode == "rnn_relu" else "Tanh"])
            c_n = nothing
        output = op.Squeeze(Y, [1])                                            # (T, 1, B, H) -> (T, B, H)
        return (output, op.Squeeze(Y_h, [0]), c_n) + (nothing,) * 6

    return {torch.ops.rnnkit.scan.default: scan}
