"""The introductions' sequence models: a recurrent layer with ``y_t = W_hy h_t + b_y`` on top.

- ``ManyToMany``: an output at every step (tagging, next-character prediction).
- ``ManyToOne``: one output per sequence, read at each sequence's last real step — the
  introductions' ``fc(out[:, -1, :])``, but correct for padded batches and for both directions.

Both take ``batch_first`` input ``(B, T, I)``, optional ``lengths`` and an optional initial state.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from .layers import RNNBase, State, make_layer
from .sequences import Lengths
from .state import hidden


class SequenceOutput(NamedTuple):
    """``output``: (B, T, output_size) per-step outputs; ``state``: the recurrent layer's final state."""

    output: Tensor
    state: State


class _SequenceModel(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int, cell: str = "lstm",
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, **layer_options):
        super().__init__()
        self.rnn: RNNBase = make_layer(cell, input_size, hidden_size, num_layers=num_layers,
                                       batch_first=True, dropout=dropout, bidirectional=bidirectional,
                                       **layer_options)
        self.fc = nn.Linear(self.rnn.state_size * self.rnn.num_directions, output_size)   # W_hy, b_y


class ManyToMany(_SequenceModel):
    """An output ``y_t = W_hy h_t + b_y`` at every step.

    Args:
        input_size, hidden_size, output_size: feature sizes of x_t, h_t and y_t.
        cell: ``"rnn"`` (tanh), ``"rnn_relu"``, ``"lstm"`` or ``"gru"``.
        num_layers, bidirectional, dropout, **layer_options: passed to the recurrent layer.

    Inputs: x (B, T, I); state as the layer's ``hx`` or None; lengths (B,) or None.
    Outputs: ``SequenceOutput(output (B, T, output_size), state)``; outputs past a length are ``b_y``.
    """

    def forward(self, x: Tensor, state: Optional[State] = None, lengths: Lengths = None) -> SequenceOutput:
        out, state = self.rnn(x, state, lengths=lengths)                       # (B, T, D*H)
        return SequenceOutput(self.fc(out), state)


class ManyToOne(_SequenceModel):
    """One output per sequence, from the top layer's state at each sequence's last real step.

    For a bidirectional layer the forward direction's last real step and the reverse direction's
    first step are concatenated (each has then read the whole sequence).

    Inputs: x (B, T, I); lengths (B,) or None; state or None. Outputs: y (B, output_size).
    """

    def forward(self, x: Tensor, lengths: Lengths = None, state: Optional[State] = None) -> Tensor:
        _, final = self.rnn(x, state, lengths=lengths)
        h_n = hidden(final)                                                   # (L*D, B, Hr)
        top = h_n[-self.rnn.num_directions:]                                   # (D, B, Hr)
        last = torch.cat(list(top), dim=-1)                                    # (B, D*Hr)
        return self.fc(last)
