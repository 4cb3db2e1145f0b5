"""The time loop as PyTorch custom operators, for ``torch.compile`` and ``torch.export``.

Eager mode runs ``scan`` through ``_Scan`` (an ``autograd.Function``). Under ``torch.compile`` or
``torch.export`` the compiler traces with fake tensors, which have no data for the C++ kernels
to read, so there the loop is called as two opaque operators registered with ``torch.library``:

- ``rnnkit::scan`` (forward), returning the outputs and the buffers its backward pass reads;
- ``rnnkit::scan_backward``, BPTT, registered as ``rnnkit::scan``'s autograd formula.

Each has a fake implementation that gives its outputs' shapes and dtypes from its inputs' (the
batch and the time axis stay symbolic, so an exported program takes any batch size and length),
and runs the same ``scan_forward`` / ``scan_backward`` as eager mode on real tensors. Absent
optional tensors travel as empty tensors (an operator returns tensors only). Variable lengths
(``lengths=`` a tensor) go in as that tensor: the operator sorts the rows and counts the active
ones per step itself, from data the tracer never needs to see, so models run on padded batches
with lengths compile without a graph break and export with dynamic shapes.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .cells import CELL_KINDS, fastest

_EMPTY_SHAPE = (0,)


def _kind(mode: str, like: Tensor):
    return fastest(CELL_KINDS[mode], like.dtype, like.device.type)


def _none(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None or t.numel() == 0 else t


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(_EMPTY_SHAPE)


class _Rows:
    """Rows sorted longest first for the time loop, from (B,) ``lengths``, and back."""

    def __init__(self, lengths: Tensor, T: int):
        lengths = lengths.to("cpu", torch.int64)
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > T):
            raise ValueError(f"lengths must be between 1 and the input's {T} time steps, got "
                             f"{int(lengths.min())} to {int(lengths.max())}")
        sorted_lengths, order = torch.sort(lengths, descending=True, stable=True)
        self.order, self.inverse = order, torch.argsort(order)
        self.batch_sizes = (sorted_lengths.unsqueeze(0) > torch.arange(T).unsqueeze(1)).sum(1).tolist()   # (T,)

    def sort(self, t: Optional[Tensor], dim: int) -> Optional[Tensor]:
        return None if t is None or t.numel() == 0 else t.index_select(dim, self.order.to(t.device))

    def unsort(self, t: Optional[Tensor], dim: int) -> Optional[Tensor]:
        return None if t is None or t.numel() == 0 else t.index_select(dim, self.inverse.to(t.device))


# outputs: output, h_n, c_n, states_h, states_c, act, h_cand, xhat, rstd
@torch.library.custom_op("rnnkit::scan", mutates_args=())
def scan_op(x: Tensor, w_ih: Optional[Tensor], b_ih: Optional[Tensor], w_hh: Tensor, h0: Tensor,
            c0: Optional[Tensor], b_hh: Optional[Tensor], w_hr: Optional[Tensor], ln_weight: Optional[Tensor],
            zoneout_h: Optional[Tensor], zoneout_c: Optional[Tensor], lengths: Optional[Tensor], mode: str,
            batch_sizes: List[int], reverse: bool, save: bool) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor,
                                                                        Tensor, Tensor, Tensor, Tensor]:
    """``scan``'s loop over rows in the caller's order. Which rows are active at each step comes
    from ``lengths`` (B,), each row's real steps (its output is zero after them and its h_n is
    its state at the last of them), or from ``batch_sizes`` (rows already sorted longest first),
    or, with neither, every row is active at every step. Zoneout weights are (T, B, .) tensors
    here (an evaluation-mode p as a filled tensor). The saved buffers are in sorted row order."""
    from .scan import make_spec, scan_forward

    rows = _Rows(lengths, x.shape[0]) if lengths is not None else None
    if rows is not None:
        batch_sizes = rows.batch_sizes
        x, h0, c0, zoneout_h, zoneout_c = rows.sort(x, 1), rows.sort(h0, 0), rows.sort(c0, 0), \
            rows.sort(zoneout_h, 1), rows.sort(zoneout_c, 1)
    spec = make_spec(CELL_KINDS[mode], x, batch_sizes, reverse, save, w_hr, ln_weight, zoneout_h, zoneout_c)
    output, h_n, c_n, saved = scan_forward(spec, x.contiguous(), w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight,
                                           zoneout_h, zoneout_c, pooled=False)
    if rows is not None:
        output, h_n, c_n = rows.unsort(output, 1), rows.unsort(h_n, 0), rows.unsort(c_n, 0)
    buffers = saved.buffers if saved is not None else (None,) * 6
    if saved is not None and output.untyped_storage().data_ptr() == buffers[0].untyped_storage().data_ptr():
        output = output.clone()                        # a view of states_h: an operator's outputs never alias
    empty = _empty(x)
    return (output, h_n, c_n if c_n is not None else empty.clone(),
            *(b if b is not None else empty.clone() for b in buffers))


@scan_op.register_fake
def _scan_fake(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths, mode,
               batch_sizes, reverse, save):
    kind = _kind(mode, x)
    T, B = x.shape[0], x.shape[1]
    GH, Hr = w_hh.shape
    H = GH // kind.gates
    steps = T if save else 1
    from .scan import native_loop

    empty = x.new_empty(_EMPTY_SHAPE)
    has_c = kind.has_cell_state
    in_cpp = native_loop(kind, w_hr, ln_weight, zoneout_h, zoneout_c)
    act_width = 0 if in_cpp and kind.gates == 1 else kind.saved * H       # as scan_forward's act buffer
    return (x.new_empty((T, B, Hr)), x.new_empty((B, Hr)),
            x.new_empty((B, H)) if has_c else empty,
            x.new_empty((T + 1, B, Hr)),
            x.new_empty((T + 1 if save else 2, B, H)) if has_c else x.new_empty(_EMPTY_SHAPE),
            x.new_empty((steps, B, act_width)),
            x.new_empty((steps, B, H)) if (w_hr is not None or zoneout_h is not None) else x.new_empty(_EMPTY_SHAPE),
            x.new_empty((steps, B, GH)) if ln_weight is not None else x.new_empty(_EMPTY_SHAPE),
            x.new_empty((steps, B, 1)) if ln_weight is not None else x.new_empty(_EMPTY_SHAPE))


# gradients: x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight (empty where not needed)
@torch.library.custom_op("rnnkit::scan_backward", mutates_args=())
def scan_backward_op(d_output: Tensor, d_h_n: Tensor, d_c_n: Tensor, x: Tensor, w_ih: Optional[Tensor],
                     b_ih: Optional[Tensor], w_hh: Tensor, h0: Tensor, c0: Optional[Tensor], b_hh: Optional[Tensor],
                     w_hr: Optional[Tensor], ln_weight: Optional[Tensor], zoneout_h: Optional[Tensor],
                     zoneout_c: Optional[Tensor], lengths: Optional[Tensor], states_h: Tensor, states_c: Tensor,
                     act: Tensor, h_cand: Tensor, xhat: Tensor, rstd: Tensor, mode: str, batch_sizes: List[int],
                     reverse: bool, needs: List[bool]) -> List[Tensor]:
    """BPTT of ``rnnkit::scan``; ``needs`` flags x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight."""
    from .scan import Saved, make_spec, scan_backward

    rows = _Rows(lengths, x.shape[0]) if lengths is not None else None
    if rows is not None:
        batch_sizes = rows.batch_sizes
        x, zoneout_h, zoneout_c = rows.sort(x, 1), rows.sort(zoneout_h, 1), rows.sort(zoneout_c, 1)
        d_output, d_h_n, d_c_n = rows.sort(d_output, 1), rows.sort(d_h_n, 0), rows.sort(d_c_n, 0)
    spec = make_spec(CELL_KINDS[mode], x, batch_sizes, reverse, True, w_hr, ln_weight, zoneout_h, zoneout_c)
    B = x.shape[1]
    saved = Saved(spec, any(n != B for n in spec.batch_sizes),
                  (states_h, _none(states_c), act, _none(h_cand), _none(xhat), _none(rstd)),
                  (zoneout_h, zoneout_c),
                  (x.contiguous() if w_ih is not None else None, w_ih, w_hh, b_hh, w_hr, ln_weight))
    grads = list(scan_backward(saved, d_output, _none(d_h_n), _none(d_c_n),
                               (False, *needs, False, False))[1:10])
    if rows is not None:                               # x (or the projection it stands for), h0 and c0 have rows
        grads[0], grads[4], grads[5] = rows.unsort(grads[0], 1), rows.unsort(grads[4], 0), rows.unsort(grads[5], 0)
    empty = _empty(x)
    return [g if g is not None else empty.clone() for g in grads]


@scan_backward_op.register_fake
def _scan_backward_fake(d_output, d_h_n, d_c_n, x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h,
                        zoneout_c, lengths, states_h, states_c, act, h_cand, xhat, rstd, mode, batch_sizes, reverse,
                        needs):
    inputs = (x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight)
    return [torch.empty_like(t) if need and t is not None else x.new_empty(_EMPTY_SHAPE)
            for t, need in zip(inputs, needs)]


_DIFFERENTIABLE = 9          # x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight


def _setup_context(ctx, inputs, output):
    x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths, mode, batch_sizes, reverse, \
        save = inputs
    ctx.save_for_backward(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths,
                          *output[3:])
    ctx.options = (mode, list(batch_sizes), reverse)
    ctx.mark_non_differentiable(*output[3:])


def _backward(ctx, d_output, d_h_n, d_c_n, *unused):
    saved = ctx.saved_tensors
    x = saved[0]
    needs = [bool(n) for n in ctx.needs_input_grad[:_DIFFERENTIABLE]]
    empty = _empty(x)
    if d_output is None:
        d_output = x.new_zeros((x.shape[0], x.shape[1], saved[3].shape[1]))            # (T, B, Hr)
    grads = scan_backward_op(d_output, d_h_n if d_h_n is not None else empty,
                             d_c_n if d_c_n is not None else empty, *saved, *ctx.options, needs)
    # no gradients for zoneout_h, zoneout_c, lengths, mode, batch_sizes, reverse, save
    return (*(g if need else None for g, need in zip(grads, needs)), None, None, None, None, None, None, None)


scan_op.register_autograd(_backward, setup_context=_setup_context)


def operator_scan(kind, x: Tensor, w_hh: Tensor, h0: Tensor, c0: Optional[Tensor], w_ih, b_ih, batch_sizes,
                  reverse: bool, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths: Optional[Tensor] = None):
    """``scan`` through ``rnnkit::scan``: the route taken while ``torch.compile``/``torch.export``
    trace, and for ``lengths`` given as a tensor in the caller's row order. Returns (output, h_n, c_n)."""
    from .scan import needs_saving

    T, B = x.shape[0], x.shape[1]
    save = needs_saving(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight)
    zoneout_h = _zoneout_tensor(zoneout_h, (T, B, w_hh.shape[1]), x)
    zoneout_c = _zoneout_tensor(zoneout_c, (T, B, c0.shape[-1]) if c0 is not None else None, x)
    sizes = [int(n) for n in batch_sizes] if batch_sizes is not None and lengths is None else []
    out = scan_op(x, w_ih, b_ih, w_hh, h0, c0, b_hh, w_hr, ln_weight, zoneout_h, zoneout_c, lengths, kind.name,
                  sizes, reverse, save)
    return out[0], out[1], (out[2] if kind.has_cell_state else None)


def _zoneout_tensor(z, shape, like: Tensor) -> Optional[Tensor]:
    # The operator takes zoneout as a (T, B, .) tensor: an evaluation-mode p becomes a filled one.
    if z is None or isinstance(z, Tensor):
        return z
    return like.new_full(shape, float(z))
