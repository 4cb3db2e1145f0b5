"""Batches of variable-length sequences: zero-padding, the Batch dataclass, length buckets."""

import dataclasses

import numpy as np
import pytest
import torch

from rnnkit.data import Batch, BucketBatches, pad


def test_pad_token_ids_and_feature_sequences():
    inputs, lengths = pad([[3, 4, 5], [6]])
    assert inputs.dtype == torch.int64 and inputs.tolist() == [[3, 4, 5], [6, 0, 0]] and lengths.tolist() == [3, 1]
    features = [np.ones((1, 2), np.float64), np.arange(6).reshape(3, 2)]
    inputs, lengths = pad(features)
    assert inputs.shape == (2, 3, 2) and inputs.dtype == torch.float32 and lengths.tolist() == [1, 3]
    assert inputs[0, 1:].abs().sum() == 0 and inputs[1].tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match="at least one step"):
        pad([[1], []])


def test_bucket_batches_yield_batches_and_count_them():
    sequences = [[1] * n for n in (5, 1, 3, 2, 4)]
    batches = BucketBatches(sequences, torch.tensor([50, 10, 30, 20, 40]), batch_size=2, shuffle=False)
    found = list(batches())                                                  # epoch 0 by default
    assert len(batches) == len(found) == 3 and all(isinstance(b, Batch) for b in found)
    assert [b.labels.tolist() for b in found] == [[10, 20], [30, 40], [50]]   # sorted by length
    assert [b.lengths.tolist() for b in found] == [[1, 2], [3, 4], [5]] and found[0].inputs.shape == (2, 2)
    assert [f.name for f in dataclasses.fields(Batch)] == ["inputs", "lengths", "labels"]
    with pytest.raises(ValueError, match="as many labels as sequences"):
        BucketBatches(sequences, torch.arange(4))
