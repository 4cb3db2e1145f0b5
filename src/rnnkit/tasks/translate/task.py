"""Translation as the engine trains it (``TranslationTask``), and a trained translator ready to
translate (``TrainedTranslator``).

Batches are ``rnnkit.data.Batch`` es: ``inputs`` (B, S) source subword ids, ``lengths`` (B,), and
``labels`` (B, T + 1) target ids ``<bos> ... <eos>``, zero-padded (``<pad>`` is id 0).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data import Batch, Vocabulary, pad
from rnnkit.train import Task

from .model import Translator
from .search import Hypothesis, beam_search


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """sacreBLEU's corpus BLEU (13a tokenisation, cased) and chrF of detokenised text, with signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    bleu, chrf = BLEU(), CHRF()
    b, c = bleu.corpus_score(list(hypotheses), [list(references)]), chrf.corpus_score(list(hypotheses),
                                                                                      [list(references)])
    return {"bleu": b.score, "chrf": c.score, "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def encode_sentences(vocab: Vocabulary, sentences: Sequence[str]) -> List[List[int]]:
    """Subword ids of each sentence (no ``<bos>``/``<eos>``), through the tokenizer in one batch."""
    return [encoding.ids for encoding in vocab.tokenizer.encode_batch(list(sentences))]


def decode_ids(vocab: Vocabulary, ids: Sequence[int]) -> str:
    """Plain text of subword ids (special tokens dropped; ``<unk>`` as it is)."""
    return vocab.decode([i for i in ids if i >= len(vocab.specials) or i == vocab.unk_id])


class TranslationTask(Task):
    """Sequence-to-sequence training over ``Batch`` es of sentence pairs.

    Args:
        model: a ``Translator``. source_vocab, target_vocab: its ``Vocabulary`` s (one object when joint).
        info: what the checkpoint records besides the model (the vocabularies, the data settings).
        valid_beam: the beam of validation decoding (1: greedy, fast); None: no decoding (the loss
            and perplexity alone).

    Validation statistics: the summed cross-entropy (no label smoothing) and the target tokens
    (for the loss and perplexity), and the decoded and reference sentences, joined over batches, so
    that BLEU and chrF are computed once over the whole validation set.
    """

    def __init__(self, model: Translator, source_vocab: Vocabulary, target_vocab: Vocabulary, info: dict, *,
                 valid_beam: Optional[int] = 1):
        self.model, self.source_vocab, self.target_vocab, self.info = model, source_vocab, target_vocab, info
        self.valid_beam = valid_beam

    def training_step(self, batch: Batch) -> Tensor:
        target = batch.labels
        logits = self.model(batch.inputs, batch.lengths, target[:, :-1]).float()             # (B, T, V)
        c = self.model.module.config if hasattr(self.model, "module") else self.model.config
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target[:, 1:].reshape(-1),
                               ignore_index=c.pad_id, label_smoothing=c.label_smoothing)

    def validation_step(self, batch: Batch) -> dict:
        target = batch.labels
        nll = self.model.loss(batch.inputs, batch.lengths, target, reduction="sum", smoothing=0.0)
        stats = {"nll": nll.item(), "tokens": int((target[:, 1:] != self.model.config.pad_id).sum())}
        if self.valid_beam is not None:
            found = beam_search(self.model, batch.inputs, batch.lengths, beam=self.valid_beam, alpha=1.0)
            stats["hypotheses"] = [decode_ids(self.target_vocab, best[0].tokens if best else []) for best in found]
            stats["references"] = [decode_ids(self.target_vocab, row.tolist()) for row in target]
        return stats

    def validation_metrics(self, totals: dict, batches: int) -> dict:
        loss = totals["nll"] / max(1, totals["tokens"])
        metrics = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": int(totals["tokens"])}
        if "hypotheses" in totals:
            scores = corpus_scores(totals["hypotheses"], totals["references"])
            metrics.update(bleu=scores["bleu"], chrf=scores["chrf"])
        return metrics

    def config(self) -> dict:
        return {"task": "translate", "model": self.model.config_dict(), **self.info}


class TrainedTranslator:
    """A translator loaded from a checkpoint.

    Attributes: ``model`` (``Translator``, eval mode), ``source_vocab``, ``target_vocab``,
    ``config`` (the checkpoint's config), ``data`` (its ``TranslateData`` fields as saved).
    """

    def __init__(self, model: Translator, source_vocab: Vocabulary, target_vocab: Vocabulary, config: dict):
        self.model, self.source_vocab, self.target_vocab = model.eval(), source_vocab, target_vocab
        self.config = config
        self.data = config["task"].get("data") or {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, sentences: Sequence[str]) -> List[List[int]]:
        """Source subword ids of each sentence; a sentence with none (empty) is a ValueError."""
        ids = encode_sentences(self.source_vocab, [s.lower() if self.data.get("lowercase") else s
                                                   for s in sentences])
        for number, row in enumerate(ids, 1):
            if not row:
                raise ValueError(f"sentence {number} is empty: give text to translate")
        return ids

    def translate(self, sentences: Sequence[str], *, beam: int = 5, length_penalty: float = 1.0,
                  max_length_ratio: float = 1.5, n_best: int = 1, batch_size: int = 64,
                  keep_attention: bool = False, progress=None) -> List[List[Hypothesis]]:
        """The ``n_best`` translations of each sentence, best first (``Hypothesis`` es; their text is
        ``text(h)``). Sentences are decoded ``batch_size`` at a time, sorted by length (less
        padding), and returned in their order. ``progress(done, total)`` is called after each batch."""
        if isinstance(sentences, str):
            sentences = [sentences]
        if not len(sentences):
            raise ValueError("nothing to translate: give at least one sentence")
        ids = self.encode(sentences)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        results: List[Optional[List[Hypothesis]]] = [None] * len(ids)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            source, lengths = pad([ids[i] for i in chunk])
            found = beam_search(self.model, source.to(self.device), lengths.to(self.device), beam=beam,
                                alpha=length_penalty, max_length_ratio=max_length_ratio, n_best=n_best,
                                keep_attention=keep_attention)
            for i, hypotheses in zip(chunk, found):
                results[i] = hypotheses
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
        return results

    def text(self, hypothesis: Hypothesis) -> str:
        """The plain (detokenised) text of a hypothesis."""
        return decode_ids(self.target_vocab, hypothesis.tokens)

    def pieces(self, ids: Sequence[int], side: str = "target") -> List[str]:
        """The subword strings of ``ids`` (for attention plots)."""
        vocab = self.target_vocab if side == "target" else self.source_vocab
        return [vocab.tokens[i] for i in ids]
