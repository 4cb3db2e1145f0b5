"""Sequence classifiers from files: ``fit``, ``evaluate``, ``predict``, ``explain``, ``load``. The
command line (``rnnkit train classify``, ``evaluate``, ``predict``) calls these; they are the Python
API for the same jobs.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch

from rnnkit.data import BucketBatches, Labels, TextEncoder
from rnnkit.options import UsageError
from rnnkit.train import TrainConfig, Trainer, TrainResult, find_checkpoint, run_directory
from rnnkit.train.checkpoint import load_task_model

from ..spec import checkpoint_paths
from .config import TEXT_FIELDS, ClassifierConfig, ClassifyData
from .examples import DIGITS, encode_items, feature_statistics, read_examples, split
from .metrics import classification_metrics, per_class
from .model import SequenceClassifier, init_from_lm
from .plots import plot_confusion_matrix
from .task import ClassifierTask, balanced_weights
from .trained import Ensemble, Explanation, Prediction, TrainedClassifier

Checkpoints = Union[str, Path, Sequence[Union[str, Path]]]
ULMFIT_LR_FACTOR = 2.6


def fit(path, out, *, valid=None, data: ClassifyData = ClassifyData(), model: Optional[dict] = None,
        class_weights: Optional[str] = None, init_from=None, train: TrainConfig,
        resume: bool = False) -> TrainResult:
    """Train a classifier on ``path`` (a file, or ``"digits"``); checkpoints and log go to ``out``.

    Args:
        valid: a validation file; without it ``data.valid_fraction`` of the training data is held
            out (seeded, the same for every run).
        data: how files become examples and batches.
        model: ``ClassifierConfig`` fields other than the sizes the data fixes (a resumed run: its
            saved model, which these may only repeat).
        class_weights: None, or "balanced" (weights ``n / (C * count)`` from the training labels).
        init_from: a language-model run/checkpoint: its vocabulary, embedding and layers initialise
            the classifier (ULMFiT: discriminative lrs, factor 2.6, and gradual unfreezing).
        resume: continue the run in ``out`` (same data settings, labels, encoder and model).
    """
    out = Path(out)
    if class_weights not in (None, "balanced"):
        raise ValueError(f"class_weights must be None or 'balanced', got {class_weights!r}")
    reader = dict(data.reader(), sequences=data.sequences or str(path) == DIGITS)
    if reader["sequences"]:
        _refuse_text_options(data, path, init_from)
    with run_directory(out, resume=resume, task="classify"):
        examples = read_examples(path, reader)
        holdout = None
        if valid is None:
            holdout = data.valid_fraction
            examples, valid_examples = split(examples, holdout)
        else:
            valid_examples = read_examples(valid, reader)
        if resume:                                     # everything the data decided comes from the checkpoint
            saved = find_checkpoint(out).config["task"]
            info = {key: saved.get(key) for key in ("labels", "encoder", "features")}
            config = ClassifierConfig(**dict(saved["model"], **(model or {})))
            transfer = saved.get("transfer") or {}
            lm = None
        else:
            lm = _load_lm(init_from) if init_from is not None else None
            labels = Labels.build(examples.labels, multi_label=data.multi_label)
            encoder, features = _build_input(examples.items, data, reader, lm)
            info = {"labels": labels.to_dict(), "encoder": encoder.to_dict() if encoder else None, "features": features}
            config = _model_config(model or {}, labels, encoder, features, lm)
            transfer = {"lr_factor": ULMFIT_LR_FACTOR, "gradual_unfreezing": True} if lm is not None else {}
        labels = Labels.from_dict(info["labels"])
        encoder = TextEncoder.from_dict(info["encoder"]) if info["encoder"] else None
        y = labels.encode(examples.labels, what="training")
        valid_y = labels.encode(valid_examples.labels, what="validation")
        sequences = encode_items(examples.items, encoder, info["features"])
        valid_sequences = encode_items(valid_examples.items, encoder, info["features"])
        torch.manual_seed(train.seed)
        classifier = SequenceClassifier(config)
        if lm is not None:
            mapping = {i: lm.vocab.index[token] for i, token in enumerate(encoder.vocab) if token in lm.vocab.index}
            init_from_lm(classifier, lm.model, mapping)
        info.update(reader=reader, holdout=holdout, data=asdict(data),
                    fit={"class_weights": class_weights, "init_from": None if init_from is None else str(init_from)})
        weights = balanced_weights(y, len(labels)) if class_weights == "balanced" else None
        task = ClassifierTask(classifier, info, class_weights=weights, **transfer)
        train_batches = BucketBatches(sequences, y, data.batch_size, seed=train.seed)
        valid_batches = BucketBatches(valid_sequences, valid_y, data.batch_size, shuffle=False)
        return Trainer(task, train, out).fit(train_batches, valid_batches, resume=resume)


def _refuse_text_options(data: ClassifyData, path, init_from) -> None:
    """Numeric sequences have no text: refuse the text settings instead of ignoring them."""
    from rnnkit.options import flag_of

    default = ClassifyData()
    given = [flag_of(ClassifyData, name) for name in TEXT_FIELDS if getattr(data, name) != getattr(default, name)]
    if init_from is not None:
        given.append("--init-from")
    if given:
        what = "--data digits" if str(path) == DIGITS else "--sequences"
        raise ValueError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for text, and {what} reads "
                         f"numeric sequences: leave {'it' if len(given) == 1 else 'them'} out")


def _build_input(items: list, data: ClassifyData, reader: dict, lm) -> tuple:
    """(encoder, feature statistics): one of them, for text or numeric input."""
    if reader["sequences"]:
        return None, feature_statistics(items)
    if lm is not None:                        # the language model's tokens, <pad> and <unk> first
        if lm.vocab.kind == "bpe":
            raise ValueError("--init-from takes a char or word language model; BPE ones are not supported yet")
        return TextEncoder.from_tokens(lm.vocab.kind, lm.vocab.tokens), None
    encoder = TextEncoder.build(items, data.tokens, lowercase=data.lowercase, min_freq=data.min_freq,
                                max_size=data.max_vocab, bpe_vocab_size=data.bpe_vocab_size)
    return encoder, None


def _model_config(model: dict, labels: Labels, encoder, features, lm) -> ClassifierConfig:
    """The classifier's config: the sizes the data fixes (and, with ``lm``, the language model's
    shape), the rest from ``model``; a value ``model`` gives for a fixed size must agree."""
    sizes = dict(num_classes=len(labels), multi_label=labels.multi_label)
    if encoder is not None:
        sizes["num_embeddings"] = len(encoder)
    else:
        sizes["input_size"] = len(features["mean"])
    if lm is not None:                        # the language model fixes the shape of what it initialises
        c = lm.model.config
        last = lm.model.layers[-1].hidden_size
        sizes.update(cell=c.cell, embedding_size=c.embedding_size, hidden_size=c.hidden_size,
                     num_layers=c.num_layers, top_hidden_size=last if last != c.hidden_size else None)
    clashes = sorted(name for name in set(model) & set(sizes) if model[name] != sizes[name])
    if clashes:
        by = "the data and the language model (--init-from)" if lm is not None else "the data"
        raise ValueError(f"{', '.join(f'{name} {model[name]!r}' for name in clashes)}: set by {by} to "
                         f"{', '.join(repr(sizes[name]) for name in clashes)}; leave {'it' if len(clashes) == 1 else 'them'} out")
    return ClassifierConfig(**dict(model, **sizes))


def _load_lm(path):
    from rnnkit.tasks.lm import load as load_lm

    return load_lm(path)


def load(path: Checkpoints, *, device: str = "cpu") -> Union[TrainedClassifier, Ensemble]:
    """Rebuild the classifier saved in ``path`` (a run directory or a checkpoint directory); a list
    of several paths gives their ``Ensemble``."""
    paths = checkpoint_paths(path)
    if len(paths) > 1:
        return Ensemble([load(one, device=device) for one in paths], [str(one) for one in paths])
    model, info, _ = load_task_model(paths[0], "classify", lambda task: SequenceClassifier(ClassifierConfig(**task["model"])),
                                     device)
    encoder = TextEncoder.from_dict(info["encoder"]) if info.get("encoder") else None
    return TrainedClassifier(model, Labels.from_dict(info["labels"]), encoder, info)


def evaluate(checkpoints: Checkpoints, path, *, encoding=None, text_col=None, label_col=None, fmt=None,
             plot: Union[bool, str, Path] = True, batch_size: Optional[int] = None, device: str = "cpu") -> dict:
    """Accuracy, macro-F1, the loss, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        checkpoints: one path, or several for their ensemble (``Ensemble``; it reports no loss).
        path: the file, read as in training (columns, format, encoding; an ensemble's first member's)
            unless the arguments given say otherwise; ``"digits"``: the digits held out in training.
        plot: where to write the confusion matrix PNG (atomically): True for
            ``confusion_matrix.png`` in the ``checkpoints`` directory given (for ``RUN/BEST``, in
            ``RUN``; ``confusion_matrix_ensemble.png`` in the first member's), a path, or False.
        batch_size: examples per batch (default: the training batch size): the numbers are those of
            training's validation pass on the same file and batch size.
    Multi-label: subset accuracy and macro-F1 over the labels, and no confusion matrix.
    """
    trained = load(checkpoints, device=device)
    reader = dict(trained.info["reader"])
    given = dict(text_col=text_col, label_col=label_col, fmt=fmt, encoding=encoding)
    reader.update({key: value for key, value in given.items() if value is not None})
    examples = read_examples(path, reader)
    if str(path) == DIGITS and trained.info.get("holdout"):
        examples = split(examples, trained.info["holdout"])[1]
    truth = trained.labels.encode(examples.labels, what="evaluation")
    batch_size = batch_size or (trained.info.get("data") or {}).get("batch_size", 64)
    totals = trained.statistics(examples.items, truth, batch_size)
    metrics = classification_metrics(totals)
    result = {key: metrics[key] for key in ("accuracy", "macro_f1", "loss", "examples") if key in metrics}
    result["per_class"] = per_class(totals, trained.labels.names)
    if "confusion" in totals:
        result["labels"] = list(trained.labels.names)
        result["confusion_matrix"] = totals["confusion"].tolist()
        if plot is not False:
            png = _plot_path(checkpoints, trained, plot)
            plot_confusion_matrix(totals["confusion"], trained.labels.names, png)
            result["confusion_matrix_png"] = str(png)
    return result


def _plot_path(checkpoints: Checkpoints, trained, plot) -> Path:
    if plot is not True:
        return Path(plot)
    first = checkpoint_paths(checkpoints)[0]
    folder = first if first.is_dir() else first.parent                                  # RUN/BEST: RUN
    return folder / ("confusion_matrix_ensemble.png" if isinstance(trained, Ensemble) else "confusion_matrix.png")


def predict(checkpoints: Checkpoints, texts: Sequence, *, device: str = "cpu") -> List[Prediction]:
    """The predicted label and the probability of every label, for each text (or feature array);
    several checkpoints predict as their ensemble."""
    return load(checkpoints, device=device).predict(texts)


def explain(checkpoint, text, *, device: str = "cpu") -> Explanation:
    """Per-token importances: attention weights with attention pooling, else gradient x embedding."""
    return load(checkpoint, device=device).explain(text)


def predict_rows(checkpoints: Checkpoints, texts: Sequence[str], *, explain: bool = False,
                 device: str = "cpu") -> List[dict]:
    """``rnnkit predict``'s rows: ``{text, label, probabilities}`` (and with ``explain``, the
    ``explanation``: its method and ``[token, score]`` pairs)."""
    classifier = load(checkpoints, device=device)
    if explain and isinstance(classifier, Ensemble):
        raise UsageError("--explain reads one classifier: give one --checkpoint (not an ensemble)")
    rows = []
    for text, prediction in zip(texts, classifier.predict(texts)):
        row = {"text": text, "label": prediction.label, "probabilities": prediction.probabilities}
        if explain:
            explanation = classifier.explain(text)
            row["explanation"] = {"method": explanation.method,
                                  "tokens": [[t, s] for t, s in zip(explanation.tokens, explanation.scores)]}
        rows.append(row)
    return rows


def show(row: dict) -> str:
    """How ``rnnkit predict`` prints a row: label, its probability and the text, tab-separated (with
    ``--explain``, a second line of ``token:score`` pairs)."""
    label = row["label"] if isinstance(row["label"], str) else ",".join(row["label"])
    line = f"{label}\t{max(row['probabilities'].values()):.4f}\t{row['text']}"
    if "explanation" in row:
        line += "\n\t" + " ".join(f"{t}:{s:.3f}" for t, s in row["explanation"]["tokens"])
    return line


__all__ = ["fit", "evaluate", "predict", "explain", "predict_rows", "show", "load", "checkpoint_paths"]


class _Logits(torch.nn.Module):
    """The classifier's logits (B, C) of padded inputs and their (B,) lengths."""

    def __init__(self, model: SequenceClassifier):
        super().__init__()
        self.model = model

    def forward(self, inputs, lengths):
        return self.model(inputs, lengths).logits


def exportable(trained: TrainedClassifier):
    """``rnnkit export``: ``(inputs, lengths) -> logits``; inputs (B, T) token ids padded with 0, or
    (B, T, F) standardised features; lengths (B,) int64."""
    from rnnkit.export import Exportable, padded_lengths

    if isinstance(trained, Ensemble):
        raise ValueError("rnnkit export takes one classifier checkpoint, not an ensemble: export each member")
    config = trained.model.config

    def make_inputs(batch: int, length: int, generator: torch.Generator):
        lengths, real = padded_lengths(batch, length, generator)                             # (B,), (B, T)
        if config.num_embeddings:
            ids = torch.randint(1, config.num_embeddings, (batch, length), generator=generator)
            return ids * real, lengths
        return torch.randn(batch, length, config.input_size, generator=generator) * real.unsqueeze(-1), lengths

    return Exportable(_Logits(trained.model).eval(), make_inputs, ["inputs", "lengths"], ["logits"],
                      {"inputs": {0: "batch", 1: "length"}, "lengths": {0: "batch"}})
