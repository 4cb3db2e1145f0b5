"""rnnkit's cells (``RNNCell``, ``LSTMCell``, ``GRUCell``) against torch.nn's at small sizes.

    python benchmarks/cells.py [--repeats 7] [--steps 300] [--json FILE]

1. The model of pytorch/examples' ``time_sequence_prediction``: two LSTMCells of 51 and a Linear
   over 97 sine waves, float64, unrolled in Python one step at a time; one training pass (forward
   and backward over ``--steps`` steps, what each LBFGS closure runs) and one no-grad pass.
2. One cell call at a few sizes, with and without a graph (forward, and forward + backward).

Each figure is the median over ``--repeats`` rounds, rnnkit and torch.nn alternating within a
round, in one process; the ratio is rnnkit's time over torch's (below 1: rnnkit is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import print_machine, run, write_result

import rnnkit.nn as rk


def sequence_model(ns, dtype):
    """time_sequence_prediction's ``Sequence``: LSTMCell(1, 51), LSTMCell(51, 51), Linear(51, 1)."""
    torch.manual_seed(0)
    return ns.LSTMCell(1, 51).to(dtype), ns.LSTMCell(51, 51).to(dtype), torch.nn.Linear(51, 1).to(dtype)


def unroll(model, x):
    """The example's forward: x (B, T) -> (B, T), both cells stepped once per time step."""
    first, second, linear = model
    h1 = c1 = h2 = c2 = x.new_zeros(x.shape[0], 51)
    outputs = []
    for t in range(x.shape[1]):
        h1, c1 = first(x[:, t:t + 1], (h1, c1))
        h2, c2 = second(h1, (h2, c2))
        outputs.append(linear(h2))
    return torch.cat(outputs, dim=1)


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def side_by_side(ours, theirs, repeats: int) -> dict:
    """Median seconds of each over ``repeats`` alternating rounds, and their ratio."""
    ours(), theirs()                                                   # warm-up
    a, b = [], []
    for _ in range(repeats):
        a.append(timed(ours))
        b.append(timed(theirs))
    mine, ref = statistics.median(a), statistics.median(b)
    return {"rnnkit_ms": round(1e3 * mine, 3), "torch_ms": round(1e3 * ref, 3), "ratio": round(mine / ref, 3)}


def sequence_prediction(steps: int, repeats: int) -> dict:
    x = torch.sin(torch.arange(steps, dtype=torch.float64) / 20.0 + torch.arange(97, dtype=torch.float64)
                  .unsqueeze(1))                                       # (97, steps)
    models = {"rnnkit": sequence_model(rk, torch.float64), "torch": sequence_model(torch.nn, torch.float64)}

    def train(name):
        def go():
            unroll(models[name], x[:, :-1]).sub(x[:, 1:]).pow(2).mean().backward()
        return go

    def predict(name):
        def go():
            with torch.no_grad():
                unroll(models[name], x)
        return go

    return {"training_pass": side_by_side(train("rnnkit"), train("torch"), repeats),
            "no_grad_pass": side_by_side(predict("rnnkit"), predict("torch"), repeats)}


def cell_calls(repeats: int, calls: int = 500) -> list:
    rows = []
    for name in ("RNNCell", "LSTMCell", "GRUCell"):
        for dtype in (torch.float32, torch.float64):
            for B, I, H in ((1, 16, 32), (8, 32, 32), (97, 51, 51), (64, 128, 128)):
                torch.manual_seed(0)
                theirs = getattr(torch.nn, name)(I, H).to(dtype)
                ours = getattr(rk, name)(I, H).to(dtype)
                ours.load_state_dict(theirs.state_dict())
                x = torch.randn(B, I, dtype=dtype, requires_grad=True)
                h = torch.randn(B, H, dtype=dtype)
                state = (h, torch.randn(B, H, dtype=dtype)) if name == "LSTMCell" else h

                def forward(cell):
                    def go():
                        with torch.no_grad():
                            for _ in range(calls):
                                cell(x, state)
                    return go

                def backward(cell):
                    def go():
                        for _ in range(calls):
                            y = cell(x, state)
                            (y[0] + y[1] if isinstance(y, tuple) else y).sum().backward()
                    return go

                row = {"cell": name, "dtype": str(dtype).replace("torch.", ""), "B": B, "I": I, "H": H}
                for label, make in (("no_grad", forward), ("forward_backward", backward)):
                    figures = side_by_side(make(ours), make(theirs), repeats)
                    row[label] = {"rnnkit_us": round(1e3 * figures["rnnkit_ms"] / calls, 1),
                                  "torch_us": round(1e3 * figures["torch_ms"] / calls, 1), "ratio": figures["ratio"]}
                print(f"{name:9s} {row['dtype']:8s} B={B:3d} I={I:3d} H={H:3d}  no grad "
                      f"{row['no_grad']['rnnkit_us']:7.1f} vs {row['no_grad']['torch_us']:7.1f} us "
                      f"({row['no_grad']['ratio']:.2f})  fwd+bwd {row['forward_backward']['rnnkit_us']:7.1f} vs "
                      f"{row['forward_backward']['torch_us']:7.1f} us ({row['forward_backward']['ratio']:.2f})",
                      flush=True)
                rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternating rounds (default: 7)")
    parser.add_argument("--steps", type=int, default=300, help="time steps of the sequence model (default: 300; "
                                                              "the example's 999 takes 3x as long)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    print_machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    sequence = sequence_prediction(args.steps, args.repeats)
    for label, figures in sequence.items():
        print(f"time_sequence_prediction {label}: rnnkit {figures['rnnkit_ms']:.1f} ms, torch.nn "
              f"{figures['torch_ms']:.1f} ms (ratio {figures['ratio']:.2f})", flush=True)
    write_result(args.json, {"benchmark": "cells", "threads": torch.get_num_threads(), "steps": args.steps,
                             "time_sequence_prediction": sequence, "cell_calls": cell_calls(args.repeats)})


if __name__ == "__main__":
    run(main)
