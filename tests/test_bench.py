"""The layer benchmark and its timing helpers. Never asserts a speed: only shapes of results."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnkit.bench import layers
from rnnkit.bench.timing import Candidate, compare, median_ms, time_calls

TINY = layers.Shape(T=3, B=2, I=4, H=5)
TINY_STEP = layers.Shape(T=1, B=1, I=4, H=5)


@pytest.fixture(scope="module")
def rows():
    # One thread: tiny ops gain nothing from more, and a busy machine makes them stall.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return layers.run_layer_bench(
            [TINY], repeats=1, step_shape=TINY_STEP, warmup=1, min_run_time=0.0,
            on_warning=lambda message: pytest.fail(message),  # rnnkit must agree with torch.nn
        )
    finally:
        torch.set_num_threads(threads)


def test_rows_have_exactly_the_keys(rows):
    for row in rows:
        assert tuple(row) == layers.KEYS
        assert set(row) == {"cell", "pass", "dtype", "T", "B", "I", "H", "rnnkit_ms", "torch_ms", "ratio"}
    json.loads(json.dumps(rows, allow_nan=False))  # plain JSON


def test_rows_cover_every_cell_and_pass(rows):
    seen = {(r["cell"], r["pass"]) for r in rows}
    assert seen == {(c, p) for c in ("rnn_tanh", "lstm", "gru") for p in ("fwd", "fwd+bwd", "step")}
    assert len(rows) == len(seen)
    for r in rows:
        assert r["dtype"] == "float32"
        expected = TINY_STEP if r["pass"] == "step" else TINY
        assert (r["T"], r["B"], r["I"], r["H"]) == (expected.T, expected.B, expected.I, expected.H)


def test_times_are_positive_and_ratio_consistent(rows):
    for r in rows:
        assert r["rnnkit_ms"] > 0 and r["torch_ms"] > 0
        assert math.isclose(r["ratio"], r["torch_ms"] / r["rnnkit_ms"])


def test_table_has_a_line_per_row(rows):
    table = layers.format_table(rows)
    assert len(table.splitlines()) == 2 + len(rows)
    assert "| gru" in table and "fwd+bwd" in table


def test_subset_of_cells_and_passes():
    out = layers.run_layer_bench([TINY], cells=["gru"], passes=["fwd"], repeats=1, warmup=0, min_run_time=0.0)
    assert [(r["cell"], r["pass"]) for r in out] == [("gru", "fwd")]


@pytest.mark.parametrize(
    "kwargs",
    [{"cells": ["lstmx"]}, {"passes": ["bwd"]}, {"repeats": 0}],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        layers.run_layer_bench([TINY], **{"repeats": 1, **kwargs})


def test_bad_shape_raises_value_error():
    with pytest.raises(ValueError):
        layers.Shape(T=0, B=1, I=1, H=1)


def test_plans():
    shapes, step, repeats = layers.bench_plan(quick=True)
    assert shapes == layers.DEFAULT_SHAPES[:1] and step == layers.STEP_SHAPE and repeats >= 1
    shapes, step, repeats = layers.bench_plan(quick=False)
    assert len(shapes) == 3 and step.T == 1 and step.B == 1 and step.I == step.H == 512


# ----------------------------------------------------------------------------- timing helpers


def test_compare_alternates_and_keeps_setup_out_of_timing():
    calls = []
    candidates = [
        Candidate("a", lambda: calls.append("a"), setup=lambda: calls.append("setup-a")),
        Candidate("b", lambda: calls.append("b")),
    ]
    times = compare(candidates, repeats=3, warmup=1)
    assert calls == ["setup-a", "a", "b"] * 4  # one warmup round, then 3 timed rounds, in turns
    assert set(times) == {"a", "b"}
    assert all(len(v) == 3 and all(t >= 0 for t in v) for v in times.values())


def test_compare_runs_several_calls_per_repeat_for_fast_functions():
    counts = {"a": 0, "b": 0}

    def bump(name):
        def f():
            counts[name] += 1
        return f

    compare([Candidate("a", bump("a")), Candidate("b", bump("b"))], repeats=2, warmup=1, min_run_time=0.001)
    assert counts["a"] == counts["b"] > 3  # same number of calls for both, more than one per repeat


def test_time_calls_and_median():
    assert time_calls(lambda: None, number=5) >= 0
    assert median_ms([3.0, 1.0, 2.0]) == 2.0
    with pytest.raises(ValueError):
        median_ms([])
    with pytest.raises(ValueError):
        compare([Candidate("a", lambda: None)], repeats=0)
    with pytest.raises(ValueError):
        compare([Candidate("a", lambda: None), Candidate("a", lambda: None)], repeats=1)
