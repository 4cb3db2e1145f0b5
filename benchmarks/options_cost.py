"""What turning on a regulariser costs: LSTM fwd+bwd time with each option over the plain layer.

Options that torch.nn lacks run on the same hand-written loop and fused cells; this measures, in
one process with alternating runs, how much each adds (zoneout in evaluation mode, so its
deterministic blend is what runs; weight drop and layer norm in training mode).

    python benchmarks/options_cost.py [--T 100 --B 64 --I 256 --H 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import rnnkit

OPTIONS = {
    "plain": {},
    "zoneout=0.1 (eval)": {"zoneout": 0.1},
    "weight_drop=0.3": {"weight_drop": 0.3},
    "layer_norm": {"layer_norm": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=100, help="time steps")
    parser.add_argument("--B", type=int, default=64, help="batch size")
    parser.add_argument("--I", type=int, default=256, help="input size")
    parser.add_argument("--H", type=int, default=512, help="hidden size")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each, alternating")
    args = parser.parse_args()
    x = torch.randn(args.T, args.B, args.I, requires_grad=True)
    layers = {name: rnnkit.nn.LSTM(args.I, args.H, **options) for name, options in OPTIONS.items()}
    layers["zoneout=0.1 (eval)"].eval()

    def fwd_bwd(layer):
        x.grad = None
        layer.zero_grad(set_to_none=True)
        out, _ = layer(x)
        out.sum().backward()

    for layer in layers.values():
        fwd_bwd(layer)                                             # warm up
    times = {name: [] for name in layers}
    for _ in range(args.repeats):
        for name, layer in layers.items():
            start = time.perf_counter()
            fwd_bwd(layer)
            times[name].append((time.perf_counter() - start) * 1e3)
    base = statistics.median(times["plain"])
    print(f"LSTM fwd+bwd, T={args.T} B={args.B} I={args.I} H={args.H}, {torch.get_num_threads()} threads")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name:<20} {ms:8.1f} ms  x{ms / base:.2f}")


if __name__ == "__main__":
    main()
