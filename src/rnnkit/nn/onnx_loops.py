"""ONNX functions for the layer options ONNX has no recurrent operator for (``rnnkit.nn.onnx``).

Each is an ONNX ``Scan`` over time whose body is one step of the cell, written with onnxscript
(imported only when exporting: ``pip install rnnkit[export]``). This module has no
``from __future__ import annotations``: onnxscript reads the type annotations as objects.
"""

from typing import Tuple

from onnxscript import graph, script
from onnxscript import opset18 as op
from onnxscript.function_libs.torch_lib.tensor_typing import TFloat


@script()
def lstm_projection_scan(gx: TFloat, mask: TFloat, h0: TFloat, c0: TFloat, recurrent: TFloat,
                         projection: TFloat) -> Tuple[TFloat, TFloat, TFloat]:
    """The time loop of an LSTM with a projection (``proj_size``), forward in time.

    Inputs: gx (T, B, 4H) the input projection with both biases, gates in PyTorch's order i, f,
    g, o; mask (T, B, 1), 1 where a row is active; h0 (B, P); c0 (B, H); recurrent = W_hh^T
    (P, 4H); projection = W_hr^T (H, P).
    Outputs: y (T, B, P), zero where a row is inactive; h_n (B, P) and c_n (B, H), each row's state
    after its last active step.
    """

    @graph()
    def step(h, c, r, p, gx_t, m_t):
        gates = op.Add(gx_t, op.MatMul(h, r))                                   # (B, 4H)
        i, f, g, o = op.Split(gates, axis=1, num_outputs=4)
        c_new = op.Add(op.Mul(op.Sigmoid(f), c), op.Mul(op.Sigmoid(i), op.Tanh(g)))
        h_new = op.MatMul(op.Mul(op.Sigmoid(o), op.Tanh(c_new)), p)             # (B, P)
        h_out = op.Add(h, op.Mul(m_t, op.Sub(h_new, h)))                        # inactive rows keep h
        c_out = op.Add(c, op.Mul(m_t, op.Sub(c_new, c)))
        r_out = op.Identity(r)
        p_out = op.Identity(p)
        y_t = op.Mul(m_t, h_new)
        return h_out, c_out, r_out, p_out, y_t

    h_n, c_n, r_n, p_n, y = op.Scan(h0, c0, recurrent, projection, gx, mask, body=step, num_scan_inputs=2)
    return y, h_n, c_n
