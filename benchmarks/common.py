"""What the scripts in benchmarks/ share: the layer-shape command line, where the data sets are,
and how a result is written."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from rnnkit.bench.layers import environment, environment_summary
from rnnkit.files import write_text_atomic
from rnnkit.tasks.lm import LanguageModel, LMConfig

# The research data sets live beside the repository, never inside it (their licences are research-only).
DATA_ROOT = Path(os.environ.get("RNNKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def fwd_bwd(layer, x):
    """A closure timing one forward and backward pass of ``layer`` over ``x`` (gradients reset first)."""
    def run():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        out, _ = layer(x)
        out.sum().backward()
    return run


def data_dir(name: str, given) -> Path:
    """The directory of data set ``name``: ``given`` (a --data-dir flag) or ``DATA_ROOT/name``.

    Exits with one line naming the flag if the directory does not exist."""
    path = Path(given) if given else DATA_ROOT / name
    if not path.is_dir():
        raise SystemExit(f"error: data directory {path} does not exist; pass --data-dir (or set RNNKIT_DATA)")
    return path


def run(main) -> None:
    """Run a benchmark's ``main``; bad input (a ValueError: a used --out, an unreadable file) ends in
    one line and exit status 1 instead of a traceback."""
    try:
        main()
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def train_step_seconds(model: LMConfig, batch_size: int, bptt: int, steps: int = 10, tokens=None,
                       bf16: bool = False) -> float:
    """Median seconds of one training step (loss, backward, AdamW) of a fresh ``model`` on
    ``bptt`` x ``batch_size`` windows, over ``steps`` timed steps after three untimed ones.
    ``tokens``: a 1-D id tensor to read the windows from (default: random ids drawn by Zipf's law,
    p(id) proportional to 1 / (id + 1), as the words of a text ranked by frequency are: uniform ids
    would put most targets in an adaptive softmax's rare-word clusters and time a slower model);
    ``bf16``: the loss under bfloat16 autocast, as ``TrainConfig.bf16`` trains."""
    net = LanguageModel(model).train()
    optimizer = torch.optim.AdamW(net.parameters())
    size = bptt * batch_size
    if tokens is None:
        zipf = 1.0 / torch.arange(1, model.vocab_size + 1, dtype=torch.float64)
        tokens = torch.multinomial(zipf, (steps + 3) * size + 1, replacement=True)
    times = []
    for k in range(steps + 3):
        window = tokens[(k * size) % (len(tokens) - size - 1):][:size + 1]
        x, y = window[:-1].view(bptt, batch_size), window[1:].view(bptt, batch_size)
        begin = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = net.loss(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - begin)
    timed = sorted(times[3:])
    return timed[len(timed) // 2]


def steps_in(seconds: float, model: LMConfig, batch_size: int, bptt: int, share: float = 0.92,
             bf16: bool = False) -> int:
    """Training steps of ``model`` at ``batch_size`` x ``bptt`` that fit in ``share`` of ``seconds``
    (the rest goes to evaluations and checkpoints), from a short timed run."""
    return max(1, int(share * seconds / train_step_seconds(model, batch_size, bptt, bf16=bf16)))


def seconds_per_run_step(train, short: int = 10, long: int = 260) -> float:
    """Wall time of one training step of a task's recipe: ``train(steps)`` runs a fresh training of
    that many steps; the time is the difference of a ``long`` and a ``short`` run divided by their
    difference in steps (so reading the data and building the model are not counted), after a first
    short run that pays the one-time costs (loading the native kernels, warming the allocator).
    ``long`` should cross an epoch or two, so that what is done once an epoch is counted.
    ``train`` returns its ``TrainResult``: one stopped by SIGINT/SIGTERM ends the benchmark."""
    times = []
    for steps in (short, short, long):
        started = time.perf_counter()
        result = train(steps)
        if result.stopped_because == "interrupted":
            raise SystemExit("interrupted while timing the recipe")
        times.append(time.perf_counter() - started)
    return max(1e-3, (times[2] - times[1]) / (long - short))


def add_run_flags(parser: argparse.ArgumentParser, dataset: str, out: str) -> None:
    """The flags every training benchmark has: ``--seed``, ``--data-dir`` (default
    ``DATA_ROOT/dataset``), ``--out`` (the run directory, replaced) and ``--json``."""
    parser.add_argument("--seed", type=int, default=0, help="(default: 0)")
    parser.add_argument("--data-dir", help=f"the data set's directory (default: ../shared/data/{dataset})")
    parser.add_argument("--out", default=out, help=f"run directory (default: {out}; replaced)")
    parser.add_argument("--json", help="also write the result to this file")


def print_machine() -> None:
    """Print a benchmark's first line, what it is measured on: ``# machine: `` and ``environment_summary()``."""
    print(f"# machine: {environment_summary()}", flush=True)


def write_result(path, result: dict) -> None:
    """Print ``result`` as JSON and, if ``path`` is given, write it there atomically; both with the
    machine under ``environment`` (``rnnkit.bench.layers.environment()``: CPU, features, torch, ...)."""
    result = dict(result, environment=environment())
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        write_text_atomic(path, text + "\n")


def shape_parser(description: str, repeats: int) -> argparse.ArgumentParser:
    """A parser for ``--T --B --I --H`` (the first shape of ``rnnkit bench layers``) and ``--repeats``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--T", type=int, default=100, help="time steps (default: %(default)s)")
    parser.add_argument("--B", type=int, default=64, help="batch size (default: %(default)s)")
    parser.add_argument("--I", type=int, default=256, help="input size (default: %(default)s)")
    parser.add_argument("--H", type=int, default=512, help="hidden size (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="timed runs of each, alternating (default: %(default)s)")
    return parser
