"""The ``rnnkit`` command line (also ``python -m rnnkit``).

Thin on purpose: argument parsing and output only. Each command is one
``_add_<name>`` function that declares its arguments and one ``_cmd_<name>``
function that runs it; the work lives in importable modules (imported lazily,
so ``rnnkit --help`` does not wait for torch).

Exit codes: 0 success, 1 runtime error, 2 usage error. Errors are one line on
stderr, ``rnnkit: error: ...``, without a traceback (set ``RNNKIT_DEBUG=1`` to
get the traceback back).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional, Sequence

PROG = "rnnkit"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line found after parsing (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line: ``rnnkit: error: ...``."""

    def error(self, message: str):  # noqa: D102 - argparse API
        hint = f" (see '{self.prog} --help')"
        _print_error(message + hint)
        sys.exit(EXIT_USAGE)


def _print_error(message: str) -> None:
    message = " ".join(str(message).split())  # one line, whatever the exception said
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _cutoffs(text: str) -> list:
    """Comma-separated positive integers, e.g. ``2000,5000``."""
    try:
        return [_positive_int(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers such as 2000,5000, "
                                         f"got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# ----------------------------------------------------------------------------- output files


def check_output_path(path: str, flag: str = "--json") -> str:
    """Fail early (UsageError) if ``path`` cannot be written; return it made absolute.

    Run this before any long computation whose result goes to ``path``.
    """
    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path}: is a directory, expected a file path")
    if not os.path.isdir(directory):
        raise UsageError(f"{flag} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: directory {directory} is not writable")
    return path


def write_json_atomic(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that ``path`` is never half-written.

    The JSON goes to a temporary file in the same directory, which is then
    renamed over ``path`` (``os.replace`` is atomic on one file system). On any
    error the temporary file is removed and ``path`` is left as it was.
    """
    from .files import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------- demo


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the tour: 'hello' with RNN/LSTM/GRU, streaming, torch.nn parity, a 2-minute character LM",
        description=(
            "Train a character RNN, LSTM and GRU to continue 'h' as 'ello', then show "
            "streaming with layer.step() and the difference from torch.nn for the same weights."
        ),
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--steps", type=_positive_int, default=None,
        help="training steps for each 'hello' model (default: the exercise's own default)",
    )
    p.add_argument(
        "--verbose", action="store_true", default=False,
        help="print training progress of the 'hello' models (default: off)",
    )
    p.add_argument(
        "--threads", type=_positive_int, default=1, metavar="N",
        help="torch.set_num_threads(N) during the demo; its models are tiny (default: %(default)s)",
    )
    p.add_argument("--lm-seconds", type=float, default=120.0,
                   help="training time of the character language model, 0 to skip it (default: %(default)s)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from rnnkit import demo

    problems = demo.run(seed=args.seed, steps=args.steps, verbose=args.verbose, threads=args.threads,
                         lm_seconds=args.lm_seconds)
    for problem in problems:
        _print_error(problem)
    return EXIT_RUNTIME if problems else EXIT_OK


# ----------------------------------------------------------------------------- train / evaluate / generate


def _add_train(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model for a task (lm, classify)",
                              description="Train a model for a task; checkpoints and log.csv go to --out.")
    tasks = p.add_subparsers(title="tasks", dest="task", metavar="TASK")
    p.set_defaults(func=None, parser=p, missing=("task", tasks))
    lm = tasks.add_parser("lm", help="a character, word or subword (BPE) language model on a UTF-8 text file",
                          description="Train a language model (embedding -> rnnkit RNN/LSTM/GRU -> decoder) "
                                      "with truncated BPTT on any UTF-8 text file.")
    _add_run_arguments(lm, data="training text file", valid="validation text file (default: the last 10%% of --data)")
    lm.add_argument("--tokens", choices=("char", "word", "bpe"), default="char",
                    help="characters, words, or byte-pair-encoded subwords (default: %(default)s)")
    lm.add_argument("--vocab-size", type=_positive_int, default=None,
                    help="bpe: vocabulary size; word: most words kept, the rest become <unk> "
                         "(default: 8000 for bpe, every word)")
    lm.add_argument("--encoding", default="utf-8", help="text encoding of the files (default: %(default)s)")
    lm.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell (default: %(default)s)")
    lm.add_argument("--embedding-size", type=_positive_int, default=256, help="embedding size (default: %(default)s)")
    lm.add_argument("--hidden-size", type=_positive_int, default=512, help="hidden size (default: %(default)s)")
    lm.add_argument("--layers", type=_positive_int, default=2, help="recurrent layers (default: %(default)s)")
    lm.add_argument("--dropout", type=float, default=0.0, help="locked dropout between layers (default: %(default)s)")
    lm.add_argument("--input-dropout", type=float, default=0.0,
                    help="locked dropout on the embeddings (default: %(default)s)")
    lm.add_argument("--embedding-dropout", type=float, default=0.0,
                    help="drop whole words' embeddings (default: %(default)s)")
    lm.add_argument("--weight-drop", type=float, default=0.0, help="DropConnect on W_hh (default: %(default)s)")
    lm.add_argument("--tie-weights", action="store_true", help="share the embedding and decoder weights (default: off)")
    lm.add_argument("--init-range", type=float, default=None,
                    help="initialise every weight uniformly in [-R, R], e.g. 0.1 (default: each layer's own)")
    lm.add_argument("--adaptive-softmax", type=_cutoffs, default=None, metavar="CUTOFFS",
                    help="an adaptive softmax decoder for word tokens: the first id of each tail cluster, "
                         "comma-separated, e.g. 2000,5000 (default: a full softmax)")
    lm.add_argument("--batch-size", type=_positive_int, default=32, help="parallel streams (default: %(default)s)")
    lm.add_argument("--bptt", type=_positive_int, default=64, help="truncated-BPTT window (default: %(default)s)")
    lm.add_argument("--random-length", action="store_true",
                    help="AWD-LSTM's random window lengths around --bptt (default: off)")
    lm.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw", help="optimizer (default: %(default)s)")
    lm.add_argument("--schedule", choices=("constant", "cosine", "plateau", "epoch_decay"), default=None,
                    help="learning-rate schedule; plateau halves it after an evaluation without improvement, "
                         "epoch_decay halves it every epoch after the 4th (default: cosine with --max-steps, "
                         "else constant)")
    lm.add_argument("--clip", type=float, default=1.0,
                    help="clip the gradient norm to this value; 0 turns clipping off (default: %(default)s)")
    _add_training_options(lm, lr=3e-3, eval_every=200, epochs=1)
    lm.set_defaults(func=_cmd_train_lm)
    _add_train_classify(tasks)


def _add_training_options(p, *, lr: float, eval_every: int, epochs: int) -> None:
    """The engine's flags, shared by every ``train`` task (read back by ``_train_config``)."""
    p.add_argument("--lr", type=float, default=lr, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--max-steps", type=_positive_int, default=None,
                   help=f"stop after this many steps (default: none; with no limit, {epochs} epoch(s))")
    p.add_argument("--max-epochs", type=_positive_int, default=None, help="stop after this many passes over the data (default: none)")
    p.add_argument("--max-time", type=float, default=None, help="stop after this many seconds (default: none)")
    p.add_argument("--eval-every", type=_positive_int, default=eval_every, help="steps between evaluations (default: %(default)s)")
    p.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast (default: off)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.set_defaults(default_epochs=epochs)


def _train_config(args: argparse.Namespace):
    """The ``TrainConfig`` of ``_add_training_options``' flags: AdamW, warm-up, cosine decay with
    --max-steps, gradient clipping at 1."""
    from .train import TrainConfig

    if args.max_steps is None and args.max_epochs is None and args.max_time is None:
        args.max_epochs = args.default_epochs
    return TrainConfig(lr=args.lr, schedule="cosine" if args.max_steps else "constant",
                       warmup_steps=min(100, (args.max_steps or 1000) // 10), clip_grad_norm=1.0, bf16=args.bf16,
                       max_steps=args.max_steps, max_epochs=args.max_epochs, max_time=args.max_time,
                       eval_every=args.eval_every, seed=args.seed)


def _cmd_train_lm(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .tasks.lm_files import LMData, train_lm

    train = replace(_train_config(args), optimizer=args.optimizer, clip_grad_norm=args.clip or None,
                    **({"schedule": args.schedule} if args.schedule else {}))
    model = dict(cell=args.cell, embedding_size=args.embedding_size, hidden_size=args.hidden_size,
                 num_layers=args.layers, dropout=args.dropout, input_dropout=args.input_dropout,
                 embedding_dropout=args.embedding_dropout, weight_drop=args.weight_drop,
                 tie_weights=args.tie_weights, init_range=args.init_range, softmax_cutoffs=args.adaptive_softmax)
    result = train_lm(args.data, args.out, valid=args.valid, model=model, resume=args.resume, train=train,
                      text=LMData(tokens=args.tokens, vocab_size=args.vocab_size, encoding=args.encoding,
                                  batch_size=args.batch_size, bptt=args.bptt, random_length=args.random_length))
    _print_training_result(result)
    return EXIT_OK


def _add_run_arguments(parser, *, data: str, valid: str) -> None:
    """The arguments every ``train`` task has: its data, validation data, run directory and --resume."""
    parser.add_argument("--data", required=True, help=data)
    parser.add_argument("--out", required=True, help="run directory for checkpoints and log.csv")
    parser.add_argument("--valid", help=valid)
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint (default: off)")


def _print_training_result(result) -> None:
    metrics = "  ".join(f"validation {key} {value:.4f}" for key, value in result.metrics.items())
    print(f"stopped ({result.stopped_because}) after {result.steps} steps; {metrics}; checkpoint {result.checkpoint}")


def _add_train_classify(tasks) -> None:
    p = tasks.add_parser(
        "classify", help="a sequence classifier on labelled texts (CSV/TSV/JSONL/SST) or numeric sequences",
        description="Train a classifier (embedding or features -> bidirectional rnnkit RNN/LSTM/GRU -> pooling -> "
                    "classes). --data digits trains on scikit-learn's 8x8 digits read row by row.")
    _add_run_arguments(p, data="training file, or 'digits' for the built-in digits",
                       valid="validation file (default: 10%% of --data held out with a fixed seed)")
    p.add_argument("--format", choices=("csv", "tsv", "jsonl", "sst"), default=None,
                   help="file format (default: from the suffix, else SST 'LABEL SENTENCE' lines)")
    p.add_argument("--text-col", default=None, help="text column name or 0-based number (default: 'text', or 0)")
    p.add_argument("--label-col", default=None, help="label column name or 0-based number (default: 'label', or 1)")
    p.add_argument("--no-header", action="store_true", help="CSV/TSV files have no header row (default: off)")
    p.add_argument("--encoding", default="utf-8", help="text encoding of the files (default: %(default)s)")
    p.add_argument("--multi-label", action="store_true", help="several labels per example (default: off)")
    p.add_argument("--label-sep", default=",", help="separator of multiple labels (default: %(default)r)")
    p.add_argument("--sequences", action="store_true",
                   help="the files hold numeric sequences (long CSV id,t,features...,label or .npz) (default: off)")
    p.add_argument("--tokens", choices=("word", "char", "bpe"), default="word",
                   help="tokens (default: %(default)s; with --init-from, the language model's)")
    p.add_argument("--no-lowercase", action="store_true", help="keep the case of the text (default: lowercase)")
    p.add_argument("--min-freq", type=_positive_int, default=1, help="rarer tokens become <unk> (default: %(default)s)")
    p.add_argument("--max-vocab", type=_positive_int, default=None, help="at most this many token ids (default: all)")
    p.add_argument("--bpe-vocab-size", type=_positive_int, default=8000, help="BPE vocabulary size (default: %(default)s)")
    p.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="recurrent cell (default: %(default)s)")
    p.add_argument("--embedding-size", type=_positive_int, default=128, help="embedding size (default: %(default)s)")
    p.add_argument("--hidden-size", type=_positive_int, default=128, help="hidden size per direction (default: %(default)s)")
    p.add_argument("--layers", type=_positive_int, default=1, help="recurrent layers (default: %(default)s)")
    p.add_argument("--unidirectional", action="store_true", help="forward direction only (default: bidirectional)")
    p.add_argument("--pooling", default="max+mean+last",
                   help="last, max, mean, attention or a '+' concatenation (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout on embeddings, between layers and before "
                                                              "the classifier (default: %(default)s)")
    p.add_argument("--word-dropout", type=float, default=0.0,
                   help="in training, replace each token by <unk> with this probability (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="examples per batch (default: %(default)s)")
    p.add_argument("--class-weights", choices=("balanced",), default=None,
                   help="weight the loss by inverse class frequency (default: unweighted)")
    p.add_argument("--init-from", metavar="LMDIR", default=None,
                   help="initialise from a language-model run (its vocabulary, embedding and layers; ULMFiT's "
                        "discriminative lrs and gradual unfreezing) (default: random initialisation)")
    _add_training_options(p, lr=3e-3, eval_every=100, epochs=10)
    p.set_defaults(func=_cmd_train_classify)


def _cmd_train_classify(args: argparse.Namespace) -> int:
    from .tasks.classify_files import ClassifyData, fit

    train = _train_config(args)
    data = ClassifyData(fmt=args.format, text_col=args.text_col, label_col=args.label_col,
                        header=False if args.no_header else None, encoding=args.encoding,
                        multi_label=args.multi_label, label_sep=args.label_sep, sequences=args.sequences,
                        tokens=args.tokens, lowercase=not args.no_lowercase, min_freq=args.min_freq,
                        max_vocab=args.max_vocab, bpe_vocab_size=args.bpe_vocab_size, batch_size=args.batch_size)
    model = dict(pooling=args.pooling, dropout=args.dropout, word_dropout=args.word_dropout,
                 bidirectional=not args.unidirectional)
    if args.init_from is None:
        model.update(cell=args.cell, embedding_size=args.embedding_size, hidden_size=args.hidden_size,
                     num_layers=args.layers)
    result = fit(args.data, args.out, valid=args.valid, data=data, model=model, class_weights=args.class_weights,
                 init_from=args.init_from, train=train, resume=args.resume)
    _print_training_result(result)
    return EXIT_OK


def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint on a file: a language model's loss and "
                                               "perplexity, a classifier's accuracy, F1 and confusion matrix")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a run directory (--out of training: its latest checkpoint), RUN/BEST (its best) or a checkpoint "
                        "directory; classifiers: repeat it to evaluate an ensemble (the mean of their probabilities)")
    p.add_argument("--data", required=True, help="file to evaluate on ('digits': a digits classifier's held-out part)")
    p.add_argument("--encoding", default=None, help="text encoding (default: utf-8, or the classifier's training one)")
    p.add_argument("--text-col", default=None, help="classifier: text column (default: as in training)")
    p.add_argument("--label-col", default=None, help="classifier: label column (default: as in training)")
    p.add_argument("--format", choices=("csv", "tsv", "jsonl", "sst"), default=None,
                   help="classifier: file format (default: as in training)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a line (default: off)")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .train import find_checkpoint

    if find_checkpoint(args.checkpoint[0]).config.get("task", {}).get("task") == "classify":
        from .tasks.classify_files import evaluate

        result = evaluate(args.checkpoint, args.data, text_col=args.text_col, label_col=args.label_col,
                          fmt=args.format, encoding=args.encoding)
        summary = {key: result[key] for key in ("accuracy", "macro_f1", "examples")}
    else:
        if len(args.checkpoint) > 1:
            raise UsageError(f"{args.checkpoint[0]} is a language model; ensembles (--checkpoint given "
                             f"{len(args.checkpoint)} times) are for classifiers: give one --checkpoint")
        from .tasks.lm_files import evaluate_lm

        result = summary = evaluate_lm(args.checkpoint[0], args.data, encoding=args.encoding or "utf-8")
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print("  ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                    for key, value in summary.items()))
    for name, scores in result.get("per_class", {}).items():
        print(f"  {name}: " + "  ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                                        for key, value in scores.items()))
    return EXIT_OK


def _add_predict(subparsers) -> None:
    p = subparsers.add_parser("predict", help="labels and probabilities of texts from a classifier",
                              description="Classify texts given as arguments or one per line of --input.")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a classifier's run directory, RUN/BEST (its best checkpoint) or a checkpoint directory; "
                        "repeat it to predict with an ensemble (the mean of their probabilities)")
    p.add_argument("--input", help="file with one text per line, blank lines skipped (default: the TEXT arguments)")
    p.add_argument("--encoding", default="utf-8", help="encoding of --input (default: %(default)s)")
    p.add_argument("--output", help="write JSON lines {text, label, probabilities} here (default: stdout, one line each)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output (default: refuse)")
    p.add_argument("--explain", action="store_true",
                   help="also show each token's importance: attention weights, or gradient x embedding (default: off)")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    if bool(args.texts) == bool(args.input):
        raise UsageError("give texts to classify or --input FILE (one of them)")
    if args.explain and len(args.checkpoint) > 1:
        raise UsageError("--explain reads one classifier: give one --checkpoint (not an ensemble)")
    output = check_output_path(args.output, "--output") if args.output else None
    if output and os.path.exists(output) and not args.force:
        raise UsageError(f"--output {output} exists; pass --force to overwrite it")
    from .data.text import read_chunks
    from .tasks.classify_files import load

    texts = args.texts or [line.strip() for line in "".join(read_chunks(args.input, args.encoding)).splitlines()
                           if line.strip()]
    classifier = load(args.checkpoint)
    rows = []
    for text, prediction in zip(texts, classifier.predict(texts)):
        row = {"text": text, "label": prediction.label, "probabilities": prediction.probabilities}
        if args.explain:
            explanation = classifier.explain(text)
            row["explanation"] = {"method": explanation.method,
                                  "tokens": [[t, s] for t, s in zip(explanation.tokens, explanation.scores)]}
        rows.append(row)
    if output:
        from .files import write_text_atomic

        write_text_atomic(output, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        print(f"wrote {len(rows)} predictions to {output}")
        return EXIT_OK
    for row in rows:
        label = row["label"] if isinstance(row["label"], str) else ",".join(row["label"])
        top = max(row["probabilities"].values())
        print(f"{label}\t{top:.4f}\t{row['text']}")
        if args.explain:
            print("\t" + " ".join(f"{t}:{s:.3f}" for t, s in row["explanation"]["tokens"]))
    return EXIT_OK


def _add_generate(subparsers) -> None:
    p = subparsers.add_parser("generate", help="stream text sampled from a language model")
    p.add_argument("--checkpoint", required=True, help="a run directory, RUN/BEST (its best checkpoint) or a checkpoint directory")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--length", type=_non_negative_int, default=200, help="tokens to generate (default: %(default)s)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature, 0 is greedy (default: %(default)s)")
    p.add_argument("--top-k", type=_positive_int, default=None, help="sample among the k likeliest tokens (default: all)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with this mass (default: off)")
    p.add_argument("--seed", type=int, default=None, help="random seed for sampling (default: fresh randomness)")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    import rnnkit

    model = rnnkit.load(args.checkpoint)
    pieces = model.generate(args.prompt, args.length, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, seed=args.seed)
    first = next(pieces, None)                        # bad arguments fail before anything is printed
    sys.stdout.write(args.prompt + (first or ""))
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return EXIT_OK


# ----------------------------------------------------------------------------- bench


def _add_bench(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmarks of rnnkit against torch.nn",
        description="Benchmarks of rnnkit against torch.nn, measured side by side in one process.",
    )
    bench = p.add_subparsers(title="benchmarks", dest="benchmark", metavar="BENCHMARK")
    p.set_defaults(func=None, parser=p, missing=("benchmark", bench))
    _add_bench_layers(bench)


def _add_bench_layers(subparsers) -> None:
    p = subparsers.add_parser(
        "layers",
        help="rnnkit.nn RNN/LSTM/GRU vs torch.nn: forward, forward+backward, one step",
        description=(
            "Time rnnkit.nn.RNN/LSTM/GRU against torch.nn with the same weights, in one "
            "process, alternating runs after a warmup; report medians. "
            "ratio = torch_ms / rnnkit_ms (above 1: rnnkit is faster)."
        ),
    )
    p.add_argument(
        "--quick", action="store_true", default=False,
        help="only the first shape and the step pass, fewer repeats (well under a minute) (default: off)",
    )
    p.add_argument(
        "--json", metavar="PATH", default=None,
        help="also write the results to PATH as a JSON list (default: don't)",
    )
    p.add_argument(
        "--repeats", type=_positive_int, default=None, metavar="N",
        help="timed runs of each implementation per measurement (default: 5, or 3 with --quick)",
    )
    p.add_argument(
        "--warmup", type=_non_negative_int, default=1, metavar="N",
        help="untimed runs of each implementation before timing (default: %(default)s)",
    )
    p.add_argument(
        "--threads", type=_positive_int, default=None, metavar="N",
        help="torch.set_num_threads(N) before timing (default: torch's own default)",
    )
    p.set_defaults(func=_cmd_bench_layers)


def _cmd_bench_layers(args: argparse.Namespace) -> int:
    json_path = check_output_path(args.json) if args.json is not None else None

    import torch

    from rnnkit.bench import layers

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shapes, step_shape, repeats = layers.bench_plan(quick=args.quick)
    if args.repeats is not None:
        repeats = args.repeats

    print(f"# rnnkit bench layers{' --quick' if args.quick else ''}: {layers.environment_summary()}")
    print(f"# {repeats} repeat(s) after {args.warmup} warmup run(s); medians in ms per call; "
          "ratio = torch_ms / rnnkit_ms (above 1: rnnkit faster)")
    print(layers.format_table_header(), flush=True)

    def warn(message: str) -> None:
        print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)

    rows = layers.run_layer_bench(
        shapes,
        repeats=repeats,
        step_shape=step_shape,
        warmup=args.warmup,
        on_result=lambda row: print(layers.format_row(row), flush=True),
        on_warning=warn,
    )
    if json_path is not None:
        write_json_atomic(json_path, rows)
        print(f"# wrote {len(rows)} results to {json_path}")
    return EXIT_OK


# ----------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "rnnkit: RNN, LSTM and GRU written from their equations on PyTorch, "
            "with hand-written backpropagation through time."
        ),
        epilog="Run 'rnnkit COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    parser.set_defaults(func=None, parser=parser, missing=("command", subparsers))
    _add_demo(subparsers)
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_generate(subparsers)
    _add_predict(subparsers)
    _add_bench(subparsers)
    # Later: _add_train, _add_evaluate, _add_generate, _add_predict.
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rnnkit")
    except Exception:
        return "(version unknown)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:  # nothing at all, or a command group without its subcommand
        what, action = args.missing
        args.parser.error(f"missing {what}: choose from {', '.join(action.choices)}")
    try:
        return args.func(args)
    except UsageError as e:
        _print_error(e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # FileNotFoundError is an OSError
        if os.environ.get("RNNKIT_DEBUG"):
            raise
        _print_error(e)
        return EXIT_RUNTIME


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
