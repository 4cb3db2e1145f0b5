"""How fast could a recurrent layer's fwd+bwd be? Time its matrix products alone, against torch.nn.

A layer's forward and backward through time need, whatever the implementation, these GEMMs:
the input projection of all steps, one recurrent product per step forward and one backward,
and the weight and input gradients. This script times exactly those (same shapes, same BLAS,
no gate arithmetic, no bookkeeping) next to torch.nn's whole fwd+bwd, alternating runs.
``torch_ms / floor_ms`` is then the best ratio any implementation built on this BLAS can
reach; compare it with ``rnnkit bench layers``.

    python benchmarks/gemm_floor.py [--T 100 --B 64 --I 256 --H 512] [--repeats 7]
"""

from __future__ import annotations

import torch
from common import fwd_bwd, print_machine, shape_parser

from rnnkit.bench.timing import Candidate, compare, median_ms

GATES = {"rnn_tanh": 1, "gru": 3, "lstm": 4}
LAYERS = {"rnn_tanh": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def gemms(T: int, B: int, I: int, H: int, gates: int):
    """A closure running the GEMMs of one fwd+bwd of a one-layer recurrent network."""
    G = gates * H
    x, w_ih, w_hh = torch.randn(T * B, I), torch.randn(G, I), torch.randn(G, H)
    h, d_step = torch.randn(B, H), torch.randn(B, G)
    d_all, h_all = torch.randn(T * B, G), torch.randn(T * B, H)
    out_f, out_b = torch.empty(B, G), torch.empty(B, H)

    def run():
        torch.mm(x, w_ih.t())                      # input projection, all steps   (T*B, G)
        for _ in range(T):
            torch.mm(h, w_hh.t(), out=out_f)       # recurrent product, forward    (B, G)
        for _ in range(T):
            torch.mm(d_step, w_hh, out=out_b)      # recurrent product, backward   (B, H)
        torch.mm(d_all.t(), h_all)                 # dW_hh                         (G, H)
        torch.mm(d_all.t(), x)                     # dW_ih                         (G, I)
        torch.mm(d_all, w_ih)                      # dx                            (T*B, I)
    return run


def torch_layer(T: int, B: int, I: int, H: int, cell: str):
    return fwd_bwd(LAYERS[cell](I, H), torch.randn(T, B, I, requires_grad=True))


def main() -> None:
    args = shape_parser(__doc__.splitlines()[0], repeats=7).parse_args()
    print_machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, T={args.T} B={args.B} "
          f"I={args.I} H={args.H}, float32")
    print(f"{'cell':<9} {'GEMM floor ms':>14} {'torch.nn ms':>12} {'best ratio':>11}")
    for cell, gates in GATES.items():
        shape = (args.T, args.B, args.I, args.H)
        times = compare([Candidate("floor", gemms(*shape, gates)), Candidate("torch", torch_layer(*shape, cell))],
                        args.repeats)
        floor_ms, torch_ms = median_ms(times["floor"]), median_ms(times["torch"])
        print(f"{cell:<9} {floor_ms:>14.1f} {torch_ms:>12.1f} {torch_ms / floor_ms:>11.2f}")


if __name__ == "__main__":
    main()
