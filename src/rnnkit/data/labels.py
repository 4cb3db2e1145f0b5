"""Label names <-> ids for classification: one class per example, or multi-hot for multi-label."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import torch


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
