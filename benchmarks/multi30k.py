"""Multi30k German to English (test 2016, flickr): an rnnkit attention translator trained within a
wall-clock budget, scored two ways.

    python benchmarks/multi30k.py [--minutes 60] [--data-dir DIR] [--out DIR] [--json FILE]

Training reads the raw (cased, untokenised) files ``raw/train.{de,en}`` and validates on
``raw/val.{de,en}`` (greedy BLEU at each evaluation, in ``OUT/log.csv``); ``OUT/BEST`` is the
checkpoint of the best validation BLEU. The learning rate follows a cosine over the budget's
seconds (``schedule="cosine_time"``), which covers training and its evaluations; the evaluations
are spaced by the steps expected from short timed runs of the same recipe before training (not
counted).

Reported, for ``BEST`` decoding the 1,000 test sentences with ``--beam`` and ``--length-penalty``:

1. sacreBLEU on the detokenised, cased output against ``raw/test_2016_flickr.en``, with its
   signature (the standard way to report);
2. BLEU on the lower-cased, punctuation-normalised, Moses-tokenised output (sacremoses, which
   reproduces all 1,000 ``tok/`` references from the raw ones exactly) against
   ``tok/test_2016_flickr.lc.norm.tok.en``, tokenised no further: how the PyTorch seq2seq
   tutorials score (bentrevett/pytorch-seq2seq: GRU encoder-decoder 20.6, with Bahdanau attention
   28.3, convolutional 34.1, Transformer 36.5).

Also: chrF, the test loss and perplexity, training tokens (target subwords) per second, and
decoding sentences per second at beam 1 and at ``--beam``. Needs ``pip install sacremoses``
(``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

from common import add_run_flags, data_dir, print_machine, run, seconds_per_run_step, write_result

from rnnkit.tasks import translate
from rnnkit.tasks.translate import TranslateData
from rnnkit.train import TrainConfig

PUBLISHED = {"bentrevett GRU encoder-decoder": 20.6, "bentrevett GRU + Bahdanau attention": 28.3,
             "bentrevett convolutional seq2seq": 34.1, "bentrevett Transformer": 36.5}


def recipe(args, folder: Path) -> tuple:
    """(TranslateData, model options) of the command line."""
    raw = folder / "raw"
    data = TranslateData(source=str(raw / "train.de"), target=str(raw / "train.en"),
                         valid_source=str(raw / "val.de"), valid_target=str(raw / "val.en"),
                         vocab_size=args.vocab_size, joint_vocab=args.joint_vocab, batch_size=args.batch_size)
    model = dict(cell=args.cell, embedding_size=args.embedding_size, hidden_size=args.hidden_size,
                 encoder_layers=args.encoder_layers, decoder_layers=args.decoder_layers, attention=args.attention,
                 input_feeding=args.input_feeding, dropout=args.dropout, label_smoothing=args.label_smoothing)
    return data, model


def moses_bleu(hypotheses: list, references_file: Path) -> float:
    """BLEU of lower-cased, punctuation-normalised, Moses-tokenised ``hypotheses`` against the
    tokenised references, as tokens (sacreBLEU with ``tokenize="none"``)."""
    from sacrebleu.metrics import BLEU
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    tokenizer, normalizer = MosesTokenizer("en"), MosesPunctNormalizer("en")
    tokenised = [tokenizer.tokenize(normalizer.normalize(h), escape=True, return_str=True).lower() for h in hypotheses]
    references = references_file.read_text(encoding="utf-8").splitlines()
    return BLEU(tokenize="none").corpus_score(tokenised, [references]).score


def sentences_per_second(checkpoint: Path, sentences: list, beam: int, alpha: float) -> float:
    trained = translate.load(checkpoint)
    started = time.perf_counter()
    trained.translate(sentences, beam=beam, length_penalty=alpha)
    return len(sentences) / (time.perf_counter() - started)


def validation_curve(log: Path) -> list:
    """(step, validation BLEU) of each evaluation in ``log.csv``."""
    with open(log, newline="", encoding="utf-8") as handle:
        return [(int(row["step"]), round(float(row["bleu"]), 2)) for row in csv.DictReader(handle)
                if row.get("bleu")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget, evaluations included (default: 60)")
    parser.add_argument("--cell", choices=("gru", "lstm"), default="gru", help="(default: gru)")
    parser.add_argument("--embedding-size", type=int, default=256, help="(default: 256)")
    parser.add_argument("--hidden-size", type=int, default=256, help="(default: 256)")
    parser.add_argument("--encoder-layers", type=int, default=2, help="(default: 2)")
    parser.add_argument("--decoder-layers", type=int, default=1, help="(default: 1)")
    parser.add_argument("--attention", choices=("general", "dot", "additive", "none"), default="general",
                        help="(default: general)")
    parser.add_argument("--input-feeding", action="store_true", help="Luong's input feeding (slower)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="BPE vocabulary (default: 8000)")
    parser.add_argument("--joint-vocab", action="store_true", help="one BPE vocabulary and embedding for both sides")
    parser.add_argument("--dropout", type=float, default=0.3, help="(default: 0.3)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="(default: 0.1)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentence pairs per batch (default: 64)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default: 2e-3)")
    parser.add_argument("--evaluations", type=int, default=10, help="validations over the run (default: 10)")
    parser.add_argument("--beam", type=int, default=5, help="test decoding beam (default: 5)")
    parser.add_argument("--length-penalty", type=float, default=1.0, help="GNMT alpha (default: 1.0)")
    add_run_flags(parser, "multi30k", "runs/multi30k")
    args = parser.parse_args()
    folder = data_dir("multi30k", args.data_dir)
    print_machine()
    data, model = recipe(args, folder)
    budget = 60 * args.minutes

    def short_run(steps: int):
        with tempfile.TemporaryDirectory() as tmp:
            return translate.fit(None, Path(tmp) / "run", data=data, model=model,
                                 train=TrainConfig(max_steps=steps, eval_every=10_000, lr=args.lr, progress=False,
                                                   tensorboard=False))

    per_step = seconds_per_run_step(short_run, short=10, long=110)
    steps = max(10, int(0.9 * budget / per_step))                  # expected; evaluations are spaced by it
    train = TrainConfig(lr=args.lr, schedule="cosine_time", warmup_steps=min(500, steps // 20), clip_grad_norm=1.0,
                        max_time=budget, eval_every=max(1, steps // args.evaluations),
                        seed=args.seed, log_every=100, monitor="bleu", monitor_mode="max", tensorboard=False)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = translate.fit(None, out, data=data, model=model, train=train)
    train_seconds = time.perf_counter() - started
    raw, tok = folder / "raw", folder / "tok"
    hypotheses = out / "test_2016_flickr.hyp.en"
    scores = translate.evaluate(out / "BEST", source=raw / "test_2016_flickr.de", target=raw / "test_2016_flickr.en",
                                beam=args.beam, length_penalty=args.length_penalty, hypotheses=hypotheses,
                                plot_attention=1, attention_png=out / "attention-1.png")
    texts = hypotheses.read_text(encoding="utf-8").splitlines()
    sources = (raw / "test_2016_flickr.de").read_text(encoding="utf-8").splitlines()
    tokens_per_step = data.batch_size * target_subwords_per_pair(out)
    write_result(args.json, {
        "benchmark": "multi30k-de-en", "minutes": args.minutes, "model": model, "vocab_size": data.vocab_size,
        "joint_vocab": data.joint_vocab, "batch_size": data.batch_size, "lr": args.lr,
        "planned_steps": steps, "steps": result.steps, "stopped_because": result.stopped_because,
        "train_seconds": round(train_seconds, 1),
        "train_target_subwords_per_second": round(result.steps * tokens_per_step / train_seconds),
        "test_sacrebleu": round(scores["bleu"], 2), "bleu_signature": scores["bleu_signature"],
        "test_tokenised_lowercased_bleu": round(moses_bleu(texts, tok / "test_2016_flickr.lc.norm.tok.en"), 2),
        "test_chrf": round(scores["chrf"], 2), "test_loss": round(scores["loss"], 4),
        "test_perplexity": round(scores["perplexity"], 2), "decoding": {"beam": args.beam,
                                                                       "length_penalty": args.length_penalty},
        "validation_bleu_curve": validation_curve(out / "log.csv"),
        "decode_sentences_per_second": {"beam 1": round(sentences_per_second(out / "BEST", sources, 1, 0.0), 1),
                                        f"beam {args.beam}": round(sentences_per_second(out / "BEST", sources,
                                                                                       args.beam, args.length_penalty), 1)},
        "published_tokenised_bleu": PUBLISHED})


def target_subwords_per_pair(out: Path) -> float:
    """The mean number of target subwords (``<eos>`` counted) of the training pairs, as the run encoded them."""
    from rnnkit.tasks.translate.api import _encoded
    from rnnkit.tasks.translate.pairs import read_parallel

    trained = translate.load(out / "BEST")
    d = trained.data
    targets = _encoded(read_parallel(d["source"], d["target"]), trained.source_vocab, trained.target_vocab,
                       TranslateData(**d), "training", limit=d["max_length"])[1]
    return sum(len(ids) - 1 for ids in targets) / len(targets)


if __name__ == "__main__":
    run(main)
