"""``rnnkit export`` of a translator: two programs, the encoder and one decoder step, as a runtime
needs them to run greedy or beam search itself (the search loop stays outside the programs).

Shapes: N sentences (or sentences x beams), S source subwords, L decoder layers, H hidden size,
V target vocabulary. The decoder step's inputs carry the encoder's outputs under the same names,
so a runtime feeds ``encoder``'s outputs straight to the first ``decoder`` step, then each step's
``new_*`` outputs (and the memory, unchanged) to the next, choosing the next ``tokens`` from
``log_probs`` as its search does (``<eos>`` ends a sentence):

- ``encoder``: ``source`` (N, S) int64 ids padded with ``<pad>``, ``lengths`` (N,) int64 ->
  ``keys`` (N, S, H), ``mask`` (N, S) bool, [``projected`` (N, S, H): additive attention],
  ``h`` (L, N, H), [``c`` (L, N, H): LSTM], [``feed`` (N, H): input feeding].
- ``decoder``: ``tokens`` (N,) int64 (``<bos>`` first), ``h``, [``c``], [``feed``], ``keys``,
  ``mask``, [``projected``] -> ``log_probs`` (N, V) float32, ``new_h``, [``new_c``],
  [``new_feed``], [``attention`` (N, S): unless the attention is "none"].
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch import Tensor, nn

from .model import Memory, Translator


def _state_names(model: Translator) -> List[str]:
    c = model.config
    return ["h"] + (["c"] if c.cell == "lstm" else []) + (["feed"] if c.input_feeding else [])


def _memory_names(model: Translator) -> List[str]:
    return ["keys", "mask"] + (["projected"] if model.config.attention == "additive" else [])


def _flat_state(state) -> list:
    layers, feed = state
    return (list(layers) if isinstance(layers, tuple) else [layers]) + ([] if feed is None else [feed])


class Encoder(nn.Module):
    """``(source, lengths) -> (keys, mask, [projected], h, [c], [feed])`` (see the module docstring)."""

    def __init__(self, model: Translator):
        super().__init__()
        self.model = model

    def forward(self, source: Tensor, lengths: Tensor):
        memory, state = self.model.encode(source, lengths)
        extra = [memory.projected] if memory.projected is not None else []
        return (memory.keys, memory.mask, *extra, *_flat_state(state))


class DecoderStep(nn.Module):
    """``(tokens, h, [c], [feed], keys, mask, [projected]) -> (log_probs, new_h, [new_c], [new_feed],
    [attention])``: ``Translator.step`` with its state and memory as flat tensors."""

    def __init__(self, model: Translator):
        super().__init__()
        self.model = model
        self.states = len(_state_names(model))

    def forward(self, tokens: Tensor, *flat: Tensor):
        c = self.model.config
        states, memory = list(flat[:self.states]), flat[self.states:]
        layers = (states.pop(0), states.pop(0)) if c.cell == "lstm" else states.pop(0)
        feed = states.pop(0) if c.input_feeding else None
        memory = Memory(memory[0], memory[1], memory[2] if len(memory) > 2 else None)
        log_probs, state, weights = self.model.step(tokens, (layers, feed), memory)
        return (log_probs, *_flat_state(state), *([] if weights is None else [weights]))


def exportable_parts(model: Translator) -> Dict[str, "Exportable"]:   # noqa: F821  (rnnkit.export.Exportable)
    """``{"encoder": Exportable, "decoder": Exportable}`` of an eval-mode translator."""
    from rnnkit.export import Exportable, padded_lengths

    c = model.config
    states, memory = _state_names(model), _memory_names(model)
    encoder, decoder = Encoder(model).eval(), DecoderStep(model).eval()

    def make_source(batch: int, length: int, generator: torch.Generator):
        lengths, real = padded_lengths(batch, length, generator)                             # (N,), (N, S)
        ids = torch.randint(0, c.source_vocab, (batch, length), generator=generator)
        return torch.where(real, ids, c.pad_id), lengths

    def make_step(batch: int, length: int, generator: torch.Generator):
        # the memory and first state of real encodings; a state moved off the bridge's, as later steps see
        flat = encoder(*make_source(batch, length, generator))
        given, first = flat[:len(memory)], flat[len(memory):]
        first = [t + 0.3 * torch.randn(t.shape, generator=generator) for t in first]
        tokens = torch.randint(0, c.target_vocab, (batch,), generator=generator)
        return (tokens, *first, *given)

    along_batch = {"h": {1: "batch"}, "c": {1: "batch"}, "feed": {0: "batch"}}
    along_memory = {"keys": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"},
                    "projected": {0: "batch", 1: "length"}}
    step_outputs = ["log_probs"] + [f"new_{name}" for name in states] + \
        (["attention"] if c.attention != "none" else [])
    return {
        "encoder": Exportable(encoder, make_source, ["source", "lengths"], memory + states,
                              {"source": {0: "batch", 1: "length"}, "lengths": {0: "batch"}}),
        "decoder": Exportable(decoder, make_step, ["tokens"] + states + memory, step_outputs,
                              {"tokens": {0: "batch"}, **{n: along_batch[n] for n in states},
                               **{n: along_memory[n] for n in memory}}),
    }
