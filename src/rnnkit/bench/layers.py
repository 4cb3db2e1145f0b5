"""``rnnkit bench layers``: rnnkit.nn against torch.nn, same weights, one process.

For each cell and shape the two layers get identical weights
(``ours.load_state_dict(theirs.state_dict())``) and identical inputs, and are
timed in turns (rnnkit, torch, rnnkit, torch, ...) after a warmup; each number
is a median over repeats. ``ratio = torch_ms / rnnkit_ms``, so above 1 means
rnnkit is faster.

Passes:

* ``fwd``      forward over the whole sequence, under ``torch.no_grad()``, eval mode;
* ``fwd+bwd``  forward, then ``output.backward(g)`` with a fixed random ``g``
  (the gradient of ``(output * g).sum()``), input requiring grad; gradients are
  set to ``None`` between calls, outside the timed region;
* ``step``     one time step, under ``torch.no_grad()``: ``layer.step(x, state)``
  for rnnkit, ``torch_layer(x.unsqueeze(0), state)`` for torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import torch

from rnnkit.bench.timing import Candidate, compare, median_ms

__all__ = [
    "CELLS",
    "PASSES",
    "KEYS",
    "Shape",
    "DEFAULT_SHAPES",
    "STEP_SHAPE",
    "DEFAULT_REPEATS",
    "QUICK_REPEATS",
    "bench_plan",
    "make_pair",
    "bench_one",
    "run_layer_bench",
    "format_table_header",
    "format_row",
    "format_table",
    "environment_summary",
    "environment",
]

CELLS = ("rnn_tanh", "lstm", "gru")
PASSES = ("fwd", "fwd+bwd", "step")
#: The keys of every result row, in order. Nothing more, nothing less.
KEYS = ("cell", "pass", "dtype", "T", "B", "I", "H", "rnnkit_ms", "torch_ms", "ratio")


@dataclass(frozen=True)
class Shape:
    """Sequence length ``T``, batch ``B``, input size ``I``, hidden size ``H``."""

    T: int
    B: int
    I: int  # noqa: E741 - the conventional name
    H: int

    def __post_init__(self) -> None:
        for name in ("T", "B", "I", "H"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"shape {name} must be a positive int, got {value!r}")

    def __str__(self) -> str:
        return f"T={self.T} B={self.B} I={self.I} H={self.H}"


DEFAULT_SHAPES = (
    Shape(T=100, B=64, I=256, H=512),
    Shape(T=35, B=20, I=650, H=650),
    Shape(T=1000, B=16, I=128, H=128),
)
#: The ``step`` pass: one time step of a streaming model (T is 1 by definition).
STEP_SHAPE = Shape(T=1, B=1, I=512, H=512)
DEFAULT_REPEATS = 5
QUICK_REPEATS = 3
#: For passes so fast that one call is below this, several calls make one repeat.
MIN_RUN_TIME = 0.05

_TORCH_MODULES = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
# Largest difference between rnnkit and torch (see _max_abs_diff) that passes the sanity check.
_TOLERANCE = 1e-3


def bench_plan(quick: bool = False) -> tuple[tuple[Shape, ...], Shape, int]:
    """``(shapes, step_shape, repeats)`` for a full run, or for ``--quick``."""
    if quick:
        return DEFAULT_SHAPES[:1], STEP_SHAPE, QUICK_REPEATS
    return DEFAULT_SHAPES, STEP_SHAPE, DEFAULT_REPEATS


def make_pair(cell: str, input_size: int, hidden_size: int, seed: int = 0, dtype: torch.dtype = torch.float32):
    """``(ours, theirs)``: an rnnkit layer and a torch.nn layer with identical weights."""
    from rnnkit import nn as rnn

    ours_modules = {"rnn_tanh": rnn.RNN, "lstm": rnn.LSTM, "gru": rnn.GRU}
    if cell not in ours_modules:
        raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
    kwargs = {"nonlinearity": "tanh"} if cell == "rnn_tanh" else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        theirs = _TORCH_MODULES[cell](input_size, hidden_size, **kwargs).to(dtype)
    ours = ours_modules[cell](input_size, hidden_size, **kwargs).to(dtype)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _output(result):
    """The output tensor of a layer call or step: the first item of ``(output, state)``."""
    return result[0] if isinstance(result, tuple) else result


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b|`` divided by ``max(1, max |b|)``: an absolute error for values
    of order 1, a relative one for large values (long-sequence gradients)."""
    if a.numel() != b.numel():
        return float("inf")
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    if a.numel() == 0:
        return 0.0
    return ((a - b).abs().max() / b.abs().max().clamp(min=1.0)).item()


def _state(cell: str, batch: int, hidden: int, gen: torch.Generator, dtype: torch.dtype):
    h = torch.randn(1, batch, hidden, generator=gen, dtype=dtype)
    if cell == "lstm":
        return (h, torch.randn(1, batch, hidden, generator=gen, dtype=dtype))
    return h


def bench_one(
    cell: str,
    pass_: str,
    shape: Shape,
    repeats: int,
    *,
    warmup: int = 1,
    min_run_time: float = MIN_RUN_TIME,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    on_warning: Optional[Callable[[str], None]] = None,
) -> dict:
    """Time one (cell, pass, shape) for rnnkit and torch; return one result row (see :data:`KEYS`)."""
    if pass_ not in PASSES:
        raise ValueError(f"unknown pass {pass_!r}; choose from {', '.join(PASSES)}")
    if pass_ == "step" and shape.T != 1:
        raise ValueError(f"the step pass times one time step, so T must be 1, got {shape}")
    ours, theirs = make_pair(cell, shape.I, shape.H, seed=seed, dtype=dtype)
    gen = torch.Generator().manual_seed(seed + 1)

    if pass_ == "fwd":
        ours.eval()
        theirs.eval()
        x = torch.randn(shape.T, shape.B, shape.I, generator=gen, dtype=dtype)
        run_ours, run_theirs = (lambda: ours(x)), (lambda: theirs(x))
        setup_ours = setup_theirs = None
        grad_mode = torch.no_grad
    elif pass_ == "fwd+bwd":
        ours.train()
        theirs.train()
        x = torch.randn(shape.T, shape.B, shape.I, generator=gen, dtype=dtype, requires_grad=True)
        g = torch.randn(shape.T, shape.B, shape.H, generator=gen, dtype=dtype)

        def run_ours():
            out = _output(ours(x))
            out.backward(g)
            return out

        def run_theirs():
            out = _output(theirs(x))
            out.backward(g)
            return out

        def setup_ours():
            ours.zero_grad(set_to_none=True)
            x.grad = None

        def setup_theirs():
            theirs.zero_grad(set_to_none=True)
            x.grad = None

        grad_mode = torch.enable_grad
    else:  # step
        ours.eval()
        theirs.eval()
        x = torch.randn(shape.B, shape.I, generator=gen, dtype=dtype)
        state = _state(cell, shape.B, shape.H, gen, dtype)
        x_seq = x.unsqueeze(0)
        run_ours, run_theirs = (lambda: ours.step(x, state)), (lambda: theirs(x_seq, state))
        setup_ours = setup_theirs = None
        grad_mode = torch.no_grad

    with grad_mode():
        # Sanity check: timing a layer that computes something else is pointless.
        # For fwd+bwd the input gradients are compared too.
        checks = []
        for setup, run in ((setup_ours, run_ours), (setup_theirs, run_theirs)):
            if setup is not None:
                setup()
            out = _output(run()).detach()
            checks.append((out, None if x.grad is None else x.grad.clone()))
        diff = _max_abs_diff(checks[0][0], checks[1][0])
        what = "outputs"
        if checks[0][1] is not None or checks[1][1] is not None:
            grad_diff = (
                float("inf") if checks[0][1] is None or checks[1][1] is None
                else _max_abs_diff(checks[0][1], checks[1][1])
            )
            if not grad_diff <= diff:
                diff, what = grad_diff, "input gradients"
        if not diff <= _TOLERANCE:
            message = (
                f"{cell} {pass_} {shape}: rnnkit and torch.nn {what} differ "
                f"(max difference {diff:.3g} > {_TOLERANCE:g}); timings are still reported"
            )
            if on_warning is None:
                import warnings

                warnings.warn(message, RuntimeWarning, stacklevel=2)
            else:
                on_warning(message)
        times = compare(
            [Candidate("rnnkit", run_ours, setup_ours), Candidate("torch", run_theirs, setup_theirs)],
            repeats,
            warmup=warmup,
            min_run_time=min_run_time,
        )

    rnnkit_ms = median_ms(times["rnnkit"])
    torch_ms = median_ms(times["torch"])
    row = {
        "cell": cell,
        "pass": pass_,
        "dtype": str(dtype).replace("torch.", ""),
        "T": shape.T,
        "B": shape.B,
        "I": shape.I,
        "H": shape.H,
        "rnnkit_ms": rnnkit_ms,
        "torch_ms": torch_ms,
        "ratio": torch_ms / rnnkit_ms if rnnkit_ms > 0 else float("nan"),
    }
    assert tuple(row) == KEYS
    return row


def run_layer_bench(
    shapes: Iterable[Shape] = DEFAULT_SHAPES,
    cells: Sequence[str] = CELLS,
    passes: Sequence[str] = PASSES,
    repeats: int = DEFAULT_REPEATS,
    *,
    step_shape: Shape = STEP_SHAPE,
    warmup: int = 1,
    min_run_time: Optional[float] = None,
    seed: int = 0,
    on_result: Optional[Callable[[dict], None]] = None,
    on_warning: Optional[Callable[[str], None]] = None,
) -> list[dict]:
    """Run the layer benchmark and return its rows (dicts with exactly :data:`KEYS`).

    ``fwd`` and ``fwd+bwd`` run for every shape in ``shapes`` and every cell;
    ``step`` (if in ``passes``) runs once per cell, at ``step_shape``.
    ``on_result(row)`` is called as each row is finished (for progress output).
    Passes faster than ``min_run_time`` seconds per call (default
    :data:`MIN_RUN_TIME`) run several calls per timed repeat.
    """
    if min_run_time is None:
        min_run_time = MIN_RUN_TIME
    shapes = [s if isinstance(s, Shape) else Shape(*s) for s in shapes]
    step_shape = step_shape if isinstance(step_shape, Shape) else Shape(*step_shape)
    for cell in cells:
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
    for pass_ in passes:
        if pass_ not in PASSES:
            raise ValueError(f"unknown pass {pass_!r}; choose from {', '.join(PASSES)}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")

    plan = [(cell, p, shape) for shape in shapes for cell in cells for p in passes if p != "step"]
    if "step" in passes:
        plan += [(cell, "step", step_shape) for cell in cells]

    rows = []
    for cell, pass_, shape in plan:
        row = bench_one(
            cell, pass_, shape, repeats,
            warmup=warmup, min_run_time=min_run_time, seed=seed, on_warning=on_warning,
        )
        rows.append(row)
        if on_result is not None:
            on_result(row)
    return rows


# ----------------------------------------------------------------------------- output

_COLUMNS = (
    # header, width, format
    ("cell", 8, "{cell}"),
    ("pass", 7, "{pass}"),
    ("T", 4, "{T}"),
    ("B", 3, "{B}"),
    ("I", 3, "{I}"),
    ("H", 3, "{H}"),
    ("rnnkit ms", 9, "{rnnkit_ms:.3f}"),
    ("torch ms", 9, "{torch_ms:.3f}"),
    ("ratio", 5, "{ratio:.2f}"),
)
_NUMERIC = {"T", "B", "I", "H", "rnnkit ms", "torch ms", "ratio"}


def _line(cells: Sequence[str]) -> str:
    parts = []
    for (header, width, _), text in zip(_COLUMNS, cells):
        parts.append(text.rjust(width) if header in _NUMERIC else text.ljust(width))
    return "| " + " | ".join(parts) + " |"


def format_table_header() -> str:
    """The two header lines of the (Markdown) results table."""
    rule = []
    for header, width, _ in _COLUMNS:
        dashes = "-" * width
        rule.append(dashes[:-1] + ":" if header in _NUMERIC else dashes)
    return _line([h for h, _, _ in _COLUMNS]) + "\n" + "| " + " | ".join(rule) + " |"


def format_row(row: dict) -> str:
    """One result row as a line of the results table."""
    return _line([fmt.format(**row) for _, _, fmt in _COLUMNS])


def format_table(rows: Sequence[dict]) -> str:
    """All rows as a Markdown table (pasteable into the README)."""
    return "\n".join([format_table_header(), *(format_row(r) for r in rows)])


def _software() -> dict:
    """torch's version, thread count and CPU capability, Python's version, and how the fused loop runs."""
    import platform

    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        capability = "?"
    from rnnkit.nn import native

    ext = native.load()
    loop = "fused C++ cells off" if ext is None else \
        "recurrent weight packed for MKL" if ext.packed_gemm_available() else "recurrent product by at::mm"
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "capability": capability,
            "python": platform.python_version(), "loop": loop}


def environment_summary() -> str:
    """One line describing what the numbers were measured on: the machine (``rnnkit.machine.describe()``),
    then torch, its threads and CPU capability, Python, and how the recurrent product runs."""
    from rnnkit import machine

    soft = _software()
    return (
        f"{machine.describe()}; torch {soft['torch']}, {soft['threads']} thread(s), "
        f"capability {soft['capability']}, Python {soft['python']}, {soft['loop']}"
    )


def environment() -> dict:
    """``environment_summary()`` for JSON: ``rnnkit.machine.as_dict()`` (cpu, cpus, features, amx,
    native_bf16) plus torch, threads, capability, python and loop."""
    from rnnkit import machine

    return {**machine.as_dict(), **_software()}
