"""The sequence classifier: token ids or feature vectors -> recurrent encoder -> pooling -> classes,
and its initialisation from a language model (``init_from_lm``).

``SequenceClassifier``: an embedding (token ids) or a direct feed (numeric features), a stack of
rnnkit layers (bidirectional by default) run on the padded batch with ``lengths=``, pooling over the
real steps only (``last``, ``max``, ``mean``, ``attention`` or a concatenation such as
``"max+mean+last"``), dropout and a linear classifier. Its shape is a ``ClassifierConfig``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.vocabulary import PAD_ID, UNK_ID
from rnnkit.nn import hidden, make_layer

from .config import ClassifierConfig


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
        h_n = hidden(final)                                                       # (D, B, H)
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
