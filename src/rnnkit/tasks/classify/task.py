"""Sequence classification as the engine trains it: ``ClassifierTask`` (cross-entropy with optional
class weights, or BCE for multi-label), with ULMFiT's discriminative learning rates and gradual
unfreezing for a model initialised from a language model."""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data import Batch
from rnnkit.train import Task

from .metrics import classification_metrics, multi_label_statistics, single_label_statistics
from .model import SequenceClassifier


def balanced_weights(labels: Tensor, num_classes: int) -> Tensor:
    """scikit-learn's "balanced" class weights ``n / (C * count_c)`` from training labels.

    For multi-hot (N, C) labels: BCE positive weights ``negatives_c / positives_c``.
    """
    if labels.dim() == 2:
        positives = labels.sum(0)
        return (labels.shape[0] - positives) / positives.clamp(min=1)
    counts = torch.bincount(labels, minlength=num_classes).float()
    return labels.numel() / (num_classes * counts.clamp(min=1))


class ClassifierTask(Task):
    """Sequence classification over ``rnnkit.data.Batch`` es.

    Args:
        model: a ``SequenceClassifier``.
        info: JSON saved with the model so a checkpoint rebuilds everything (encoder, labels, ...).
        class_weights: (C,) loss weights (``balanced_weights``), or None.
        lr_factor: discriminative learning rates: each group below the head gets ``1 / lr_factor``
            of the lr of the group above (ULMFiT: 2.6); 1 gives every parameter the same lr.
        gradual_unfreezing: train only the head in epoch 0, and one more group (top down) each epoch.

    Validation statistics (``rnnkit.tasks.classify.metrics``): the confusion matrix (per-label
    counts for multi-label) and the loss's weighted sum; the metrics are the loss, accuracy and
    macro-F1 over the whole validation set.
    """

    def __init__(self, model: SequenceClassifier, info: dict, *, class_weights: Optional[Tensor] = None,
                 lr_factor: float = 1.0, gradual_unfreezing: bool = False):
        if lr_factor < 1.0:
            raise ValueError(f"lr_factor must be >= 1, got {lr_factor!r}")
        self.model, self.info = model, info
        self.class_weights = class_weights
        self.lr_factor, self.gradual_unfreezing = float(lr_factor), gradual_unfreezing

    def _loss(self, logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
        logits, weights = logits.float(), self.class_weights
        weights = None if weights is None else weights.to(logits.device)
        if self.model.config.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weights, reduction=reduction)
        return F.cross_entropy(logits, labels, weight=weights, reduction=reduction)

    def training_step(self, batch: Batch) -> Tensor:
        logits, _ = self.model(batch.inputs, batch.lengths)
        return self._loss(logits, batch.labels)

    def validation_step(self, batch: Batch) -> dict:
        logits, _ = self.model(batch.inputs, batch.lengths)
        labels = batch.labels
        if self.model.config.multi_label:
            stats, weight = multi_label_statistics(logits > 0, labels), labels.numel()
        else:
            stats = single_label_statistics(logits.argmax(dim=1), labels, self.model.config.num_classes)
            weight = labels.numel() if self.class_weights is None else \
                float(self.class_weights.to(labels.device)[labels].sum())
        return dict(stats, loss_sum=self._loss(logits, labels, "sum").item(), loss_weight=weight)

    def validation_metrics(self, totals: dict, batches: int) -> dict:
        return classification_metrics(totals)

    def config(self) -> dict:
        transfer = {"lr_factor": self.lr_factor, "gradual_unfreezing": self.gradual_unfreezing}
        weights = self.class_weights.tolist() if self.class_weights is not None else None
        return {"task": "classify", "model": self.model.config_dict(), **self.info, "class_weights": weights,
                "transfer": transfer}

    def param_groups(self) -> List[dict]:
        """Optimizer groups bottom to top, ``lr_scale`` = lr_factor ** -(distance from the head)."""
        groups = self.model.groups()
        top = len(groups) - 1
        return [{"params": params, "lr_scale": self.lr_factor ** -(top - k)} for k, params in enumerate(groups)]

    def start_epoch(self, epoch: int) -> None:
        """Gradual unfreezing: in epoch e the top e + 1 groups train, the others are frozen."""
        groups = self.model.groups()
        for k, params in enumerate(groups):
            trainable = not self.gradual_unfreezing or k >= len(groups) - 1 - epoch
            for param in params:
                param.requires_grad_(trainable)
