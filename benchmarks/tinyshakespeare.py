"""Tiny Shakespeare, character level: validation loss (nats per character) after a wall-clock budget.

    python benchmarks/tinyshakespeare.py --budget 100 [--data-dir DIR] [--out DIR] [--json result.json]

nanoGPT's split: the first 90% of the characters of ``input.txt`` train, the last 10% validate.
Each budget (seconds of training, evaluations included) has its own recipe, sized so that the model
finishes its cosine learning-rate decay when the time runs out: the number of steps is set from a
short timed run of the same model before training starts (that run is not counted). The reported
loss is over the whole validation text, read in 8 streams with the hidden state carried.

For scale (issue 3): nanoGPT's small CPU transformer reaches 1.89 after 100 seconds; its 6-layer
transformer reaches 1.47 on an A100 GPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import data_dir, print_machine, run, steps_in, write_result

from rnnkit.tasks.lm import LMConfig, LMData, evaluate, fit
from rnnkit.train import TrainConfig

VOCAB = 65                                        # distinct characters of input.txt

RECIPES = {
    100: dict(model=dict(embedding_size=64, hidden_size=256, num_layers=1),
              text=LMData(batch_size=64, bptt=64), lr=6e-3),
    300: dict(model=dict(embedding_size=64, hidden_size=384, num_layers=1),
              text=LMData(batch_size=32, bptt=64), lr=4e-3),
    1800: dict(model=dict(embedding_size=64, hidden_size=384, num_layers=2, dropout=0.15),
               text=LMData(batch_size=32, bptt=100), lr=3e-3),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, choices=sorted(RECIPES), default=100, help="seconds of training")
    parser.add_argument("--data-dir", help="directory holding input.txt (default: ../shared/data/tinyshakespeare)")
    parser.add_argument("--out", help="run directory (default: runs/tinyshakespeare-BUDGET)")
    parser.add_argument("--json", help="also write the result to this file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = data_dir("tinyshakespeare", args.data_dir) / "input.txt"
    print_machine()
    recipe = RECIPES[args.budget]
    text: LMData = recipe["text"]
    steps = steps_in(args.budget, LMConfig(vocab_size=VOCAB, **recipe["model"]), text.batch_size, text.bptt)
    evals = 4
    train = TrainConfig(lr=recipe["lr"], schedule="cosine", warmup_steps=min(200, steps // 10), clip_grad_norm=1.0,
                        max_steps=steps, max_time=float(args.budget), eval_every=max(1, steps // evals),
                        seed=args.seed, log_every=100)
    out = Path(args.out or f"runs/tinyshakespeare-{args.budget}")
    started = time.perf_counter()
    result = fit(source, out, model=recipe["model"], data=text, train=train)   # last 10% held out
    seconds = time.perf_counter() - started
    corpus = source.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        valid = Path(tmp) / "valid.txt"
        valid.write_text(corpus[int(len(corpus) * 0.9):], encoding="utf-8")
        metrics = evaluate(out, valid)
    write_result(args.json, {
        "benchmark": f"tinyshakespeare-{args.budget}s", "model": recipe["model"], "bptt": text.bptt,
        "batch_size": text.batch_size, "lr": recipe["lr"], "planned_steps": steps, "steps": result.steps,
        "stopped_because": result.stopped_because, "train_seconds": round(seconds, 1),
        "valid_loss": round(metrics["loss"], 4), "valid_bits_per_char": round(metrics["bits_per_char"], 4),
        "nanogpt_cpu_100s": 1.89, "target_30min": 1.47})


if __name__ == "__main__":
    run(main)
