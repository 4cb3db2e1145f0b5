"""Streaming ``step()`` at small batches: the fused C++ pass (``step_stack``) against the BLAS path.

    python benchmarks/step_rows.py [--size 512] [--batches 1,2,4,8] [--repeats 5]

``rnnkit.nn.layers.FUSED_STEP_ROWS`` decides up to which batch size ``step`` of a plain layer runs as
one fused pass per call; larger batches go through BLAS matrix products. This times both paths of
one layer (I = H = ``--size``) for each cell and batch size, alternating the two (medians over
repeats of 200 calls), so the threshold can be checked on a new machine.
"""

from __future__ import annotations

import argparse

import torch
from common import print_machine, run, write_result

import rnnkit.nn as rnn
import rnnkit.nn.layers as layers
from rnnkit.bench.timing import Candidate, compare, median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="input and hidden size (default: %(default)s)")
    parser.add_argument("--batches", default="1,2,4,8", help="batch sizes (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    print_machine()
    threshold, rows = layers.FUSED_STEP_ROWS, []
    try:
        for cell in ("lstm", "gru", "rnn"):
            layer = rnn.make_layer(cell, args.size, args.size).eval()
            for batch in (int(b) for b in args.batches.split(",")):
                x = torch.randn(batch, args.size)
                with torch.no_grad():
                    _, state = layer.step(x)

                    def path(rows: int):
                        def call():
                            layers.FUSED_STEP_ROWS = rows
                            layer.step(x, state)
                        return call
                    times = compare([Candidate("fused", path(batch)), Candidate("blas", path(0))], args.repeats,
                                    min_run_time=0.02)
                fused, blas = median_ms(times["fused"]) * 1e3, median_ms(times["blas"]) * 1e3
                rows.append({"cell": cell, "batch": batch, "fused_us": round(fused, 1), "blas_us": round(blas, 1),
                             "fused_faster": fused < blas})
    finally:
        layers.FUSED_STEP_ROWS = threshold
    write_result(args.json, {"benchmark": "step-rows", "size": args.size, "threads": torch.get_num_threads(),
                             "FUSED_STEP_ROWS": threshold, "rows": rows})


if __name__ == "__main__":
    run(main)
