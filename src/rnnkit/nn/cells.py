"""The recurrent cells: one time step of each cell's equations, forward and backward.

Every cell is written from its equations, in PyTorch's gate order, as two pure functions on
tensors: ``forward`` turns the pre-activations of one step into the new state, ``backward``
turns the gradient of the new state into the gradients of the pre-activations and of the
previous state. The time loop (``rnnkit.nn.scan``) calls them; nothing here knows about time,
lengths or autograd.

Notation, for a batch of ``n`` active rows and hidden size ``H``::

    gx = W_ih x_t + b_ih            (n, G*H)   input projection, precomputed for all steps
    gh = W_hh h_{t-1} [+ b_hh]      (n, G*H)   recurrent projection, one GEMM per step

Elman RNN (G = 1):   h_t = f(gx + gh),  f = tanh or relu
LSTM (G = 4):        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gx + gh)
                     c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
GRU (G = 3):         r = sigmoid(gx_r + gh_r),  z = sigmoid(gx_z + gh_z)
                     n = tanh(gx_n + r * gh_n),  h_t = (1 - z) * n + z * h_{t-1}

For the Elman RNN and the LSTM the two projections are only ever summed, so the scan adds the
recurrent GEMM straight into ``gx`` (one ``addmm``) and passes ``gh=None``. The GRU needs ``gh_n``
on its own (it is multiplied by ``r``), so it receives both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor


@dataclass(frozen=True)
class CellKind:
    """What the time loop needs to know about a cell type.

    Attributes:
        name: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` or ``"gru"``.
        gates: number of gate blocks G (1, 4 or 3); projections are ``G * hidden_size`` wide.
        has_cell_state: True for the LSTM (state is ``(h, c)``).
        separate_recurrent: True when the cell needs ``gh`` apart from ``gx`` (the GRU).
        forward: ``(gx, gh, h_prev, c_prev, act) -> (h, c)`` writing gate activations into ``act``.
        backward: ``(dh, dc, act, h_prev, c_prev, c) -> (d_gx, d_gh, dh_prev, dc_prev)``.
    """

    name: str
    gates: int
    has_cell_state: bool
    separate_recurrent: bool
    forward: Callable
    backward: Callable


# --- Elman RNN ---------------------------------------------------------------------------------

def _rnn_tanh_forward(a: Tensor, gh, h_prev, c_prev, act: Tensor):
    # a: (n, H) = gx + W_hh h_{t-1}; act receives h_t, which is all the backward needs.
    torch.tanh(a, out=act)
    return act, None


def _rnn_tanh_backward(dh: Tensor, dc, act: Tensor, h_prev, c_prev, c):
    # tanh'(a) = 1 - h^2
    da = dh * (1.0 - act * act)
    return da, da, None, None


def _rnn_relu_forward(a: Tensor, gh, h_prev, c_prev, act: Tensor):
    torch.clamp_min(a, 0.0, out=act)
    return act, None


def _rnn_relu_backward(dh: Tensor, dc, act: Tensor, h_prev, c_prev, c):
    da = dh * (act > 0)
    return da, da, None, None


# --- LSTM --------------------------------------------------------------------------------------

def _lstm_forward(a: Tensor, gh, h_prev, c_prev: Tensor, act: Tensor):
    # a: (n, 4H) pre-activations [i | f | g | o]; act: (n, 4H) receives the activations.
    H = c_prev.shape[1]
    torch.sigmoid(a, out=act)                                   # i, f, o (g overwritten below)
    torch.tanh(a[:, 2 * H:3 * H], out=act[:, 2 * H:3 * H])      # g
    i, f, g, o = act.split(H, dim=1)
    c = torch.addcmul(f * c_prev, i, g)                         # (n, H)
    h = o * torch.tanh(c)                                       # (n, H)
    return h, c


def _lstm_backward(dh: Tensor, dc: Optional[Tensor], act: Tensor, h_prev, c_prev: Tensor, c: Tensor):
    H = c.shape[1]
    i, f, g, o = act.split(H, dim=1)
    tanh_c = torch.tanh(c)
    da = torch.empty_like(act)                                  # (n, 4H)
    di, df, dg, do = da.split(H, dim=1)
    torch.mul(dh, tanh_c, out=do)
    dc_total = torch.addcmul(dc, dh * o, 1.0 - tanh_c * tanh_c) if dc is not None \
        else dh * o * (1.0 - tanh_c * tanh_c)
    torch.mul(dc_total, g, out=di)
    torch.mul(dc_total, c_prev, out=df)
    torch.mul(dc_total, i, out=dg)
    # sigmoid' = s (1 - s) on i, f, o; tanh' = 1 - g^2 on g
    sig_deriv = act - act * act
    tanh_deriv = 1.0 - g * g
    sig_deriv[:, 2 * H:3 * H] = tanh_deriv
    da.mul_(sig_deriv)
    dc_prev = dc_total * f
    return da, da, None, dc_prev


# --- GRU ---------------------------------------------------------------------------------------

def _gru_forward(gx: Tensor, gh: Tensor, h_prev: Tensor, c_prev, act: Tensor):
    # gx, gh: (n, 3H) [r | z | n]; act: (n, 4H) receives r, z, n and gh_n (needed by backward).
    H = h_prev.shape[1]
    rz = act[:, :2 * H]
    torch.add(gx[:, :2 * H], gh[:, :2 * H], out=rz)
    torch.sigmoid(rz, out=rz)
    r, z = rz.split(H, dim=1)
    gh_n = act[:, 3 * H:]
    gh_n.copy_(gh[:, 2 * H:])
    n = act[:, 2 * H:3 * H]
    torch.addcmul(gx[:, 2 * H:], r, gh_n, out=n)
    torch.tanh(n, out=n)
    h = torch.addcmul(n, z, h_prev - n)                         # (1 - z) n + z h_prev
    return h, None


def _gru_backward(dh: Tensor, dc, act: Tensor, h_prev: Tensor, c_prev, c):
    H = h_prev.shape[1]
    r, z, n, gh_n = act.split(H, dim=1)
    d_gx = torch.empty(act.shape[0], 3 * H, dtype=act.dtype, device=act.device)
    dr, dz, dn = d_gx.split(H, dim=1)
    torch.mul(dh, 1.0 - z, out=dn)
    dn.mul_(1.0 - n * n)                                        # d pre-activation of n
    torch.mul(dh, h_prev - n, out=dz)
    dz.mul_(z - z * z)
    torch.mul(dn, gh_n, out=dr)
    dr.mul_(r - r * r)
    d_gh = d_gx.clone()
    d_gh[:, 2 * H:].mul_(r)
    dh_prev = dh * z
    return d_gx, d_gh, dh_prev, None


RNN_TANH = CellKind("rnn_tanh", 1, False, False, _rnn_tanh_forward, _rnn_tanh_backward)
RNN_RELU = CellKind("rnn_relu", 1, False, False, _rnn_relu_forward, _rnn_relu_backward)
LSTM = CellKind("lstm", 4, True, False, _lstm_forward, _lstm_backward)
GRU = CellKind("gru", 3, False, True, _gru_forward, _gru_backward)

CELL_KINDS = {kind.name: kind for kind in (RNN_TANH, RNN_RELU, LSTM, GRU)}


def activation_width(kind: CellKind, hidden_size: int) -> int:
    """Width of the per-step buffer of saved activations (the GRU also keeps ``gh_n``)."""
    return (4 if kind is GRU else kind.gates) * hidden_size
