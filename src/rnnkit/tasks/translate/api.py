"""Translators from sentence pairs: ``fit``, ``evaluate``, ``translate``, ``load``. The command line
(``rnnkit train translate``, ``evaluate``, ``predict``) calls these; they are the Python API for
the same jobs.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from rnnkit.data import BOS, EOS, PAD, UNK, BucketBatches, Vocabulary
from rnnkit.train import TrainConfig, Trainer, TrainResult, find_checkpoint, run_directory, validate
from rnnkit.train.checkpoint import load_task_model

from ..spec import single_checkpoint
from .config import Decoding, TranslateData, TranslatorConfig
from .pairs import Pairs, held_out, load_pairs
from .task import TrainedTranslator, TranslationTask, corpus_scores, encode_sentences

SPECIALS = (PAD, UNK, BOS, EOS)          # ids 0-3: <pad> 0 as the padding of every batch


def fit(path, out, *, valid=None, data: TranslateData = TranslateData(), model: Optional[dict] = None,
        train: TrainConfig, resume: bool = False) -> TrainResult:
    """Train a translator; checkpoints and log go to ``out``.

    Args:
        path: a file of pairs (TSV or JSON lines), or None when ``data.source``/``data.target``
            name two line-aligned files.
        valid: a validation file of pairs; or ``data.valid_source``/``valid_target``; without
            either, 1,000 training pairs (5% of fewer than 20,000) are held out with the seed.
        data: where the pairs are and how they become batches (``TranslateData``).
        model: ``TranslatorConfig`` fields other than the vocabulary sizes.
        resume: continue the run in ``out`` (same vocabularies and model).
    Outputs: the engine's ``TrainResult``; validation reports the loss, perplexity, and the
    corpus BLEU and chrF of greedy translations (``monitor="bleu"`` picks ``BEST`` by BLEU).
    """
    out, model = Path(out), dict(model or {})
    TranslatorConfig(source_vocab=1, target_vocab=1, **model)       # bad options fail before any text is read
    if valid is not None and data.valid_source is not None:
        raise ValueError("give the validation pairs once: --valid PAIRS or --valid-source/--valid-target")
    with run_directory(out, resume=resume, task="translate"):
        pairs = load_pairs(path, data.source, data.target, **_reader(data))
        holdout = valid is None and data.valid_source is None
        if holdout:
            pairs, valid_pairs = held_out(pairs, train.seed)
        else:
            valid_pairs = load_pairs(valid, data.valid_source, data.valid_target, what="validation", **_reader(data))
        if resume:
            saved = find_checkpoint(out).config["task"]
            source_vocab, target_vocab = _vocabularies(saved)
            vocabs = saved["vocabularies"]
        else:
            source_vocab, target_vocab = _build_vocabularies(pairs, data)
            vocabs = {"source": source_vocab.to_dict(),
                      "target": None if data.joint_vocab else target_vocab.to_dict()}
        config = TranslatorConfig(source_vocab=len(source_vocab), target_vocab=len(target_vocab),
                                  shared_embeddings=data.joint_vocab, pad_id=target_vocab.pad_id,
                                  bos_id=target_vocab.bos_id, eos_id=target_vocab.eos_id, **model)
        train_set = _encoded(pairs, source_vocab, target_vocab, data, "training", limit=data.max_length)
        valid_set = _encoded(valid_pairs, source_vocab, target_vocab, data, "validation")
        torch.manual_seed(train.seed)
        info = {"vocabularies": vocabs, "data": asdict(data), "holdout": holdout}
        task = TranslationTask(_build(config), source_vocab, target_vocab, info)
        train_batches = BucketBatches(train_set[0], train_set[1], data.batch_size, seed=train.seed)
        valid_batches = BucketBatches(valid_set[0], valid_set[1], data.batch_size, shuffle=False)
        return Trainer(task, train, out).fit(train_batches, valid_batches, resume=resume)


def _reader(data: TranslateData) -> dict:
    return dict(source_field=data.source_field, target_field=data.target_field, encoding=data.encoding)


def _build(config: TranslatorConfig):
    from .model import Translator

    return Translator(config)


def _build_vocabularies(pairs: Pairs, data: TranslateData):
    """BPE vocabularies learnt on the training pairs: one per side, or one joint (the same object)."""
    def learn(sentences):
        return Vocabulary.build(["\n".join(sentences) + "\n"], "bpe", specials=SPECIALS, max_size=data.vocab_size,
                                lowercase=data.lowercase, keep_spaces=True)

    if data.joint_vocab:
        joint = learn(pairs.sources + pairs.targets)
        return joint, joint
    return learn(pairs.sources), learn(pairs.targets)


def _vocabularies(task: dict):
    source = Vocabulary.from_dict(task["vocabularies"]["source"])
    target = task["vocabularies"]["target"]
    return source, (source if target is None else Vocabulary.from_dict(target))


def _encoded(pairs: Pairs, source_vocab: Vocabulary, target_vocab: Vocabulary, data: TranslateData, what: str,
             limit: Optional[int] = None):
    """``(source ids, target ids with <bos>/<eos>)`` of the pairs; with ``limit``, pairs with a side
    longer than ``limit`` subwords are left out (counted in a warning; an error if none is left)."""
    sources = encode_sentences(source_vocab, pairs.sources)
    targets = encode_sentences(target_vocab, pairs.targets)
    bos, eos = target_vocab.bos_id, target_vocab.eos_id
    kept = [i for i in range(len(sources)) if sources[i] and targets[i] and
            (limit is None or (len(sources[i]) <= limit and len(targets[i]) <= limit))]
    dropped = len(sources) - len(kept)
    if not kept:
        raise ValueError(f"no {what} pair has both sides within --max-length {limit} subwords: raise --max-length")
    if dropped:
        warnings.warn(f"left out {dropped:,} of {len(sources):,} {what} pairs with a side longer than "
                      f"--max-length {limit} subwords", stacklevel=3)
    return [sources[i] for i in kept], [[bos] + targets[i] + [eos] for i in kept]


def load(path, *, device: str = "cpu") -> TrainedTranslator:
    """Rebuild the translator saved in ``path`` (a run directory, ``RUN/BEST`` or a checkpoint)."""
    model, task, checkpoint = load_task_model(path, "translate",
                                              lambda task: _build(TranslatorConfig(**task["model"])), device)
    source, target = _vocabularies(task)
    return TrainedTranslator(model, source, target, checkpoint.config)


def translate(checkpoint, sentences: Sequence[str], *, device: str = "cpu", **decoding) -> List[str]:
    """The best translation of each sentence; ``decoding``: ``Decoding`` fields (beam, length_penalty,
    max_length_ratio, decode_batch_size). ``load(checkpoint).translate`` gives n-best lists and scores."""
    options = Decoding(**decoding)
    trained = load(single_checkpoint(checkpoint, "translate"), device=device)
    found = trained.translate(sentences, **_search(options))
    return [trained.text(best[0]) if best else "" for best in found]


def _search(options: Decoding) -> dict:
    return dict(beam=options.beam, length_penalty=options.length_penalty, max_length_ratio=options.max_length_ratio,
                n_best=options.n_best, batch_size=options.decode_batch_size)


def _progress(total: int):
    """Progress on stderr for a long input (none for a few sentences)."""
    if total < 200:
        return None
    return lambda done, total: print(f"translated {done:,}/{total:,} sentences", file=sys.stderr, flush=True)


def predict_rows(checkpoints, sentences: Sequence[str], *, device: str = "cpu", **decoding) -> List[dict]:
    """``rnnkit predict``'s rows: ``{"source", "translation", "score"}``, and with ``n_best`` > 1 the
    list ``"n_best"`` of ``{"translation", "score", "log_prob"}``, best first."""
    options = Decoding(**decoding)
    trained = load(single_checkpoint(checkpoints, "translate"), device=device)
    found = trained.translate(list(sentences), progress=_progress(len(sentences)), **_search(options))
    rows = []
    for sentence, hypotheses in zip(sentences, found):
        best = hypotheses[0]
        row = {"source": sentence, "translation": trained.text(best), "score": round(best.score, 4)}
        if options.n_best > 1:
            row["n_best"] = [{"translation": trained.text(h), "score": round(h.score, 4),
                              "log_prob": round(h.log_prob, 4)} for h in hypotheses]
        rows.append(row)
    return rows


def show(row: dict) -> str:
    """How ``rnnkit predict`` prints a translation: the text, or the n-best list with scores."""
    if "n_best" not in row:
        return row["translation"]
    return "\n".join(f"{k}\t{h['score']:.4f}\t{h['translation']}" for k, h in enumerate(row["n_best"], 1))


def evaluate(checkpoints, path=None, *, source=None, target=None, encoding: Optional[str] = None,
             device: str = "cpu", hypotheses: Optional[str] = None, plot_attention: Optional[int] = None,
             attention_png: Optional[str] = None, **decoding) -> dict:
    """sacreBLEU (with its signature) and chrF of the translations of a test set, and the loss and
    perplexity of its references.

    Args:
        path: a file of pairs, or None with ``source``/``target`` (two line-aligned files).
        hypotheses: also write the translations there, one per line (atomically).
        plot_attention: write the attention heat map of sentence N (from 1) to ``attention_png``
            (default ``attention-N.png``).
        decoding: ``Decoding`` fields.
    Outputs: ``{"bleu", "chrf", "loss", "perplexity", "sentences", "bleu_signature", ...}``.
    """
    from rnnkit.files import write_text_atomic

    options = Decoding(**decoding)
    trained = load(single_checkpoint(checkpoints, "translate"), device=device)
    data = trained.data
    pairs = load_pairs(path, source, target, source_field=data.get("source_field", "source"),
                       target_field=data.get("target_field", "target"),
                       encoding=encoding or data.get("encoding", "utf-8"), what="test")
    if plot_attention is not None and plot_attention > len(pairs):
        raise ValueError(f"--plot-attention {plot_attention}: the test set has {len(pairs)} sentence pairs")
    found = trained.translate(pairs.sources, progress=_progress(len(pairs)), **_search(options))
    texts = [trained.text(best[0]) if best else "" for best in found]
    scores = corpus_scores(texts, pairs.targets)
    sources, targets = _encoded(pairs, trained.source_vocab, trained.target_vocab, TranslateData(), "test")
    task = TranslationTask(trained.model, trained.source_vocab, trained.target_vocab, {}, valid_beam=None)
    losses = validate(task, BucketBatches(sources, targets, 64, shuffle=False)(0), trained.device)
    result = {"bleu": scores["bleu"], "chrf": scores["chrf"], "loss": losses["loss"],
              "perplexity": losses["perplexity"], "sentences": len(pairs), "beam": options.beam,
              "length_penalty": options.length_penalty, "bleu_signature": scores["bleu_signature"],
              "chrf_signature": scores["chrf_signature"]}
    if hypotheses is not None:
        write_text_atomic(hypotheses, "".join(text + "\n" for text in texts))
        result["hypotheses"] = str(hypotheses)
    if plot_attention is not None:
        from .plots import plot_attention as plot

        png = attention_png or f"attention-{plot_attention}.png"
        sentence = pairs.sources[plot_attention - 1]
        best = trained.translate([sentence], keep_attention=True, **dict(_search(options), n_best=1))[0][0]
        plot(png, best.attention, trained.pieces(trained.encode([sentence])[0], "source"),
             trained.pieces(best.tokens) + ["<eos>"])
        result["attention_plot"] = str(png)
    return result


def exportable(trained: TrainedTranslator) -> dict:
    """``rnnkit export``: the encoder and one decoder step, as two programs
    (``rnnkit.tasks.translate.exporting``)."""
    from .exporting import exportable_parts

    return exportable_parts(trained.model)
