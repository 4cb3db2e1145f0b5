"""Sequence classification: tokens or feature vectors -> recurrent encoder -> pooling -> classes.

- ``SequenceClassifier``: an embedding (token ids) or a direct feed (numeric features), a stack of
  rnnkit layers (bidirectional by default) run on the padded batch with ``lengths=``, pooling over
  the real steps only (``last``, ``max``, ``mean``, ``attention`` or a concatenation such as
  ``"max+mean+last"``), dropout and a linear classifier.
- ``BucketBatches``: examples sorted by length into batches of similar length; the order of the
  batches is shuffled per epoch from ``seed + epoch``, so an epoch's batches are always the same.
- ``ClassifierTask``: the task for ``rnnkit.train.Trainer`` (cross-entropy with optional class
  weights, or BCE for multi-label), with ULMFiT's discriminative learning rates and gradual
  unfreezing for a model initialised from a language model (``init_from_lm``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.labelled import PAD_ID, UNK_ID
from rnnkit.nn import make_layer

POOLINGS = ("last", "max", "mean", "attention")


@dataclass
class ClassifierConfig:
    """The classifier's shape (saved in every checkpoint).

    Args:
        num_classes: output size. multi_label: independent sigmoid outputs instead of a softmax.
        num_embeddings: vocabulary size for token-id input (0: numeric input).
        input_size: features per step for numeric input (0: token ids). Exactly one is set.
        embedding_size: embedding width (token input).
        cell: "lstm", "gru", "rnn" or "rnn_relu". hidden_size, num_layers, bidirectional: the stack.
        top_hidden_size: hidden size of the top layer when it differs (a tied language model's).
        pooling: "last", "max", "mean", "attention" or a "+"-joined concatenation of them.
        dropout: on the embeddings, between layers and before the classifier.
        word_dropout: in training, replace each real input token by ``<unk>`` with this
            probability (token input only): the model learns not to lean on single words.
        attention_size: width of the additive attention's hidden layer.
    """

    num_classes: int
    num_embeddings: int = 0
    input_size: int = 0
    embedding_size: int = 128
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    top_hidden_size: Optional[int] = None
    pooling: str = "max+mean+last"
    dropout: float = 0.0
    word_dropout: float = 0.0
    attention_size: int = 64
    multi_label: bool = False

    def __post_init__(self):
        for name in ("num_classes", "embedding_size", "hidden_size", "num_layers", "attention_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if (self.num_embeddings > 0) == (self.input_size > 0):
            raise ValueError("set exactly one of num_embeddings (token ids) and input_size (numeric features)")
        for name in ("dropout", "word_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.word_dropout and not self.num_embeddings:
            raise ValueError("word_dropout is for token input; numeric sequences have no words to drop")
        parts = self.pooling.split("+")
        if not parts or any(p not in POOLINGS for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"pooling must be one or more of {'/'.join(POOLINGS)} joined by '+' "
                             f"(e.g. 'max+mean'), got {self.pooling!r}")

    @property
    def poolings(self) -> List[str]:
        return self.pooling.split("+")

    def layer_sizes(self) -> List[int]:
        """Hidden size of each layer, bottom to top."""
        sizes = [self.hidden_size] * self.num_layers
        sizes[-1] = self.top_hidden_size or self.hidden_size
        return sizes


class ClassifierOutput(NamedTuple):
    """``logits``: (B, C); ``attention``: (B, T) weights over the steps (zero at padding), or None
    without attention pooling."""

    logits: Tensor
    attention: Optional[Tensor]


class SequenceClassifier(nn.Module):
    """Classify whole sequences.

    Args:
        config: a ``ClassifierConfig``.

    Inputs:
        inputs: (B, T) int64 token ids padded with 0, or (B, T, F) float features padded with 0.
        lengths: (B,) real lengths (>= 1).

    Outputs:
        ``ClassifierOutput(logits (B, C), attention (B, T) or None)``. Padding never changes the
        result: the layers skip padded steps and pooling reads real steps only.

    Example::

        >>> model = SequenceClassifier(ClassifierConfig(num_classes=2, num_embeddings=100))
        >>> logits, _ = model(torch.tensor([[5, 7, 9], [4, 2, 0]]), torch.tensor([3, 2]))   # (2, 2)
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        directions = 2 if config.bidirectional else 1
        if config.num_embeddings:
            self.embedding = nn.Embedding(config.num_embeddings, config.embedding_size, padding_idx=0)
            width = config.embedding_size
        else:
            self.embedding = None
            width = config.input_size
        layers = []
        for size in config.layer_sizes():                   # one module per layer: per-layer lrs/unfreezing
            layers.append(make_layer(config.cell, width, size, batch_first=True, bidirectional=config.bidirectional))
            width = size * directions
        self.layers = nn.ModuleList(layers)
        self.attention = None
        if "attention" in config.poolings:                  # additive: score_t = v^T tanh(W o_t + b)
            self.attention = nn.Sequential(nn.Linear(width, config.attention_size), nn.Tanh(),
                                           nn.Linear(config.attention_size, 1, bias=False))
        self.classifier = nn.Linear(width * len(config.poolings), config.num_classes)

    def embed(self, inputs: Tensor) -> Tensor:
        """(B, T) ids -> (B, T, E) embeddings; numeric (B, T, F) input is returned as it is."""
        if self.embedding is None:
            return inputs
        p = self.config.word_dropout
        if self.training and p > 0:
            dropped = (torch.rand(inputs.shape, device=inputs.device) < p) & (inputs != PAD_ID)     # (B, T)
            inputs = inputs.masked_fill(dropped, UNK_ID)
        return self.embedding(inputs)

    def forward(self, inputs: Tensor, lengths: Tensor) -> ClassifierOutput:
        return self.classify(self.embed(inputs), lengths)

    def classify(self, x: Tensor, lengths: Tensor) -> ClassifierOutput:
        """The model after the embedding: (B, T, E) inputs -> ``ClassifierOutput`` (for saliency)."""
        p = self.config.dropout
        x = F.dropout(x, p, self.training)
        final = None
        for k, layer in enumerate(self.layers):
            x, final = layer(x, lengths=lengths)                                  # (B, T, D*H), zero at padding
            if k < len(self.layers) - 1:
                x = F.dropout(x, p, self.training)
        h_n = final[0] if isinstance(final, tuple) else final                     # (D, B, H)
        mask = _real_steps(lengths, x.shape[1]).unsqueeze(-1)                      # (B, T, 1)
        pooled, weights = [], None
        for name in self.config.poolings:
            if name == "last":     # forward: last real step; backward: step 0 (both have read everything)
                pooled.append(torch.cat(list(h_n), dim=-1))                        # (B, D*H)
            elif name == "max":
                pooled.append(x.masked_fill(~mask, float("-inf")).amax(dim=1))    # (B, D*H)
            elif name == "mean":
                pooled.append(x.sum(dim=1) / lengths.to(x.device, x.dtype).unsqueeze(-1))
            else:
                scores = self.attention(x).squeeze(-1).masked_fill(~mask.squeeze(-1), float("-inf"))   # (B, T)
                weights = torch.softmax(scores, dim=1)
                pooled.append(torch.bmm(weights.unsqueeze(1), x).squeeze(1))      # (B, D*H)
        features = F.dropout(torch.cat(pooled, dim=-1), p, self.training)          # (B, P*D*H)
        return ClassifierOutput(self.classifier(features), weights)

    def config_dict(self) -> dict:
        return asdict(self.config)

    def groups(self) -> List[List[nn.Parameter]]:
        """Parameter groups bottom to top: [embedding], each recurrent layer, [attention + classifier]."""
        head = list(self.classifier.parameters()) + (list(self.attention.parameters()) if self.attention else [])
        bottom = [list(self.embedding.parameters())] if self.embedding is not None else []
        return bottom + [list(layer.parameters()) for layer in self.layers] + [head]


def _real_steps(lengths: Tensor, steps: int) -> Tensor:
    """(B, T) bool: True at each sequence's real steps."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


# --- batching ------------------------------------------------------------------------------------

class ClassifyBatch(NamedTuple):
    """``inputs``: (B, T) int64 ids or (B, T, F) float features, zero-padded; ``lengths``: (B,) int64;
    ``labels``: (B,) int64 class ids, or (B, C) float multi-hot."""

    inputs: Tensor
    lengths: Tensor
    labels: Tensor


def pad(sequences: Sequence) -> tuple:
    """Zero-pad token-id lists or (T_i, F) arrays into one batch: ``(inputs, lengths)``."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    if not len(sequences) or int(lengths.min()) < 1:
        raise ValueError("every sequence needs at least one step")
    T = int(lengths.max())
    first = sequences[0]
    if isinstance(first, np.ndarray) and first.ndim == 2:
        inputs = torch.zeros(len(sequences), T, first.shape[1])                   # (B, T, F)
        for i, s in enumerate(sequences):
            inputs[i, :len(s)] = torch.from_numpy(np.asarray(s, dtype=np.float32))
    else:
        inputs = torch.zeros(len(sequences), T, dtype=torch.int64)               # (B, T)
        for i, s in enumerate(sequences):
            inputs[i, :len(s)] = torch.as_tensor(s, dtype=torch.int64)
    return inputs, lengths


class BucketBatches:
    """Examples in batches of similar length (less padding), for ``Trainer.fit``.

    Args:
        sequences: token-id lists or (T_i, F) float arrays. labels: (N,) or (N, C) tensor.
        batch_size: examples per batch. shuffle: shuffle the batch order each epoch (training).
        seed: the order of epoch e comes from ``seed + e``.

    ``batches(epoch)`` yields ``ClassifyBatch`` es: examples sorted by length (ties by index) are
    cut into batches, and with ``shuffle`` the batches come in a random order; the same epoch
    always gives the same batches (exact resume relies on it).
    """

    def __init__(self, sequences: Sequence, labels: Tensor, batch_size: int = 32, *, shuffle: bool = True,
                 seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(sequences) != len(labels) or not len(sequences):
            raise ValueError(f"need as many labels as sequences (at least one), got {len(labels)} and {len(sequences)}")
        self.sequences, self.labels = list(sequences), labels
        order = sorted(range(len(self.sequences)), key=lambda i: (len(self.sequences[i]), i))
        self.buckets = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        self.shuffle, self.seed = shuffle, seed

    def __len__(self) -> int:
        return len(self.buckets)

    def __call__(self, epoch: int = 0):
        order = range(len(self.buckets))
        if self.shuffle:
            order = np.random.default_rng(self.seed + epoch).permutation(len(self.buckets))
        for b in order:
            index = self.buckets[b]
            inputs, lengths = pad([self.sequences[i] for i in index])
            yield ClassifyBatch(inputs, lengths, self.labels[index])


# --- the task the engine trains ------------------------------------------------------------------

def balanced_weights(labels: Tensor, num_classes: int) -> Tensor:
    """scikit-learn's "balanced" class weights ``n / (C * count_c)`` from training labels.

    For multi-hot (N, C) labels: BCE positive weights ``negatives_c / positives_c``.
    """
    if labels.dim() == 2:
        positives = labels.sum(0)
        return (labels.shape[0] - positives) / positives.clamp(min=1)
    counts = torch.bincount(labels, minlength=num_classes).float()
    return labels.numel() / (num_classes * counts.clamp(min=1))


class ClassifierTask:
    """Sequence classification over ``ClassifyBatch`` es, for ``rnnkit.train.Trainer``.

    Args:
        model: a ``SequenceClassifier``.
        info: JSON saved with the model so a checkpoint rebuilds everything (encoder, labels, ...).
        class_weights: (C,) loss weights (``balanced_weights``), or None.
        lr_factor: discriminative learning rates: each group below the head gets ``1 / lr_factor``
            of the lr of the group above (ULMFiT: 2.6); 1 gives every parameter the same lr.
        gradual_unfreezing: train only the head in epoch 0, and one more group (top down) each epoch.
    """

    def __init__(self, model: SequenceClassifier, info: dict, *, class_weights: Optional[Tensor] = None,
                 lr_factor: float = 1.0, gradual_unfreezing: bool = False):
        if lr_factor < 1.0:
            raise ValueError(f"lr_factor must be >= 1, got {lr_factor!r}")
        self.model, self.info = model, info
        self.class_weights = class_weights
        self.lr_factor, self.gradual_unfreezing = float(lr_factor), gradual_unfreezing

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        logits = logits.float()
        if self.model.config.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=self.class_weights)
        return F.cross_entropy(logits, labels, weight=self.class_weights)

    def training_step(self, batch: ClassifyBatch) -> Tensor:
        logits, _ = self.model(batch.inputs, batch.lengths)
        return self._loss(logits, batch.labels)

    def validation_step(self, batch: ClassifyBatch) -> dict:
        logits, _ = self.model(batch.inputs, batch.lengths)
        if self.model.config.multi_label:
            correct = ((logits > 0).float() == batch.labels).all(dim=1)     # subset accuracy
        else:
            correct = logits.argmax(dim=1) == batch.labels
        return {"loss": self._loss(logits, batch.labels).item(), "accuracy": correct.float().mean().item()}

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


# --- transfer from a language model --------------------------------------------------------------

def init_from_lm(model: SequenceClassifier, lm, encoder_ids: dict) -> int:
    """Copy a language model's embedding and layers into ``model``'s forward direction.

    Args:
        model: a token-input ``SequenceClassifier`` with the LM's cell, embedding size and layer sizes.
        lm: a ``rnnkit.tasks.lm.LanguageModel``.
        encoder_ids: ``{classifier id: LM id}`` for the tokens both vocabularies hold.

    In a bidirectional stack the weights from the reverse direction's outputs into the forward
    direction of the next layer are zeroed, so the forward direction computes exactly what the
    language model did. Returns the number of embedding rows copied.
    """
    config, lm_config = model.config, lm.config
    want = (lm_config.cell, lm_config.embedding_size, [layer.hidden_size for layer in lm.layers])
    have = (config.cell, config.embedding_size, config.layer_sizes())
    if want != have or model.embedding is None:
        raise ValueError(f"the classifier (cell, embedding size, layer sizes) {have} does not match the "
                         f"language model's {want}")
    with torch.no_grad():
        ours, theirs = zip(*sorted(encoder_ids.items())) if encoder_ids else ((), ())
        model.embedding.weight[list(ours)] = lm.embedding.weight[list(theirs)]
        for k, (layer, source) in enumerate(zip(model.layers, lm.layers)):
            for name, value in source.state_dict().items():        # weight_ih_l0, weight_hh_l0, biases
                target = getattr(layer, name)
                if name.startswith("weight_ih") and k > 0:
                    target.zero_()
                    target[:, :value.shape[1]] = value                # forward half of the input
                else:
                    target.copy_(value)
    return len(encoder_ids)
