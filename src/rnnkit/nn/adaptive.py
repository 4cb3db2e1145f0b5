"""A two-level softmax for large vocabularies (Grave et al. 2017, "Efficient softmax approximation
for GPUs"), whose word vectors can be the embedding's.

The vocabulary must be sorted by frequency (rnnkit's word vocabularies are). ``cutoffs`` cut it
into a head, ids ``[0, cutoffs[0])``, and tail clusters ``[cutoffs[i], cutoffs[i+1])`` (the last
ends at the vocabulary size). The head scores its words and one entry per tail cluster; a word
``w`` of cluster ``i`` has

    log p(w | h) = log p(cluster i | h) + log p(w | cluster i, h).

Training computes a cluster's scores only for the rows whose target word is in it. On Penn
Treebank the 2,000 most frequent of 10,000 words are 87% of the tokens, so the decoder reads a
fifth of the word vectors per token instead of all of them. Unlike Grave et al. (and
``torch.nn.AdaptiveLogSoftmaxWithLoss``), the tail keeps the full width rather than a projected,
narrower one, so every word vector can be tied to the embedding.
"""

from __future__ import annotations

import math
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


ROW_MULTIPLE = 32
"""A cluster's rows are padded (with copies of its first row) to a multiple of this: a few
distinct matrix shapes instead of a new one at every step, which a backend that compiles a
kernel per shape (oneDNN's bfloat16 matmul: about 50 ms each) would pay again and again."""


def check_cutoffs(cutoffs: Sequence[int], vocab_size: int) -> List[int]:
    """``cutoffs`` as a list, or a ValueError: strictly increasing integers in (0, vocab_size)."""
    cutoffs = list(cutoffs)
    if not cutoffs or any(not isinstance(c, int) or isinstance(c, bool) for c in cutoffs) \
            or any(b <= a for a, b in zip(cutoffs, cutoffs[1:])) or not 0 < cutoffs[0] \
            or not cutoffs[-1] < vocab_size:
        raise ValueError(f"softmax cutoffs must be strictly increasing integers between 0 and the vocabulary "
                         f"size {vocab_size} (exclusive), e.g. [2000, 5000]; got {cutoffs!r}")
    return cutoffs


def _wide(logits: Tensor) -> Tensor:
    # float32 at least (bfloat16 logits under autocast), float64 kept
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


class AdaptiveSoftmax(nn.Module):
    """Log-probabilities of a frequency-sorted vocabulary through a head and tail clusters.

    Args:
        in_features: width D of the hidden states. vocab_size: V.
        cutoffs: the first id of each tail cluster, strictly increasing, in (0, V).

    Parameters: ``weight`` (V, D) and ``bias`` (V), one row per word (assign an embedding's
    weight to ``weight`` to tie them); ``cluster_weight`` (C, D) and ``cluster_bias`` (C), one row
    per tail cluster.

    Inputs (``forward`` and ``log_prob``): h (..., D). Outputs: log-probabilities (..., V).
    ``loss(h, target)``: h (N, D), target (N,) int64 -> the mean negative log-likelihood, computing
    each cluster only for the rows that need it.
    """

    def __init__(self, in_features: int, vocab_size: int, cutoffs: Sequence[int]):
        super().__init__()
        self.cutoffs = check_cutoffs(cutoffs, vocab_size)
        self.in_features, self.vocab_size = in_features, vocab_size
        clusters = len(self.cutoffs)
        self.weight = nn.Parameter(torch.empty(vocab_size, in_features))
        self.bias = nn.Parameter(torch.empty(vocab_size))
        self.cluster_weight = nn.Parameter(torch.empty(clusters, in_features))
        self.cluster_bias = nn.Parameter(torch.empty(clusters))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As ``nn.Linear``: every parameter uniform in +-1/sqrt(in_features)."""
        bound = 1.0 / math.sqrt(self.in_features)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def _bounds(self) -> List[tuple]:
        # (first id, end id) of each tail cluster
        ends = self.cutoffs[1:] + [self.vocab_size]
        return list(zip(self.cutoffs, ends))

    def _head(self, h: Tensor) -> Tensor:
        # (N, D) -> (N, head + C) log-probabilities of the head words and of each tail cluster
        head = self.cutoffs[0]
        logits = torch.cat([F.linear(h, self.weight[:head], self.bias[:head]),
                            F.linear(h, self.cluster_weight, self.cluster_bias)], dim=-1)
        return F.log_softmax(_wide(logits), dim=-1)

    def _cluster(self, h: Tensor, first: int, end: int) -> Tensor:
        # (n, D) -> (n, end - first) log p(w | cluster, h)
        return F.log_softmax(_wide(F.linear(h, self.weight[first:end], self.bias[first:end])), dim=-1)

    def log_prob(self, h: Tensor) -> Tensor:
        shape = h.shape[:-1]
        h = h.reshape(-1, self.in_features)                                     # (N, D)
        head = self._head(h)                                                    # (N, head + C)
        parts = [head[:, :self.cutoffs[0]]]
        for i, (first, end) in enumerate(self._bounds()):
            column = self.cutoffs[0] + i
            parts.append(head[:, column:column + 1] + self._cluster(h, first, end))
        return torch.cat(parts, dim=-1).reshape(*shape, self.vocab_size)     # (..., V)

    forward = log_prob

    def loss(self, h: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        """Negative log-likelihood of ``target`` (N,) given ``h`` (N, D): the mean, or with
        ``reduction="sum"`` the sum; only the clusters the targets are in are computed."""
        head_size = self.cutoffs[0]
        cluster = torch.bucketize(target, torch.tensor(self.cutoffs, device=target.device), right=True)  # (N,)
        in_head = cluster == 0
        head_index = torch.where(in_head, target, head_size + cluster - 1)    # the word, or its cluster
        total = -self._head(h).gather(1, head_index.unsqueeze(1)).sum()
        for i, (first, end) in enumerate(self._bounds()):
            rows = (cluster == i + 1).nonzero().squeeze(1)                     # (n,)
            n = rows.numel()
            if n:
                within = (target[rows] - first).unsqueeze(1)                   # (n, 1)
                rows = F.pad(rows, (0, -n % ROW_MULTIPLE), value=int(rows[0]))  # (n rounded up,)
                total = total - self._cluster(h[rows], first, end)[:n].gather(1, within).sum()
        return total if reduction == "sum" else total / target.numel()

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.vocab_size}, cutoffs={self.cutoffs}"

