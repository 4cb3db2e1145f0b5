"""The ``rnnkit`` command line (also ``python -m rnnkit``).

Thin on purpose: argument parsing and output only, generic over the task registry
(``rnnkit.tasks``). ``rnnkit train TASK`` takes its flags from the task's config dataclasses
(``rnnkit.options``: type, default and help live beside each field); ``evaluate`` and ``predict``
serve every task, dispatching on the task a checkpoint records. The work lives in importable modules,
imported lazily, so that ``rnnkit --help`` does not wait for torch.

Exit codes: 0 success; 1 runtime error (bad data, a missing file, a setting out of its range: the
error names the flag); 2 usage error (an unknown flag, a value that is not of the flag's type or not
among its choices, a count out of its range, arguments that cannot go together); 130 / 143 training stopped by SIGINT / SIGTERM with a checkpoint. Errors are one line on stderr, ``rnnkit: error: ...``, without a traceback (set
``RNNKIT_DEBUG=1`` to get the traceback back).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from typing import Any, Callable, Optional, Sequence

from . import options, tasks
from .tasks.spec import ReadText
from .train.config import TrainConfig, command_line_config, command_line_defaults

PROG = "rnnkit"
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2
EXIT_SIGNAL = {2: 130, 15: 143}                 # SIGINT, SIGTERM: 128 + the signal's number


UsageError = options.UsageError            # a problem with the command line found after parsing (exit code 2)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line: ``rnnkit: error: ...``."""

    def error(self, message: str):  # noqa: D102 - argparse API
        hint = f" (see '{self.prog} --help')"
        _print_error(message + hint)
        sys.exit(EXIT_USAGE)


def _print_error(message: str) -> None:
    message = " ".join(str(message).split())  # one line, whatever the exception said
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _int_at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _add_threads(parser, default: str = "torch's, one per core") -> None:
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help=f"torch.set_num_threads(N); on a machine busy with other work, 1 avoids stalls "
                             f"(default: {default})")


def _add_device(parser) -> None:
    parser.add_argument("--device", default="cpu",
                        help="where the model runs: cpu, or cuda / cuda:N where PyTorch sees a GPU (default: %(default)s)")


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


def write_rows(path: str, rows: list, show: Optional[Callable[[dict], str]] = None) -> None:
    """Rows (dicts) to ``path``, atomically: CSV for a ``.csv`` name (a column per key), JSON lines
    for .jsonl/.json, and for any other name JSON lines too, or with ``show`` its line for each row
    (a translator's text output)."""
    import csv
    import io

    from .files import write_text_atomic

    name = path.lower()
    if show is not None and not name.endswith((".csv", ".jsonl", ".json")):
        write_text_atomic(path, "".join(show(row) + "\n" for row in rows))
    elif name.endswith(".csv"):
        fields = list(dict.fromkeys(key for row in rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, text.getvalue())
    else:
        write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_json_atomic(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that ``path`` is never half-written (``rnnkit.files``)."""
    from .files import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------- demo


def _add_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the tour: 'hello' with RNN/LSTM/GRU, streaming, torch.nn parity, a 2-minute character LM",
        description=(
            "Train a character RNN, LSTM and GRU to continue 'h' as 'ello', then show "
            "streaming with layer.step() and the difference from torch.nn for the same weights, "
            "then train a character language model for two minutes and sample it."
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
    _add_threads(p, default="1 for the small models, one per core for the language model")
    p.add_argument("--lm-seconds", type=float, default=120.0,
                   help="training time of the character language model, 0 to skip it (default: %(default)s)")
    p.set_defaults(func=_cmd_demo, threads_here=True)


def _cmd_demo(args: argparse.Namespace) -> int:
    from rnnkit import demo

    problems = demo.run(seed=args.seed, steps=args.steps, verbose=args.verbose, threads=args.threads,
                        lm_seconds=args.lm_seconds)
    for problem in problems:
        _print_error(problem)
    return EXIT_RUNTIME if problems else EXIT_OK


# ----------------------------------------------------------------------------- train


def _add_train(subparsers) -> None:
    specs = tasks.specs()
    p = subparsers.add_parser("train", help=f"train a model for a task ({', '.join(s.name for s in specs)})",
                              description="Train a model for a task; checkpoints and log.csv go to --out.")
    commands = p.add_subparsers(title="tasks", dest="task", metavar="TASK")
    p.set_defaults(func=None, parser=p, missing=("task", commands))
    for spec in specs:
        t = commands.add_parser(spec.name, help=spec.summary, description=spec.description)
        t.add_argument("--data", required=not spec.data_optional, help=spec.data_help)
        t.add_argument("--out", required=True, help="run directory for checkpoints and log.csv (new or empty, or "
                                                    "a run's with --resume)")
        t.add_argument("--valid", help=spec.valid_help.replace("%", "%%"))
        t.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint, with its saved settings; flags "
                            "given change the training ones (--max-steps, --lr, ...) (default: off)")
        _add_threads(t)
        options.add_flags(t, spec.data, title="data")
        options.add_flags(t, spec.model, title="model")
        if spec.fit_options is not None:
            options.add_flags(t, spec.fit_options, title=f"{spec.name}")
        options.add_flags(t, TrainConfig, title="training",
                          defaults=command_line_defaults(spec.epochs, **spec.train_defaults))
        t.set_defaults(func=_cmd_train, spec=spec, flag_names=_flag_names(spec.data, spec.model, spec.fit_options,
                                                                            TrainConfig))


def _flag_names(*classes) -> dict:
    """``{field: flag}`` of the option classes of one command (to name the flag in an error)."""
    found = {}
    for cls in classes:
        if cls is not None:
            found.update(options.flags(cls))
    return found


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import find_checkpoint
    from .train.loop import ResumeMismatch
    from .train.rundir import check_run_directory

    spec = args.spec
    given = {name: options.given(args, cls) for name, cls in (("data", spec.data), ("model", spec.model),
                                                               ("fit", spec.fit_options)) if cls is not None}
    saved, train_base = {}, None
    if args.resume:                      # a resumed run keeps its saved settings; flags given override them
        check_run_directory(args.out, resume=True, task=spec.name)
        checkpoint = find_checkpoint(args.out)
        saved, train_base = checkpoint.config["task"], checkpoint.config.get("train")
    for name, value in given["model"].items():        # refused before any data is read
        options.check_value(spec.model, name, value)
    model_flags = options.flags(spec.model)
    model = {k: v for k, v in saved.get("model", {}).items() if k in model_flags}
    model.update(given["model"])
    fit = dict(_known(spec.fit_options, saved.get("fit") or {}), **given["fit"]) if spec.fit_options else {}
    train = command_line_config(options.given(args, TrainConfig), epochs=spec.epochs, base=train_base,
                                **spec.train_defaults)
    data = spec.data(**dict(_known(spec.data, saved.get("data") or {}), **given["data"]))
    try:
        result = spec.module().fit(args.data, args.out, valid=args.valid, data=data, model=model or None,
                                   train=train, resume=args.resume, **fit)
    except ResumeMismatch as error:
        raise ValueError(_mismatch(error, spec, given, saved)) from None
    metrics = _shown((f"validation {key}", value) for key, value in result.metrics.items())
    print(f"stopped ({result.stopped_because}) after {result.steps} steps; {metrics}; checkpoint {result.checkpoint}")
    if result.stopped_because == "interrupted":
        argv = args.argv + ([] if args.resume else ["--resume"])
        print(f"to continue: {shlex.join([PROG] + argv)}", file=sys.stderr)
        return EXIT_SIGNAL.get(result.signal, EXIT_RUNTIME)
    return EXIT_OK


def _known(cls, values: dict) -> dict:
    """The entries of ``values`` that are fields of dataclass ``cls`` (a saved config may hold others)."""
    return {key: value for key, value in values.items() if key in cls.__dataclass_fields__}


def _mismatch(error, spec, given: dict, saved: dict) -> str:
    """A resumed run given a model or data flag that differs from its saved settings: name the flags."""
    named = []
    for key in error.keys:
        group, _, name = key.partition(".")
        cls = {"model": spec.model, "data": spec.data}.get(group)
        if cls is not None and name in given.get(group, {}):
            named.append(f"{options.flag_of(cls, name)} {given[group][name]} differs from the run's "
                         f"{saved.get(group, {}).get(name)}")
        else:
            named.append(f"{key} differs from the run's")
    return (f"resuming with a different model/vocabulary: {'; '.join(named)} (a resumed run keeps its model, "
            f"vocabulary and data settings: leave those flags out, or train a new run in another --out)")


# ----------------------------------------------------------------------------- evaluate / predict


def _task_option_classes(kind: str) -> list:
    """``[(spec, options class)]`` of every task with its own flags for ``evaluate`` or ``predict``."""
    return [(spec, getattr(spec, kind)) for spec in tasks.specs() if getattr(spec, kind) is not None]


def _task_flag_names(kind: str) -> dict:
    return dict(_flag_names(ReadText, *(cls for _, cls in _task_option_classes(kind))), device="--device")


def _add_task_options(parser, kind: str) -> None:
    for spec, cls in _task_option_classes(kind):
        options.add_flags(parser, cls, title=f"{spec.name} checkpoints")


def _task_options(args: argparse.Namespace, spec, kind: str) -> dict:
    """The given flags of ``spec``'s own ``kind`` options; a flag only other tasks have is refused."""
    mine = getattr(spec, kind)
    values = options.given(args, mine) if mine is not None else {}
    if mine is not None:
        mine(**values)                                    # each value checked: ConfigError names its flag
    own_flags = set(options.flags(mine).values()) if mine is not None else set()
    for other, cls in _task_option_classes(kind):
        for name, flag in options.flags(cls).items():
            if flag not in own_flags and name in options.given(args, cls):
                raise UsageError(f"{flag} is for {other.name!r} checkpoints, and {args.checkpoint[0]} is a "
                                 f"{spec.name!r} one: leave {flag} out")
    return values


def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="a checkpoint's metrics on a file, whatever its task (a language model's loss and "
                         "perplexity, a classifier's accuracy, F1 and confusion matrix)",
        description="Evaluate a checkpoint on a file and print its metrics (the task is the checkpoint's).")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a run directory (--out of training: its latest checkpoint), RUN/BEST (its best) or a "
                        "checkpoint directory; repeat it to evaluate an ensemble, for tasks that have them "
                        "(classify: the mean of their probabilities)")
    p.add_argument("--data", help="file to evaluate on ('digits': a digits classifier's held-out part) (default: "
                                   "none; required except for translators, which also read --source and --target)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of lines (default: off)")
    _add_threads(p)
    _add_device(p)
    options.add_flags(p, ReadText)                    # shared by the tasks' options below
    _add_task_options(p, "evaluate_options")
    p.set_defaults(func=_cmd_evaluate, flag_names=_task_flag_names("evaluate_options"))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    spec = tasks.spec_of(args.checkpoint)
    values = _task_options(args, spec, "evaluate_options")
    if args.data is None and not spec.data_optional:
        raise UsageError(f"the following arguments are required: --data (the file to evaluate a {spec.name!r} "
                         f"checkpoint on)")
    result = spec.module().evaluate(args.checkpoint, args.data, device=args.device, **values)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    for line in report(result):
        print(line)
    return EXIT_OK


def _shown(items) -> str:
    """``key value`` pairs on one line: floats to four decimals, counts as they are."""
    return "  ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}" for key, value in items)


def report(result: dict) -> list:
    """An evaluation's lines: its numbers on one line, then a line per entry of each table (a dict of
    dicts, such as per-class scores), then its text values (a plot's path). Lists (a confusion matrix)
    are left to ``--json``."""
    numbers = [(key, value) for key, value in result.items() if isinstance(value, (int, float))]
    lines = [_shown(numbers)]
    for key, value in result.items():
        if isinstance(value, dict):
            lines += [f"  {name}: {_shown(scores.items())}" for name, scores in value.items() if isinstance(scores, dict)]
    lines += [f"{key}: {value}" for key, value in result.items() if isinstance(value, str)]
    return lines


def _add_predict(subparsers) -> None:
    inputs = "; ".join(f"{spec.name}: {spec.inputs}" for spec in tasks.specs())
    p = subparsers.add_parser(
        "predict", help="a checkpoint's predictions, whatever its task (a classifier's labels, a language "
                        "model's continuations)",
        description="Predict from inputs given as arguments or one per line of --input (the task is the checkpoint's).")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=f"what to predict from ({inputs})")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a run directory, RUN/BEST (its best checkpoint) or a checkpoint directory; repeat it to "
                        "predict with an ensemble, for tasks that have them (classify: the mean of their probabilities)")
    p.add_argument("--input", help="file with one input per line, blank lines skipped (default: the INPUT arguments)")
    p.add_argument("--output", help="write the rows here, atomically: CSV for a .csv name, else JSON lines "
                                    "(default: stdout, one line each)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --output (default: refuse)")
    _add_threads(p)
    _add_device(p)
    options.add_flags(p, ReadText)                    # of --input
    _add_task_options(p, "predict_options")
    p.set_defaults(func=_cmd_predict, flag_names=_task_flag_names("predict_options"))


def _cmd_predict(args: argparse.Namespace) -> int:
    output = check_output_path(args.output, "--output") if args.output else None
    if output and os.path.exists(output) and not args.force:
        raise UsageError(f"--output {output} exists; pass --force to overwrite it")
    spec = tasks.spec_of(args.checkpoint)
    if spec.line_inputs and bool(args.inputs) == bool(args.input):
        raise UsageError("give inputs to predict from or --input FILE (one of them)")
    if not spec.line_inputs and (args.inputs or args.input):
        raise UsageError(f"a {spec.name!r} checkpoint takes no INPUT arguments or --input: {spec.inputs}")
    values = _task_options(args, spec, "predict_options")
    reading = ReadText(**options.given(args, ReadText))
    items = args.inputs
    if args.input:
        from .data.text import read_chunks
        from .train import find_checkpoint

        encoding = reading.encoding or find_checkpoint(args.checkpoint[0]).config["task"].get("data", {}).get(
            "encoding", "utf-8")
        items = [line.strip() for line in "".join(read_chunks(args.input, encoding)).splitlines() if line.strip()]
    module = spec.module()
    rows = module.predict_rows(args.checkpoint, items, device=args.device, **values)
    if output:
        write_rows(output, rows, module.show if spec.text_output else None)
        print(f"wrote {len(rows)} predictions to {output}")
        return EXIT_OK
    for row in rows:
        print(module.show(row))
    return EXIT_OK


# ----------------------------------------------------------------------------- the tasks' own commands


def _add_task_commands(subparsers) -> None:
    """Each task's own commands (``TaskSpec.commands``: forecasting's ``backtest``, ...)."""
    for spec in tasks.specs():
        for command in spec.commands:
            p = subparsers.add_parser(command.name, help=command.help, description=command.help[:1].upper() +
                                      command.help[1:] + f" ({spec.name!r} checkpoints).")
            p.add_argument("--checkpoint", required=True, action="append",
                           help=f"a {spec.name!r} run directory, RUN/BEST or a checkpoint directory")
            p.add_argument("--data", required=True, help="the file to run it on")
            p.add_argument("--json", action="store_true", help="print one JSON object instead of lines (default: off)")
            _add_threads(p)
            _add_device(p)
            options.add_flags(p, command.options)
            p.set_defaults(func=_cmd_task_command, spec=spec, command=command,
                           flag_names=dict(options.flags(command.options), device="--device"))


def _cmd_task_command(args: argparse.Namespace) -> int:
    spec, command = args.spec, args.command
    tasks.spec_of(args.checkpoint, expected=spec.name, verb=f"'rnnkit {command.name}'")
    values = options.given(args, command.options)
    command.options(**values)                             # each value checked: ConfigError names its flag
    result = getattr(spec.module(), command.function)(args.checkpoint, args.data, device=args.device, **values)
    print(json.dumps(result) if args.json else "\n".join(report(result)))
    return EXIT_OK


# ----------------------------------------------------------------------------- generate


def _add_generate(subparsers) -> None:
    from .tasks.lm.config import Sampling

    p = subparsers.add_parser("generate", help="stream text sampled from a language model",
                              description="Continue a prompt with text sampled from a language model, "
                                          "printed token by token as it is drawn.")
    p.add_argument("--checkpoint", required=True,
                   help="a language model's run directory, RUN/BEST (its best checkpoint) or a checkpoint directory")
    p.add_argument("--prompt", required=True, help="text to continue")
    _add_threads(p)
    _add_device(p)
    options.add_flags(p, Sampling)
    p.set_defaults(func=_cmd_generate, flag_names=dict(options.flags(Sampling), device="--device"))


def _cmd_generate(args: argparse.Namespace) -> int:
    from .tasks.lm.config import Sampling

    model = tasks.load(args.checkpoint, task="lm", device=args.device)
    sampling = Sampling(**options.given(args, Sampling))
    pieces = model.generate(args.prompt, sampling.length, temperature=sampling.temperature, top_k=sampling.top_k,
                            top_p=sampling.top_p, seed=sampling.seed)
    first = next(pieces, None)                        # bad arguments fail before anything is printed
    sys.stdout.write(args.prompt + (first or ""))
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return EXIT_OK


# ----------------------------------------------------------------------------- export


def _add_export(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a checkpoint's inference model as ONNX or a torch.export program, checked",
        description="Write the inference model of a checkpoint (lm: tokens and state to logits and the new state; "
                    "classify: inputs and lengths to logits; speech: features and lengths to outputs; forecast: "
                    "window tensors to quantiles; translate: the encoder and one decoder step, two files) as ONNX "
                    "(onnxruntime runs it) or as a torch.export program (.pt2), with dynamic batch and length. "
                    "After writing, the file is run on inputs of two new shapes and compared with PyTorch; a "
                    "difference above the tolerance is an error and leaves no file.")
    p.add_argument("--checkpoint", required=True, help="a run directory, RUN/BEST or a checkpoint directory")
    p.add_argument("--format", dest="export_format", required=True, choices=("onnx", "pt2"),
                   help="onnx (needs pip install rnnkit[export]) or pt2 (torch.export.save)")
    p.add_argument("--output", required=True, help="the file to write (replaced only after the check passes); a translator "
                   "writes two, NAME.encoder.EXT and NAME.decoder.EXT")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest difference allowed (default: 1e-4)")
    p.add_argument("--force", action="store_true", help="replace an existing --output once the check passes (default: refuse to)")
    _add_threads(p)
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    report = export(args.checkpoint, args.output, args.export_format, tolerance=args.tolerance, force=args.force)
    shapes = " and ".join(f"{b}x{t}" for b, t in report.checked)
    print(f"wrote {', '.join(map(str, report.paths))} ({report.format}); largest difference from PyTorch "
          f"{report.max_difference:.2e} "
          f"at batch x length {shapes}")
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
    _add_threads(p)
    p.set_defaults(func=_cmd_bench_layers)


def _cmd_bench_layers(args: argparse.Namespace) -> int:
    json_path = check_output_path(args.json) if args.json is not None else None

    from rnnkit.bench import layers

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
            "with hand-written backpropagation through time, and the applications built on them."
        ),
        epilog="Run 'rnnkit COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    parser.set_defaults(func=None, parser=parser, missing=("command", subparsers), flag_names={}, threads=None)
    _add_demo(subparsers)
    _add_train(subparsers)
    _add_evaluate(subparsers)
    _add_predict(subparsers)
    _add_generate(subparsers)
    _add_task_commands(subparsers)
    _add_export(subparsers)
    _add_bench(subparsers)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each, ``rnnkit: warning: ...``, not Python's file:line form."""
    text = " ".join(str(message).split())
    print(f"{PROG}: warning: {text}", file=file or sys.stderr)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("rnnkit")
    except Exception:
        return "(version unknown)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is None:  # nothing at all, or a command group without its subcommand
        what, action = args.missing
        args.parser.error(f"missing {what}: choose from {', '.join(action.choices)}")
    args.argv = argv
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    try:
        if args.threads is not None and not getattr(args, "threads_here", False):
            import torch

            torch.set_num_threads(args.threads)
        return args.func(args)
    except UsageError as e:
        _print_error(e)
        return EXIT_USAGE
    except options.ConfigError as e:                      # a setting out of range: name its flag
        flag = args.flag_names.get(e.field)
        _print_error(f"argument {flag}: {e}" if flag else e)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:  # FileNotFoundError is an OSError
        if os.environ.get("RNNKIT_DEBUG"):
            raise
        _print_error(e)
        return EXIT_RUNTIME
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
