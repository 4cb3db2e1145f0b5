"""The time loop of one layer in one direction, with backpropagation through time written by hand.

``scan`` runs a cell (``rnnkit.nn.cells``) over time. Its input is the input projection for all
steps, computed outside as one GEMM (``gx = x W_ih^T + b``), so the loop does only the recurrent
GEMM and the cell's gate arithmetic. The backward pass walks time in reverse, computing the gate
gradients step by step with the cells' hand-written ``backward``, and forms the weight gradients
after the loop as single large GEMMs over all steps (``dW_hh = sum_t dgh_t^T h_{t-1}``).

Variable lengths use PyTorch's packed layout: batch rows are sorted by length, longest first, and
at time ``t`` only the first ``batch_sizes[t]`` rows are active. Inactive rows carry their state
unchanged and produce zero output, so ``h_n`` is each sequence's state at its last real step (in
the reverse direction a sequence starts at its own last step). Only active rows are computed.

Options handled inside the loop: an LSTM projection (``h = W_hr (o * tanh(c))``), layer
normalisation of the recurrent projection, and zoneout (``s_t = m * s_{t-1} + (1 - m) * s~_t``
with a Bernoulli mask ``m`` in training and ``m = p`` in evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .cells import CellKind, activation_width

Zoneout = Union[None, float, Tensor]   # None, p (evaluation) or a (T, B, size) 0/1 mask (training)

LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class ScanSpec:
    """The non-tensor arguments of one scan.

    Attributes:
        kind: the cell.
        batch_sizes: active rows per time step (rows sorted longest first); length T.
        reverse: walk time from T-1 down to 0.
        save: keep the per-step buffers for a backward pass (False in inference).
    """

    kind: CellKind
    batch_sizes: tuple
    reverse: bool
    save: bool


@dataclass
class ScanResult:
    """Outputs of ``scan``: ``output`` (T, B, Hr), ``h_n`` (B, Hr) and ``c_n`` (B, H) or None."""

    output: Tensor
    h_n: Tensor
    c_n: Optional[Tensor]


def scan(
    kind: CellKind,
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Optional[Tensor] = None,
    *,
    batch_sizes: Optional[Sequence[int]] = None,
    reverse: bool = False,
    b_hh: Optional[Tensor] = None,
    w_hr: Optional[Tensor] = None,
    ln_weight: Optional[Tensor] = None,
    zoneout_h: Zoneout = None,
    zoneout_c: Zoneout = None,
) -> ScanResult:
    """Run ``kind`` over time with hand-written BPTT.

    Args:
        kind: the cell (``rnnkit.nn.cells.LSTM`` ...).
        gx: (T, B, G*H) input projection of every step; for the RNN and LSTM it includes both
            biases, for the GRU only ``b_ih`` (``b_hh`` is passed apart, as it is gated by r).
        w_hh: (G*H, Hr) recurrent weight; Hr = H, or the projection size with ``w_hr``.
        h0: (B, Hr) initial hidden state. c0: (B, H) initial cell state (LSTM only).
        batch_sizes: active rows per step, non-increasing; None means all B rows at every step.
        reverse: process t = T-1 .. 0.
        b_hh: (G*H,) recurrent bias, GRU only.
        w_hr: (Hr, H) LSTM projection weight.
        ln_weight: (G*H,) gain of the layer normalisation of ``h_{t-1} W_hh^T``; None disables it.
        zoneout_h, zoneout_c: zoneout of h and c (see ``Zoneout``).

    Returns:
        ``ScanResult`` with ``output`` (T, B, Hr): zero where a row is inactive.
    """
    T, B, _ = gx.shape
    if batch_sizes is None:
        batch_sizes = (B,) * T
    tensors = (gx, w_hh, h0, c0, b_hh, w_hr, ln_weight)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    spec = ScanSpec(kind, tuple(int(n) for n in batch_sizes), reverse, save)
    output, h_n, c_n = _Scan.apply(spec, gx, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c)
    return ScanResult(output, h_n, c_n)


def _empty(save: bool, T: int, B: int, width: int, like: Tensor, zero: bool = False) -> Tensor:
    # Per-step buffers: T of them when the backward needs them, else one reused slot.
    shape = (T if save else 1, B, width)
    return like.new_zeros(shape) if zero else like.new_empty(shape)


def _zone(z: Zoneout, t: int, n: int):
    # The zoneout weight of the previous state for the active rows at step t.
    if z is None or isinstance(z, float):
        return z
    return z[t, :n]


class _Scan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: ScanSpec, gx, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c):
        kind = spec.kind
        T, B, GH = gx.shape
        H = GH // kind.gates
        Hr = w_hh.shape[1]
        save = spec.save
        variable = any(n != B for n in spec.batch_sizes)
        order = range(T - 1, -1, -1) if spec.reverse else range(T)
        slot = (lambda t: t) if save else (lambda t: 0)

        h = h0.clone()                                                   # (B, Hr) running state
        c = c0.clone() if kind.has_cell_state else None                  # (B, H)
        output = gx.new_zeros((T, B, Hr)) if variable else gx.new_empty((T, B, Hr))
        act = _empty(save, T, B, activation_width(kind, H), gx)          # gate activations
        h_prev_all = _empty(save, T, B, Hr, gx)                          # h_{t-1} of every step
        c_prev_all = _empty(save, T, B, H, gx) if c is not None else None
        c_all = _empty(save, T, B, H, gx) if c is not None else None     # candidate c~_t
        h_pre_all = _empty(save, T, B, H, gx) if w_hr is not None else None
        xhat_all = _empty(save, T, B, GH, gx) if ln_weight is not None else None
        rstd_all = _empty(save, T, B, 1, gx) if ln_weight is not None else None
        w_hh_t = w_hh.t()

        for t in order:
            n = spec.batch_sizes[t]
            s = slot(t)
            h_prev = h[:n]                                               # (n, Hr)
            c_prev = c[:n] if c is not None else None
            if save:
                h_prev_all[s].copy_(h)
                if c is not None:
                    c_prev_all[s].copy_(c)
            if ln_weight is not None:
                raw = torch.mm(h_prev, w_hh_t)                           # (n, GH)
                var, mean = torch.var_mean(raw, dim=1, keepdim=True, correction=0)
                rstd = torch.rsqrt(var + LAYER_NORM_EPS)
                xhat = torch.mul(raw - mean, rstd, out=xhat_all[s, :n])
                rstd_all[s, :n] = rstd
                gh = xhat * ln_weight
                if b_hh is not None:
                    gh += b_hh
                if kind.separate_recurrent:
                    a = gx[t, :n]
                else:
                    a, gh = gx[t, :n] + gh, None
            elif kind.separate_recurrent:
                a = gx[t, :n]
                gh = torch.addmm(b_hh, h_prev, w_hh_t) if b_hh is not None else torch.mm(h_prev, w_hh_t)
            else:
                a, gh = torch.addmm(gx[t, :n], h_prev, w_hh_t), None    # (n, GH)
            h_new, c_new = kind.forward(a, gh, h_prev, c_prev, act[s, :n])
            if c is not None:
                c_all[s, :n] = c_new
            if w_hr is not None:
                h_pre_all[s, :n] = h_new
                h_new = torch.mm(h_new, w_hr.t())                        # (n, Hr)
            zh, zc = _zone(zoneout_h, t, n), _zone(zoneout_c, t, n)
            if zh is not None:
                h_new = torch.lerp(h_new, h_prev, zh)
            if zc is not None:
                c_new = torch.lerp(c_new, c_prev, zc)
            h[:n] = h_new
            if c is not None:
                c[:n] = c_new
            output[t, :n] = h_new

        if save:
            ctx.spec, ctx.variable = spec, variable
            ctx.buffers = (act, h_prev_all, c_prev_all, c_all, h_pre_all, xhat_all, rstd_all)
            ctx.zoneout = (zoneout_h, zoneout_c)
            ctx.save_for_backward(w_hh, b_hh, w_hr, ln_weight)
        return output, h, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_output, d_h_n, d_c_n):
        spec = ctx.spec
        kind = spec.kind
        w_hh, b_hh, w_hr, ln_weight = ctx.saved_tensors
        act, h_prev_all, c_prev_all, c_all, h_pre_all, xhat_all, rstd_all = ctx.buffers
        zoneout_h, zoneout_c = ctx.zoneout
        T, B, _ = act.shape
        GH, Hr = w_hh.shape
        H = GH // kind.gates
        order = range(T) if spec.reverse else range(T - 1, -1, -1)
        zeros = torch.zeros if ctx.variable else torch.empty
        like = dict(dtype=act.dtype, device=act.device)

        dh = d_h_n.clone() if d_h_n is not None else torch.zeros(B, Hr, **like)
        dc = None
        if kind.has_cell_state:
            dc = d_c_n.clone() if d_c_n is not None else torch.zeros(B, H, **like)
        if d_output is None:
            d_output = torch.zeros(T, B, Hr, **like)
        d_gx_all = zeros(T, B, GH, **like)
        # Gradient of the raw recurrent product h_{t-1} W_hh^T, for dW_hh. For the RNN/LSTM without
        # layer norm it equals d_gx, so it is not stored twice.
        own_raw = kind.separate_recurrent or ln_weight is not None
        d_raw_all = zeros(T, B, GH, **like) if own_raw else d_gx_all
        d_gh_all = zeros(T, B, GH, **like) if ln_weight is not None else None     # after layer norm
        d_proj_all = zeros(T, B, Hr, **like) if w_hr is not None else None

        for t in order:
            n = spec.batch_sizes[t]
            g_h = dh[:n] + d_output[t, :n]                               # dL/dh_t, (n, Hr)
            g_c = dc[:n] if dc is not None else None
            zh, zc = _zone(zoneout_h, t, n), _zone(zoneout_c, t, n)
            direct_h = direct_c = None
            if zh is not None:
                direct_h, g_h = g_h * zh, g_h * (1.0 - zh)
            if zc is not None:
                direct_c, g_c = g_c * zc, g_c * (1.0 - zc)
            if w_hr is not None:
                d_proj_all[t, :n] = g_h
                g_h = torch.mm(g_h, w_hr)                                # (n, H)
            c_prev = c_prev_all[t, :n] if c_prev_all is not None else None
            c_t = c_all[t, :n] if c_all is not None else None
            d_a, d_gh, dh_prev, dc_prev = kind.backward(
                g_h, g_c, act[t, :n], h_prev_all[t, :n], c_prev, c_t)
            d_gx_all[t, :n] = d_a
            if ln_weight is not None:
                d_gh_all[t, :n] = d_gh
                xhat, rstd = xhat_all[t, :n], rstd_all[t, :n]
                d_xhat = d_gh * ln_weight
                d_raw = d_xhat - d_xhat.mean(1, keepdim=True) \
                    - xhat * (d_xhat * xhat).mean(1, keepdim=True)
                d_raw.mul_(rstd)
            else:
                d_raw = d_gh
            if own_raw:
                d_raw_all[t, :n] = d_raw
            dh_new = torch.mm(d_raw, w_hh)                               # (n, Hr)
            if dh_prev is not None:
                dh_new += dh_prev
            if direct_h is not None:
                dh_new += direct_h
            dh[:n] = dh_new
            if dc is not None:
                dc[:n] = dc_prev + direct_c if direct_c is not None else dc_prev

        # Weight gradients: one GEMM each over all T*B rows.
        d_w_hh = torch.mm(d_raw_all.reshape(-1, GH).t(), h_prev_all.reshape(-1, Hr))   # (GH, Hr)
        d_b_hh = d_w_hr = d_ln = None
        if b_hh is not None:
            d_b_hh = (d_gh_all if d_gh_all is not None else d_raw_all).sum((0, 1))
        if w_hr is not None:
            d_w_hr = torch.mm(d_proj_all.reshape(-1, Hr).t(), h_pre_all.reshape(-1, H))  # (Hr, H)
        if ln_weight is not None:
            d_ln = (d_gh_all * xhat_all).sum((0, 1))
        needs = ctx.needs_input_grad
        return (None,
                d_gx_all if needs[1] else None,
                d_w_hh if needs[2] else None,
                dh if needs[3] else None,
                dc if needs[4] else None,
                d_b_hh if needs[5] else None,
                d_w_hr if needs[6] else None,
                d_ln if needs[7] else None,
                None, None)
