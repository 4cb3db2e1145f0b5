"""Labelled texts for sequence classification.

- ``read_labelled``: texts and labels from CSV, TSV, JSON lines or SST-style ``LABEL SENTENCE`` lines.

Label ids are ``rnnkit.data.labels.Labels``; token ids ``rnnkit.data.vocabulary.TextEncoder``;
feature sequences ``rnnkit.data.sequences``. Every reader fails with a one-line ValueError naming
the file (and the line) and what to do.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from .tables import column_index, csv_records, is_number, json_records, label_tuple, read_text

FORMATS = ("csv", "tsv", "jsonl", "sst")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}


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
    text = read_text(path, encoding)
    if fmt == "jsonl":
        rows = jsonl_rows(path, text, "text" if text_col is None else text_col,
                          "label" if label_col is None else label_col)
    elif fmt == "sst":
        rows = _sst_rows(text)
    else:
        rows = table_rows(path, text, "\t" if fmt == "tsv" else ",", text_col, label_col, header)
    texts, labels, total = [], [], 0
    for line, sentence, raw in rows:
        total += 1
        if sentence is None or not sentence.strip():
            continue
        texts.append(sentence.strip())
        labels.append(label_tuple(raw, multi_label, label_sep, f"{path}, line {line}"))
    if total == 0:
        raise ValueError(f"{path} has no data rows: give a file with at least one labelled example")
    if not texts:
        raise ValueError(f"{path} has no examples: the text of all {total} rows is empty")
    skipped = total - len(texts)
    if skipped:
        warnings.warn(f"{path}: skipped {skipped} of {total} rows with empty text", stacklevel=2)
    return LabelledTexts(texts, labels, skipped)


def table_rows(path, text, delimiter, text_col, label_col, header):
    """(line, text, label) of each CSV/TSV row of ``text`` (see ``read_labelled``'s columns); also the
    (line, source, target) rows of a translator's pairs."""
    if header is None:
        header = not (is_number(text_col) and is_number(label_col))
    if text_col is None:
        text_col = "text" if header else 0
    if label_col is None:
        label_col = "label" if header else 1
    records = csv_records(path, text, delimiter)
    if header:
        names = next(records, (0, None))[1]
        if names is None:
            return
        columns = [column_index(path, col, names) for col in (text_col, label_col)]
    else:
        for col in (text_col, label_col):
            if not is_number(col):
                raise ValueError(f"{path}: without a header, columns are numbers (0 = first), got {col!r}")
        columns = [int(text_col), int(label_col)]
    need = max(columns) + 1
    for line, record in records:
        if len(record) < need:
            raise ValueError(f"{path}, line {line}: {len(record)} fields, need at least {need} "
                             f"(is the delimiter {delimiter!r} right?)")
        yield line, record[columns[0]], record[columns[1]]


def jsonl_rows(path, text, text_key, label_key):
    """(line, text, label) of each JSON-lines record (the text must be a string or null)."""
    for line, record in json_records(path, text):
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
