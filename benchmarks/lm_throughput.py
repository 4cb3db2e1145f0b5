"""Training throughput of a word language model, full softmax against adaptive softmax.

    python benchmarks/lm_throughput.py [--size 650] [--batch-size 32] [--bptt 35]
                                       [--cutoffs 2000,5000] [--rounds 3] [--bf16] [--data-dir DIR]

A 2-layer tied LSTM with Penn Treebank's 10,000-word vocabulary: tokens per second of training
steps (loss, backward, AdamW) with each decoder. The windows are read from ``ptb.train.txt``, its
words ranked by frequency as rnnkit's word vocabulary does, so the adaptive softmax sees the real
share of tail words. The two models are timed in alternating rounds (medians of 8 steps each), so
both see the same machine conditions; the ratio is what to compare across machines.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

import torch
from common import data_dir, print_machine, run, train_step_seconds, write_result

from rnnkit.tasks.lm import LMConfig

VOCAB = 10_000


def ptb_ids(path, limit: int = 300_000) -> torch.Tensor:
    """The first ``limit`` tokens of a PTB file (one <eos> per line) as frequency ranks (<unk> 0, <eos> 1)."""
    words = [w for line in path.read_text().splitlines() for w in line.split() + ["<eos>"]]
    ranked = [w for w, _ in Counter(words).most_common() if w not in ("<unk>", "<eos>")]
    rank = {w: i + 2 for i, w in enumerate(ranked[:VOCAB - 2])}
    rank.update({"<unk>": 0, "<eos>": 1})
    return torch.tensor([rank.get(w, 0) for w in words[:limit]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=650, help="embedding and hidden size (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--cutoffs", default="2000,5000", help="adaptive softmax cutoffs (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds (default: %(default)s)")
    parser.add_argument("--data-dir", help="directory holding ptb.train.txt (default: ../shared/data/ptb)")
    parser.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast (default: float32)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    ids = ptb_ids(data_dir("ptb", args.data_dir) / "ptb.train.txt")
    print_machine()
    cutoffs = [int(c) for c in args.cutoffs.split(",")]
    shape = dict(vocab_size=VOCAB, embedding_size=args.size, hidden_size=args.size, num_layers=2, tie_weights=True,
                 dropout=0.4)
    decoders = {"full": LMConfig(**shape), "adaptive": LMConfig(**shape, softmax_cutoffs=cutoffs)}
    seconds = {name: [] for name in decoders}
    for _ in range(args.rounds):
        for name, config in decoders.items():
            seconds[name].append(train_step_seconds(config, args.batch_size, args.bptt, steps=8, tokens=ids,
                                                     bf16=args.bf16))
    tokens = args.batch_size * args.bptt
    rate = {name: tokens / statistics.median(s) for name, s in seconds.items()}
    write_result(args.json, {
        "benchmark": "lm-throughput", "size": args.size, "batch_size": args.batch_size, "bptt": args.bptt,
        "cutoffs": cutoffs, "bf16": args.bf16, "threads": torch.get_num_threads(),
        "tokens_per_second": {name: round(r) for name, r in rate.items()},
        "adaptive_over_full": round(rate["adaptive"] / rate["full"], 2)})


if __name__ == "__main__":
    run(main)
