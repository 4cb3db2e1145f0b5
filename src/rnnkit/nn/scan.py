"""The time loop of one layer in one direction, with backpropagation through time written by hand.

``scan`` runs a cell (``rnnkit.nn.cells``) over time. It first computes the input projection of
all steps as one GEMM (``gx = x W_ih^T + b``), so the loop does only the recurrent GEMM and the
cell's gate arithmetic. The backward pass walks time in reverse, computing the gate gradients step
by step with the cells' hand-written ``backward``, and forms the weight gradients after the loop
as single large GEMMs over all steps (``dW_hh = sum_t dgh_t^T h_{t-1}``, ``dW_ih = dgx^T x``).
The projection and its gradient are temporary buffers of the pass, taken from
``rnnkit.nn.workspace`` so that they are not page-faulted afresh at every pass.

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

from . import native, workspace
from .cells import CellKind, fastest

Zoneout = Union[None, float, Tensor]   # None, p (evaluation) or a (T, B, size) 0/1 mask (training)

LAYER_NORM_EPS = 1e-5

CELL_CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}   # as in native/cells.cpp


@dataclass(frozen=True)
class ScanSpec:
    """The non-tensor arguments of one scan.

    Attributes:
        kind: the cell.
        batch_sizes: active rows per time step (rows sorted longest first); length T.
        reverse: walk time from T-1 down to 0.
        save: keep the per-step buffers for a backward pass (False in inference).
        native_loop: run the whole loop in C++ (fused cells, and no layer norm, projection or zoneout).
    """

    kind: CellKind
    batch_sizes: tuple
    reverse: bool
    save: bool
    native_loop: bool


@dataclass
class ScanResult:
    """Outputs of ``scan``: ``output`` (T, B, Hr), ``h_n`` (B, Hr) and ``c_n`` (B, H) or None."""

    output: Tensor
    h_n: Tensor
    c_n: Optional[Tensor]


def scan(
    kind: CellKind,
    x: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Optional[Tensor] = None,
    *,
    w_ih: Optional[Tensor] = None,
    b_ih: Optional[Tensor] = None,
    batch_sizes: Optional[Sequence[int]] = None,
    reverse: bool = False,
    b_hh: Optional[Tensor] = None,
    w_hr: Optional[Tensor] = None,
    ln_weight: Optional[Tensor] = None,
    zoneout_h: Zoneout = None,
    zoneout_c: Zoneout = None,
    lengths: Optional[Tensor] = None,
) -> ScanResult:
    """Run ``kind`` over time with hand-written BPTT.

    Args:
        kind: the cell (``rnnkit.nn.cells.LSTM`` ...).
        x: (T, B, I) the layer's input, projected here as ``gx = x W_ih^T + b_ih``; or, without
            ``w_ih``, (T, B, G*H) that projection itself (a layer-normalised one, for example).
        w_hh: (G*H, Hr) recurrent weight; Hr = H, or the projection size with ``w_hr``.
        h0: (B, Hr) initial hidden state. c0: (B, H) initial cell state (LSTM only).
        w_ih: (G*H, I) input weight, or None (see ``x``).
        b_ih: (G*H,) the bias added to the projection, or None: for the RNN and LSTM both biases
            summed, for the GRU only ``b_ih`` (its ``b_hh`` is passed apart, as it is gated by r).
        batch_sizes: active rows per step, non-increasing; None means all B rows at every step.
        reverse: process t = T-1 .. 0.
        b_hh: (G*H,) recurrent bias, GRU only.
        w_hr: (Hr, H) LSTM projection weight.
        ln_weight: (G*H,) gain of the layer normalisation of ``h_{t-1} W_hh^T``; None disables it.
        zoneout_h, zoneout_c: zoneout of h and c (see ``Zoneout``).
        lengths: (B,) real steps of each row, rows in any order, instead of ``batch_sizes``: the
            ``rnnkit::scan`` operator sorts them itself (how compiled and exported models run
            variable lengths, ``rnnkit.nn.ops``).

    Returns:
        ``ScanResult`` with ``output`` (T, B, Hr): zero where a row is inactive.
    """
    if lengths is not None or torch.compiler.is_compiling():     # traced with fake tensors: an opaque operator
        from .ops import operator_scan
        return ScanResult(*operator_scan(kind, x, w_hh, h0, c0, w_ih, b_ih, batch_sizes, reverse, b_hh, w_hr,
                                         ln_weight, zoneout_h, zoneout_c, lengths))
    x = x.contiguous()
    save = needs_saving(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight)
    spec = make_spec(kind, x, batch_sizes, reverse, save, w_hr, ln_weight, zoneout_h, zoneout_c)
    output, h_n, c_n = _Scan.apply(spec, x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c)
    return ScanResult(output, h_n, c_n)


def needs_saving(*tensors: Optional[Tensor]) -> bool:
    """Whether a scan of these inputs keeps its per-step buffers: autograd is on and one of them
    requires a gradient."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def native_loop(kind: CellKind, w_hr, ln_weight, zoneout_h, zoneout_c) -> bool:
    """Whether the whole loop runs in C++: a fused ``kind`` and none of the options the Python loop
    handles (projection, layer norm, zoneout)."""
    return kind.native and w_hr is None and ln_weight is None and zoneout_h is None and zoneout_c is None


def make_spec(kind: CellKind, x: Tensor, batch_sizes: Optional[Sequence[int]], reverse: bool, save: bool,
              w_hr, ln_weight, zoneout_h, zoneout_c) -> ScanSpec:
    """The ``ScanSpec`` of a scan over x (T, B, .): the fastest version of ``kind`` for x's dtype and
    device, and every row active at every step when ``batch_sizes`` is None or empty."""
    kind = fastest(kind, x.dtype, x.device.type)
    sizes = tuple(int(n) for n in batch_sizes) if batch_sizes else (x.shape[1],) * x.shape[0]
    return ScanSpec(kind, sizes, reverse, save, native_loop(kind, w_hr, ln_weight, zoneout_h, zoneout_c))


def linear_into(x: Tensor, w_t: Tensor, addend: Optional[Tensor], out: Optional[Tensor]) -> Tensor:
    """``addend + x @ w_t`` into ``out`` (no autograd). x (n, K); w_t (K, N), usually a transposed
    weight; addend (n, N), (N,) or None. A single row (streaming at batch 1) goes through the C++
    matrix-vector product, which spreads the weight's rows over the cores; the rest through BLAS.
    """
    if x.shape[0] == 1 and x.dtype in (torch.float32, torch.float64):
        ext = native.load()
        w = w_t.t()
        if ext is not None and w.is_contiguous() and x.is_contiguous() \
                and (addend is None or addend.is_contiguous()):
            if out is None:
                out = x.new_empty((1, w.shape[0]))
            ext.small_linear(x, w, addend if addend is not None else x.new_empty(0), out)
            return out
    if addend is None:
        return torch.mm(x, w_t, out=out)
    return torch.addmm(addend, x, w_t, out=out)


def forward_step(kind: CellKind, gx_t: Tensor, h_prev: Tensor, c_prev: Optional[Tensor], w_hh_t: Tensor, *,
                 b_hh: Optional[Tensor], w_hr: Optional[Tensor], ln_weight: Optional[Tensor],
                 zh, zc, act: Tensor, h_next: Tensor, c_next: Optional[Tensor],
                 h_cand: Optional[Tensor] = None, xhat: Optional[Tensor] = None,
                 rstd: Optional[Tensor] = None, scratch: Optional[Tensor] = None) -> None:
    """One time step for ``n`` active rows, writing into the given buffers (no autograd).

    Used by the time loop and by streaming ``step``, so both run the same code.

    Inputs: gx_t (n, GH); h_prev (n, Hr); c_prev (n, H) or None; w_hh_t (Hr, GH) = W_hh^T;
        zh, zc: zoneout weights of the previous h / c (None, a float, or (n, .) masks).
    Outputs (written): act (n, saved*H); h_next (n, Hr); c_next (n, H); h_cand (n, H), the h
        before projection and zoneout (needed when ``w_hr`` or ``zh`` is given); xhat (n, GH) and
        rstd (n, 1), the layer-norm statistics (needed with ``ln_weight``).
    scratch: an optional (n, GH) buffer for the recurrent GEMM's result (saves an allocation).
    """
    if ln_weight is not None and kind.native:
        raw = torch.mm(h_prev, w_hh_t, out=scratch)                      # (n, GH)
        gh = torch.empty_like(raw)
        empty = raw.new_empty(0)
        native.load().layer_norm_forward(
            raw, ln_weight.contiguous(), b_hh if b_hh is not None else empty,
            empty if kind.separate_recurrent else gx_t, xhat, rstd, gh, LAYER_NORM_EPS)
        a, gh = (gx_t, gh) if kind.separate_recurrent else (gh, None)
    elif ln_weight is not None:
        raw = torch.mm(h_prev, w_hh_t)                                   # (n, GH)
        var, mean = torch.var_mean(raw, dim=1, keepdim=True, correction=0)
        torch.rsqrt(var.add_(LAYER_NORM_EPS), out=rstd)
        torch.sub(raw, mean, out=xhat).mul_(rstd)
        gh = xhat * ln_weight
        if b_hh is not None:
            gh += b_hh
        if kind.separate_recurrent:
            a = gx_t
        else:
            a, gh = gh.add_(gx_t), None
    elif kind.separate_recurrent:
        a, gh = gx_t, linear_into(h_prev, w_hh_t, b_hh, scratch)
    else:
        a, gh = linear_into(h_prev, w_hh_t, gx_t, scratch), None       # (n, GH)
    h_out = h_next if h_cand is None else h_cand
    c_out = c_next if (c_next is None or zc is None) else torch.empty_like(c_next)
    kind.forward(a, gh, h_prev, c_prev, act, h_out, c_out)
    if w_hr is not None:
        h_out = torch.mm(h_out, w_hr.t(), out=h_next if zh is None else None)     # (n, Hr)
    if zh is not None:
        torch.lerp(h_out, h_prev, zh, out=h_next)                       # zh h_prev + (1 - zh) h~
    if zc is not None:
        torch.lerp(c_out, c_prev, zc, out=c_next)


def _buffer(like: Tensor, steps: int, B: int, width: int, zero: bool = False, pooled: bool = True) -> Tensor:
    # A per-step buffer, from the workspace when ``pooled``; zeroed when rows can be inactive and
    # the buffer meets a GEMM or a sum.
    if not pooled:
        return like.new_zeros((steps, B, width)) if zero else like.new_empty((steps, B, width))
    return workspace.take((steps, B, width), like, zero=zero)


def _zone(z: Zoneout, t: int, n: int):
    # The zoneout weight of the previous state for the active rows at step t.
    if z is None or isinstance(z, float):
        return z
    return z[t, :n]


def _active_mask(batch_sizes: tuple, B: int, like: Tensor) -> Tensor:
    # (T, B, 1): 1 where row b is active at step t.
    sizes = torch.tensor(batch_sizes, device=like.device).unsqueeze(1)
    return (torch.arange(B, device=like.device).unsqueeze(0) < sizes).unsqueeze(2).to(like.dtype)


class _Scan(torch.autograd.Function):
    """Forward: the time loop. Backward: BPTT in reverse time, weight gradients as single GEMMs.

    Buffers: ``states_h`` (T+1, B, Hr) holds h before and after every processed step (row k is
    the state before the k-th processed step), so the outputs and the ``h_{t-1}`` of every step
    need no copies; ``states_c`` likewise for the LSTM. Per-step buffers (activations, layer-norm
    statistics, pre-projection h) are indexed by time t. The input projection ``gx`` (T, B, G*H)
    and its gradient live only during one pass, in ``workspace`` buffers.
    """

    @staticmethod
    def forward(ctx, spec: ScanSpec, x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c):
        output, h_n, c_n, saved = scan_forward(spec, x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight,
                                               zoneout_h, zoneout_c)
        if saved is not None:
            workspace.give_back_with(ctx, *saved.buffers[2:])             # when autograd frees the node
            ctx.save_for_backward(*saved.tensors)
            ctx.saved = saved
            saved.tensors = None                                         # ctx.saved_tensors holds them
        return output, h_n, c_n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_output, d_h_n, d_c_n):
        ctx.saved.tensors = ctx.saved_tensors
        return scan_backward(ctx.saved, d_output, d_h_n, d_c_n, ctx.needs_input_grad)


@dataclass
class Saved:
    """What a scan keeps for its backward pass.

    Attributes:
        spec, variable: the scan's settings, and whether some rows are inactive at some steps.
        buffers: ``states_h`` (T+1, B, Hr), ``states_c`` (T+1, B, H) or None, and the per-step
            ``act``, ``h_cand``, ``xhat``, ``rstd`` (see ``_Scan``), None where unused.
        zoneout: (zoneout_h, zoneout_c).
        tensors: inputs the gradients need: x (None without w_ih), w_ih, w_hh, b_hh, w_hr, ln_weight.
    """

    spec: ScanSpec
    variable: bool
    buffers: tuple
    zoneout: tuple
    tensors: tuple


def scan_forward(spec: ScanSpec, x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c,
                 pooled: bool = True):
    """The time loop (no autograd): ``(output, h_n, c_n, saved)``, ``saved`` a ``Saved`` when
    ``spec.save``, else None. Arguments as ``scan``'s. With ``pooled``, the per-step buffers come
    from ``workspace`` (the caller gives them back when the backward pass is done); without, they
    are the caller's to keep (the custom operator returns them).
    """
    kind = spec.kind
    # The C++ loop adds the input bias in its gate kernels; the Python loop reads it in gx.
    bias_in_loop = spec.native_loop and w_ih is not None and b_ih is not None
    gx = _project(x, w_ih, None if bias_in_loop else b_ih)           # (T, B, G*H)
    T, B, GH = gx.shape
    H = GH // kind.gates
    Hr = w_hh.shape[1]
    save = spec.save
    variable = any(n != B for n in spec.batch_sizes)
    order = range(T - 1, -1, -1) if spec.reverse else range(T)
    steps = T if save else 1
    has_c = kind.has_cell_state

    states_h = gx.new_empty((T + 1, B, Hr))
    states_h[0] = h0
    states_c = None
    if has_c:
        states_c = gx.new_empty((T + 1 if save else 2, B, H))
        states_c[0] = c0
    # The native loop of the Elman RNN reads its saved activation, h_t, back from states_h.
    act = _buffer(gx, steps, B, 0 if spec.native_loop and kind.gates == 1 else kind.saved * H,
                  pooled=pooled)
    # h before projection / zoneout (the projection's input is needed for dW_hr)
    h_cand = _buffer(gx, steps, B, H, zero=variable and save, pooled=pooled) \
        if (w_hr is not None or zoneout_h is not None) else None
    xhat_all = _buffer(gx, steps, B, GH, zero=variable and save, pooled=pooled) if ln_weight is not None else None
    rstd_all = _buffer(gx, steps, B, 1, pooled=pooled) if ln_weight is not None else None
    w_hh_t = w_hh.t()
    scratch = gx.new_empty((B, GH))                                  # the recurrent GEMM's result

    if spec.native_loop:                       # the same loop, run in C++ (native/cells.cpp)
        empty = gx.new_empty(0)
        native.load().scan_forward(CELL_CODES[kind.name], gx, b_ih.contiguous() if bias_in_loop else empty,
                                   w_hh, b_hh if b_hh is not None else empty,
                                   states_h, states_c if has_c else empty, act, scratch,
                                   list(spec.batch_sizes), spec.reverse, save)
        order = ()
    for k, t in enumerate(order):
        n = spec.batch_sizes[t]
        s = t if save else 0
        h_prev, h_next = states_h[k, :n], states_h[k + 1, :n]
        c_prev = c_next = None
        if has_c:
            kc = k if save else k % 2
            c_prev, c_next = states_c[kc, :n], states_c[kc + 1 if save else 1 - kc]
            if n < B:
                c_next[n:] = states_c[kc, n:]                       # inactive rows carry c
            c_next = c_next[:n]
        if n < B:
            states_h[k + 1, n:] = states_h[k, n:]                   # inactive rows carry h
        forward_step(kind, gx[t, :n], h_prev, c_prev, w_hh_t, b_hh=b_hh, w_hr=w_hr,
                     ln_weight=ln_weight, zh=_zone(zoneout_h, t, n), zc=_zone(zoneout_c, t, n),
                     act=act[s, :n], h_next=h_next, c_next=c_next,
                     h_cand=h_cand[s, :n] if h_cand is not None else None,
                     xhat=xhat_all[s, :n] if xhat_all is not None else None,
                     rstd=rstd_all[s, :n] if rstd_all is not None else None,
                     scratch=scratch[:n])

    output = states_h[1:]                                            # (T, B, Hr), processing order
    if spec.reverse:
        output = output.flip(0)
    if variable:
        output = output * _active_mask(spec.batch_sizes, B, output)
    h_n = states_h[T].clone()
    c_n = states_c[T if save else T % 2].clone() if has_c else None
    if w_ih is not None:
        workspace.give_back(gx)
    if not save:
        if pooled:
            for buffer in (act, h_cand, xhat_all, rstd_all):
                workspace.give_back(buffer)
        return output, h_n, c_n, None
    return output, h_n, c_n, Saved(spec, variable, (states_h, states_c, act, h_cand, xhat_all, rstd_all),
                                   (zoneout_h, zoneout_c),
                                   (x if w_ih is not None else None, w_ih, w_hh, b_hh, w_hr, ln_weight))


def scan_backward(saved: Saved, d_output, d_h_n, d_c_n, needs: Sequence[bool]) -> tuple:
    """BPTT (no autograd): the gradients of ``_Scan.apply``'s arguments (spec, x, w_ih, b_ih, w_hh,
    h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c), None where ``needs`` (one flag per
    argument, as ``ctx.needs_input_grad``) is False or there is none. ``d_output`` (T, B, Hr),
    ``d_h_n`` (B, Hr), ``d_c_n`` (B, H), each possibly None."""
    spec = saved.spec
    kind = spec.kind
    x, w_ih, w_hh, b_hh, w_hr, ln_weight = saved.tensors
    states_h, states_c, act, h_cand, xhat_all, rstd_all = saved.buffers
    zoneout_h, zoneout_c = saved.zoneout
    T, B, _ = act.shape
    GH, Hr = w_hh.shape
    H = GH // kind.gates
    order = range(T - 1, -1, -1) if spec.reverse else range(T)
    like = dict(dtype=act.dtype, device=act.device)
    zeros = torch.zeros if saved.variable else torch.empty

    contiguous = torch.contiguous_format
    dh = d_h_n.clone(memory_format=contiguous) if d_h_n is not None else torch.zeros(B, Hr, **like)
    dc = None
    if kind.has_cell_state:
        dc = d_c_n.clone(memory_format=contiguous) if d_c_n is not None else torch.zeros(B, H, **like)
    if d_output is None:
        d_output = torch.zeros(T, B, Hr, **like)
    # dL/d(gx): a workspace buffer when the projection's gradients are formed here, else returned
    d_gx_all = workspace.take((T, B, GH), act, zero=saved.variable) if w_ih is not None else zeros(T, B, GH, **like)
    gru_native = spec.native_loop and kind.separate_recurrent
    # dL/d(gh) after layer norm (GRU only; for the RNN and LSTM it is d_gx), and before it.
    # The GRU's native loop keeps only its n block, dL/d(gh_n) = dn * r (T, B, H): its r and z
    # blocks are d_gx's (a (T, B, 3H) buffer less per pass).
    d_gh_all = workspace.take((T, B, H), act, zero=saved.variable) if gru_native else \
        zeros(T, B, GH, **like) if kind.separate_recurrent else d_gx_all
    d_raw_all = zeros(T, B, GH, **like) if ln_weight is not None else d_gh_all
    d_proj_all = zeros(T, B, Hr, **like) if w_hr is not None else None

    steps = range(T - 1, -1, -1)
    if spec.native_loop:                       # the same loop, run in C++ (native/cells.cpp)
        empty = d_gx_all.new_empty(0)
        native.load().scan_backward(CELL_CODES[kind.name], w_hh, states_h,
                                    states_c if states_c is not None else empty, act, d_output, dh,
                                    dc if dc is not None else empty, d_gx_all,
                                    d_gh_all if gru_native else empty,
                                    list(spec.batch_sizes), spec.reverse)
        steps = ()
    for k in steps:
        t = order[k]
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
        h_prev = states_h[k, :n]
        c_prev = states_c[k, :n] if states_c is not None else None
        dh_direct = kind.backward(g_h, g_c, act[t, :n], h_prev, c_prev,
                                  d_gx_all[t, :n], d_gh_all[t, :n], dc[:n] if dc is not None else None)
        d_raw = d_gh_all[t, :n]
        if ln_weight is not None and kind.native:
            native.load().layer_norm_backward(d_raw, xhat_all[t, :n], rstd_all[t, :n],
                                              ln_weight.contiguous(), d_raw_all[t, :n])
            d_raw = d_raw_all[t, :n]
        elif ln_weight is not None:
            xhat = xhat_all[t, :n]
            d_xhat = d_raw * ln_weight
            d_raw = d_raw_all[t, :n]
            torch.sub(d_xhat, d_xhat.mean(1, keepdim=True), out=d_raw)
            d_raw.sub_(xhat * (d_xhat * xhat).mean(1, keepdim=True)).mul_(rstd_all[t, :n])
        dh_next = torch.mm(d_raw, w_hh, out=dh[:n])                   # (n, Hr)
        if dh_direct is not None:
            dh_next += dh_direct
        if direct_h is not None:
            dh_next += direct_h
        if direct_c is not None:
            dc[:n] += direct_c

    # Weight gradients: one GEMM each over all T*B rows.
    h_prev_all = states_h[:-1].flip(0) if spec.reverse else states_h[:-1]    # (T, B, Hr) by time
    # dL/d(gh) before layer norm, by blocks of gate rows
    blocks = (d_gx_all[..., :2 * H], d_gh_all) if gru_native else (d_raw_all,)
    d_w_hh = d_b_hh = d_w_hr = d_ln = None
    if needs[4]:
        parts = [_weight_grad(b, h_prev_all) for b in blocks]
        d_w_hh = parts[0] if len(parts) == 1 else torch.cat(parts)                  # (GH, Hr)
    # Column sums of d_gx: b_ih's gradient, and for the native GRU also the r and z blocks of b_hh's
    d_gx_sums = d_gx_all.sum((0, 1)) if (w_ih is not None and needs[3]) or (gru_native and needs[7]) else None
    if b_hh is not None and needs[7]:
        d_b_hh = torch.cat([d_gx_sums[:2 * H], d_gh_all.sum((0, 1))]) if gru_native else d_gh_all.sum((0, 1))
    if w_hr is not None and needs[8]:
        d_w_hr = _weight_grad(d_proj_all, h_cand)                                   # (Hr, H)
    if ln_weight is not None and needs[9]:
        d_ln = (d_gh_all * xhat_all).sum((0, 1))
    if gru_native:
        workspace.give_back(d_gh_all)
    d_x, d_w_ih = _project_backward(d_gx_all, x, w_ih, needs[1:3])
    return (None, d_x, d_w_ih, d_gx_sums if w_ih is not None and needs[3] else None,
            d_w_hh,
            dh if needs[5] else None,
            dc if needs[6] else None,
            d_b_hh, d_w_hr, d_ln,
            None, None)


def _project(x: Tensor, w_ih: Optional[Tensor], b_ih: Optional[Tensor]) -> Tensor:
    # gx (T, B, G*H) = x (T, B, I) W_ih^T + b_ih, into a workspace buffer; x itself without w_ih.
    if w_ih is None:
        return x
    T, B, I = x.shape
    gx = workspace.take((T, B, w_ih.shape[0]), x)
    rows = gx.view(T * B, -1)
    if b_ih is None:
        torch.mm(x.reshape(T * B, I), w_ih.t(), out=rows)
    else:
        torch.addmm(b_ih, x.reshape(T * B, I), w_ih.t(), out=rows)
    return gx


def _project_backward(d_gx: Tensor, x: Optional[Tensor], w_ih: Optional[Tensor], needs: Sequence[bool]):
    # Gradients of x and W_ih from d_gx (T, B, G*H), which is given back to the workspace. Without
    # w_ih, x was the projection itself and d_gx is its gradient.
    if w_ih is None:
        return (d_gx if needs[0] else None), None
    T, B, GH = d_gx.shape
    d_x = torch.mm(d_gx.view(T * B, GH), w_ih).view(T, B, -1) if needs[0] else None  # (T, B, I)
    d_w_ih = _weight_grad(d_gx, x) if needs[1] else None                              # (G*H, I)
    workspace.give_back(d_gx)
    return d_x, d_w_ih


def _weight_grad(d_out: Tensor, inputs: Tensor) -> Tensor:
    """(N, K) = d_out^T inputs over all rows: d_out (T, B, N), possibly a slice of columns; inputs
    (T, B, K). (Formed the other way round, as (inputs^T d_out)^T, it was faster at 6400 rows but
    slower at 700, where autograd's copy of the transposed result to the weight's layout costs more
    than the GEMM saves.)"""
    return torch.mm(d_out.reshape(-1, d_out.shape[-1]).t(), inputs.reshape(-1, inputs.shape[-1]))
