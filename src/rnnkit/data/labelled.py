"""Labelled data for sequence classification: texts or feature sequences, each with its labels.

- ``read_labelled``: texts and labels from CSV, TSV, JSON lines or SST-style ``LABEL SENTENCE`` lines.
- ``Labels``: label names <-> ids (one class per example, or multi-hot for multi-label).
- ``TextEncoder``: text -> token ids, by words, characters or BPE (HuggingFace ``tokenizers``).
- ``read_sequences``, ``digits_rows``, ``read_mnist_idx``: sequences of feature vectors (T, F).

Every reader fails with a one-line ValueError naming the file (and the line) and what to do.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch

from .bpe import train_bpe
from .text import UNK, read_chunks

PAD = "<pad>"
PAD_ID, UNK_ID = 0, 1                    # every TextEncoder vocabulary begins with PAD, UNK
FORMATS = ("csv", "tsv", "jsonl", "sst")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


# ----------------------------------------------------------------------------------------- texts

@dataclass
class LabelledTexts:
    """Texts and their labels.

    Attributes:
        texts: the examples' texts (stripped, never empty).
        labels: each example's labels as strings; exactly one unless multi-label.
        skipped_empty: rows with empty or whitespace-only text that were skipped.
    """

    texts: List[str]
    labels: List[Tuple[str, ...]]
    skipped_empty: int = 0


def read_labelled(path, *, text_col=None, label_col=None, fmt: Optional[str] = None,
                  header: Optional[bool] = None, encoding: str = "utf-8", multi_label: bool = False,
                  label_sep: str = ",") -> LabelledTexts:
    """Read labelled texts from ``path``.

    Args:
        fmt: ``"csv"``, ``"tsv"``, ``"jsonl"`` or ``"sst"`` (``LABEL SENTENCE`` lines); None: from the
            suffix (.csv, .tsv, .jsonl/.json/.ndjson), else ``"sst"``.
        text_col, label_col: CSV/TSV column names (with a header) or 0-based numbers (ints or digit
            strings); JSON keys. Defaults ``"text"``/``"label"``, or columns 0 and 1 without a header.
        header: whether a CSV/TSV file starts with column names; None: yes, unless both columns are
            given as numbers. TSV fields are taken as they are (no quoting, as in GLUE); CSV fields
            may be quoted and hold commas and newlines.
        multi_label: a label field holds several labels separated by ``label_sep`` (JSON: a list).

    Rows with empty text are skipped, counted in ``skipped_empty``, and warned about once.
    Integer labels become their string (``"0"``, ``"1"``), JSON booleans ``"true"``/``"false"``.
    """
    path = Path(path)
    fmt = fmt or _SUFFIX_FORMATS.get(path.suffix.lower(), "sst")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    text = _read_text(path, encoding)
    if fmt == "jsonl":
        rows = _jsonl_rows(path, text, "text" if text_col is None else text_col,
                           "label" if label_col is None else label_col)
    elif fmt == "sst":
        rows = _sst_rows(text)
    else:
        rows = _table_rows(path, text, "\t" if fmt == "tsv" else ",", text_col, label_col, header)
    texts, labels, total = [], [], 0
    for line, sentence, raw in rows:
        total += 1
        if sentence is None or not sentence.strip():
            continue
        texts.append(sentence.strip())
        labels.append(_label_tuple(raw, multi_label, label_sep, f"{path}, line {line}"))
    if total == 0:
        raise ValueError(f"{path} has no data rows: give a file with at least one labelled example")
    if not texts:
        raise ValueError(f"{path} has no examples: the text of all {total} rows is empty")
    skipped = total - len(texts)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} of {total} rows with empty text", stacklevel=2)
    return LabelledTexts(texts, labels, skipped)


def _read_text(path: Path, encoding: str) -> str:
    # Whole file, decoded; read_chunks names a missing, empty or undecodable file. A BOM is dropped.
    return "".join(read_chunks(path, encoding)).lstrip("\ufeff")


def _csv_records(path: Path, text: str, delimiter: str) -> Iterator[Tuple[int, List[str]]]:
    """(first line number, fields) of each non-blank record of CSV/TSV ``text``."""
    options = dict(quoting=csv.QUOTE_NONE) if delimiter == "\t" else dict(strict=True)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, **options)
    line = 1
    try:
        for record in reader:
            if record:
                yield line, record
            line = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(f"{path}, line {line}: {error} (check the quotes)") from None


def _is_number(col) -> bool:
    return isinstance(col, int) or (isinstance(col, str) and col.isdigit())


def _table_rows(path, text, delimiter, text_col, label_col, header):
    # (line, text, label) of each CSV/TSV row.
    if header is None:
        header = not (_is_number(text_col) and _is_number(label_col))
    if text_col is None:
        text_col = "text" if header else 0
    if label_col is None:
        label_col = "label" if header else 1
    records = _csv_records(path, text, delimiter)
    if header:
        names = next(records, (0, None))[1]
        if names is None:
            return
        columns = [_column_index(path, col, names) for col in (text_col, label_col)]
    else:
        for col in (text_col, label_col):
            if not _is_number(col):
                raise ValueError(f"{path}: without a header, columns are numbers (0 = first), got {col!r}")
        columns = [int(text_col), int(label_col)]
    need = max(columns) + 1
    for line, record in records:
        if len(record) < need:
            raise ValueError(f"{path}, line {line}: {len(record)} fields, need at least {need} "
                             f"(is the delimiter {delimiter!r} right?)")
        yield line, record[columns[0]], record[columns[1]]


def _column_index(path, col, names: List[str]) -> int:
    if _is_number(col) and int(col) < len(names):
        return int(col)
    if col in names:
        return names.index(col)
    raise ValueError(f"{path} has no column {col!r}; its columns are: {', '.join(map(repr, names))} "
                     f"(name one of them, or give column numbers if the file has no header)")


def _jsonl_rows(path, text, text_key, label_key):
    for line, content in enumerate(text.split("\n"), 1):
        if not content.strip():
            continue
        try:
            record = json.loads(content)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {line}: invalid JSON ({error.msg}); "
                             f"give one JSON object per line") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {line}: a JSON {type(record).__name__}, not an object")
        for key in (text_key, label_key):
            if key not in record:
                raise ValueError(f"{path}, line {line} has no key {key!r}; its keys are: "
                                 f"{', '.join(map(repr, record))}")
        sentence = record[text_key]
        if sentence is not None and not isinstance(sentence, str):
            raise ValueError(f"{path}, line {line}: the text {text_key!r} is a "
                             f"{type(sentence).__name__}, not a string")
        yield line, sentence, record[label_key]


def _sst_rows(text):
    # "LABEL SENTENCE": the label token, one space, the text.
    for line, content in enumerate(text.split("\n"), 1):
        content = content.rstrip("\r")
        if content.strip():
            label, _, sentence = content.lstrip().partition(" ")
            yield line, sentence, label


def _label_tuple(raw, multi_label: bool, sep: str, where: str) -> Tuple[str, ...]:
    """The labels of one example as strings: a str, int or bool (or, multi-label, a list of them)."""
    if multi_label:
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(sep) if part.strip())
        if isinstance(raw, (list, tuple)):
            return tuple(_label_text(item, where) for item in raw)
    label = _label_text(raw, where)
    if not label:
        raise ValueError(f"{where}: the label is empty")
    return (label,)


def _label_text(raw, where: str) -> str:
    if isinstance(raw, (bool, np.bool_)):
        return "true" if raw else "false"
    if isinstance(raw, (int, np.integer)):
        return str(int(raw))
    if isinstance(raw, str):
        return raw.strip()
    raise ValueError(f"{where}: a label must be a string, integer or boolean, got {raw!r}")


# ---------------------------------------------------------------------------------------- labels

@dataclass
class Labels:
    """Label names <-> ids.

    Attributes:
        names: id -> name; sorted, numerically when all names are integers (``"2"`` < ``"10"``).
        multi_label: encode to (N, C) multi-hot floats instead of (N,) class ids.
    """

    names: List[str]
    multi_label: bool = False
    index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.index = {name: i for i, name in enumerate(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def build(cls, labels: List[Tuple[str, ...]], multi_label: bool = False) -> "Labels":
        """The labels of the training data; at least two distinct ones."""
        if not multi_label:
            _check_single(labels, "training")
        names = {name for example in labels for name in example}
        if len(names) < 2:
            found = f"only one class {next(iter(names))!r}" if names else "no labels"
            raise ValueError(f"{found} in the training data: a classifier needs at least two classes")
        numeric = all(name.lstrip("-").isdigit() for name in names)
        return cls(sorted(names, key=int if numeric else None), multi_label)

    def encode(self, labels: List[Tuple[str, ...]], *, what: str = "validation") -> torch.Tensor:
        """(N,) int64 class ids, or (N, C) float32 multi-hot when ``multi_label``.

        Raises:
            ValueError: a label that is not among ``names`` (``what`` names the data it came from).
        """
        for example in labels:
            for name in example:
                if name not in self.index:
                    known = ", ".join(map(repr, self.names[:20])) + (", ..." if len(self) > 20 else "")
                    raise ValueError(f"label {name!r} in the {what} data never occurs in the training "
                                     f"data (known: {known})")
        if not self.multi_label:
            _check_single(labels, what)
            return torch.tensor([self.index[example[0]] for example in labels], dtype=torch.int64)
        hot = torch.zeros(len(labels), len(self), dtype=torch.float32)           # (N, C)
        for i, example in enumerate(labels):
            hot[i, [self.index[name] for name in example]] = 1.0
        return hot

    def decode(self, ids) -> List[str]:
        """Names of class ids (for multi-label, the ids of the labels that are on)."""
        return [self.names[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "multi_label": self.multi_label}

    @classmethod
    def from_dict(cls, data: dict) -> "Labels":
        return cls(list(data["names"]), bool(data["multi_label"]))


def _check_single(labels: List[Tuple[str, ...]], what: str) -> None:
    for i, example in enumerate(labels):
        if len(example) != 1:
            raise ValueError(f"example {i} of the {what} data has {len(example)} labels {example}, not one: "
                             f"pass --multi-label for several labels per example")


# ------------------------------------------------------------------------------------ tokenising

class TextEncoder:
    """Text -> token ids for classification: ``"word"`` (whitespace-split), ``"char"`` or ``"bpe"``.

    Id 0 is ``<pad>`` and id 1 ``<unk>`` in every kind. Build with ``TextEncoder.build(texts, ...)``;
    ``to_dict``/``from_dict`` save it (BPE as the ``tokenizers`` JSON) inside a checkpoint.
    """

    pad_id, unk_id = 0, 1

    def __init__(self, kind: str, *, lowercase: bool = True, tokens: Optional[List[str]] = None,
                 tokenizer=None):
        if kind not in ("word", "char", "bpe"):
            raise ValueError(f"kind must be 'word', 'char' or 'bpe', got {kind!r}")
        if (tokenizer if kind == "bpe" else tokens) is None:
            raise ValueError("give tokens for a word or char encoder, a tokenizer for bpe")
        self.kind, self.lowercase, self.tokenizer = kind, lowercase, tokenizer
        self.vocab = tokens                                    # id -> token (word, char)
        self.index = {token: i for i, token in enumerate(tokens or ())}

    @classmethod
    def build(cls, texts: List[str], kind: str = "word", *, lowercase: bool = True, min_freq: int = 1,
              max_size: Optional[int] = None, bpe_vocab_size: int = 8000) -> "TextEncoder":
        """Learn the vocabulary of ``texts``.

        word/char: tokens ordered by frequency, then alphabetically; those seen fewer than
        ``min_freq`` times, or beyond ``max_size`` ids in all, become ``<unk>``.
        bpe: a BPE model of ``bpe_vocab_size`` tokens over whitespace/punctuation-split words.
        """
        if kind == "bpe":
            return cls(kind, lowercase=lowercase, tokenizer=train_bpe(texts, bpe_vocab_size, [PAD, UNK],
                                                                       lowercase=lowercase))
        encoder = cls(kind, lowercase=lowercase, tokens=[PAD, UNK])
        counts = Counter(token for text in texts for token in encoder.tokens(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        tokens = [PAD, UNK] + [token for token, count in ranked if count >= min_freq and token not in (PAD, UNK)]
        return cls(kind, lowercase=lowercase, tokens=tokens[:max(max_size, 2)] if max_size else tokens)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size() if self.kind == "bpe" else len(self.vocab)

    def tokens(self, text: str) -> List[str]:
        """The token strings of ``text``, one per id of ``encode`` (an unknown word is shown as it is)."""
        if self.kind == "bpe":
            return self.tokenizer.encode(text).tokens or [UNK]
        text = text.lower() if self.lowercase else text
        return (text.split() if self.kind == "word" else list(text)) or [UNK]

    def encode(self, text: str) -> List[int]:
        """Token ids of ``text``; never empty (no tokens at all give ``[unk_id]``)."""
        if self.kind == "bpe":
            return self.tokenizer.encode(text).ids or [self.unk_id]
        return [self.index.get(token, self.unk_id) for token in self.tokens(text)]

    def to_dict(self) -> dict:
        data = {"kind": self.kind, "lowercase": self.lowercase}
        if self.kind == "bpe":
            return {**data, "tokenizer": self.tokenizer.to_str()}
        return {**data, "tokens": list(self.vocab)}

    @classmethod
    def from_dict(cls, data: dict) -> "TextEncoder":
        if data["kind"] == "bpe":
            from tokenizers import Tokenizer
            return cls("bpe", lowercase=data["lowercase"], tokenizer=Tokenizer.from_str(data["tokenizer"]))
        return cls(data["kind"], lowercase=data["lowercase"], tokens=list(data["tokens"]))


# ------------------------------------------------------------------------------------- sequences

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
    records = _csv_records(path, _read_text(path, "utf-8"), "\t" if path.suffix.lower() == ".tsv" else ",")
    names = next(records, (0, None))[1]
    if names is None:
        raise ValueError(f"{path} has no rows: give a header {id_col},{time_col},feature...,{label_col} and data")
    i_id, i_t, i_label = (_column_index(path, col, names) for col in (id_col, time_col, label_col))
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
    return LabelledSequences(sequences, [_label_tuple(labels[key], multi_label, label_sep, f"{path}, id {key!r}")
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
    labels = [_label_tuple(label, multi_label, label_sep, f"{path}, y[{i}]") for i, label in enumerate(y.tolist())]
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
