"""Timing helpers for side-by-side comparisons in one process.

The machines this runs on are small and shared, so absolute times are noisy.
What these helpers try to make trustworthy is the *ratio* between candidates:

* every candidate is warmed up before anything is recorded;
* candidates run in turns (A, B, A, B, ...), so slow drifts of the machine
  (frequency scaling, another process waking up) hit all of them alike;
* every candidate runs the same number of calls per repeat;
* a per-candidate ``setup`` (e.g. clearing gradients) runs outside the timed
  region, before each call;
* the summary statistic is the median over repeats.

Nothing here imports torch: the helpers time any zero-argument callables.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

__all__ = ["Candidate", "time_calls", "compare", "median_ms"]

#: Upper bound on calls per repeat, so a near-empty callable cannot loop forever.
MAX_NUMBER = 100_000


@dataclass(frozen=True)
class Candidate:
    """One thing to time: ``fn()`` is timed, ``setup()`` (if any) runs untimed before each call."""

    name: str
    fn: Callable[[], object]
    setup: Optional[Callable[[], object]] = None


def time_calls(fn: Callable[[], object], number: int = 1, setup: Optional[Callable[[], object]] = None) -> float:
    """Run ``fn`` ``number`` times and return the mean seconds per call.

    Each call is timed on its own, so ``setup`` runs outside the measurement.
    The garbage collector is paused while timing (as :mod:`timeit` does).
    """
    if number < 1:
        raise ValueError(f"number must be >= 1, got {number}")
    perf_counter = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        total = 0.0
        for _ in range(number):
            if setup is not None:
                setup()
            t0 = perf_counter()
            fn()
            total += perf_counter() - t0
    finally:
        if gc_was_enabled:
            gc.enable()
    return total / number


def compare(
    candidates: Sequence[Candidate],
    repeats: int,
    *,
    warmup: int = 1,
    min_run_time: float = 0.0,
) -> dict[str, list[float]]:
    """Time ``candidates`` in turns and return ``{name: [ms per call, one per repeat]}``.

    ``warmup`` untimed calls of each candidate (in turns) come first. Then the
    number of calls per repeat is chosen so that the *fastest* candidate runs at
    least ``min_run_time`` seconds per repeat (one call if ``min_run_time`` is 0);
    all candidates use that same number. Then ``repeats`` rounds follow, each
    running every candidate once, in the given order.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    names = [c.name for c in candidates]
    if not candidates or len(set(names)) != len(names):
        raise ValueError(f"need one or more candidates with distinct names, got {names}")

    # Warm up, in turns, and keep the fastest call seen as the cost estimate.
    estimate = {c.name: math.inf for c in candidates}
    for _ in range(max(warmup, 1 if min_run_time > 0 else 0)):
        for c in candidates:
            estimate[c.name] = min(estimate[c.name], time_calls(c.fn, 1, c.setup))

    number = 1
    if min_run_time > 0:
        fastest = max(min(estimate.values()), 1e-9)
        number = max(1, min(MAX_NUMBER, math.ceil(min_run_time / fastest)))

    # One full collection before the timed rounds (it is slow with torch loaded: ~0.1 s);
    # during each timed run the collector is paused, between runs it works as usual.
    gc.collect()
    results: dict[str, list[float]] = {c.name: [] for c in candidates}
    for _ in range(repeats):
        for c in candidates:
            results[c.name].append(time_calls(c.fn, number, c.setup) * 1e3)
    return results


def median_ms(samples: Sequence[float]) -> float:
    """Median of a non-empty list of times (any unit; named for its use on milliseconds)."""
    if not samples:
        raise ValueError("no samples")
    return float(statistics.median(samples))
