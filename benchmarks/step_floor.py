"""How fast a streaming step at batch 1 could be: the time to read its weights, next to the step.

    python benchmarks/step_floor.py [--size 512] [--repeats 400]

A step at batch 1 reads every weight once and does two multiply-adds per weight, so its time is
bound by reading the weights from wherever they are. This compiles a loop that does only that
(``torch.utils.cpp_extension.load_inline``): each of the threads sums its own contiguous share
of a buffer the size of a layer's weights (``G * H * (I + H)`` values, I = H = ``--size``), with
four independent sums, in blocks of 256 KB, walking its share upwards at every call ("one way")
or upwards and downwards at alternate calls ("alternating", which keeps the last-read part in
L2). It prints the median microseconds per read, for float32 and bfloat16 sizes, next to the
median of ``layer.step(x, state)`` in a loop, for the LSTM, GRU and RNN. The read loop has no
Python or dispatch overhead; ``step`` has both (a few microseconds).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import print_machine, run

import rnnkit.nn as rnn

SOURCE = r"""
#include <torch/extension.h>
#include <omp.h>
#include <chrono>

// Sum a float buffer in its threads' shares, walked one way or the other; returns microseconds.
double read_shares(torch::Tensor buffer, bool reverse) {
    const float* data = buffer.data_ptr<float>();
    const int64_t n = buffer.numel(), block = 65536;            // 256 KB of float32
    const int64_t blocks = n / block;
    float total = 0;
    auto start = std::chrono::steady_clock::now();
    #pragma omp parallel reduction(+ : total)
    {
        const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
        const int64_t lo = blocks * thread / threads, hi = blocks * (thread + 1) / threads;
        for (int64_t i = lo; i < hi; ++i) {
            const float* p = data + (reverse ? lo + hi - 1 - i : i) * block;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            #pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int64_t k = 0; k < block / 4; ++k) {
                s0 += p[k]; s1 += p[k + block / 4]; s2 += p[k + block / 2]; s3 += p[k + 3 * block / 4];
            }
            total += s0 + s1 + s2 + s3;
        }
    }
    auto end = std::chrono::steady_clock::now();
    if (total == 12345.0f) buffer.add_(0);                      // keep the sums alive
    return std::chrono::duration<double, std::micro>(end - start).count();
}
"""


def read_floor(ext, megabytes: float, repeats: int) -> dict:
    """Median microseconds to read ``megabytes`` split over the threads: one way, and alternating."""
    buffer = torch.ones(int(megabytes * 2**20 / 4))
    result = {}
    for name, alternate in (("one way", False), ("alternating", True)):
        times = [ext.read_shares(buffer, alternate and k % 2 == 1) for k in range(repeats + 50)][50:]
        result[name] = statistics.median(times)
    return result


def step_time(layer, x, repeats: int) -> float:
    """Median microseconds of ``layer.step`` called in a loop, carrying its state."""
    with torch.no_grad():
        state = None
        for _ in range(50):
            _, state = layer.step(x, state)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            _, state = layer.step(x, state)
            times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="input and hidden size (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=400)
    args = parser.parse_args()
    if args.size < 1 or args.repeats < 1:
        parser.error(f"--size and --repeats must be at least 1, got {args.size} and {args.repeats}")
    print_machine()
    from torch.utils.cpp_extension import load_inline
    ext = load_inline("rnnkit_step_floor", cpp_sources=SOURCE, functions=["read_shares"],
                      extra_cflags=["-O3", "-fopenmp", "-march=native"], extra_ldflags=["-fopenmp"])
    size = args.size
    print(f"# {torch.get_num_threads()} threads; I = H = {size}, batch 1; medians in microseconds")
    print("| cell | dtype | weights MB | read one way | read alternating | step() |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for cell, gates in (("lstm", 4), ("gru", 3), ("rnn", 1)):
        for dtype in (torch.float32, torch.bfloat16):
            megabytes = gates * size * (size + size) * dtype.itemsize / 2**20
            floor = read_floor(ext, megabytes, args.repeats)
            layer = rnn.make_layer(cell, size, size).eval().to(dtype)
            step = step_time(layer, torch.randn(1, size, dtype=dtype), args.repeats)
            print(f"| {cell} | {str(dtype)[6:]} | {megabytes:.1f} | {floor['one way']:.1f} | "
                  f"{floor['alternating']:.1f} | {step:.1f} |")


if __name__ == "__main__":
    run(main)
