"""Language modelling as the engine trains it (``LanguageModelTask``), and a trained language model
ready to generate (``TrainedLanguageModel``)."""

from __future__ import annotations

import math
import warnings
from typing import Iterator, Optional

import torch
from torch import Tensor

from rnnkit.data import Vocabulary
from rnnkit.nn import detach_state
from rnnkit.train import Task

from .model import LanguageModel


class LanguageModelTask(Task):
    """Next-token prediction over ``rnnkit.data.Window`` batches.

    The hidden state is carried from one window to the next (detached: truncated BPTT) and reset
    when a window starts a new pass (``start == 0``). It is part of the checkpoint, so a resumed
    run continues with the state it had.

    Args:
        model: a ``LanguageModel``. vocab: its ``rnnkit.data.Vocabulary``.
        info: what the checkpoint records besides the model: ``vocab`` (the vocabulary's dict, as
            saved: a resumed run keeps the form its checkpoint has) and ``data`` (the ``LMData``);
            default: the vocabulary's dict alone.

    Validation statistics: the summed negative log-likelihood ``nll``, the ``tokens`` predicted and,
    for character and BPE vocabularies, the ``chars`` they stand for; the metrics are the loss per
    token, its perplexity and bits per character over the whole text.
    """

    def __init__(self, model: LanguageModel, vocab: Vocabulary, info: Optional[dict] = None):
        self.model, self.vocab, self.info = model, vocab, info or {"vocab": vocab.to_dict()}
        self.train_state = self.valid_state = None

    def training_step(self, batch) -> Tensor:
        loss, state = self.model.loss(batch.x, batch.y, None if batch.start == 0 else self.train_state)
        self.train_state = detach_state(state)
        return loss

    def validation_step(self, batch) -> dict:
        nll, state = self.model.loss(batch.x, batch.y, None if batch.start == 0 else self.valid_state,
                                     reduction="sum")
        self.valid_state = state
        stats = {"nll": nll.item(), "tokens": batch.y.numel()}
        chars = self.vocab.count_chars(batch.x.cpu().numpy(), batch.y.cpu().numpy())     # None for words
        if chars is not None:
            stats["chars"] = chars
        return stats

    def validation_metrics(self, totals: dict, batches: int) -> dict:
        loss = totals["nll"] / totals["tokens"]
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": int(totals["tokens"])}
        if totals.get("chars"):
            metrics["bits_per_char"] = totals["nll"] / totals["chars"] / math.log(2)
        return metrics

    def config(self) -> dict:
        return {"task": "lm", "model": self.model.config_dict(), **self.info}

    def state_dict(self) -> dict:
        return {"train_state": self.train_state}

    def load_state_dict(self, state: dict) -> None:
        self.train_state = state["train_state"]


class TrainedLanguageModel:
    """A language model loaded from a checkpoint, ready to generate text.

    Attributes: ``model`` (``LanguageModel``, in eval mode), ``vocab``, ``config`` (the checkpoint's
    config), ``data`` (its ``LMData`` fields as saved; empty for checkpoints of earlier releases).
    """

    def __init__(self, model: LanguageModel, vocab: Vocabulary, config: dict):
        self.model, self.vocab, self.config = model.eval(), vocab, config
        self.data = config["task"].get("data") or {}

    def task(self) -> LanguageModelTask:
        """The task around this model, for a validation pass (``rnnkit.train.validate``)."""
        return LanguageModelTask(self.model, self.vocab, {key: value for key, value in self.config["task"].items()
                                                          if key not in ("task", "model")})

    def encode_prompt(self, prompt: str):
        """The prompt's token ids. Characters a character vocabulary lacks are read as ``<unk>``
        with a warning; a prompt of nothing but such characters is a ValueError."""
        ids = self.vocab.encode(prompt)
        if self.vocab.kind == "char":
            unknown = sorted({ch for ch in prompt if ch not in self.vocab.index})
            if unknown and len(unknown) == len(set(prompt)):
                raise ValueError(f"characters not in the vocabulary: {''.join(unknown)!r}: the prompt holds no "
                                 f"character the model knows")
            if unknown:
                warnings.warn(f"prompt characters not in the vocabulary were read as <unk>: {''.join(unknown)!r}",
                              stacklevel=3)
        return ids

    def generate(self, prompt: str, length: int, *, temperature: float = 1.0, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, seed: Optional[int] = None) -> Iterator[str]:
        """Text after ``prompt``, one token at a time: a character, a word or a subword piece, with the
        space before it where one belongs (joined, the pieces read as ``vocab.decode`` of all the ids).

        Raises ValueError for a prompt the vocabulary cannot encode or bad sampling arguments.
        """
        ids = self.encode_prompt(prompt)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        previous = prompt[-1:]
        for token in self.model.generate(ids, length, temperature=temperature, top_k=top_k, top_p=top_p,
                                         generator=generator):
            text = self.vocab.decode([token], previous)
            previous = (previous + text)[-1:]
            yield text
