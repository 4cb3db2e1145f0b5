"""Sequence classifiers from files: fit, evaluate, predict, explain. The command line
(``rnnkit train classify``, ``evaluate``, ``predict``) calls these; they are the Python API too.

Data: labelled texts (CSV, TSV, JSON lines, SST lines; ``rnnkit.data.labelled.read_labelled``),
numeric feature sequences (``read_sequences``: long-format CSV or ``.npz``), or ``"digits"``:
scikit-learn's 8x8 digits read row by row (8 steps of 8 features), held out with a fixed seed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from rnnkit.data.labelled import PAD, Labels, TextEncoder, digits_rows, read_labelled, read_sequences
from rnnkit.data.text import UNK
from rnnkit.train import TrainConfig, Trainer, TrainResult, find_checkpoint
from rnnkit.train.checkpoint import load_task_model

from .classify import (BucketBatches, ClassifierConfig, ClassifierTask, SequenceClassifier, balanced_weights,
                       init_from_lm, pad)
from .lm_files import _refuse_used

DIGITS = "digits"
SPLIT_SEED = 0                   # the held-out split (no --valid) is the same for every run


@dataclass
class ClassifyData:
    """How files become examples and batches.

    Args:
        fmt, text_col, label_col, header, encoding, multi_label, label_sep: as ``read_labelled``.
        sequences: the files hold numeric feature sequences (``read_sequences``), not texts.
        tokens: "word", "char" or "bpe"; lowercase, min_freq, max_vocab, bpe_vocab_size: the encoder.
        batch_size: examples per (length-bucketed) batch.
        valid_fraction: held out from the training data (seeded) when there is no validation file.
    """

    fmt: Optional[str] = None
    text_col: Optional[str] = None
    label_col: Optional[str] = None
    header: Optional[bool] = None
    encoding: str = "utf-8"
    multi_label: bool = False
    label_sep: str = ","
    sequences: bool = False
    tokens: str = "word"
    lowercase: bool = True
    min_freq: int = 1
    max_vocab: Optional[int] = None
    bpe_vocab_size: int = 8000
    batch_size: int = 32
    valid_fraction: float = 0.1

    def reader(self) -> dict:
        """What reading a file depends on (saved, so evaluation reads test files the same way)."""
        keys = ("fmt", "text_col", "label_col", "header", "encoding", "multi_label", "label_sep", "sequences")
        return {key: getattr(self, key) for key in keys}


class Examples(NamedTuple):
    """``items``: texts or (T_i, F) float32 arrays; ``labels``: each example's label names."""

    items: list
    labels: List[Tuple[str, ...]]


def read_examples(path, reader: dict) -> Examples:
    """Examples of ``path`` (or ``"digits"``) read as ``reader`` (``ClassifyData.reader()``) says."""
    if str(path) == DIGITS:
        return Examples(*_fields(digits_rows()))
    if reader["sequences"]:
        found = read_sequences(path, multi_label=reader["multi_label"], label_sep=reader["label_sep"])
        return Examples(*_fields(found))
    found = read_labelled(path, text_col=reader["text_col"], label_col=reader["label_col"], fmt=reader["fmt"],
                          header=reader["header"], encoding=reader["encoding"],
                          multi_label=reader["multi_label"], label_sep=reader["label_sep"])
    return Examples(found.texts, found.labels)


def _fields(found) -> tuple:
    return list(found.sequences), list(found.labels)


def split(examples: Examples, fraction: float, seed: int = SPLIT_SEED) -> Tuple[Examples, Examples]:
    """(train, held out): a seeded random ``fraction`` of the examples held out (at least one)."""
    n = len(examples.items)
    if n < 2 or not 0 < fraction < 1:
        raise ValueError(f"cannot hold out {fraction!r} of {n} examples: give a validation file")
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * fraction)))
    pick = lambda index: Examples([examples.items[i] for i in index], [examples.labels[i] for i in index])  # noqa: E731
    return pick(sorted(order[cut:])), pick(sorted(order[:cut]))


# --- the trained model ---------------------------------------------------------------------------

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


class _Predicts:
    """``predict`` for anything with ``labels`` and ``probabilities_of(items)``."""

    labels: Labels

    def probabilities_of(self, items: Sequence, batch_size: int = 64) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, items: Sequence) -> List[Prediction]:
        """A ``Prediction`` for each text (or feature array)."""
        return [prediction_from(p, self.labels) for p in self.probabilities_of(items)]


class TrainedClassifier(_Predicts):
    """A classifier loaded from a checkpoint: ``model`` (eval mode), ``labels``, ``encoder`` (None for
    numeric input), and ``info``, the checkpoint's task config.
    """

    def __init__(self, model: SequenceClassifier, labels: Labels, encoder: Optional[TextEncoder], info: dict):
        self.model, self.labels, self.encoder, self.info = model.eval(), labels, encoder, info

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
            out[batch.labels] = self.model(batch.inputs, batch.lengths).logits.float()
        return out

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.labels.multi_label else torch.softmax(logits, dim=-1)

    def probabilities_of(self, items: Sequence, batch_size: int = 64) -> torch.Tensor:
        """(N, C) class probabilities of ``items`` (sigmoids for multi-label)."""
        return self.probabilities(self.logits(items, batch_size))

    def explain(self, item) -> Explanation:
        """Token (or step) importances for the prediction of one text (or feature array)."""
        inputs, lengths = pad(self.encode([item]))
        embedded = self.model.embed(inputs).detach().requires_grad_(True)            # (1, T, E)
        logits, attention = self.model.classify(embedded, lengths)
        prediction = prediction_from(self.probabilities(logits.detach().float())[0], self.labels)
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


def prediction_from(probs: torch.Tensor, labels: Labels) -> Prediction:
    """The ``Prediction`` of one example's (C,) probabilities: the likeliest label, or for
    multi-label every label at 0.5 or above."""
    named = {name: round(float(p), 6) for name, p in zip(labels.names, probs)}
    if labels.multi_label:
        return Prediction(tuple(n for n, p in zip(labels.names, probs) if p >= 0.5), named)
    return Prediction(labels.names[int(probs.argmax())], named)


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


Checkpoints = Union[str, Path, Sequence[Union[str, Path]]]


def checkpoint_paths(checkpoint: Checkpoints) -> List[Path]:
    """One checkpoint path, or several (an ensemble's), as a non-empty list."""
    paths = [Path(checkpoint)] if isinstance(checkpoint, (str, Path)) else [Path(p) for p in checkpoint]
    if not paths:
        raise ValueError("no checkpoint given: give one path, or several for an ensemble")
    return paths


def load(path: Checkpoints) -> Union[TrainedClassifier, Ensemble]:
    """Rebuild the classifier saved in ``path`` (a run directory or a checkpoint directory); a list
    of several paths gives their ``Ensemble``."""
    paths = checkpoint_paths(path)
    if len(paths) > 1:
        return Ensemble([load(one) for one in paths], [str(one) for one in paths])
    path = paths[0]
    model, info, _ = load_task_model(path, "classify", "a classifier",
                                     lambda task: SequenceClassifier(ClassifierConfig(**task["model"])))
    encoder = TextEncoder.from_dict(info["encoder"]) if info.get("encoder") else None
    return TrainedClassifier(model, Labels.from_dict(info["labels"]), encoder, info)


def encode_items(items: Sequence, encoder: Optional[TextEncoder], features: Optional[dict]) -> list:
    """Texts through ``encoder``; feature arrays standardised with ``features`` (mean/std per feature)."""
    if encoder is not None:
        if not all(isinstance(item, str) for item in items):
            raise ValueError("this classifier reads texts: give strings")
        return [encoder.encode(item) for item in items]
    if any(isinstance(item, str) for item in items):
        raise ValueError("this classifier reads numeric sequences ((steps, features) arrays), not texts")
    mean, std = (np.asarray(features[key], dtype=np.float32) for key in ("mean", "std"))
    arrays = [np.asarray(item, dtype=np.float32) for item in items]
    for i, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[1] != len(mean) or not len(array):
            raise ValueError(f"sequence {i} has shape {array.shape}; this classifier reads (steps, {len(mean)}) "
                             f"feature arrays")
    return [(array - mean) / std for array in arrays]


# --- fit / evaluate / predict --------------------------------------------------------------------

def fit(train_path, out, *, valid=None, data: ClassifyData = ClassifyData(), model: Optional[dict] = None,
        class_weights: Optional[str] = None, init_from=None, train: TrainConfig,
        resume: bool = False) -> TrainResult:
    """Train a classifier on ``train_path`` (a file, or ``"digits"``); checkpoints and log go to ``out``.

    Args:
        valid: a validation file; without it ``data.valid_fraction`` of the training data is held
            out (seeded, the same for every run).
        model: ``ClassifierConfig`` fields other than the sizes the data fixes.
        class_weights: None, or "balanced" (weights ``n / (C * count)`` from the training labels).
        init_from: a language-model run/checkpoint: its vocabulary, embedding and layers initialise
            the classifier (ULMFiT: discriminative lrs, factor 2.6, and gradual unfreezing).
        resume: continue the run in ``out`` (same data, labels, encoder and model).
    """
    out = Path(out)
    if not resume:
        _refuse_used(out)
    if class_weights not in (None, "balanced"):
        raise ValueError(f"class_weights must be None or 'balanced', got {class_weights!r}")
    reader = dict(data.reader(), sequences=data.sequences or str(train_path) == DIGITS)
    examples = read_examples(train_path, reader)
    holdout = None
    if valid is None:
        holdout = data.valid_fraction
        examples, valid_examples = split(examples, holdout)
    else:
        valid_examples = read_examples(valid, reader)
    lm = _load_lm(init_from, reader) if init_from is not None else None
    if resume:
        saved = find_checkpoint(out).config["task"]
        labels, features = Labels.from_dict(saved["labels"]), saved.get("features")
        encoder = TextEncoder.from_dict(saved["encoder"]) if saved.get("encoder") else None
    else:
        labels = Labels.build(examples.labels, multi_label=data.multi_label)
        encoder, features = _build_input(examples.items, data, reader, lm)
    y = labels.encode(examples.labels, what="training")
    valid_y = labels.encode(valid_examples.labels, what="validation")
    sequences = encode_items(examples.items, encoder, features)
    valid_sequences = encode_items(valid_examples.items, encoder, features)

    config = _model_config(model or {}, labels, encoder, features, lm)
    torch.manual_seed(train.seed)
    classifier = SequenceClassifier(config)
    if lm is not None:
        mapping = {i: lm.vocab.index[token] for i, token in enumerate(encoder.vocab) if token in lm.vocab.index}
        init_from_lm(classifier, lm.model, mapping)
    info = {"labels": labels.to_dict(), "encoder": encoder.to_dict() if encoder else None, "features": features,
            "reader": reader, "holdout": holdout}
    weights = balanced_weights(y, len(labels)) if class_weights == "balanced" else None
    task = ClassifierTask(classifier, info, class_weights=weights, lr_factor=2.6 if lm is not None else 1.0,
                          gradual_unfreezing=lm is not None)
    train_batches = BucketBatches(sequences, y, data.batch_size, seed=train.seed)
    valid_batches = BucketBatches(valid_sequences, valid_y, data.batch_size, shuffle=False)
    return Trainer(task, train, out).fit(train_batches, valid_batches, resume=resume)


def _build_input(items: list, data: ClassifyData, reader: dict, lm) -> tuple:
    """(encoder, feature statistics): one of them, for text or numeric input."""
    if reader["sequences"]:
        stacked = np.concatenate(items)                                         # (sum T_i, F)
        std = stacked.std(0)
        return None, {"mean": stacked.mean(0).tolist(), "std": np.where(std > 1e-6, std, 1.0).tolist()}
    if lm is not None:                        # the language model's tokens, <pad> and <unk> first
        if lm.vocab.kind == "bpe":
            raise ValueError("--init-from takes a char or word language model; BPE ones are not supported yet")
        tokens = [PAD, UNK] + [t for t in lm.vocab.tokens if t not in (PAD, UNK)]
        return TextEncoder(lm.vocab.kind, lowercase=False, tokens=tokens), None
    encoder = TextEncoder.build(items, data.tokens, lowercase=data.lowercase, min_freq=data.min_freq,
                                max_size=data.max_vocab, bpe_vocab_size=data.bpe_vocab_size)
    return encoder, None


def _model_config(model: dict, labels: Labels, encoder, features, lm) -> ClassifierConfig:
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
    fixed = sorted(set(model) & set(sizes))
    if fixed:
        raise ValueError(f"{', '.join(fixed)} are set by the data{' and the language model' if lm else ''}")
    return ClassifierConfig(**model, **sizes)


def _load_lm(path, reader: dict):
    from .lm import load as load_lm

    if reader["sequences"]:
        raise ValueError("--init-from needs text input: a language model cannot read numeric sequences")
    return load_lm(path)


def evaluate(checkpoint: Checkpoints, data_path, *, text_col=None, label_col=None, fmt=None, encoding=None,
             batch_size: int = 64, plot: bool = True) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    ``checkpoint``: one path, or several for their ensemble (``Ensemble``). Files are read as in
    training (columns, format, encoding; an ensemble's first member's) unless the arguments given
    say otherwise; ``"digits"`` evaluates on the digits held out in training. Multi-label: subset
    accuracy and macro-F1 over the labels. With ``plot``, ``confusion_matrix.png`` is written
    (atomically) into the ``checkpoint`` directory given (for ``RUN/BEST``, into ``RUN``); for an
    ensemble, ``confusion_matrix_ensemble.png`` into its first member's. Its path is in the result.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    trained = load(checkpoint)
    reader = dict(trained.info["reader"])
    given = dict(text_col=text_col, label_col=label_col, fmt=fmt, encoding=encoding)
    reader.update({key: value for key, value in given.items() if value is not None})
    examples = read_examples(data_path, reader)
    if str(data_path) == DIGITS and trained.info.get("holdout"):
        examples = split(examples, trained.info["holdout"])[1]
    truth = trained.labels.encode(examples.labels, what="evaluation").numpy()
    probabilities = trained.probabilities_of(examples.items, batch_size)
    if trained.labels.multi_label:
        predicted = (probabilities >= 0.5).int().numpy()
    else:
        predicted = probabilities.argmax(dim=1).numpy()
    ids = list(range(len(trained.labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=ids, average=None, zero_division=0)
    result = {"accuracy": float(accuracy_score(truth, predicted)),
              "macro_f1": float(f1_score(truth, predicted, labels=ids, average="macro", zero_division=0)),
              "examples": len(examples.items),
              "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                                   "f1": float(f1[i]), "support": int(support[i])}
                            for i, name in enumerate(trained.labels.names)}}
    if not trained.labels.multi_label:
        matrix = confusion_matrix(truth, predicted, labels=ids)
        result["labels"] = list(trained.labels.names)
        result["confusion_matrix"] = matrix.tolist()
        if plot:
            first = checkpoint_paths(checkpoint)[0]
            folder = first if first.is_dir() else first.parent                                    # RUN/BEST: RUN
            png = folder / ("confusion_matrix_ensemble.png" if isinstance(trained, Ensemble) else "confusion_matrix.png")
            plot_confusion_matrix(matrix, trained.labels.names, png)
            result["confusion_matrix_png"] = str(png)
    return result


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Save the confusion matrix as a PNG, atomically (temporary file + ``os.replace``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = min(12, 2 + 0.5 * len(names))
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), labels=names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if len(names) <= 30:
            for (i, j), count in np.ndenumerate(matrix):
                ax.text(j, i, str(count), ha="center", va="center",
                        color="white" if count > matrix.max() / 2 else "black")
        fig.tight_layout()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-", suffix=".png")
        os.close(fd)
        try:
            fig.savefig(tmp, format="png")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        plt.close(fig)


def predict(checkpoint: Checkpoints, texts: Sequence) -> List[Prediction]:
    """The predicted label and the probability of every label, for each text (or feature array);
    several checkpoints predict as their ensemble."""
    return load(checkpoint).predict(texts)


def explain(checkpoint, text) -> Explanation:
    """Per-token importances: attention weights with attention pooling, else gradient x embedding."""
    return load(checkpoint).explain(text)
