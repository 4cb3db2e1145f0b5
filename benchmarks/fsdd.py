"""The Free Spoken Digit Dataset: rnnkit speech recognisers trained within wall-clock budgets.

    python benchmarks/fsdd.py [--part split|loso|connected|all] [--ctc-bidirectional] [--bf16] [--data-dir DIR]
                              [--out DIR] [--json FILE]

1. ``split``: the official split (recordings 0-4 of each speaker and digit are the 300 test files,
   5-49 train; 10% of the training files held out for validation): a word classifier (log-mel
   normalised with the training set's statistics, two strided convolutions, bidirectional LSTM,
   mean+max pooling), test accuracy and its errors, in ``--minutes``.
2. ``loso``: leave one speaker out: train on five speakers, test on all 500 recordings of the
   sixth, all six folds (``--loso-minutes`` each): mean and worst accuracy.
3. ``connected``: connected digits (2-7 per utterance, random pauses, background noise at 10-30 dB
   SNR; ``rnnkit.tasks.speech.digits``) made from the training recordings to train a
   unidirectional word-unit CTC recogniser (``--ctc-minutes``), tested on utterances made from the
   test recordings only: WER, and the real-time factor (processing seconds per second of audio)
   offline and streaming in 100 ms chunks through ``step()``, on one core and on two, with the
   latency per chunk. ``--ctc-bidirectional`` trains an offline (bidirectional) recogniser
   instead: WER and the offline real-time factor only, as it cannot stream.

``--bf16`` trains under bfloat16 autocast (faster only on CPUs with AMX or AVX-512 BF16).

The recordings are read in place through manifests written to a temporary folder (never copied).
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import add_run_flags, data_dir, print_machine, run, write_result

from rnnkit.tasks import speech
from rnnkit.tasks.speech import SpeechData
from rnnkit.tasks.speech.api import read_waves, stream_file
from rnnkit.tasks.speech.corpus import FSDD_PATTERN
from rnnkit.tasks.speech.digits import connected_utterances
from rnnkit.train import TrainConfig

RATE = 8000
PUBLISHED = {"BiLSTM on MFCCs (random 80/10/10 split)": 0.984, "DTW k-NN (random 80/10/10 split)": 0.984,
             "log-mel + logistic regression": 0.970}


def recordings(folder: Path) -> list:
    """(path, digit, speaker, index) of every FSDD recording."""
    regex = re.compile(FSDD_PATTERN)
    out = []
    for path in sorted((folder / "recordings").glob("*.wav")):
        m = regex.fullmatch(path.name)
        out.append((path, m.group("label"), m.group("speaker"), int(m.group("index"))))
    if len(out) != 3000:
        raise ValueError(f"{folder / 'recordings'} holds {len(out)} FSDD recordings, not 3,000: check --data-dir")
    return out


def manifest(path: Path, rows: list) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "text", "speaker"])
        writer.writerows([(str(p), digit, speaker) for p, digit, speaker, _ in rows])
    return path


def word_model(args) -> dict:
    return dict(head="words", cell=args.cell, hidden_size=args.hidden_size, num_layers=args.layers,
                subsample=args.subsample, stack=2, bidirectional=not args.unidirectional, dropout=args.dropout)


def features(args) -> dict:
    """The ``SpeechData`` feature fields of the command line."""
    return dict(sample_rate=RATE, n_mels=args.n_mels, n_fft=args.n_fft, kind=args.kind, fmin=args.fmin,
                fmax=args.fmax)


def budget(minutes: float, args, **extra) -> TrainConfig:
    return TrainConfig(lr=args.lr, weight_decay=args.weight_decay, schedule="cosine_time", warmup_steps=100,
                       clip_grad_norm=1.0, max_time=60 * minutes, bf16=args.bf16,
                       eval_every=args.eval_every, seed=args.seed, log_every=200, progress=False, tensorboard=False,
                       **extra)


def train_words(train_manifest: Path, out: Path, minutes: float, args, valid=None):
    data = SpeechData(batch_size=32, speed_perturb=args.speed_perturb, noise_snr=args.noise_snr, vtlp=args.vtlp,
                      spec_augment=not args.no_spec_augment, normalisation=args.normalisation, **features(args))
    started = time.perf_counter()
    result = speech.fit(train_manifest, out, valid=valid, data=data, model=word_model(args),
                        train=budget(minutes, args, monitor="accuracy", monitor_mode="max"))
    return result, time.perf_counter() - started


def part_split(all_rows: list, tmp: Path, out: Path, args) -> dict:
    train_rows = [r for r in all_rows if r[3] >= 5]
    test_rows = [r for r in all_rows if r[3] < 5]
    result, seconds = train_words(manifest(tmp / "train.csv", train_rows), out / "split", args.minutes, args)
    scores = speech.evaluate(out / "split" / "BEST", manifest(tmp / "test.csv", test_rows),
                             confusion_png=str(out / "split" / "confusion.png"))
    print(f"official split: test accuracy {scores['accuracy']:.4f} ({len(scores['errors'])} errors)", flush=True)
    return {"minutes": args.minutes, "steps": result.steps, "train_seconds": round(seconds, 1),
            "test_recordings": scores["examples"], "test_accuracy": round(scores["accuracy"], 4),
            "test_errors": len(scores["errors"]), "errors": scores["errors"],
            "macro_f1": round(scores["macro_f1"], 4)}


def part_loso(all_rows: list, tmp: Path, out: Path, args) -> dict:
    folds, speakers = {}, sorted({r[2] for r in all_rows})
    unknown = sorted(set(args.loso_speakers or []) - set(speakers))
    if unknown:
        raise ValueError(f"--loso-speakers: no speaker {', '.join(unknown)}; FSDD's are {', '.join(speakers)}")
    for speaker in args.loso_speakers or speakers:
        train_rows = [r for r in all_rows if r[2] != speaker]
        test_rows = [r for r in all_rows if r[2] == speaker]
        run_dir = out / f"loso-{speaker}"
        result, seconds = train_words(manifest(tmp / f"train-{speaker}.csv", train_rows), run_dir,
                                      args.loso_minutes, args)
        scores = speech.evaluate(run_dir / "BEST", manifest(tmp / f"test-{speaker}.csv", test_rows))
        folds[speaker] = {"accuracy": round(scores["accuracy"], 4), "steps": result.steps,
                          "train_seconds": round(seconds, 1)}
        print(f"leave out {speaker}: accuracy {scores['accuracy']:.4f}", flush=True)
    accuracies = [f["accuracy"] for f in folds.values()]
    return {"minutes_per_fold": args.loso_minutes, "speakers": len(folds), "folds": folds, "mean_accuracy": round(statistics.mean(accuracies), 4),
            "worst_accuracy": min(accuracies)}


def real_time_factors(checkpoint: Path, waves: list, threads: int, chunk_ms: float) -> dict:
    """Processing seconds per second of audio, offline (batched) and, for a model that streams, in
    chunks of ``chunk_ms`` through ``step()``, on ``threads`` threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        trained = speech.load(checkpoint)
        audio = sum(len(w) for w in waves) / RATE
        trained.recognise(waves[:8])                                       # warm up
        started = time.perf_counter()
        trained.recognise(waves)
        offline = (time.perf_counter() - started) / audio
        if not trained.model.config.streamable():
            return {"offline_rtf": round(offline, 4)}
        latencies = []
        started = time.perf_counter()
        for wave in waves:
            latencies += stream_file(trained, wave, chunk_ms)[2].latencies
        streamed = (time.perf_counter() - started) / audio
    finally:
        torch.set_num_threads(previous)
    latencies.sort()
    return {"offline_rtf": round(offline, 4), "streaming_rtf": round(streamed, 4),
            "chunk_latency_ms_median": round(1000 * statistics.median(latencies), 2),
            "chunk_latency_ms_p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2)}


def part_connected(all_rows: list, tmp: Path, out: Path, args) -> dict:
    train_rows = [r for r in all_rows if r[3] >= 5]
    test_rows = [r for r in all_rows if r[3] < 5]
    data = SpeechData(batch_size=32, connected=args.connected, connected_valid=300, units="words",
                      normalisation="global", speed_perturb=args.ctc_speed_perturb, **features(args))
    model = dict(head="ctc", cell="lstm", hidden_size=args.ctc_hidden_size, num_layers=args.ctc_layers,
                 subsample=args.ctc_subsample, stack=3, bidirectional=args.ctc_bidirectional, dropout=args.dropout)
    init_from, classifier = None, {}
    if args.ctc_init == "words":             # the split part's classifier, or one trained here the same way
        init_from = out / "split" / "BEST"
        if not init_from.exists():
            result, seconds = train_words(manifest(tmp / "train.csv", train_rows), out / "words", args.minutes, args)
            init_from = out / "words" / "BEST"
            classifier = {"classifier_steps": result.steps, "classifier_seconds": round(seconds, 1)}
        shape = word_model(args)
        model.update({k: shape[k] for k in ("cell", "hidden_size", "subsample", "stack", "bidirectional")})
    started = time.perf_counter()
    result = speech.fit(manifest(tmp / "train.csv", train_rows), out / "connected", data=data, model=model,
                        init_from=init_from, train=budget(args.ctc_minutes, args, monitor="wer", monitor_mode="min"))
    seconds = time.perf_counter() - started
    test_manifest = manifest(tmp / "test.csv", test_rows)
    scores = speech.evaluate(out / "connected" / "BEST", test_manifest, connected=args.test_utterances,
                             connected_seed=args.seed + 1000)
    print(f"connected digits: test WER {scores['wer']:.4f}", flush=True)
    recorded = read_waves(speech.read_corpus(test_manifest), RATE)
    made = connected_utterances(list(zip(recorded, [r[1] for r in test_rows])), 100, args.seed + 1000,
                                sample_rate=RATE)
    waves = [u.wave for u in made]
    speed = {f"{n} thread{'s' if n > 1 else ''}": real_time_factors(out / "connected" / "BEST", waves, n, 100.0)
             for n in (1, 2)}
    return {"minutes": args.ctc_minutes, "model": model, "init": args.ctc_init, **classifier,
            "speed_perturb": args.ctc_speed_perturb,
            "training_utterances": args.connected, "steps": result.steps,
            "train_seconds": round(seconds, 1), "test_utterances": scores["utterances"], "test_words": scores["words"],
            "test_wer": round(scores["wer"], 4), "test_cer": round(scores["cer"], 4),
            "substitutions": scores["substitutions"], "deletions": scores["deletions"],
            "insertions": scores["insertions"], "worst": scores["worst"], "speed (100 ms chunks)": speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("split", "loso", "connected", "all"), default="all", help="(default: all)")
    parser.add_argument("--minutes", type=float, default=5.0, help="split: training budget (default: 5)")
    parser.add_argument("--loso-minutes", type=float, default=2.0, help="loso: budget per fold (default: 2)")
    parser.add_argument("--loso-speakers", type=lambda text: text.split(","), default=None,
                        help="loso: only the folds leaving out these speakers (default: all six)")
    parser.add_argument("--ctc-minutes", type=float, default=5.0, help="connected: training budget (default: 5)")
    parser.add_argument("--n-mels", type=int, default=40, help="mel filters (default: 40)")
    parser.add_argument("--n-fft", type=int, default=None, help="FFT size (default: the 25 ms window, 200)")
    parser.add_argument("--fmin", type=float, default=20.0, help="lowest mel filter frequency, Hz (default: 20)")
    parser.add_argument("--fmax", type=float, default=None,
                        help="highest mel filter frequency, Hz (default: half the sample rate, 4000)")
    parser.add_argument("--noise-snr", type=float, default=None, help="word classifier: noise augmentation at SNR "
                        "to SNR + 20 dB (default: none)")
    parser.add_argument("--vtlp", type=float, default=0.0, help="word classifier: VTLP frequency warps in "
                        "[1 - X, 1 + X] (default: 0, none)")
    parser.add_argument("--cell", choices=("lstm", "gru"), default="lstm", help="word classifier (default: lstm)")
    parser.add_argument("--kind", choices=("fbank", "mfcc"), default="fbank", help="features (default: fbank)")
    parser.add_argument("--normalisation", choices=("utterance", "global", "none"), default="global",
                        help="word classifier's features (default: global)")
    parser.add_argument("--speed-perturb", type=lambda text: [float(f) for f in text.split(",")] if text else [],
                        default=[0.9, 1.0, 1.1], help="word classifier: speed factors (default: 0.9,1.0,1.1; '' none)")
    parser.add_argument("--no-spec-augment", action="store_true", help="word classifier: no SpecAugment masks")
    parser.add_argument("--subsample", choices=("stack", "conv", "none"), default="conv",
                        help="word classifier: two strided convolutions, or frames stacked 2 at a time (default: conv)")
    parser.add_argument("--hidden-size", type=int, default=128, help="word classifier (default: 128)")
    parser.add_argument("--layers", type=int, default=2, help="word classifier (default: 2)")
    parser.add_argument("--unidirectional", action="store_true",
                        help="word classifier (and the recogniser it starts with --ctc-init words): unidirectional "
                             "layers; with --subsample stack that recogniser streams (default: bidirectional)")
    parser.add_argument("--ctc-hidden-size", type=int, default=192, help="connected recogniser (default: 192)")
    parser.add_argument("--ctc-layers", type=int, default=3, help="connected recogniser (default: 3)")
    parser.add_argument("--ctc-subsample", choices=("stack", "conv", "none"), default="stack",
                        help="connected recogniser: frames stacked 3 at a time (streamable), or two strided "
                             "convolutions (default: stack)")
    parser.add_argument("--ctc-init", choices=("none", "words"), default="none",
                        help="connected: start the recogniser's encoder from a word classifier of the same training "
                             "recordings (the split part's, or one trained first with --minutes and the word "
                             "classifier's flags; the recogniser takes its subsampling, cell, width and "
                             "direction) (default: none)")
    parser.add_argument("--ctc-speed-perturb", type=lambda text: [float(f) for f in text.split(",")] if text else [],
                        default=[], help="connected: speed factors of the training utterances (default: none)")
    parser.add_argument("--ctc-bidirectional", action="store_true",
                        help="connected: an offline bidirectional recogniser (default: unidirectional, streamable)")
    parser.add_argument("--bf16", action="store_true",
                        help="train under bfloat16 autocast: faster only on CPUs with AMX or AVX-512 BF16 "
                             "(default: float32)")
    parser.add_argument("--dropout", type=float, default=0.1, help="(default: 0.1)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay (default: 0)")
    parser.add_argument("--eval-every", type=int, default=250, help="steps between validations (default: 250)")
    parser.add_argument("--connected", type=int, default=6000, help="connected training utterances (default: 6000)")
    parser.add_argument("--test-utterances", type=int, default=500, help="connected test utterances (default: 500)")
    add_run_flags(parser, "fsdd", "runs/fsdd")
    args = parser.parse_args()
    folder = data_dir("fsdd", args.data_dir)
    print_machine()
    all_rows = recordings(folder)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    result = {"benchmark": "fsdd", "features": features(args), "lr": args.lr, "weight_decay": args.weight_decay,
              "bf16": args.bf16, "threads": torch.get_num_threads(),
              "seed": args.seed,
              "word_classifier": dict(word_model(args), speed_perturb=args.speed_perturb, noise_snr=args.noise_snr,
                                      vtlp=args.vtlp, spec_augment=not args.no_spec_augment, normalisation=args.normalisation),
              "published_accuracy_other_splits": PUBLISHED}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.part in ("split", "all"):
            result["official_split"] = part_split(all_rows, tmp, out, args)
        if args.part in ("loso", "all"):
            result["leave_one_speaker_out"] = part_loso(all_rows, tmp, out, args)
        if args.part in ("connected", "all"):
            result["connected_digits"] = part_connected(all_rows, tmp, out, args)
    write_result(args.json, result)


if __name__ == "__main__":
    run(main)
