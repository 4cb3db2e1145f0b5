"""What turning on a regulariser costs: LSTM fwd+bwd time with each option over the plain layer.

Options that torch.nn lacks run on the same hand-written loop and fused cells; this measures, in
one process with alternating runs, how much each adds (zoneout in evaluation mode, so its
deterministic blend is what runs; weight drop and layer norm in training mode).

    python benchmarks/options_cost.py [--T 100 --B 64 --I 256 --H 512] [--repeats 5]
"""

from __future__ import annotations

import torch
from common import fwd_bwd, print_machine, shape_parser

import rnnkit
from rnnkit.bench.timing import Candidate, compare, median_ms

OPTIONS = {
    "plain": {},
    "zoneout=0.1 (eval)": {"zoneout": 0.1},
    "weight_drop=0.3": {"weight_drop": 0.3},
    "layer_norm": {"layer_norm": True},
}


def main() -> None:
    args = shape_parser(__doc__.splitlines()[0], repeats=5).parse_args()
    print_machine()
    x = torch.randn(args.T, args.B, args.I, requires_grad=True)
    layers = {name: rnnkit.nn.LSTM(args.I, args.H, **options) for name, options in OPTIONS.items()}
    layers["zoneout=0.1 (eval)"].eval()

    times = compare([Candidate(name, fwd_bwd(layer, x)) for name, layer in layers.items()], args.repeats)
    base = median_ms(times["plain"])
    print(f"LSTM fwd+bwd, T={args.T} B={args.B} I={args.I} H={args.H}, {torch.get_num_threads()} threads")
    for name, values in times.items():
        ms = median_ms(values)
        print(f"{name:<20} {ms:8.1f} ms  x{ms / base:.2f}")


if __name__ == "__main__":
    main()
