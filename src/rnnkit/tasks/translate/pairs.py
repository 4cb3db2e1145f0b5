"""Sentence pairs from files: two line-aligned plain-text files (Multi30k, WMT, OPUS), or one file
of pairs (TSV: source TAB target; JSON lines). Every reader fails with one line naming the file,
and warns once about what it skipped."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from rnnkit.data.labelled import jsonl_rows, table_rows
from rnnkit.data.tables import read_text


@dataclass
class Pairs:
    """Aligned sentences (stripped, never empty) and how many pairs were skipped as empty."""

    sources: List[str]
    targets: List[str]
    skipped_empty: int = 0

    def __len__(self) -> int:
        return len(self.sources)

    def take(self, index) -> "Pairs":
        """The pairs at ``index`` (a sequence of positions), in that order."""
        return Pairs([self.sources[i] for i in index], [self.targets[i] for i in index])


def read_lines(path, encoding: str = "utf-8") -> List[str]:
    """The lines of a text file (line ends of any kind; a last line without its newline counts).
    A missing, empty or undecodable file is a ValueError naming it (and the byte offset)."""
    text = read_text(Path(path), encoding)
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def read_parallel(source, target, encoding: str = "utf-8") -> Pairs:
    """Pairs from two line-aligned files; pairs with an empty side are skipped (counted, warned).

    Raises:
        ValueError: the files have different numbers of lines (both counted), or no pair is left.
    """
    sources, targets = read_lines(source, encoding), read_lines(target, encoding)
    if len(sources) != len(targets):
        raise ValueError(f"{source} has {len(sources):,} lines but {target} has {len(targets):,}: the source and "
                         f"target files must be line-aligned (one translation per line)")
    return _kept(f"{source} / {target}", zip(sources, targets), len(sources))


def read_pairs(path, *, source_field: str = "source", target_field: str = "target",
               encoding: str = "utf-8") -> Pairs:
    """Pairs from one file: JSON lines (``.jsonl``/``.json``/``.ndjson``: the two fields of each
    object) or TSV (any other name: source TAB target, no header, no quoting)."""
    path = Path(path)
    text = read_text(path, encoding)
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows = list(jsonl_rows(path, text, source_field, target_field))
        for line, _, target in rows:
            if target is not None and not isinstance(target, str):
                raise ValueError(f"{path}, line {line}: the target {target_field!r} is a {type(target).__name__}, "
                                 f"not a string")
    else:
        rows = list(table_rows(path, text, "\t", 0, 1, header=False))
    return _kept(str(path), ((s, t) for _, s, t in rows), len(rows))


def _kept(where: str, rows, total: int) -> Pairs:
    sources, targets = [], []
    for source, target in rows:
        source, target = (source or "").strip(), (target or "").strip()
        if source and target:
            sources.append(source)
            targets.append(target)
    if not sources:
        raise ValueError(f"{where}: no sentence pairs (all {total} are empty on one side or both)")
    skipped = total - len(sources)
    if skipped:
        warnings.warn(f"{where}: skipped {skipped:,} of {total:,} pairs with an empty side", stacklevel=3)
    return Pairs(sources, targets, skipped)


def load_pairs(data=None, source=None, target=None, *, source_field: str = "source", target_field: str = "target",
               encoding: str = "utf-8", what: str = "training") -> Pairs:
    """Pairs from ``data`` (one file of pairs) or ``source`` + ``target`` (two files): exactly one of
    the two forms (ValueError naming the flags otherwise)."""
    if (data is None) == (source is None):
        raise ValueError(f"give the {what} pairs as --source FILE --target FILE or as --data PAIRS (one of them)")
    if data is not None:
        return read_pairs(data, source_field=source_field, target_field=target_field, encoding=encoding)
    if target is None:
        raise ValueError("give --source and --target together: two line-aligned files")
    return read_parallel(source, target, encoding)


def held_out(pairs: Pairs, seed: int, size: Optional[int] = None):
    """``(train, valid)``: ``size`` pairs (default 1,000, or 5% of fewer than 20,000) drawn with
    ``seed`` for validation, the rest for training."""
    import numpy as np

    size = size or (1000 if len(pairs) >= 20_000 else max(1, len(pairs) // 20))
    if len(pairs) < 2:
        raise ValueError("one sentence pair is too few to hold some out for validation: give --valid-source and "
                         "--valid-target, or more pairs")
    order = np.random.default_rng(seed).permutation(len(pairs))
    return pairs.take(sorted(order[size:])), pairs.take(sorted(order[:size]))
