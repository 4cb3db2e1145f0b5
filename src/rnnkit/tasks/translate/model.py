"""The translator: a bidirectional rnnkit encoder, a bridge, and an attention decoder on rnnkit
layers (Bahdanau et al. 2015; Luong et al. 2015).

Shapes: B sentences, S source subwords, T target subwords, E embedding size, H hidden size, V
target vocabulary.

- ``encode(source, lengths) -> Memory``: the encoder's outputs projected to H (the attention's keys
  and values), the padding mask and the decoder's first state (the bridge).
- ``forward(source, lengths, target_in)``: (B, T, V) logits of each next subword, teacher-forced.
  Without input feeding the decoder's layers run over the whole target in one fused call and
  attention is taken for all steps at once; with it, step by step through ``layer.step``.
- ``step(tokens, state, memory)``: one decoding step for search: log-probabilities (N, V), the new
  state and the attention weights (N, S). Training and decoding run the same layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import make_layer

from .config import TranslatorConfig


@dataclass
class Memory:
    """What the decoder attends to, for N = B (or B x beam) rows.

    Attributes:
        keys: (N, S, H) encoder outputs projected to H; for additive attention ``projected`` holds
            them through its key matrix too (computed once per sentence, not per step).
        mask: (N, S) True at real source positions.
        projected: (N, S, H) or None.
    """

    keys: Tensor
    mask: Tensor
    projected: Optional[Tensor] = None

    def select(self, rows: Tensor) -> "Memory":
        """The memory of ``rows`` (a beam's reordering or expansion)."""
        return Memory(self.keys[rows], self.mask[rows], None if self.projected is None else self.projected[rows])


class Translator(nn.Module):
    """An attention encoder-decoder over subword ids (see the module docstring).

    Inputs: ``source`` (B, S) int64 ids padded with ``pad_id``, ``lengths`` (B,), ``target_in``
    (B, T) ids starting with ``<bos>``.
    Outputs: ``forward``: (B, T, V) logits; ``loss``: the label-smoothed cross-entropy per target
    token (padding ignored).
    """

    def __init__(self, config: TranslatorConfig):
        super().__init__()
        self.config = c = config
        E, H = c.embedding_size, c.hidden_size
        self.source_embedding = nn.Embedding(c.source_vocab, E, padding_idx=c.pad_id)
        self.target_embedding = (self.source_embedding if c.shared_embeddings
                                 else nn.Embedding(c.target_vocab, E, padding_idx=c.pad_id))
        self.encoder = make_layer(c.cell, E, H, num_layers=c.encoder_layers, bidirectional=True, batch_first=True,
                                  dropout=c.dropout)
        self.keys = nn.Linear(2 * H, H, bias=False)
        if c.bridge:
            self.bridge = nn.Linear(2 * H, c.decoder_layers * H)
            self.bridge_cell = nn.Linear(2 * H, c.decoder_layers * H) if c.cell == "lstm" else None
        feed = H if c.input_feeding else 0
        self.decoder = make_layer(c.cell, E + feed, H, num_layers=c.decoder_layers, batch_first=True,
                                  dropout=c.dropout if c.decoder_layers > 1 else 0.0)
        if c.attention == "general":
            self.query = nn.Linear(H, H, bias=False)
        elif c.attention == "additive":
            self.query = nn.Linear(H, H, bias=False)
            self.key_projection = nn.Linear(H, H)
            self.score = nn.Linear(H, 1, bias=False)
        self.combine = nn.Linear(2 * H if c.attention != "none" else H, H, bias=False)
        if c.tie_embeddings:
            self.output = nn.Linear(H, E, bias=False)
            self.output_bias = nn.Parameter(torch.zeros(c.target_vocab))
        else:
            self.output = nn.Linear(H, c.target_vocab)

    # --- encoder --------------------------------------------------------------------------------

    def encode(self, source: Tensor, lengths: Tensor):
        """``(memory, state)``: the ``Memory`` of ``source`` (B, S) and the decoder's first state
        (``(L, B, H)``, or a pair of them for the LSTM), with the decoder's feed (B, H) of zeros when
        input feeding is on."""
        c = self.config
        x = F.dropout(self.source_embedding(source), c.dropout, self.training)             # (B, S, E)
        outputs, final = self.encoder(x, lengths=lengths)                                   # (B, S, 2H)
        outputs = F.dropout(outputs, c.dropout, self.training)
        keys = self.keys(outputs)                                                           # (B, S, H)
        mask = torch.arange(source.shape[1], device=source.device) < lengths.to(source.device).unsqueeze(1)
        projected = self.key_projection(keys) if c.attention == "additive" else None
        memory = Memory(keys, mask, projected)
        B, H, L = source.shape[0], c.hidden_size, c.decoder_layers
        if c.bridge:
            h = final[0] if isinstance(final, tuple) else final                               # (2 * layers, B, H)
            last = torch.cat([h[-2], h[-1]], dim=-1)                                          # (B, 2H): top fwd, bwd
            state = torch.tanh(self.bridge(last)).view(B, L, H).transpose(0, 1).contiguous()
            if c.cell == "lstm":
                cell = torch.tanh(self.bridge_cell(torch.cat([final[1][-2], final[1][-1]], -1)))
                state = (state, cell.view(B, L, H).transpose(0, 1).contiguous())
        else:
            zeros = keys.new_zeros(L, B, H)
            state = (zeros, zeros.clone()) if c.cell == "lstm" else zeros
        feed = keys.new_zeros(B, H) if c.input_feeding else None
        return memory, (state, feed)

    # --- attention ------------------------------------------------------------------------------

    def attend(self, queries: Tensor, memory: Memory) -> Tuple[Tensor, Tensor]:
        """``(context, weights)`` for queries (N, T, H): contexts (N, T, H) and weights (N, T, S),
        which sum to one over the real source positions and are zero on padding."""
        kind = self.config.attention
        if kind == "dot":
            scores = queries @ memory.keys.transpose(1, 2)                                 # (N, T, S)
        elif kind == "general":
            scores = self.query(queries) @ memory.keys.transpose(1, 2)
        else:                                                                              # additive
            mixed = torch.tanh(self.query(queries).unsqueeze(2) + memory.projected.unsqueeze(1))  # (N, T, S, H)
            scores = self.score(mixed).squeeze(-1)
        scores = scores.float().masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1).to(queries.dtype)
        return weights @ memory.keys, weights

    def _attentional(self, states: Tensor, memory: Memory):
        """Luong's attentional vectors tanh(W [context; state]) (N, T, H) and the weights (N, T, S)."""
        if self.config.attention == "none":
            return torch.tanh(self.combine(states)), None
        context, weights = self.attend(states, memory)
        return torch.tanh(self.combine(torch.cat([context, states], dim=-1))), weights

    def _logits(self, attentional: Tensor) -> Tensor:
        x = F.dropout(attentional, self.config.dropout, self.training)
        if self.config.tie_embeddings:
            return self.output(x) @ self.target_embedding.weight.t() + self.output_bias
        return self.output(x)

    # --- decoder --------------------------------------------------------------------------------

    def forward(self, source: Tensor, lengths: Tensor, target_in: Tensor) -> Tensor:
        """(B, T, V) logits of the subword after each of ``target_in`` (B, T), teacher-forced."""
        memory, (state, feed) = self.encode(source, lengths)
        y = F.dropout(self.target_embedding(target_in), self.config.dropout, self.training)   # (B, T, E)
        if not self.config.input_feeding:
            states, _ = self.decoder(y, state)                                                 # (B, T, H)
            attentional, _ = self._attentional(states, memory)
            return self._logits(attentional)
        outputs = []
        for t in range(y.shape[1]):
            h, state = self.decoder.step(torch.cat([y[:, t], feed], dim=-1), state)          # (B, H)
            feed, _ = self._attentional(h.unsqueeze(1), memory)
            feed = feed.squeeze(1)
            outputs.append(feed)
        return self._logits(torch.stack(outputs, dim=1))

    def loss(self, source: Tensor, lengths: Tensor, target: Tensor, reduction: str = "mean",
             smoothing: Optional[float] = None) -> Tensor:
        """Cross-entropy of ``target`` (B, T + 1: ``<bos> ... <eos>``, padded) given its prefix, over
        real tokens: their mean or sum; label-smoothed by ``smoothing`` (default: the config's)."""
        logits = self(source, lengths, target[:, :-1]).float()
        smoothing = self.config.label_smoothing if smoothing is None else smoothing
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target[:, 1:].reshape(-1),
                               ignore_index=self.config.pad_id, label_smoothing=smoothing, reduction=reduction)

    def step(self, tokens: Tensor, state, memory: Memory):
        """One decoding step: ``tokens`` (N,) the previous subwords, ``state`` as ``encode`` gives it.
        Outputs: ``(log_probs (N, V) float32, new state, weights (N, S) or None)``."""
        state, feed = state
        x = self.target_embedding(tokens)                                                  # (N, E)
        if feed is not None:
            x = torch.cat([x, feed], dim=-1)
        h, state = self.decoder.step(x, state)
        attentional, weights = self._attentional(h.unsqueeze(1), memory)
        attentional = attentional.squeeze(1)
        log_probs = torch.log_softmax(self._logits(attentional).float(), dim=-1)
        return log_probs, (state, attentional if feed is not None else None), \
            None if weights is None else weights.squeeze(1)

    def config_dict(self) -> dict:
        return asdict(self.config)


def select_state(state, rows: Tensor):
    """The decoder state (as ``encode`` gives it) of batch ``rows``."""
    layers, feed = state
    pick = lambda t: t[:, rows]                                                            # noqa: E731  (L, N, H)
    layers = tuple(pick(t) for t in layers) if isinstance(layers, tuple) else pick(layers)
    return layers, None if feed is None else feed[rows]
