"""The acoustic model: feature frames -> subsampling -> a stack of rnnkit layers -> a word head or a
CTC head.

Shapes: B utterances, T feature frames, F features per frame, T' = frames after subsampling,
H hidden size, D directions, C classes (words) or V units (CTC, blank included).

- Subsampling: ``stack`` joins every k consecutive frames into one (streamable: a chunk of k
  frames is one step), ``conv`` two strided 3x3 convolutions (k = 4; offline only), or ``none``.
- Encoder: one rnnkit LSTM/GRU/RNN stack run with ``lengths=`` (bidirectional, or unidirectional
  for streaming through ``step()``).
- Heads: ``words`` pools the real frames (mean and max) into class logits (B, C); ``ctc`` gives
  per-frame log-probabilities (B, T', V) for ``torch.nn.CTCLoss`` and CTC decoding.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.nn import make_layer

from .config import SpeechModel



def subsampled_lengths(lengths: Tensor, config: SpeechModel) -> Tensor:
    """(B,) encoder steps of utterances of ``lengths`` feature frames."""
    if config.subsample == "stack":
        return (lengths + config.stack - 1) // config.stack
    if config.subsample == "conv":
        once = (lengths - 1) // 2 + 1
        return (once - 1) // 2 + 1
    return lengths


class AcousticModel(nn.Module):
    """Features to word logits or CTC log-probabilities (see the module docstring).

    Inputs: ``features`` (B, T, F) zero-padded, ``lengths`` (B,) real frames.
    Outputs: ``forward``: ``(outputs, steps)``: for ``words`` (B, C) logits, for ``ctc`` (B, T', V)
    log-probabilities; ``steps`` (B,) the real encoder steps. Padding never changes a result.
    """

    def __init__(self, config: SpeechModel):
        super().__init__()
        self.config = c = config
        if c.subsample == "conv":
            self.conv = nn.ModuleList([nn.Conv2d(1, c.conv_channels, 3, stride=2, padding=1),
                                       nn.Conv2d(c.conv_channels, c.conv_channels, 3, stride=2, padding=1)])
            width = c.conv_channels * ((((c.input_size - 1) // 2 + 1) - 1) // 2 + 1)
        else:
            self.conv = None
            width = c.input_size * (c.stack if c.subsample == "stack" else 1)
        self.encoder = make_layer(c.cell, width, c.hidden_size, num_layers=c.num_layers, batch_first=True,
                                  bidirectional=c.bidirectional, dropout=c.dropout if c.num_layers > 1 else 0.0)
        out = c.hidden_size * (2 if c.bidirectional else 1)
        self.head = nn.Linear(2 * out if c.head == "words" else out, c.num_classes)

    def subsample(self, features: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, T', width) encoder inputs and their (B,) lengths; steps past each length are zero."""
        c = self.config
        steps = subsampled_lengths(lengths, c)
        if c.subsample == "stack":
            B, T, Fd = features.shape
            # T padded up to whole groups of c.stack frames, written without a modulo so that
            # torch.export can prove the reshape for any T
            joined = (T + c.stack - 1) // c.stack
            x = F.pad(features, (0, 0, 0, joined * c.stack - T)).reshape(B, joined, c.stack * Fd)
        elif c.subsample == "conv":
            x, frames = features.unsqueeze(1), lengths                          # (B, 1, T, F)
            for conv in self.conv:
                x = torch.relu(conv(x))
                frames = (frames - 1) // 2 + 1
                keep = torch.arange(x.shape[2], device=x.device) < frames.to(x.device).unsqueeze(1)   # (B, T')
                x = x * keep[:, None, :, None]                                   # padding stays zero
            x = x.permute(0, 2, 1, 3).flatten(2)                                 # (B, T', C * F')
        else:
            x = features
        keep = torch.arange(x.shape[1], device=x.device) < steps.to(x.device).unsqueeze(1)
        return x * keep.unsqueeze(-1), steps

    def forward(self, features: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        x, steps = self.subsample(features, lengths)
        out, _ = self.encoder(x, lengths=steps)                                  # (B, T', D * H)
        out = F.dropout(out, self.config.dropout, self.training)
        if self.config.head == "ctc":
            return torch.log_softmax(self.head(out).float(), dim=-1), steps
        keep = (torch.arange(out.shape[1], device=out.device) < steps.to(out.device).unsqueeze(1)).unsqueeze(-1)
        mean = (out * keep).sum(1) / steps.to(out.device).unsqueeze(1).clamp(min=1)
        biggest = out.masked_fill(~keep, float("-inf")).amax(1)
        return self.head(torch.cat([mean, biggest], dim=-1)).float(), steps

    def step(self, block: Tensor, state=None):
        """Streaming, unidirectional ``stack`` (or ``none``) models: one encoder step from ``block``
        (B, k, F), the next k feature frames. Outputs: ``(log_probs (B, V), state)``; over an
        utterance this gives ``forward``'s per-step outputs."""
        if not self.config.streamable():
            raise ValueError("streaming needs a unidirectional CTC model with --subsample stack or none: train with "
                             "--unidirectional")
        y, state = self.encoder.step(block.reshape(block.shape[0], -1), state)
        return torch.log_softmax(self.head(y).float(), dim=-1), state

    def config_dict(self) -> dict:
        return asdict(self.config)


def init_encoder(model: AcousticModel, source: AcousticModel) -> int:
    """Copy ``source``'s subsampling and recurrent layers into ``model`` (transfer: a word
    classifier's encoder starting a CTC recogniser, or a recogniser continued on a new corpus).

    The two must agree on the features per frame, the subsampling, the cell, the hidden size and
    the directions; the layers both have are copied (the first ``min`` of their counts), the head
    is left as it is (its classes differ). Returns the number of recurrent layers copied.

    Raises:
        ValueError: naming each setting that differs.
    """
    c, s = model.config, source.config
    keys = ["input_size", "subsample", "cell", "hidden_size", "bidirectional"]
    keys += ["stack"] if c.subsample == "stack" else ["conv_channels"] if c.subsample == "conv" else []
    differ = [f"{k} ({getattr(s, k)!r}, this model {getattr(c, k)!r})" for k in keys if getattr(c, k) != getattr(s, k)]
    if differ:
        raise ValueError(f"the model to initialise from differs in {', '.join(differ)}: give the same model flags, "
                         f"or train from scratch")
    ours = model.state_dict()
    with torch.no_grad():
        for name, value in source.state_dict().items():
            if not name.startswith("head.") and name in ours:
                ours[name].copy_(value)
    return min(c.num_layers, s.num_layers)


def ctc_loss(log_probs: Tensor, steps: Tensor, targets: Tensor, target_lengths: Tensor, blank: int) -> Tensor:
    """``torch.nn.functional.ctc_loss`` of (B, T', V) log-probabilities against padded targets (B, U),
    averaged over the batch of per-utterance losses divided by their target lengths; utterances too
    short for their transcript give zero loss (``zero_infinity``)."""
    return F.ctc_loss(log_probs.transpose(0, 1), targets, steps, target_lengths, blank=blank, reduction="mean",
                      zero_infinity=True)


def words_loss(logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of word logits (B, C) against labels (B,)."""
    return F.cross_entropy(logits, labels, reduction=reduction)

