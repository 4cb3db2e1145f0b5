"""Batches of variable-length sequences: zero-padding, and length buckets for the training engine.

- ``Batch``: padded inputs, their real lengths, and the targets.
- ``pad``: token-id lists or (T_i, F) arrays -> one zero-padded tensor and the lengths.
- ``BucketBatches``: examples sorted by length into batches of similar length (less padding); the
  batch order is shuffled per epoch from ``seed + epoch``, so an epoch's batches are always the same.
- ``map_tensors``: a function applied to every tensor of any batch (moving it to a device, taking
  one process's share of it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


@dataclass
class Batch:
    """Sequences of one batch, zero-padded to the longest, and their targets.

    Attributes:
        inputs: (B, T) int64 token ids or (B, T, F) float32 features, zero after each sequence's end.
        lengths: (B,) int64 real lengths (>= 1).
        labels: the targets: (B,) int64 class ids, (B, C) float multi-hot, or whatever the task needs
            (indexed along dim 0 like the examples).
    """

    inputs: Tensor                       # (B, T) or (B, T, F)
    lengths: Tensor                      # (B,)
    labels: Any                          # (B,), (B, C), ...


def pad(sequences: Sequence) -> Tuple[Tensor, Tensor]:
    """Zero-pad token-id lists or (T_i, F) arrays into one batch.

    Inputs: sequences: B token-id lists (or 1-D arrays), or B (T_i, F) float arrays, each T_i >= 1.
    Outputs: ``(inputs, lengths)``: (B, T) int64 or (B, T, F) float32, and (B,) int64 with T = max T_i.
    """
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    if not len(sequences) or int(lengths.min()) < 1:
        raise ValueError("every sequence needs at least one step")
    T = int(lengths.max())
    first = sequences[0]
    if isinstance(first, np.ndarray) and first.ndim == 2:
        inputs = torch.zeros(len(sequences), T, first.shape[1])                   # (B, T, F)
        for i, s in enumerate(sequences):
            inputs[i, :len(s)] = torch.from_numpy(np.asarray(s, dtype=np.float32))
    else:
        inputs = torch.zeros(len(sequences), T, dtype=torch.int64)               # (B, T)
        for i, s in enumerate(sequences):
            inputs[i, :len(s)] = torch.as_tensor(s, dtype=torch.int64)
    return inputs, lengths


class BucketBatches:
    """Examples in batches of similar length (less padding), for ``Trainer.fit``.

    Args:
        sequences: token-id lists or (T_i, F) float arrays. labels: (N,) or (N, C) tensor, or a list
            of N token-id lists (a translator's targets), padded per batch like the inputs.
        batch_size: examples per batch. shuffle: shuffle the batch order each epoch (training).
        seed: the order of epoch e comes from ``seed + e``.

    ``batches(epoch)`` yields ``Batch`` es: examples sorted by length (ties by index) are cut into
    batches, and with ``shuffle`` the batches come in a random order; the same epoch always gives
    the same batches (exact resume relies on it). ``len(batches)`` is the number of batches an epoch.
    """

    def __init__(self, sequences: Sequence, labels: Tensor, batch_size: int = 32, *, shuffle: bool = True,
                 seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(sequences) != len(labels) or not len(sequences):
            raise ValueError(f"need as many labels as sequences (at least one), got {len(labels)} and {len(sequences)}")
        self.sequences, self.labels = list(sequences), labels
        order = sorted(range(len(self.sequences)), key=lambda i: (len(self.sequences[i]), i))
        self.buckets = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        self.shuffle, self.seed = shuffle, seed

    def __len__(self) -> int:
        return len(self.buckets)

    def batch_order(self, epoch: int) -> Sequence[int]:
        """The indices of ``buckets`` in the order epoch ``epoch`` visits them."""
        if self.shuffle:
            return np.random.default_rng(self.seed + epoch).permutation(len(self.buckets))
        return range(len(self.buckets))

    def __call__(self, epoch: int = 0) -> Iterator[Batch]:
        for b in self.batch_order(epoch):
            index = self.buckets[b]
            inputs, lengths = pad([self.sequences[i] for i in index])
            labels = pad([self.labels[i] for i in index])[0] if isinstance(self.labels, list) else self.labels[index]
            yield Batch(inputs, lengths, labels)


def map_tensors(batch, fn: Callable[[Tensor, int], Tensor]):
    """``batch`` with ``fn(tensor, batch_dim)`` applied to every tensor inside it: in tuples, named
    tuples, lists, dicts and dataclasses, recursively; anything else is returned as it is.
    ``batch_dim`` is the dimension that indexes the examples: 0, or what a dataclass field's
    metadata names (``field(metadata={"batch_dim": 1})`` for a time-major (T, B) tensor). A
    dataclass is rebuilt with ``dataclasses.replace``.
    """
    def walk(value, dim: int):
        if isinstance(value, Tensor):
            return fn(value, dim)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{f.name: walk(getattr(value, f.name), f.metadata.get("batch_dim", 0))
                                                 for f in dataclasses.fields(value) if f.init})
        if isinstance(value, dict):
            return type(value)((key, walk(item, dim)) for key, item in value.items())
        if isinstance(value, tuple) and hasattr(value, "_fields"):        # named tuple
            return type(value)(*(walk(item, dim) for item in value))
        if isinstance(value, (list, tuple)):
            return type(value)(walk(item, dim) for item in value)
        return value

    return walk(batch, 0)
