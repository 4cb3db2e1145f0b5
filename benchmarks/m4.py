"""M4 Hourly: a global rnnkit forecaster trained within a wall-clock budget, scored with the
official definitions, beside our own baselines from the same run and the published table.
    python benchmarks/m4.py [--minutes 15] [--ensemble 5 | --processes 2] [--no-holdout] [--bf16]
                            [--data-dir DIR] [--out DIR] [--json FILE]

414 series, horizon 48, seasonal period 24 (the official split: ``Hourly-train.csv`` is the
history, ``Hourly-test.csv`` the 48 values after it). Training holds out the last 48 steps of each
training series as its validation (the checkpoint of the best validation MASE, ``BEST``, is the one
scored); with ``--no-holdout`` it trains on every step instead, and ``BEST`` is the checkpoint of
the lowest training loss. The learning rate follows a cosine over the budget's seconds (``schedule="cosine_time"``),
which covers training and its evaluations; the evaluations are spaced by the steps expected from
short timed runs of the same recipe before training (not counted). ``--ensemble N`` trains N
networks together, sharing the budget's steps; ``--processes N`` trains N networks at the same time,
in N processes on a share of the threads each (one on each core of a 2-core machine: the recipe
is as fast on one thread as on two), each for the whole budget, and scores the median of their
forecasts (``forecast.evaluate`` of their checkpoints together), and each network alone beside it.

Reported: sMAPE, MASE, OWA (against our Naive2, which reproduces the official one: see
``benchmarks/m4_baselines.py``), the 95% interval's coverage and MSIS, the baselines' scores, where
the OWA would rank among the 59 published methods (``m4_hourly_point_forecast_scores.csv``), the
training throughput in windows per second and the time to forecast all 414 series, model load
included (median of 3).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import torch

from common import add_run_flags, data_dir, print_machine, run, seconds_per_run_step, write_result

from rnnkit.tasks import forecast
from rnnkit.tasks.forecast.config import ForecastData, ensemble_sizes
from rnnkit.train import TrainConfig

HORIZON, SEASON = 48, 24
QUANTILES = [0.025, 0.1, 0.5, 0.9, 0.975]          # the widest: M4's 95% intervals


def recipe(args) -> tuple:
    """(ForecastData, model options) of the command line."""
    data = ForecastData(horizon=HORIZON, season=SEASON, format="wide", input_size=args.input_size,
                        batch_size=args.batch_size, windows_per_series=args.windows_per_series, log=args.log,
                        holdout=not args.no_holdout)
    model = dict(hidden_size=args.hidden_size, num_layers=args.layers, dropout=args.dropout, quantiles=QUANTILES,
                 decoder=args.decoder, cell=args.cell, lags=args.lags, decoder_lags=args.decoder_lags)
    return data, model


def seconds_per_step(train_file: Path, data: ForecastData, model: dict, args) -> float:
    """Wall time of one training step of this recipe (``common.seconds_per_run_step``)."""
    def train(steps: int):
        with tempfile.TemporaryDirectory() as tmp:
            return forecast.fit(train_file, Path(tmp) / "run", data=data, model=model, ensemble=args.ensemble,
                                train=TrainConfig(max_steps=steps, eval_every=10_000, lr=args.lr, progress=False,
                                                  tensorboard=False, bf16=args.bf16,
                                                  flush_denormal=not args.no_flush_denormal))
    return seconds_per_run_step(train)


def published(scores_file: Path) -> list:
    """(OWA, method, team) of the published M4 Hourly table, best first."""
    with open(scores_file, newline="", encoding="utf-8") as handle:
        return sorted((float(row["OWA_hourly"]), row["method_id"], row["team"]) for row in csv.DictReader(handle))


def member_recipe(args, k: int) -> tuple:
    """(ForecastData, model options, seed) of network ``k`` of ``--processes``: the command line's
    for the first; the k-th input size of ``ensemble_sizes`` and seed ``args.seed + k`` for the others."""
    data, model = recipe(args)
    if k:
        data = replace(data, input_size=ensemble_sizes(data.context(), k + 1)[k])
    return data, model, args.seed + k


def train_member(args, k: int, threads: int, out: Path) -> dict:
    """Train network ``k`` (``member_recipe``) in the budget on ``threads`` threads into ``out``
    (replaced); its summary for the result."""
    torch.set_num_threads(threads)
    folder = data_dir("m4_hourly", args.data_dir)
    train_file = folder / "Hourly-train.csv"
    data, model, seed = member_recipe(args, k)
    budget = 60 * args.minutes
    per_step = seconds_per_step(train_file, data, model, args)
    evals = 8
    steps = max(10, int(0.93 * budget / per_step))
    train = TrainConfig(lr=args.lr, weight_decay=args.weight_decay, schedule="cosine_time",
                        warmup_steps=min(200, steps // 20), clip_grad_norm=1.0, max_time=budget,
                        eval_every=max(1, steps // evals), seed=seed,
                        log_every=100, monitor="loss" if args.no_holdout else "mase", tensorboard=False,
                        bf16=args.bf16, flush_denormal=not args.no_flush_denormal)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = forecast.fit(train_file, out, data=data, model=model, train=train, ensemble=args.ensemble)
    train_seconds = time.perf_counter() - started
    return {"checkpoint": str(out / "BEST"), "seed": seed, "input_size": data.context(), "threads": threads,
            "planned_steps": steps, "steps": result.steps, "stopped_because": result.stopped_because,
            "train_seconds": round(train_seconds, 1),
            "windows_per_second": round(result.steps * data.batch_size / train_seconds, 1),
            "last_validation": {k: round(v, 4) for k, v in result.metrics.items() if isinstance(v, float)}}


def train_members(args, out: Path) -> list:
    """``train_member`` for each of ``--processes`` networks, at the same time in as many
    processes, the machine's threads shared between them; one network trains in this process."""
    if args.processes == 1:
        return [train_member(args, 0, torch.get_num_threads(), out)]
    threads = max(1, torch.get_num_threads() // args.processes)
    shutil.rmtree(out, ignore_errors=True)
    outs = [out / f"network-{k}" for k in range(args.processes)]
    with ProcessPoolExecutor(args.processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(train_member, [args] * args.processes, range(args.processes),
                             [threads] * args.processes, outs))


def scored(scores: dict) -> dict:
    """``forecast.evaluate``'s result, floats rounded."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget, evaluations included (default: 15)")
    parser.add_argument("--ensemble", type=int, default=1, help="networks trained together (default: 1)")
    parser.add_argument("--processes", type=int, default=1,
                        help="networks trained at the same time in as many processes, each for the whole budget "
                             "on its share of the threads, other seeds and input sizes (member_recipe); their "
                             "median is scored (default: 1)")
    parser.add_argument("--hidden-size", type=int, default=64, help="(default: 64)")
    parser.add_argument("--layers", type=int, default=2, help="(default: 2)")
    parser.add_argument("--dropout", type=float, default=0.1, help="(default: 0.1)")
    parser.add_argument("--input-size", type=int, default=None, help="context steps (default: 4 x horizon)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    parser.add_argument("--windows-per-series", type=int, default=16, help="(default: 16)")
    parser.add_argument("--decoder", choices=("direct", "autoregressive"), default="direct", help="(default: direct)")
    parser.add_argument("--lags", type=lambda text: [int(k) for k in text.split(",")], default=None,
                        help="lags fed as inputs, such as 24,168 (default: the season, 24)")
    parser.add_argument("--decoder-lags", action="store_true",
                        help="the direct decoder also reads each horizon step's lags of at least the horizon "
                             "(168 with --lags 24,168)")
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"), default="lstm", help="(default: lstm)")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default: 3e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay (default: 0)")
    parser.add_argument("--log", action="store_true", help="model log(1 + y)")
    parser.add_argument("--no-holdout", action="store_true",
                        help="train on every step of each training series (no validation; BEST is the lowest "
                             "training loss) instead of holding out its last 48 steps to pick BEST")
    parser.add_argument("--bf16", action="store_true",
                        help="train under bfloat16 autocast: faster only on CPUs with AMX or AVX-512 BF16 "
                             "(default: float32)")
    parser.add_argument("--no-flush-denormal", action="store_true",
                        help="keep IEEE denormal floats while training (default: flushed to zero)")
    add_run_flags(parser, "m4_hourly", "runs/m4-hourly")
    args = parser.parse_args()
    if args.processes < 1:
        raise ValueError(f"--processes must be at least 1, got {args.processes}")
    folder = data_dir("m4_hourly", args.data_dir)
    train_file, test_file = folder / "Hourly-train.csv", folder / "Hourly-test.csv"
    print_machine()
    data, model = recipe(args)
    started = time.perf_counter()
    members = train_members(args, Path(args.out))
    wall_seconds = time.perf_counter() - started
    checkpoints = [member["checkpoint"] for member in members]
    scores = forecast.evaluate(checkpoints, train_file, actuals=test_file)
    if len(members) > 1:
        for member in members:
            member["test"] = {key: scored(forecast.evaluate(member["checkpoint"], train_file, actuals=test_file))[key]
                              for key in ("smape", "mase", "owa")}
    times = []
    for _ in range(3):
        begin = time.perf_counter()
        forecast.predict(checkpoints, train_file)
        times.append(time.perf_counter() - begin)
    table = published(folder / "benchmarks" / "m4_hourly_point_forecast_scores.csv")
    rank = 1 + sum(owa < scores["owa"] for owa, _, _ in table)
    write_result(args.json, {
        "benchmark": "m4-hourly", "minutes": args.minutes, "ensemble": args.ensemble, "processes": args.processes,
        "model": model, "input_size": data.context(), "batch_size": data.batch_size, "log": data.log, "lr": args.lr,
        "weight_decay": args.weight_decay,
        "holdout": data.holdout, "bf16": args.bf16, "flush_denormal": not args.no_flush_denormal,
        "threads": torch.get_num_threads(),
        **({key: members[0][key] for key in ("planned_steps", "steps", "stopped_because", "train_seconds",
                                              "windows_per_second", "last_validation")} if len(members) == 1
           else {"networks": members, "steps": [member["steps"] for member in members]}),
        "wall_seconds": round(wall_seconds, 1),
        "test": scored(scores),
        "rank_among_published": f"{rank} of {len(table) + 1}", "published_best": table[0][:2],
        "predict_seconds_414_series": round(statistics.median(times), 3),
        "targets": {"doornik_owa": 0.4096, "es_rnn_owa": 0.4401, "naive2_owa": 1.0}})


if __name__ == "__main__":
    run(main)
