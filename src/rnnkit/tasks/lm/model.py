"""The language model: embedding -> recurrent layers -> decoder, and sampling text from it.

Its shape and regularisers are an ``LMConfig`` (``config.py``): AWD-LSTM's locked, embedding and
weight dropout, weight tying, and for word vocabularies an adaptive softmax decoder
(``rnnkit.nn.adaptive``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Iterator, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import locked_dropout, make_layer
from rnnkit.nn.adaptive import AdaptiveSoftmax

from .config import LMConfig, Sampling


def embedding_dropout(embedding: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Embed ``tokens`` with whole rows of the embedding dropped (probability ``p``), rescaled."""
    weight = embedding.weight
    if training and p > 0:
        mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(tokens, weight)


class LanguageModel(nn.Module):
    """Next-token model.

    Inputs: tokens (T, B) int64; state: a list with one state per layer, or None.
    Outputs: logits (T, B, vocab_size) (with an adaptive softmax: log-probabilities, which are
    logits too), the new state (detach it between truncated-BPTT windows).
    ``loss(tokens, targets, state)``: the mean next-token negative log-likelihood and the new state.
    """

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        sizes = [config.embedding_size] + [config.hidden_size] * (config.num_layers - 1)
        last = config.embedding_size if config.tie_weights else config.hidden_size
        outs = [config.hidden_size] * (config.num_layers - 1) + [last]
        self.layers = nn.ModuleList(
            make_layer(config.cell, i, o, weight_drop=config.weight_drop) for i, o in zip(sizes, outs))
        if config.softmax_cutoffs:
            self.decoder = AdaptiveSoftmax(last, config.vocab_size, config.softmax_cutoffs)
        else:
            self.decoder = nn.Linear(last, config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if config.init_range is not None:
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -config.init_range, config.init_range)

    def features(self, tokens: Tensor, state: Optional[List] = None):
        """The top layer's outputs (T, B, D) as the decoder sees them, and the new state."""
        config = self.config
        x = embedding_dropout(self.embedding, tokens, config.embedding_dropout, self.training)   # (T, B, E)
        x = locked_dropout(x, config.input_dropout, self.training)
        states = []
        for k, layer in enumerate(self.layers):
            x, layer_state = layer(x, None if state is None else state[k])
            x = locked_dropout(x, config.dropout, self.training)
            states.append(layer_state)
        return x, states

    def forward(self, tokens: Tensor, state: Optional[List] = None):
        x, states = self.features(tokens, state)
        return self.decoder(x), states                                                          # (T, B, V)

    def loss(self, tokens: Tensor, targets: Tensor, state: Optional[List] = None, reduction: str = "mean"):
        """Negative log-likelihood of ``targets`` (T, B), its mean (or with ``reduction="sum"`` its
        sum), and the new state. An adaptive softmax computes only the clusters the targets are in."""
        x, states = self.features(tokens, state)
        x, y = x.reshape(-1, x.shape[-1]), targets.reshape(-1)                                  # (T*B, D), (T*B,)
        if isinstance(self.decoder, AdaptiveSoftmax):
            return self.decoder.loss(x, y, reduction), states
        return F.cross_entropy(self.decoder(x).float(), y, reduction=reduction), states

    def config_dict(self) -> dict:
        return asdict(self.config)

    @torch.no_grad()
    def generate(self, prompt: Sequence[int], length: int, *, temperature: float = 1.0,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 generator: Optional[torch.Generator] = None) -> Iterator[int]:
        """Sample ``length`` tokens after ``prompt``, yielding each as it is drawn.

        ``temperature=0`` is greedy (the most likely token); ``top_k`` keeps the k likeliest;
        ``top_p`` keeps the smallest set whose probability reaches p (nucleus sampling).
        """
        if len(prompt) == 0:
            raise ValueError("prompt must hold at least one token")
        Sampling(length=length, temperature=temperature, top_k=top_k, top_p=top_p)      # checks each
        was_training, device = self.training, self.embedding.weight.device
        self.eval()
        try:
            logits, state = self(torch.as_tensor(list(prompt), dtype=torch.long, device=device).unsqueeze(1))
            last = logits[-1, 0]
            for _ in range(length):
                token = sample(last.cpu(), temperature, top_k, top_p, generator)
                yield token
                logits, state = self(torch.tensor([[token]], device=device), state)
                last = logits[-1, 0]
        finally:
            self.train(was_training)


def sample(logits: Tensor, temperature: float, top_k: Optional[int], top_p: Optional[float],
           generator: Optional[torch.Generator] = None) -> int:
    """One token from (V,) ``logits``: greedy at temperature 0, else filtered softmax sampling."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.numel():
        threshold = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p is not None and top_p < 1.0:
        order = torch.argsort(logits, descending=True)
        cumulative = torch.softmax(logits[order], 0).cumsum(0)
        drop = cumulative - torch.softmax(logits[order], 0) >= top_p    # keep up to and including the p-th mass
        logits = logits.clone()
        logits[order[drop]] = float("-inf")
    return int(torch.multinomial(torch.softmax(logits, 0), 1, generator=generator))
