"""Regularisers of recurrent networks, as small functions on tensors we own.

- ``drop_connect``: DropConnect on a weight matrix (AWD-LSTM's weight drop on ``W_hh``): one mask
  per forward call, shared by every time step. The layer applies it to the weight it passes to the
  time loop; the stored parameter is never modified.
- ``zoneout_weight``: the zoneout of a state (Krueger et al. 2016): keep each unit's previous value
  with probability ``p`` in training, and blend ``p * previous + (1 - p) * new`` in evaluation.
- ``locked_dropout``: variational dropout, one mask per sequence shared over time (Gal & Ghahramani).
"""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor


def drop_connect(weight: Tensor, p: float, training: bool) -> Tensor:
    """DropConnect: zero each weight with probability ``p`` and rescale by ``1 / (1 - p)``.

    Inputs: weight (any shape). Outputs: a new tensor of the same shape (``weight`` itself when
    ``p == 0`` or not training); gradients flow to ``weight`` through the mask.
    """
    if p == 0.0 or not training:
        return weight
    return F.dropout(weight, p, training=True)


def zoneout_weight(p: float, shape: tuple, training: bool, like: Tensor) -> Union[None, float, Tensor]:
    """The weight of the previous state in ``s_t = w * s_{t-1} + (1 - w) * s~_t``.

    Returns None when ``p == 0``; ``p`` itself in evaluation; in training a 0/1 mask of ``shape``
    (typically ``(T, B, size)``), 1 with probability ``p``.
    """
    if p == 0.0:
        return None
    if not training:
        return float(p)
    return torch.bernoulli(torch.full(shape, p, dtype=like.dtype, device=like.device))


def locked_dropout(x: Tensor, p: float, training: bool, *, batch_first: bool = False) -> Tensor:
    """Variational dropout: one dropout mask per sequence, the same at every time step.

    Inputs: x (T, B, F), or (B, T, F) with ``batch_first``. Outputs: same shape.
    """
    if p == 0.0 or not training:
        return x
    mask_shape = (x.shape[0], 1, x.shape[2]) if batch_first else (1, x.shape[1], x.shape[2])
    mask = x.new_empty(mask_shape).bernoulli_(1.0 - p).div_(1.0 - p)
    return x * mask
