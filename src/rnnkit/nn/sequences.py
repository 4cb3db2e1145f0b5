"""Input forms of a recurrent layer, checked and brought to one internal layout.

A layer accepts a padded tensor (``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``), an
unbatched ``(T, I)`` tensor, a padded tensor with ``lengths``, or a ``PackedSequence``. Inside,
everything is time-major ``(T, B, I)`` with rows sorted longest first and ``batch_sizes[t]`` active
rows at step ``t`` (PyTorch's packed layout), so the time loop only computes real steps.
``Layout`` remembers how to give results back in the caller's form and order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

Lengths = Union[Tensor, Sequence[int], None]


@dataclass
class Layout:
    """How the caller's input maps to the internal time-major, sorted layout.

    Attributes:
        x: (T, B, I) time-major input, rows sorted longest first when lengths vary.
        batch_sizes: active rows per step (non-increasing), or None when every row has length T.
        sorted_indices: (B,) caller's row of each internal row, or None when the order is kept.
        unsorted_indices: (B,) the inverse permutation, or None.
        packed: the input was a PackedSequence (the output will be one too).
        unbatched: the input was (T, I) (outputs lose the batch dimension).
        batch_first: the caller's padded tensors are (B, T, ...).
        lengths: (B,) int64 lengths in the caller's row order, kept as a tensor instead of
            ``batch_sizes`` while ``torch.compile``/``torch.export`` trace (rows unsorted: the
            time loop's operator sorts them, ``rnnkit.nn.ops``), else None.
    """

    x: Tensor
    batch_sizes: Optional[tuple]
    sorted_indices: Optional[Tensor]
    unsorted_indices: Optional[Tensor]
    packed: bool
    unbatched: bool
    batch_first: bool
    lengths: Optional[Tensor] = None

    @property
    def batch_size(self) -> int:
        return self.x.shape[1]

    def to_internal_rows(self, state: Tensor) -> Tensor:
        """(N, B, S) state in the caller's row order -> internal order."""
        return state if self.sorted_indices is None else state.index_select(1, self.sorted_indices)

    def to_caller_rows(self, state: Tensor) -> Tensor:
        """(N, B, S) state in internal row order -> the caller's order."""
        return state if self.unsorted_indices is None else state.index_select(1, self.unsorted_indices)

    def to_caller_output(self, output: Tensor):
        """(T, B, S) internal output -> the caller's form (padded, batch_first, packed, unbatched)."""
        if self.packed:
            lengths = _lengths_from_batch_sizes(self.batch_sizes, output.shape[1])
            data = pack_padded_sequence(output, lengths, enforce_sorted=True)
            return PackedSequence(data.data, data.batch_sizes, self.sorted_indices, self.unsorted_indices)
        output = self.to_caller_rows(output)
        if self.unbatched:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output


def _lengths_from_batch_sizes(batch_sizes: tuple, B: int) -> Tensor:
    # The length of row b is the number of steps at which it is active.
    sizes = torch.tensor(batch_sizes, dtype=torch.int64)
    return (sizes.unsqueeze(0) > torch.arange(B).unsqueeze(1)).sum(1)


def check_floating(x: Tensor, what: str) -> None:
    if not torch.is_floating_point(x):
        raise ValueError(f"{what} must be a floating-point tensor, got dtype {x.dtype}; convert it with .float()")


def check_dtype(x: Tensor, weight: Tensor, allowed: Optional[torch.dtype] = None) -> None:
    """x must have the weights' dtype (or ``allowed``: the dtype autocast runs in, when it is on)."""
    if x.dtype != weight.dtype and x.dtype != allowed:
        raise ValueError(f"input has dtype {x.dtype} but the layer's weights are {weight.dtype}; convert "
                         f"the input (x.to({weight.dtype})) or the layer (layer.to({x.dtype}))")


def check_features(x: Tensor, input_size: int) -> None:
    if x.shape[-1] != input_size:
        raise ValueError(
            f"input has {x.shape[-1]} features per step but the layer was built with "
            f"input_size={input_size}; check the last dimension of input")


def prepare(input: Union[Tensor, PackedSequence], lengths: Lengths, *,
            batch_first: bool, input_size: int) -> Layout:
    """Check ``input`` (and ``lengths``) and bring it to the internal layout.

    Raises:
        ValueError: naming the argument, for a wrong rank, feature size or dtype, or bad lengths.
    """
    if isinstance(input, PackedSequence):
        if lengths is not None:
            raise ValueError("lengths must not be given with a PackedSequence input: it carries its own lengths")
        check_floating(input.data, "input")
        check_features(input.data, input_size)
        padded, _ = pad_packed_sequence(PackedSequence(input.data, input.batch_sizes))   # (T, B, I)
        sorted_indices = input.sorted_indices
        unsorted_indices = input.unsorted_indices
        if sorted_indices is not None:
            sorted_indices = sorted_indices.to(padded.device)
            unsorted_indices = unsorted_indices.to(padded.device)
        return Layout(padded, tuple(input.batch_sizes.tolist()), sorted_indices, unsorted_indices,
                      packed=True, unbatched=False, batch_first=batch_first)

    if not isinstance(input, Tensor):
        raise ValueError(f"input must be a tensor or a PackedSequence, got {type(input).__name__}")
    check_floating(input, "input")
    if input.dim() not in (2, 3):
        raise ValueError(
            f"input must be 3-D (seq_len, batch, features){' with batch_first=True: (batch, seq_len, features)' if batch_first else ''} "
            f"or 2-D unbatched (seq_len, features), got shape {tuple(input.shape)}")
    check_features(input, input_size)
    unbatched = input.dim() == 2
    if unbatched:
        x = input.unsqueeze(1)
    else:
        x = input.transpose(0, 1) if batch_first else input
    if x.shape[0] == 0:
        raise ValueError("input has no time steps (seq_len is 0); give at least one step")
    layout = Layout(x, None, None, None, packed=False, unbatched=unbatched, batch_first=batch_first)
    if lengths is None:
        return layout
    if unbatched:
        raise ValueError("lengths is for batched input; an unbatched (seq_len, features) input has one sequence")
    if isinstance(lengths, Tensor) and torch.compiler.is_compiling():
        # the values are data the tracer does not have: the operator checks and sorts them
        torch._check(lengths.dim() == 1 and lengths.shape[0] == x.shape[1],
                     lambda: "lengths must have one entry per sequence in the batch")
        layout.lengths = lengths.to(torch.int64)
        return layout
    lengths = _check_lengths(lengths, T=x.shape[0], B=x.shape[1])
    if bool((lengths == x.shape[0]).all()):
        return layout
    sorted_lengths, sorted_indices = torch.sort(lengths, descending=True, stable=True)
    unsorted_indices = torch.empty_like(sorted_indices)
    unsorted_indices[sorted_indices] = torch.arange(len(sorted_indices))
    steps = torch.arange(x.shape[0]).unsqueeze(1)                                # (T, 1)
    batch_sizes = tuple((sorted_lengths.unsqueeze(0) > steps).sum(1).tolist())
    sorted_indices = sorted_indices.to(x.device)
    unsorted_indices = unsorted_indices.to(x.device)
    return Layout(x.index_select(1, sorted_indices), batch_sizes, sorted_indices, unsorted_indices,
                  packed=False, unbatched=False, batch_first=batch_first)


def _check_lengths(lengths: Lengths, T: int, B: int) -> Tensor:
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise ValueError(f"lengths must hold integers, got dtype {lengths.dtype}")
        lengths = lengths.detach().to("cpu", torch.int64)
    else:
        try:
            lengths = torch.as_tensor(list(lengths), dtype=torch.int64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"lengths must be a 1-D tensor or list of integers ({error})") from None
    if lengths.dim() != 1 or lengths.numel() != B:
        raise ValueError(f"lengths must have one entry per sequence in the batch ({B}), got shape {tuple(lengths.shape)}")
    if bool((lengths < 1).any()):
        raise ValueError(f"lengths must all be >= 1, got minimum {int(lengths.min())}: drop empty sequences before the layer")
    if bool((lengths > T).any()):
        raise ValueError(f"lengths must not exceed the input's {T} time steps, got maximum {int(lengths.max())}")
    return lengths
