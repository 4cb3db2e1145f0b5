"""ONNX functions for the layer options ONNX has no recurrent operator for (``rnnkit.nn.onnx``):
an LSTM projection (``proj_size``), layer normalisation of the recurrent projection, and zoneout.

Each is an ONNX ``Scan`` over time whose body is one step of the cell, as ``rnnkit.nn.scan``'s
``forward_step`` computes it, written with onnxscript (imported only when exporting:
``pip install rnnkit[export]``). One body per cell serves every combination of the options: an
absent option is given as the value that leaves the step unchanged, exactly (no projection: the
identity; no zoneout: zero weights; no layer norm: ``ln_on`` false selects the raw projection).

Shared inputs: gx (T, B, G*H), the input projection with its biases (or, with layer norm, the
normalised one); mask (T, B, 1), 1 where a row is active (inactive rows keep their state and give
zeros); zone_h (T, B, Hr) and zone_c (T, B, H), the zoneout weights of the previous state
(``s_t = w s_{t-1} + (1 - w) s~_t``); recurrent = W_hh^T (Hr, G*H); ln_gain (G*H,) and ln_on
(a bool scalar): ``h W_hh^T`` normalised over its G*H values (epsilon 1e-5, ``scan.LAYER_NORM_EPS``)
times the gain.

This module has no ``from __future__ import annotations``: onnxscript reads the type annotations
as objects. The bodies repeat the lines of the step's end (zoneout, then the mask) because a body
cannot call an onnxscript function: the exporter would not include it in the model.
"""

from typing import Tuple

from onnxscript import BOOL, graph, script
from onnxscript import opset18 as op
from onnxscript.function_libs.torch_lib.tensor_typing import TFloat


@script()
def lstm_scan(gx: TFloat, mask: TFloat, zone_h: TFloat, zone_c: TFloat, h0: TFloat, c0: TFloat, recurrent: TFloat,
              ln_gain: TFloat, ln_on: BOOL, projection: TFloat) -> Tuple[TFloat, TFloat, TFloat]:
    """The LSTM's time loop, forward in time (gates in PyTorch's order i, f, g, o).

    Inputs (besides the shared ones): h0 (B, Hr); c0 (B, H); projection = W_hr^T (H, Hr), the
    identity without ``proj_size``.
    Outputs: y (T, B, Hr); h_n (B, Hr) and c_n (B, H), each row's state after its last active step.
    """

    @graph()
    def step(h, c, r, g, on, p, gx_t, m_t, zh_t, zc_t):
        raw = op.MatMul(h, r)                                                   # (B, 4H)
        gates = op.Add(gx_t, op.Where(on, op.LayerNormalization(raw, g, epsilon=1e-5), raw))
        i, f, cand, o = op.Split(gates, axis=1, num_outputs=4)
        c_new = op.Add(op.Mul(op.Sigmoid(f), c), op.Mul(op.Sigmoid(i), op.Tanh(cand)))
        h_new = op.MatMul(op.Mul(op.Sigmoid(o), op.Tanh(c_new)), p)             # (B, Hr)
        h_new = op.Add(h_new, op.Mul(zh_t, op.Sub(h, h_new)))                   # zoneout
        c_new = op.Add(c_new, op.Mul(zc_t, op.Sub(c, c_new)))
        h_out = op.Add(h, op.Mul(m_t, op.Sub(h_new, h)))                        # inactive rows keep h
        c_out = op.Add(c, op.Mul(m_t, op.Sub(c_new, c)))
        y_t = op.Mul(m_t, h_new)
        return h_out, c_out, op.Identity(r), op.Identity(g), op.Identity(on), op.Identity(p), y_t

    h_n, c_n, r_n, g_n, on_n, p_n, y = op.Scan(h0, c0, recurrent, ln_gain, ln_on, projection, gx, mask, zone_h,
                                               zone_c, body=step, num_scan_inputs=4)
    return y, h_n, c_n


@script()
def gru_scan(gx: TFloat, mask: TFloat, zone_h: TFloat, h0: TFloat, recurrent: TFloat, b_hh: TFloat,
             ln_gain: TFloat, ln_on: BOOL) -> Tuple[TFloat, TFloat]:
    """The GRU's time loop, forward in time (gates in PyTorch's order r, z, n; the reset gate
    multiplies the recurrent projection with its bias, as PyTorch's GRU).

    Inputs (besides the shared ones): h0 (B, H); b_hh (3H,), added after the normalisation.
    Outputs: y (T, B, H); h_n (B, H).
    """

    @graph()
    def step(h, r, b, g, on, gx_t, m_t, zh_t):
        raw = op.MatMul(h, r)                                                   # (B, 3H)
        gh = op.Add(op.Where(on, op.LayerNormalization(raw, g, epsilon=1e-5), raw), b)
        x_r, x_z, x_n = op.Split(gx_t, axis=1, num_outputs=3)
        h_r, h_z, h_n = op.Split(gh, axis=1, num_outputs=3)
        reset = op.Sigmoid(op.Add(x_r, h_r))
        update = op.Sigmoid(op.Add(x_z, h_z))
        cand = op.Tanh(op.Add(x_n, op.Mul(reset, h_n)))
        h_new = op.Add(cand, op.Mul(update, op.Sub(h, cand)))                   # n + z (h - n)
        h_new = op.Add(h_new, op.Mul(zh_t, op.Sub(h, h_new)))                   # zoneout
        h_out = op.Add(h, op.Mul(m_t, op.Sub(h_new, h)))                        # inactive rows keep h
        y_t = op.Mul(m_t, h_new)
        return h_out, op.Identity(r), op.Identity(b), op.Identity(g), op.Identity(on), y_t

    h_n, r_n, b_n, g_n, on_n, y = op.Scan(h0, recurrent, b_hh, ln_gain, ln_on, gx, mask, zone_h, body=step,
                                          num_scan_inputs=3)
    return y, h_n


@script()
def rnn_scan(gx: TFloat, mask: TFloat, zone_h: TFloat, h0: TFloat, recurrent: TFloat, ln_gain: TFloat,
             ln_on: BOOL, relu: BOOL) -> Tuple[TFloat, TFloat]:
    """The Elman RNN's time loop, forward in time: ``h_t = f(gx_t + h_{t-1} W_hh^T)``, f tanh, or
    ReLU where ``relu`` (a bool scalar) is true.

    Inputs (besides the shared ones): h0 (B, H).
    Outputs: y (T, B, H); h_n (B, H).
    """

    @graph()
    def step(h, r, g, on, use_relu, gx_t, m_t, zh_t):
        raw = op.MatMul(h, r)                                                   # (B, H)
        a = op.Add(gx_t, op.Where(on, op.LayerNormalization(raw, g, epsilon=1e-5), raw))
        h_new = op.Where(use_relu, op.Relu(a), op.Tanh(a))
        h_new = op.Add(h_new, op.Mul(zh_t, op.Sub(h, h_new)))                   # zoneout
        h_out = op.Add(h, op.Mul(m_t, op.Sub(h_new, h)))                        # inactive rows keep h
        y_t = op.Mul(m_t, h_new)
        return h_out, op.Identity(r), op.Identity(g), op.Identity(on), op.Identity(use_relu), y_t

    h_n, r_n, g_n, on_n, relu_n, y = op.Scan(h0, recurrent, ln_gain, ln_on, relu, gx, mask, zone_h, body=step,
                                             num_scan_inputs=3)
    return y, h_n
