"""The measurements behind notes/cpu-facts-this-machine.md, in one run.

    python benchmarks/machine_facts.py

Prints: the CPU; GEMM of one LSTM step (64x512 @ 512x2048) through torch (MKL) and numpy
(OpenBLAS), and in float32 against bfloat16; 100 LSTM forward steps with the GEMM through each (numpy's thread pool next to
torch's); a 4 MB matrix-vector product through MKL and rnnkit's C++ ``small_linear``; reading
8 MB; the fused LSTM gate arithmetic of one step against PyTorch ops; filling a 39 MB buffer
freshly allocated against reused (``rnnkit.nn.workspace``); a GEMM of denormals with them flushed
on no thread, on the calling thread (``torch.set_flush_denormal``) and on every thread
(``rnnkit.nn.native.set_flush_denormal``).
"""

from __future__ import annotations

import numpy as np
import torch
from common import print_machine

from rnnkit.bench.timing import Candidate, compare, median_ms
from rnnkit.nn import cells, native


def show(title: str, candidates, repeats: int = 20) -> None:
    times = compare(candidates, repeats)
    print(f"{title}: " + ", ".join(f"{name} {median_ms(t) * 1e3:.0f} µs" for name, t in times.items()))


def main() -> None:
    print_machine()
    ext = native.load()
    B, H = 64, 512
    h, w, out = torch.randn(B, H), torch.randn(4 * H, H) * 0.05, torch.empty(B, 4 * H)
    hn, wn, on = h.numpy(), w.numpy(), out.numpy()
    # Each library on its own (interleaving them is the contention measured next).
    show("GEMM 64x512 @ 512x2048, alone", [Candidate("torch/MKL", lambda: torch.mm(h, w.t(), out=out))])
    show("GEMM 64x512 @ 512x2048, alone", [Candidate("numpy/OpenBLAS", lambda: np.matmul(hn, wn.T, out=on))])
    hb, wb = h.bfloat16(), w.bfloat16()
    show("GEMM 64x512 @ 512x2048, float32 vs bfloat16 (torch)", [Candidate("float32", lambda: torch.mm(h, w.t())),
                                                                 Candidate("bfloat16", lambda: torch.mm(hb, wb.t()))])

    T = 100
    gx, states, cs = torch.randn(T, B, 4 * H), torch.zeros(T + 1, B, H), torch.zeros(T + 1, B, H)
    act = torch.empty(T, B, 5 * H)
    lstm = cells.fastest(cells.LSTM, torch.float32)

    def loop(gemm):
        def run():
            for t in range(T):
                gemm(t)
                lstm.forward(out, None, states[t], cs[t], act[t], states[t + 1], cs[t + 1])
        return run

    def torch_gemm(t):
        torch.addmm(gx[t], states[t], w.t(), out=out)

    def numpy_gemm(t):
        np.matmul(states[t].numpy(), wn.T, out=on)
        out.add_(gx[t])

    show(f"{T} LSTM forward steps, GEMM through", [Candidate("torch", loop(torch_gemm)),
                                                   Candidate("numpy", loop(numpy_gemm))], repeats=5)

    x, b, y = torch.randn(1, H), torch.randn(4 * H), torch.empty(1, 4 * H)
    vector = [Candidate("MKL addmm", lambda: torch.addmm(b, x, w.t(), out=y))]
    if ext is not None:
        vector.append(Candidate("rnnkit small_linear", lambda: ext.small_linear(x, w, b, y)))
    show("matrix-vector 1x512 @ 512x2048 (4 MB)", vector, repeats=200)
    big = torch.randn(2048, 1024)
    show("reading 8 MB (sum)", [Candidate("torch", lambda: big.sum())], repeats=200)

    a, c_prev = torch.randn(B, 4 * H), torch.randn(B, H)
    h_out, c_out = torch.empty(B, H), torch.empty(B, H)
    gates = [Candidate("PyTorch ops", lambda: cells.LSTM.forward(a, None, None, c_prev, act[0], h_out, c_out))]
    if ext is not None:
        gates.append(Candidate("fused C++", lambda: ext.lstm_forward(a, c_prev, act[0], h_out, c_out)))
    show("LSTM gate arithmetic of one step (64x512), forward", gates, repeats=100)

    # The input projection of a GRU layer at T=100, B=64, H=512: (6400, 1536).
    n = T * B * 3 * H
    reused = torch.empty(n)
    show("filling 39 MB, a (100, 64, 1536) float32 buffer", [
        Candidate("freshly allocated", lambda: torch.empty(n).fill_(1.0)),
        Candidate("reused", lambda: reused.fill_(1.0))])

    # Denormal inputs to a GEMM split across the threads, flushed on none of them, on the calling
    # thread only (torch.set_flush_denormal), and on every intra-op thread (rnnkit's).
    tiny, dense = torch.full((1024, 1024), 1e-39), torch.rand(1024, 1024)

    def product(calling_thread: bool, every_thread: bool):
        def run():
            native.set_flush_denormal(every_thread)
            torch.set_flush_denormal(calling_thread or every_thread)
            torch.mm(tiny, dense)
        return run

    show(f"1024x1024 @ 1024x1024 of denormals on {torch.get_num_threads()} threads, flushed", [
        Candidate("nowhere", product(False, False)), Candidate("calling thread", product(True, False)),
        Candidate("every thread", product(True, True))], repeats=5)
    native.set_flush_denormal(False)


if __name__ == "__main__":
    main()
