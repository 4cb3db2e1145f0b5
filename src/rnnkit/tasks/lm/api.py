"""Language models from text files: train, evaluate. The command line (``rnnkit train lm``,
``rnnkit evaluate``) calls these; they are the Python API for the same jobs.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from rnnkit.data import StreamBatches, Vocabulary, read_chunks, tokenize_file
from rnnkit.train import TrainConfig, Trainer, TrainResult, find_checkpoint
from rnnkit.train.loop import holds_run

from .lm import LanguageModel, LanguageModelTask, LMConfig, load


@dataclass
class LMData:
    """How text becomes batches.

    ``tokens``: "char", "word" or "bpe". ``vocab_size``: the BPE vocabulary size (default 8000), or the
    most word tokens kept (default all); not for characters. ``valid_fraction``: held out from the end
    when there is no valid file.
    """

    tokens: str = "char"
    vocab_size: Optional[int] = None
    encoding: str = "utf-8"
    batch_size: int = 32
    bptt: int = 64
    random_length: bool = False
    valid_fraction: float = 0.1


def train_lm(data: Path, out: Path, *, valid: Optional[Path] = None, model: Optional[dict] = None,
             text: LMData = LMData(), train: TrainConfig, resume: bool = False) -> TrainResult:
    """Train a language model on the UTF-8 text file ``data``; checkpoints and log go to ``out``.

    Args:
        valid: a validation file; without it the last ``text.valid_fraction`` of ``data`` is held out.
        model: ``LMConfig`` fields other than ``vocab_size`` (defaults otherwise).
        resume: continue the run in ``out`` (same data, vocabulary and model).
    """
    out = Path(out)
    options = dict(model or {})
    LMConfig(vocab_size=1, **dict(options, softmax_cutoffs=None))     # bad options fail before any text is read
    if options.get("softmax_cutoffs") and text.tokens != "word":
        raise ValueError("an adaptive softmax (softmax_cutoffs, --adaptive-softmax) needs word tokens, whose "
                         "vocabulary is sorted by frequency; use --tokens word or a full softmax")
    if not resume:
        _refuse_used(out)
    chunks = lambda path: read_chunks(path, text.encoding)                        # noqa: E731
    sources = [data] + ([valid] if valid is not None else [])
    if text.vocab_size is not None and text.tokens == "char":
        raise ValueError("vocab_size (--vocab-size) is for word and bpe tokens: a character vocabulary holds "
                         "every character of the text")
    if resume:
        vocab = Vocabulary.from_dict(find_checkpoint(out).config["task"]["vocab"])
    else:
        vocab = Vocabulary.build((c for p in sources for c in chunks(p)) if text.tokens == "char" else chunks(data),
                                 text.tokens, max_size=text.vocab_size)
    config = LMConfig(vocab_size=len(vocab), **options)       # the cutoffs checked against the vocabulary
    cache = out / "tokens"                        # made only once the text has been read and checked
    cache.mkdir(parents=True, exist_ok=True)
    ids = tokenize_file(data, vocab, cache / "train.bin", text.encoding)
    if valid is not None:
        valid_ids = tokenize_file(valid, vocab, cache / "valid.bin", text.encoding)
    else:
        cut = int(len(ids) * (1 - text.valid_fraction))
        ids, valid_ids = ids[:cut], ids[cut:]
    train_batches = StreamBatches(ids, text.batch_size, text.bptt, random_length=text.random_length,
                                  seed=train.seed)
    valid_batches = StreamBatches(valid_ids, min(text.batch_size, max(1, len(valid_ids) // (2 * text.bptt))),
                                  text.bptt)
    torch.manual_seed(train.seed)
    lm = LanguageModel(config)
    task = LanguageModelTask(lm, vocab)
    return Trainer(task, train, out).fit(train_batches, lambda: valid_batches(0), resume=resume)


def evaluate_lm(checkpoint: Path, data: Path, *, encoding: str = "utf-8", bptt: int = 256,
                batch_size: int = 8) -> dict:
    """Loss (nats per token), perplexity and, for character and BPE models, bits per character of a text file.

    Returns a dict with ``loss``, ``perplexity``, ``tokens`` and (char, bpe) ``bits_per_char``: the
    summed loss over the characters the predicted tokens stand for (``Vocabulary.count_chars``), in
    bits, which compares subword models with character models.
    """
    trained = load(checkpoint)
    total, count, chars, state = 0.0, 0, 0, None
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        ids = tokenize_file(data, trained.vocab, Path(tmp) / "eval.bin", encoding)    # memory-mapped
        streams = max(1, min(batch_size, len(ids) // 2))
        for x, y, _ in StreamBatches(ids, streams, bptt)(0):
            logits, state = trained.model(x, state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
            counted = trained.vocab.count_chars(x.numpy(), y.numpy())            # None for words
            chars = None if counted is None else chars + counted
    loss = total / count
    result = {"loss": loss, "perplexity": math.exp(loss), "tokens": count}
    if chars:
        result["bits_per_char"] = total / chars / math.log(2)
    return result


def _refuse_used(out: Path) -> None:
    # The engine refuses too, but only after the text is tokenised into ``out``: refuse first.
    if holds_run(out):
        raise ValueError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
