"""Decoding: beam search batched over sentences and beams (greedy is a beam of one).

Each of the B sentences keeps K hypotheses, held as (B, K) tensors: one decoder step serves all
B x K rows at once. A step scores every continuation of every hypothesis, ranks them per sentence
by log-probability divided by GNMT's length penalty ``lp(n) = ((5 + n) / 6) ** alpha`` (Wu et al.
2016; alpha 0 ranks by log-probability alone), and keeps the K best. A hypothesis that has
produced ``<eos>`` stays in the beam with its score frozen (its only continuation is itself),
so finished and open hypotheses compete on the same normalised score. A sentence stops when all
its K hypotheses are finished or at its maximum length (``ratio x source length + 10``), where
only ``<eos>`` may follow; the search stops when every sentence has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from .model import Translator, select_state


@dataclass
class Hypothesis:
    """One translation: its subword ids (without ``<bos>``/``<eos>``), its score (log-probability /
    length penalty), its log-probability, and its attention (T, S) over the source if kept."""

    tokens: List[int]
    score: float
    log_prob: float
    attention: Optional[Tensor] = None


def length_penalty(length: Tensor, alpha: float) -> Tensor:
    """GNMT's ``((5 + length) / 6) ** alpha`` (1 for alpha 0)."""
    return ((5.0 + length.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: Translator, source: Tensor, lengths: Tensor, *, beam: int = 5, alpha: float = 1.0,
                max_length_ratio: float = 1.5, extra_length: int = 10, n_best: int = 1,
                keep_attention: bool = False) -> List[List[Hypothesis]]:
    """The ``n_best`` best translations of each sentence, best first.

    Args:
        source: (B, S) padded subword ids; lengths: (B,) their lengths.
        beam: hypotheses per sentence (1: greedy). alpha: the length penalty's exponent.
        max_length_ratio, extra_length: a translation has at most ``ratio * length + extra`` subwords
            (``<eos>`` not counted); at that length only ``<eos>`` may follow (with its own probability).
        keep_attention: keep each hypothesis' attention weights (for plots).
    Outputs: for each sentence, ``n_best`` ``Hypothesis`` es (at most ``beam``).
    """
    c = model.config
    B, K, device = source.shape[0], beam, source.device
    memory, state = model.encode(source, lengths)
    rows = torch.arange(B, device=device).repeat_interleave(K)                           # (B*K,)
    memory, state = memory.select(rows), select_state(state, rows)
    limit = (max_length_ratio * lengths.to(device).float()).long() + extra_length        # (B,)
    scores = torch.full((B, K), float("-inf"), device=device)                           # cumulative log-prob
    scores[:, 0] = 0.0                                                                   # one live start
    length = torch.zeros(B, K, dtype=torch.long, device=device)                          # tokens, <eos> excluded
    finished = torch.zeros(B, K, dtype=torch.bool, device=device)
    tokens = torch.full((B * K,), c.bos_id, dtype=torch.long, device=device)
    history = torch.zeros(B, K, 0, dtype=torch.long, device=device)
    attention = source.new_zeros(B, K, 0, source.shape[1], dtype=torch.float32) if keep_attention else None
    base = torch.arange(B, device=device).unsqueeze(1) * K                               # (B, 1)
    for t in range(int(limit.max()) + 1):
        log_probs, state, weights = model.step(tokens, state, memory)                   # (B*K, V)
        V = log_probs.shape[-1]
        log_probs = log_probs.view(B, K, V)
        log_probs[..., [c.pad_id, c.bos_id]] = float("-inf")
        at_limit = (t >= limit).view(B, 1, 1)                                            # only <eos> may follow
        only_eos = torch.full_like(log_probs, float("-inf"))
        only_eos[..., c.eos_id] = log_probs[..., c.eos_id]
        log_probs = torch.where(at_limit, only_eos, log_probs)
        # a finished hypothesis continues only as itself (token pad, log-prob 0)
        frozen = torch.full_like(log_probs, float("-inf"))
        frozen[..., c.pad_id] = 0.0
        log_probs = torch.where(finished.unsqueeze(-1), frozen, log_probs)
        total = scores.unsqueeze(-1) + log_probs                                         # (B, K, V)
        grown = length + (~finished).long()                                              # the candidates' lengths
        ends = torch.zeros_like(total, dtype=torch.bool)
        ends[..., c.eos_id] = True
        new_length = torch.where(ends | finished.unsqueeze(-1), length.unsqueeze(-1), grown.unsqueeze(-1))
        ranked = total / length_penalty(new_length, alpha)
        best, index = ranked.view(B, K * V).topk(K, dim=-1)                              # (B, K)
        origin, token = index // V, index % V
        scores = total.view(B, K * V).gather(1, index)
        length = new_length.view(B, K * V).gather(1, index)
        was_finished = finished.gather(1, origin)
        finished = was_finished | (token == c.eos_id)
        history = torch.cat([history.gather(1, origin.unsqueeze(-1).expand_as(history)),
                             torch.where(was_finished | (token == c.eos_id), c.pad_id, token).unsqueeze(-1)], -1)
        flat = (base + origin).view(-1)                                                  # (B*K,) rows kept
        state = select_state(state, flat)
        if keep_attention:
            step_weights = weights.float().view(B, K, -1) if weights is not None else \
                torch.zeros(B, K, source.shape[1], device=device)
            attention = torch.cat([attention.gather(1, origin.view(B, K, 1, 1).expand_as(attention)),
                                   step_weights.gather(1, origin.unsqueeze(-1).expand(B, K, source.shape[1]))
                                   .unsqueeze(2)], dim=2)
        tokens = torch.where(finished, c.pad_id, token).view(-1)
        if bool((finished | torch.isinf(scores)).all()):
            break
    return _best(scores, length, history, attention, alpha, n_best)


def _best(scores: Tensor, length: Tensor, history: Tensor, attention: Optional[Tensor], alpha: float,
          n_best: int) -> List[List[Hypothesis]]:
    ranked = scores / length_penalty(length, alpha)
    order = ranked.argsort(dim=1, descending=True)
    results = []
    for b in range(scores.shape[0]):                       # reading the results out, not searching
        found = []
        for k in order[b, :n_best].tolist():
            if torch.isinf(scores[b, k]):
                continue
            n = int(length[b, k])
            found.append(Hypothesis(history[b, k, :n].tolist(), float(ranked[b, k]), float(scores[b, k]),
                                    attention[b, k, :n + 1].cpu() if attention is not None else None))
        results.append(found)
    return results
