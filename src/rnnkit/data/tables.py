"""Helpers the readers of labelled files share: a file's text, CSV/TSV records, columns, label fields.

Every helper fails with a one-line ValueError naming the file (and the line) and what to do.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np

from .text import read_chunks


def read_text(path: Path, encoding: str) -> str:
    """The whole file, decoded (``read_chunks`` names a missing, empty or undecodable file); a BOM is dropped."""
    return "".join(read_chunks(path, encoding)).lstrip("\ufeff")


def csv_records(path: Path, text: str, delimiter: str) -> Iterator[Tuple[int, List[str]]]:
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


def json_records(path: Path, text: str) -> Iterator[Tuple[int, dict]]:
    """(line number, object) of each non-empty line of a JSON-lines text; a line that is not a JSON
    object is a ValueError naming the file and line."""
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
        yield line, record


def is_number(col) -> bool:
    """Whether a column is given by number (an int or a digit string)."""
    return isinstance(col, int) or (isinstance(col, str) and col.isdigit())


def column_index(path, col, names: List[str]) -> int:
    """The 0-based index of column ``col`` (a name, or a number) among the header ``names``."""
    if is_number(col) and int(col) < len(names):
        return int(col)
    if col in names:
        return names.index(col)
    raise ValueError(f"{path} has no column {col!r}; its columns are: {', '.join(map(repr, names))} "
                     f"(name one of them, or give column numbers if the file has no header)")


def label_tuple(raw, multi_label: bool, sep: str, where: str) -> Tuple[str, ...]:
    """The labels of one example as strings: a str, int or bool (or, multi-label, a list of them)."""
    if multi_label:
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(sep) if part.strip())
        if isinstance(raw, (list, tuple)):
            return tuple(label_text(item, where) for item in raw)
    label = label_text(raw, where)
    if not label:
        raise ValueError(f"{where}: the label is empty")
    return (label,)


def label_text(raw, where: str) -> str:
    """One label as a string: ``"true"``/``"false"`` for booleans, the digits of an integer."""
    if isinstance(raw, (bool, np.bool_)):
        return "true" if raw else "false"
    if isinstance(raw, (int, np.integer)):
        return str(int(raw))
    if isinstance(raw, str):
        return raw.strip()
    raise ValueError(f"{where}: a label must be a string, integer or boolean, got {raw!r}")
