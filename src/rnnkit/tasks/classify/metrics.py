"""Classification metrics from counts that add up over batches: a validation pass and ``evaluate``
compute accuracy, macro-F1 and per-class scores from the same totals, over the whole data set.

Single-label statistics are the confusion matrix ``confusion`` (C, C): row = true class, column =
predicted. Multi-label ones are per-label ``tp``, ``fp``, ``fn`` (C,) and the count of examples
with every label right (``subset_correct``). Both carry ``examples``; a loss adds ``loss_sum`` and
``loss_weight`` (the weighted mean's numerator and denominator).
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch


def single_label_statistics(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> dict:
    """Counts of (N,) predicted and true class ids: ``confusion`` (C, C) and ``examples``."""
    pairs = (truth.long() * num_classes + predicted.long()).cpu()
    confusion = torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return {"confusion": confusion.numpy().astype(np.int64), "examples": int(truth.numel())}


def multi_label_statistics(predicted: torch.Tensor, truth: torch.Tensor) -> dict:
    """Counts of (N, C) predicted and true 0/1 labels: per-label ``tp``, ``fp``, ``fn``, the
    ``subset_correct`` examples and ``examples``."""
    predicted, truth = predicted.bool().cpu(), truth.bool().cpu()
    count = lambda mask: mask.sum(0).numpy().astype(np.int64)               # noqa: E731  (C,)
    return {"tp": count(predicted & truth), "fp": count(predicted & ~truth), "fn": count(~predicted & truth),
            "subset_correct": int((predicted == truth).all(1).sum()), "examples": int(truth.shape[0])}


def _counts(totals: dict):
    """Per-class (tp, fp, fn) arrays of either kind of statistics."""
    if "confusion" in totals:
        matrix = np.asarray(totals["confusion"])
        tp = np.diag(matrix)
        return tp, matrix.sum(0) - tp, matrix.sum(1) - tp
    return (np.asarray(totals[key]) for key in ("tp", "fp", "fn"))


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(len(a), dtype=np.float64), where=b > 0)


def classification_metrics(totals: dict) -> Dict[str, float]:
    """``loss`` (if the totals have one), ``accuracy`` (subset accuracy for multi-label),
    ``macro_f1`` (the mean over classes of 2tp / (2tp + fp + fn), 0 for a class never seen nor
    predicted) and ``examples``."""
    tp, fp, fn = _counts(totals)
    correct = np.trace(np.asarray(totals["confusion"])) if "confusion" in totals else totals["subset_correct"]
    metrics = {}
    if "loss_sum" in totals:
        metrics["loss"] = float(totals["loss_sum"]) / float(totals["loss_weight"])
    metrics["accuracy"] = float(correct) / totals["examples"]
    metrics["macro_f1"] = float(_ratio(2 * tp, 2 * tp + fp + fn).mean())
    metrics["examples"] = int(totals["examples"])
    return metrics


def per_class(totals: dict, names: Sequence[str]) -> Dict[str, dict]:
    """``{class: {precision, recall, f1, support}}`` from the totals (0 where a ratio is undefined)."""
    tp, fp, fn = _counts(totals)
    precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(tp[i] + fn[i])} for i, name in enumerate(names)}
