"""The recurrent cells: one time step of each cell's equations, forward and backward.

Every cell is written from its equations, in PyTorch's gate order, as two functions on tensors:
``forward`` turns the pre-activations of one step into the new state, ``backward`` turns the
gradient of the new state into the gradients of the pre-activations and of the previous state.
The time loop (``rnnkit.nn.scan``) calls them; nothing here knows about time, lengths or autograd.
Results are written into buffers the loop owns (``out=``), so a step allocates almost nothing.

Notation, for a batch of ``n`` active rows and hidden size ``H``::

    gx = W_ih x_t + b_ih            (n, G*H)   input projection, precomputed for all steps
    gh = W_hh h_{t-1} [+ b_hh]      (n, G*H)   recurrent projection, one GEMM per step

Elman RNN (G = 1):   h_t = f(gx + gh),  f = tanh or relu
LSTM (G = 4):        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gx + gh)
                     c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
GRU (G = 3):         r = sigmoid(gx_r + gh_r),  z = sigmoid(gx_z + gh_z)
                     n = tanh(gx_n + r * gh_n),  h_t = (1 - z) * n + z * h_{t-1}

For the Elman RNN and the LSTM the two projections are only ever summed, so the loop adds the
recurrent GEMM straight into ``gx`` (one ``addmm``) and passes ``gh=None``. The GRU needs ``gh_n``
on its own (it is multiplied by ``r``), so it receives both.

Saved per step (``act``, the activation buffer): RNN ``h_t``; LSTM ``[i f g o tanh(c_t)]``;
GRU ``[r z n gh_n]``. That is all each backward needs besides ``h_{t-1}`` and ``c_{t-1}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch



@dataclass(frozen=True)
class CellKind:
    """What the time loop needs to know about a cell type.

    Attributes:
        name: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` or ``"gru"``.
        gates: number of gate blocks G (1, 4 or 3); projections are ``G * hidden_size`` wide.
        saved: width of the per-step activation buffer, in multiples of ``hidden_size``.
        has_cell_state: True for the LSTM (state is ``(h, c)``).
        separate_recurrent: True when the cell needs ``gh`` apart from ``gx`` (the GRU).
        forward: ``(a, gh, h_prev, c_prev, act, h_out, c_out) -> None``. ``a`` is ``gx + gh`` (or
            ``gx`` for the GRU); writes the new h into ``h_out``, c into ``c_out``, and ``act``.
        backward: ``(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev) -> dh_prev_direct``.
            Writes the gradients of the pre-activations into ``d_gx`` (and ``d_gh`` for the GRU;
            for the others ``d_gh`` is ``d_gx``) and of ``c_{t-1}`` into ``dc_prev``; returns the
            part of the gradient of ``h_{t-1}`` that does not go through ``W_hh`` (or None).
    """

    name: str
    gates: int
    saved: int
    has_cell_state: bool
    separate_recurrent: bool
    forward: Callable
    backward: Callable
    native: bool = False                     # the fused C++ version (its loop can run in C++ too)


# --- Elman RNN ---------------------------------------------------------------------------------

def _rnn_tanh_forward(a, gh, h_prev, c_prev, act, h_out, c_out):
    torch.tanh(a, out=act)                                      # act: (n, H) = h_t
    h_out.copy_(act)


def _rnn_tanh_backward(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev):
    torch.mul(act, act, out=d_gx)
    d_gx.neg_().add_(1.0)                                       # tanh'(a) = 1 - h^2
    d_gx.mul_(dh)
    return None


def _rnn_relu_forward(a, gh, h_prev, c_prev, act, h_out, c_out):
    torch.clamp_min(a, 0.0, out=act)
    h_out.copy_(act)


def _rnn_relu_backward(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev):
    torch.mul(dh, act > 0, out=d_gx)
    return None


# --- LSTM --------------------------------------------------------------------------------------

def _lstm_forward(a, gh, h_prev, c_prev, act, h_out, c_out):
    # a: (n, 4H) pre-activations [i | f | g | o]; act: (n, 5H) receives [i f g o tanh(c)].
    H = c_prev.shape[1]
    gates = act[:, :4 * H]
    torch.sigmoid(a, out=gates)                                 # i, f, o (g overwritten below)
    torch.tanh(a[:, 2 * H:3 * H], out=act[:, 2 * H:3 * H])      # g
    i, f, g, o, tanh_c = act.split(H, dim=1)
    torch.mul(f, c_prev, out=c_out)
    c_out.addcmul_(i, g)                                        # c_t = f c_{t-1} + i g
    torch.tanh(c_out, out=tanh_c)
    torch.mul(o, tanh_c, out=h_out)                             # h_t = o tanh(c_t)


def _lstm_backward(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev):
    H = c_prev.shape[1]
    i, f, g, o, tanh_c = act.split(H, dim=1)
    di, df, dg, do = d_gx.split(H, dim=1)
    dc_total = torch.mul(tanh_c, tanh_c)
    dc_total.neg_().add_(1.0).mul_(o).mul_(dh).add_(dc)               # dc + dh o (1 - tanh(c)^2)
    torch.mul(dh, tanh_c, out=do)
    torch.mul(dc_total, g, out=di)
    torch.mul(dc_total, c_prev, out=df)
    torch.mul(dc_total, i, out=dg)
    gates = act[:, :4 * H]
    deriv = torch.rsub(gates, 1.0).mul_(gates)                  # sigmoid' = s (1 - s) on i, f, o
    torch.mul(g, g, out=deriv[:, 2 * H:3 * H]).neg_().add_(1.0)       # tanh' = 1 - g^2 on g
    d_gx.mul_(deriv)
    torch.mul(dc_total, f, out=dc_prev)
    return None


# --- GRU ---------------------------------------------------------------------------------------

def _gru_forward(a, gh, h_prev, c_prev, act, h_out, c_out):
    # a = gx, gh: (n, 3H) [r | z | n]; act: (n, 4H) receives [r z n gh_n].
    H = h_prev.shape[1]
    rz = act[:, :2 * H]
    torch.add(a[:, :2 * H], gh[:, :2 * H], out=rz)
    torch.sigmoid(rz, out=rz)
    r, z, n, gh_n = act.split(H, dim=1)
    gh_n.copy_(gh[:, 2 * H:])
    torch.addcmul(a[:, 2 * H:], r, gh_n, out=n)
    torch.tanh(n, out=n)
    torch.sub(h_prev, n, out=h_out)
    h_out.mul_(z).add_(n)                                       # h_t = n + z (h_{t-1} - n)


def _gru_backward(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev):
    H = h_prev.shape[1]
    r, z, n, gh_n = act.split(H, dim=1)
    dr, dz, dn = d_gx.split(H, dim=1)
    torch.mul(n, n, out=dn)
    dn.neg_().add_(1.0)
    dn.mul_(dh).sub_(dn * z)                                    # dh (1 - z) (1 - n^2)
    torch.sub(h_prev, n, out=dz)
    dz.mul_(dh).mul_(z - z * z)                                 # dh (h_{t-1} - n) z (1 - z)
    torch.mul(dn, gh_n, out=dr)
    dr.mul_(r - r * r)                                          # dn gh_n r (1 - r)
    d_gh[:, :2 * H] = d_gx[:, :2 * H]
    torch.mul(dn, r, out=d_gh[:, 2 * H:])
    return dh * z


RNN_TANH = CellKind("rnn_tanh", 1, 1, False, False, _rnn_tanh_forward, _rnn_tanh_backward)
RNN_RELU = CellKind("rnn_relu", 1, 1, False, False, _rnn_relu_forward, _rnn_relu_backward)
LSTM = CellKind("lstm", 4, 5, True, False, _lstm_forward, _lstm_backward)
GRU = CellKind("gru", 3, 4, False, True, _gru_forward, _gru_backward)

CELL_KINDS = {kind.name: kind for kind in (RNN_TANH, RNN_RELU, LSTM, GRU)}


# --- The same cells, fused in C++ ----------------------------------------------------------------

def _native_kinds(ext) -> dict:
    """CellKinds whose step runs as one fused C++ pass (``rnnkit/nn/native/cells.cpp``)."""

    def rnn(relu: bool, base: CellKind) -> CellKind:
        def forward(a, gh, h_prev, c_prev, act, h_out, c_out):
            ext.rnn_forward(a, act, h_out, relu)

        def backward(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev):
            ext.rnn_backward(dh, act, d_gx, relu)

        return CellKind(base.name, base.gates, base.saved, False, False, forward, backward, True)

    def lstm_forward(a, gh, h_prev, c_prev, act, h_out, c_out):
        ext.lstm_forward(a, c_prev, act, h_out, c_out)

    def lstm_backward(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev):
        ext.lstm_backward(dh, dc.contiguous(), act, c_prev, d_gx, dc_prev)

    def gru_forward(a, gh, h_prev, c_prev, act, h_out, c_out):
        ext.gru_forward(a, gh, h_prev, act, h_out)

    def gru_backward(dh, dc, act, h_prev, c_prev, d_gx, d_gh, dc_prev):
        dh_direct = torch.empty_like(dh)
        ext.gru_backward(dh, act, h_prev, d_gx, d_gh, dh_direct)
        return dh_direct

    return {
        "rnn_tanh": rnn(False, RNN_TANH),
        "rnn_relu": rnn(True, RNN_RELU),
        "lstm": CellKind("lstm", 4, 5, True, False, lstm_forward, lstm_backward, True),
        "gru": CellKind("gru", 3, 4, False, True, gru_forward, gru_backward, True),
    }


_NATIVE: dict = {}


def fastest(kind: CellKind, dtype: torch.dtype, device: str = "cpu") -> CellKind:
    """The fused C++ version of ``kind`` when it is available for ``dtype`` on ``device`` (a device
    type: the C++ cells run on the CPU), else ``kind`` itself: PyTorch operations, which run on any
    device (a GPU's among them)."""
    if dtype not in (torch.float32, torch.float64) or device != "cpu":
        return kind
    if "kinds" not in _NATIVE:
        from . import native
        ext = native.load()
        _NATIVE["kinds"] = _native_kinds(ext) if ext is not None else None
    kinds = _NATIVE["kinds"]
    return kinds[kind.name] if kinds is not None else kind
