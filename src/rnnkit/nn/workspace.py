"""Reusable memory for the time loop's large temporary buffers.

glibc serves an allocation of more than 32 MB (its largest mmap threshold) with fresh pages from
the kernel, and every page faults when it is first written. A (100, 64, 1536) float32 buffer, the
input projection of a GRU with H=512 at T=100, B=64, took 9.4 ms to fill when freshly allocated
and 2.5 ms when reused (``python benchmarks/machine_facts.py``, "filling 39 MB"). A training step
allocates several such buffers per layer and direction.

The input projection of every step and its gradient are needed only during one forward or one
backward pass of ``rnnkit.nn.scan``. ``take`` hands such a buffer out of a small pool and
``give_back`` returns it. The per-step activations saved for the backward pass live as long as the
autograd node that saved them: ``give_back_with(node, ...)`` returns them when the node is
collected, after the backward pass or when the graph is dropped. Only buffers that no caller ever
sees go through here: never an output or a returned gradient.

``RNNKIT_WORKSPACE=0`` turns the pool off (every ``take`` allocates); ``clear()`` frees what it
holds.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from typing import List, Optional, Sequence

import torch
from torch import Tensor

#: Buffers smaller than this come from the allocator, which reuses small blocks by itself.
MIN_BYTES = 4 << 20
#: At most this much memory is kept between passes; a larger buffer is freed when given back.
MAX_KEPT_BYTES = 512 << 20

ENABLED = os.environ.get("RNNKIT_WORKSPACE", "1") != "0"

_free: List[Tensor] = []          # flat buffers given back, oldest first
_lock = threading.Lock()


def take(shape: Sequence[int], like: Tensor, zero: bool = False) -> Tensor:
    """A contiguous buffer of ``shape`` with ``like``'s dtype and device, zeroed if ``zero``.

    Give it back with ``give_back`` once nothing reads it any more.
    """
    numel = math.prod(shape)
    if not ENABLED or like.device.type != "cpu" or numel * like.element_size() < MIN_BYTES:
        return like.new_zeros(shape) if zero else like.new_empty(shape)
    with _lock:
        # The smallest kept buffer that fits without wasting more than half of it.
        fits = [i for i, b in enumerate(_free) if b.dtype == like.dtype and numel <= b.numel() <= 2 * numel]
        flat = _free.pop(min(fits, key=lambda i: _free[i].numel())) if fits else None
    if flat is None:
        flat = like.new_empty(numel)
    buffer = flat[:numel].view(shape)
    return buffer.zero_() if zero else buffer


def give_back(buffer: Optional[Tensor]) -> None:
    """Return a buffer from ``take`` (None is ignored); the caller must not use it afterwards."""
    if buffer is None:
        return
    flat = buffer._base if buffer._base is not None else buffer
    if not ENABLED or flat.device.type != "cpu" or flat.dim() != 1 or flat.numel() * flat.element_size() < MIN_BYTES:
        return                                          # not from the pool: the allocator frees it
    with _lock:
        if any(kept is flat for kept in _free):          # given back twice: keep one, never hand it out twice
            return
        _free.append(flat)
        while sum(b.numel() * b.element_size() for b in _free) > MAX_KEPT_BYTES:
            _free.pop(0)


def give_back_with(owner: object, *buffers: Optional[Tensor]) -> None:
    """Give ``buffers`` back when ``owner`` (an autograd node's ctx, say) is garbage collected."""
    finalizer = weakref.finalize(owner, _give_back_all, buffers)
    finalizer.atexit = False


def _give_back_all(buffers) -> None:
    for buffer in buffers:
        give_back(buffer)


def clear() -> None:
    """Free every buffer the pool keeps."""
    with _lock:
        _free.clear()


def kept_bytes() -> int:
    """Bytes the pool keeps for reuse."""
    with _lock:
        return sum(b.numel() * b.element_size() for b in _free)
