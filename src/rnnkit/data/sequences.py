"""Labelled sequences of feature vectors (T, F) for sequence classification.

- ``read_sequences``: a long-format CSV (TSV) ``id,t,features...,label`` or an ``.npz``.
- ``digits_rows``: scikit-learn's 8x8 digits read row by row; ``read_mnist_idx``: MNIST idx files.

Every reader fails with a one-line ValueError naming the file (and the line) and what to do.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np

from .tables import column_index, csv_records, label_tuple, read_text


@dataclass
class LabelledSequences:
    """Sequences of feature vectors and their labels.

    Attributes:
        sequences: each (T_i, F) float32.
        labels: each example's labels as strings; exactly one unless multi-label.
    """

    sequences: List[np.ndarray]
    labels: List[Tuple[str, ...]]


def read_sequences(path, *, id_col: str = "id", time_col: str = "t", label_col: str = "label",
                   multi_label: bool = False, label_sep: str = ",") -> LabelledSequences:
    """Labelled feature sequences from a CSV (TSV) in long format or an ``.npz``.

    CSV: a header ``id,t,feature...,label``, one row per time step; rows are grouped by id (in
    order of first appearance) and sorted by t; every other column is a feature; an id's label
    must be the same on all its rows.
    npz: arrays ``x`` (N, T, F), ``y`` (N,) labels, and optionally ``lengths`` (N,) for padded ``x``.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        return _read_npz(path, multi_label, label_sep)
    records = csv_records(path, read_text(path, "utf-8"), "\t" if path.suffix.lower() == ".tsv" else ",")
    names = next(records, (0, None))[1]
    if names is None:
        raise ValueError(f"{path} has no rows: give a header {id_col},{time_col},feature...,{label_col} and data")
    i_id, i_t, i_label = (column_index(path, col, names) for col in (id_col, time_col, label_col))
    features = [i for i in range(len(names)) if i not in (i_id, i_t, i_label)]
    if not features:
        raise ValueError(f"{path} has no feature columns besides {id_col!r}, {time_col!r}, {label_col!r}")
    steps, labels = {}, {}                                   # id -> [(t, features)], id -> raw label
    for line, record in records:
        if len(record) != len(names):
            raise ValueError(f"{path}, line {line}: {len(record)} fields, the header has {len(names)}")
        t, *values = (_number(record[i], path, line, names[i]) for i in [i_t] + features)
        key = record[i_id]
        if labels.setdefault(key, record[i_label]) != record[i_label]:
            raise ValueError(f"{path}: id {key!r} has two labels, {labels[key]!r} and {record[i_label]!r} "
                             f"(line {line}); give every row of an id the same label")
        steps.setdefault(key, []).append((t, values))
    if not steps:
        raise ValueError(f"{path} has a header but no data rows")
    sequences = []
    for key, rows in steps.items():
        rows.sort(key=lambda row: row[0])
        sequences.append(np.array([values for _, values in rows], dtype=np.float32))    # (T_i, F)
    return LabelledSequences(sequences, [label_tuple(labels[key], multi_label, label_sep, f"{path}, id {key!r}")
                                         for key in steps])


def _number(value: str, path: Path, line: int, column: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{path}, line {line}: {column} is {value!r}, not a number") from None


def _read_npz(path: Path, multi_label: bool, label_sep: str) -> LabelledSequences:
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable .npz file ({error})") from None
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise ValueError(f"{path} has no array {missing[0]!r}; its arrays are: {', '.join(map(repr, arrays))} "
                         f"(need x (N, T, F), y (N,), optional lengths (N,))")
    x, y = arrays["x"], arrays["y"]
    n = len(x)
    lengths = arrays.get("lengths", np.full(n, x.shape[1] if x.ndim == 3 else 0))
    if x.ndim != 3 or y.shape != (n,) or lengths.shape != (n,):
        raise ValueError(f"{path}: shapes x {x.shape}, y {y.shape}, lengths {lengths.shape}; "
                         f"need x (N, T, F), y (N,), lengths (N,)")
    if n == 0 or lengths.min() < 1 or lengths.max() > x.shape[1]:
        raise ValueError(f"{path}: {n} sequences with lengths from {lengths.min(initial=0)} to "
                         f"{lengths.max(initial=0)}; need N >= 1 and lengths in 1..{x.shape[1]}")
    sequences = [x[i, :int(lengths[i])].astype(np.float32) for i in range(n)]         # (T_i, F) each
    labels = [label_tuple(label, multi_label, label_sep, f"{path}, y[{i}]") for i, label in enumerate(y.tolist())]
    return LabelledSequences(sequences, labels)


def digits_rows() -> LabelledSequences:
    """scikit-learn's bundled 8x8 digits (1,797 images): each image as 8 steps of 8 features in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)                              # (N, 8, 8)
    return LabelledSequences(list(images), [(str(int(label)),) for label in digits.target])


def read_mnist_idx(images_path, labels_path) -> LabelledSequences:
    """MNIST-style idx files (idx3-ubyte images, idx1-ubyte labels; plain or .gz): each image as rows
    steps of columns features, scaled to [0, 1]."""
    images = _read_idx(Path(images_path), 2051, ">IIII")
    labels = _read_idx(Path(labels_path), 2049, ">II")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
                         f"labels: give the matching pair of files")
    scaled = images.astype(np.float32) / 255.0                                       # (N, rows, cols)
    return LabelledSequences(list(scaled), [(str(int(label)),) for label in labels])


def _read_idx(path: Path, magic: int, layout: str) -> np.ndarray:
    # An idx file: big-endian magic (0x0803 images, 0x0801 labels), sizes, then uint8 data.
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    with open(path, "rb") as handle:
        opener = gzip.open if handle.read(2) == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable gzip file ({error})") from None
    found = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if found != magic:
        raise ValueError(f"{path} has magic number {found}, not {magic}: is it the "
                         f"{'images (idx3-ubyte)' if magic == 2051 else 'labels (idx1-ubyte)'} file?")
    size = struct.calcsize(layout)
    if len(data) < size:
        raise ValueError(f"{path} is too short ({len(data)} bytes) for an idx file")
    _, *shape = struct.unpack(layout, data[:size])
    expected = size + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(f"{path} has {len(data)} bytes, but its header {tuple(shape)} needs {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=size).reshape(shape)
