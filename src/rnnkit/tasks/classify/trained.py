"""Trained classifiers, ready to predict: one checkpoint (``TrainedClassifier``) or several
averaged (``Ensemble``)."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from rnnkit.data import BucketBatches, Labels, TextEncoder, pad
from rnnkit.train.task import validation_totals

from .examples import encode_items
from .metrics import multi_label_statistics, single_label_statistics
from .model import SequenceClassifier
from .task import ClassifierTask


class Prediction(NamedTuple):
    """``label``: the predicted class (multi-label: a tuple of the labels with probability >= 0.5);
    ``probabilities``: ``{label: probability}``."""

    label: Union[str, Tuple[str, ...]]
    probabilities: Dict[str, float]


class Explanation(NamedTuple):
    """Why a prediction: ``tokens`` with one ``scores`` entry each; ``method`` is "attention" (the
    pooling's weights) or "gradient_x_input" (saliency of the predicted class)."""

    prediction: Prediction
    tokens: List[str]
    scores: List[float]
    method: str


def prediction_from(probs: torch.Tensor, labels: Labels) -> Prediction:
    """The ``Prediction`` of one example's (C,) probabilities: the likeliest label, or for
    multi-label every label at 0.5 or above."""
    named = {name: round(float(p), 6) for name, p in zip(labels.names, probs)}
    if labels.multi_label:
        return Prediction(tuple(n for n, p in zip(labels.names, probs) if p >= 0.5), named)
    return Prediction(labels.names[int(probs.argmax())], named)


class _Predicts:
    """``predict`` and evaluation statistics for anything with ``labels``, ``info`` and
    ``probabilities_of(items)``."""

    labels: Labels
    info: dict

    def probabilities_of(self, items: Sequence, batch_size: int = 64) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, items: Sequence) -> List[Prediction]:
        """A ``Prediction`` for each text (or feature array)."""
        return [prediction_from(p, self.labels) for p in self.probabilities_of(items)]

    def statistics(self, items: Sequence, truth: torch.Tensor, batch_size: int = 64) -> dict:
        """The counts behind the metrics (``rnnkit.tasks.classify.metrics``) of ``items`` against
        ``truth`` (class ids, or multi-hot), from the predicted probabilities (no loss)."""
        probabilities = self.probabilities_of(items, batch_size)
        if self.labels.multi_label:
            return multi_label_statistics(probabilities >= 0.5, truth)
        return single_label_statistics(probabilities.argmax(dim=1), truth, len(self.labels))


class TrainedClassifier(_Predicts):
    """A classifier loaded from a checkpoint: ``model`` (eval mode), ``labels``, ``encoder`` (None for
    numeric input), and ``info``, the checkpoint's task config.
    """

    def __init__(self, model: SequenceClassifier, labels: Labels, encoder: Optional[TextEncoder], info: dict):
        self.model, self.labels, self.encoder, self.info = model.eval(), labels, encoder, info
        self.device = next(model.parameters()).device

    def encode(self, items: Sequence) -> list:
        """Texts -> token-id lists; feature arrays -> standardised (T, F) float32 arrays."""
        return encode_items(items, self.encoder, self.info.get("features"))

    @torch.no_grad()
    def logits(self, items: Sequence, batch_size: int = 64) -> torch.Tensor:
        """(N, C) logits of ``items`` in their order (batched by length)."""
        encoded = self.encode(items)
        if not encoded:
            return torch.zeros(0, len(self.labels))
        out = torch.empty(len(encoded), len(self.labels))
        batches = BucketBatches(encoded, torch.arange(len(encoded)), batch_size, shuffle=False)
        for batch in batches():
            logits = self.model(batch.inputs.to(self.device), batch.lengths.to(self.device)).logits
            out[batch.labels] = logits.float().cpu()
        return out

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.labels.multi_label else torch.softmax(logits, dim=-1)

    def probabilities_of(self, items: Sequence, batch_size: int = 64) -> torch.Tensor:
        """(N, C) class probabilities of ``items`` (sigmoids for multi-label)."""
        return self.probabilities(self.logits(items, batch_size))

    def task(self) -> ClassifierTask:
        """The task around this model, with its class weights, for a validation pass."""
        weights = self.info.get("class_weights")
        return ClassifierTask(self.model, self.info, class_weights=None if weights is None else torch.tensor(weights))

    def statistics(self, items: Sequence, truth: torch.Tensor, batch_size: int = 64) -> dict:
        """The validation pass of training (``ClassifierTask.validation_step``, loss included) over
        ``items`` against ``truth``, in batches of ``batch_size`` bucketed as in training."""
        batches = BucketBatches(self.encode(items), truth, batch_size, shuffle=False)
        return validation_totals(self.task(), batches(), self.device)[0]

    def explain(self, item) -> Explanation:
        """Token (or step) importances for the prediction of one text (or feature array)."""
        inputs, lengths = pad(self.encode([item]))
        embedded = self.model.embed(inputs.to(self.device)).detach().requires_grad_(True)   # (1, T, E)
        logits, attention = self.model.classify(embedded, lengths.to(self.device))
        prediction = prediction_from(self.probabilities(logits.detach().float().cpu())[0], self.labels)
        if attention is not None:
            scores, method = attention[0].detach(), "attention"
        else:
            logits[0, int(logits[0].argmax())].backward()
            scores, method = (embedded.grad * embedded).sum(-1)[0].detach(), "gradient_x_input"   # (T,)
        if self.encoder is not None:
            tokens = self.encoder.tokens(item)
        else:
            tokens = [f"step {t}" for t in range(len(item))]
        return Explanation(prediction, tokens, [round(float(s), 6) for s in scores], method)


class Ensemble(_Predicts):
    """Several classifiers of the same labels as one: the mean of their class probabilities.

    Members may differ in anything else (cell, size, tokens, seed). ``info`` (how files are read)
    is the first member's.
    """

    def __init__(self, members: Sequence[TrainedClassifier], names: Sequence[str]):
        first = members[0]
        for member, name in zip(members[1:], names[1:]):
            if member.labels.to_dict() != first.labels.to_dict():
                raise ValueError(f"{name} has labels {member.labels.names} (multi-label: "
                                 f"{member.labels.multi_label}) but {names[0]} has {first.labels.names} "
                                 f"({first.labels.multi_label}); an ensemble needs classifiers of the same labels")
        self.members, self.labels, self.info = list(members), first.labels, first.info

    def probabilities_of(self, items: Sequence, batch_size: int = 64) -> torch.Tensor:
        """(N, C): the members' probabilities, averaged."""
        return sum(member.probabilities_of(items, batch_size) for member in self.members) / len(self.members)
