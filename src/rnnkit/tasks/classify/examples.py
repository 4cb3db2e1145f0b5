"""A classifier's examples: read from a file (or ``"digits"``), split off a held-out part, and
encoded for the model.

Files: labelled texts (CSV, TSV, JSON lines, SST lines: ``rnnkit.data.read_labelled``), numeric
feature sequences (``rnnkit.data.read_sequences``: long-format CSV or ``.npz``), or ``"digits"``:
scikit-learn's 8x8 digits read row by row (8 steps of 8 features), held out with a fixed seed.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from rnnkit.data import TextEncoder, digits_rows, read_labelled, read_sequences

DIGITS = "digits"
SPLIT_SEED = 0                   # the held-out split (no --valid) is the same for every run


class Examples(NamedTuple):
    """``items``: texts or (T_i, F) float32 arrays; ``labels``: each example's label names."""

    items: list
    labels: List[Tuple[str, ...]]


def read_examples(path, reader: dict) -> Examples:
    """Examples of ``path`` (or ``"digits"``) read as ``reader`` (``ClassifyData.reader()``) says."""
    if str(path) == DIGITS:
        found = digits_rows()
        return Examples(list(found.sequences), list(found.labels))
    if reader["sequences"]:
        found = read_sequences(path, multi_label=reader["multi_label"], label_sep=reader["label_sep"])
        return Examples(list(found.sequences), list(found.labels))
    found = read_labelled(path, text_col=reader["text_col"], label_col=reader["label_col"], fmt=reader["fmt"],
                          header=reader["header"], encoding=reader["encoding"],
                          multi_label=reader["multi_label"], label_sep=reader["label_sep"])
    return Examples(found.texts, found.labels)


def split(examples: Examples, fraction: float, seed: int = SPLIT_SEED) -> Tuple[Examples, Examples]:
    """(train, held out): a seeded random ``fraction`` of the examples held out (at least one)."""
    n = len(examples.items)
    if n < 2 or not 0 < fraction < 1:
        raise ValueError(f"cannot hold out {fraction!r} of {n} examples: give a validation file")
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * fraction)))
    pick = lambda index: Examples([examples.items[i] for i in index], [examples.labels[i] for i in index])  # noqa: E731
    return pick(sorted(order[cut:])), pick(sorted(order[:cut]))


def feature_statistics(items: Sequence[np.ndarray]) -> dict:
    """Mean and standard deviation of each feature over every step of numeric sequences (a std
    near 0 becomes 1), saved with the model to standardise its inputs."""
    stacked = np.concatenate(items)                                                  # (sum T_i, F)
    std = stacked.std(0)
    return {"mean": stacked.mean(0).tolist(), "std": np.where(std > 1e-6, std, 1.0).tolist()}


def encode_items(items: Sequence, encoder: Optional[TextEncoder], features: Optional[dict]) -> list:
    """Texts through ``encoder``; feature arrays standardised with ``features`` (mean/std per feature)."""
    if encoder is not None:
        if not all(isinstance(item, str) for item in items):
            raise ValueError("this classifier reads texts: give strings")
        return [encoder.encode(item) for item in items]
    if any(isinstance(item, str) for item in items):
        raise ValueError("this classifier reads numeric sequences ((steps, features) arrays), not texts")
    mean, std = (np.asarray(features[key], dtype=np.float32) for key in ("mean", "std"))
    arrays = [np.asarray(item, dtype=np.float32) for item in items]
    for i, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[1] != len(mean) or not len(array):
            raise ValueError(f"sequence {i} has shape {array.shape}; this classifier reads (steps, {len(mean)}) "
                             f"feature arrays")
    return [(array - mean) / std for array in arrays]
