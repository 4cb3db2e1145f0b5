"""``rnnkit demo``: a tour of rnnkit, about two and a half minutes on a laptop CPU.

The tour is a list of sections (:data:`SECTIONS`), each a function that prints
what it shows and returns the problems it found (an empty list when all is
well). ``rnnkit demo`` exits with 1 if any section found a problem, so the demo
doubles as a smoke test of an installation.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Callable, List, Optional, TextIO

import torch

__all__ = ["run", "SECTIONS", "hello_section", "streaming_section", "parity_section", "language_model_section"]

HELLO_CELLS = ("rnn", "lstm", "gru")
EXPECTED = "ello"
#: Largest max-abs difference from torch.nn that the parity section accepts.
PARITY_TOLERANCE = 1e-4
#: Nats per character the language model must gain over a uniform guess: a few dozen steps do it
#: on any machine; the text gets readable after a thousand or more.
LEARNT = 1.0


def hello_section(out: TextIO, *, seed: int = 0, steps: Optional[int] = None, verbose: bool = False, **_) -> List[str]:
    """Train a character RNN, LSTM and GRU on 'hello' (after 'h' they should say 'ello')."""
    from rnnkit.examples import hello

    problems = []
    print("Each model reads 'hell' one character at a time and learns to predict the next one.", file=out)
    for cell in HELLO_CELLS:
        kwargs = {} if steps is None else {"steps": steps}
        t0 = time.perf_counter()
        result = hello.run(cell=cell, seed=seed, verbose=verbose, **kwargs)
        seconds = time.perf_counter() - t0
        ok = result.prediction == EXPECTED
        print(
            f"  {cell:<4}  prediction {result.prediction!r:<8} after {result.steps:>4} steps, "
            f"loss {result.loss:.4f}, {seconds:.1f} s  {'ok' if ok else 'WRONG'}",
            file=out,
        )
        if not ok:
            problems.append(f"demo: the {cell} model predicted {result.prediction!r}, expected {EXPECTED!r}")
    return problems


def streaming_section(out: TextIO, *, seed: int = 0, **_) -> List[str]:
    """``layer.step`` runs one time step at a time and agrees with the full forward pass."""
    from rnnkit import nn

    torch.manual_seed(seed)
    T, B, I, H = 6, 2, 8, 16
    lstm = nn.LSTM(I, H).eval()
    x = torch.randn(T, B, I)
    with torch.no_grad():
        full, (h_n, c_n) = lstm(x)
        state, ys = None, []
        for t in range(T):  # e.g. one audio frame or one keystroke at a time
            y, state = lstm.step(x[t], state)
            ys.append(y.reshape(B, H))
    diff = max(
        (torch.stack(ys) - full).abs().max().item(),
        (state[0] - h_n).abs().max().item(),
        (state[1] - c_n).abs().max().item(),
    )
    print(f"  LSTM({I}, {H}): {T} calls of layer.step(x_t, state) vs one forward over {T} steps:", file=out)
    print(f"  max |difference| of outputs and final state = {diff:.2e}", file=out)
    if not diff <= PARITY_TOLERANCE:
        return [f"demo: step-by-step LSTM differs from its forward pass by {diff:.3g}"]
    return []


def parity_section(out: TextIO, *, seed: int = 0, **_) -> List[str]:
    """Same weights as torch.nn, same results: outputs, final states, input gradients."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from rnnkit import nn

    T, B, I, H = 7, 3, 5, 6
    lengths = torch.tensor([7, 4, 2])
    pairs = {"RNN": (nn.RNN, torch.nn.RNN), "LSTM": (nn.LSTM, torch.nn.LSTM), "GRU": (nn.GRU, torch.nn.GRU)}
    problems = []
    print(f"  ours.load_state_dict(torch_layer.state_dict()); input {T}x{B}x{I} with lengths={lengths.tolist()}", file=out)
    print(f"  {'layer':<5} {'output':>9} {'h_n':>9} {'d input':>9}   (max |rnnkit - torch.nn|)", file=out)
    for name, (ours_cls, torch_cls) in pairs.items():
        torch.manual_seed(seed)
        theirs = torch_cls(I, H)
        ours = ours_cls(I, H)
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(T, B, I)
        weight = torch.randn(T, B, H)

        x_ours = x.clone().requires_grad_(True)
        y_ours, s_ours = ours(x_ours, lengths=lengths)
        (y_ours * weight).sum().backward()

        x_theirs = x.clone().requires_grad_(True)
        packed = pack_padded_sequence(x_theirs, lengths, enforce_sorted=False)
        y_packed, s_theirs = theirs(packed)
        y_theirs, _ = pad_packed_sequence(y_packed, total_length=T)
        (y_theirs * weight).sum().backward()

        h_ours, h_theirs = nn.hidden(s_ours), nn.hidden(s_theirs)
        diffs = [
            (y_ours - y_theirs).abs().max().item(),
            (h_ours - h_theirs).abs().max().item(),
            (x_ours.grad - x_theirs.grad).abs().max().item(),
        ]
        print(f"  {name:<5} " + " ".join(f"{d:>9.1e}" for d in diffs), file=out)
        if not max(diffs) <= PARITY_TOLERANCE:
            problems.append(f"demo: rnnkit.nn.{name} differs from torch.nn.{name} by {max(diffs):.3g}")
    return problems


def language_model_section(out: TextIO, *, seed: int = 0, lm_seconds: float = 120.0, lm_threads: int = 2,
                           **_) -> List[str]:
    """A character LSTM trained for ``lm_seconds`` on text that ships with Python, then sampled."""
    import tempfile
    from pathlib import Path

    from rnnkit.tasks.lm import LMData, fit, load
    from rnnkit.train import TrainConfig

    if lm_seconds <= 0:
        print("  skipped (--lm-seconds 0)", file=out)
        return []
    try:
        from pydoc_data.topics import topics                     # Python's own help pages, ~465 kB
    except ImportError:
        return ["demo: this Python lacks pydoc_data (its help text), the language model's corpus"]
    threads = torch.get_num_threads()
    torch.set_num_threads(lm_threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "python-help.txt"
            corpus.write_text("\n".join(topics.values()), encoding="utf-8")
            print(f"  corpus: Python's help pages (pydoc_data.topics), {corpus.stat().st_size // 1000} kB; "
                  f"char LSTM 1x256, {lm_seconds:.0f} s of training (its final evaluation included) on "
                  f"{lm_threads} thread(s); progress every 100 steps, an evaluation every 250...", file=out, flush=True)
            config = TrainConfig(lr=5e-3, max_time=lm_seconds, eval_every=250, clip_grad_norm=1.0, seed=seed,
                                 log_every=100, tensorboard=False)
            result = fit(corpus, Path(tmp) / "run", model=dict(embedding_size=64, hidden_size=256, num_layers=1),
                         data=LMData(batch_size=32, bptt=64), train=config)
            model = load(Path(tmp) / "run" / "BEST")                # the evaluation with the lowest loss
            loss, uniform = result.best, math.log(len(model.vocab))
            print(f"  {result.steps} steps; best validation loss {loss:.3f} nats/char ({loss / math.log(2):.2f} "
                  f"bits/char, at step {model.config['step']}; a uniform guess over its {len(model.vocab)} characters: "
                  f"{uniform:.2f}); sampled from that checkpoint:", file=out)
            if result.steps < 1000:
                print(f"  (a busy or slow machine trains fewer steps in {lm_seconds:.0f} s, and the text below reads "
                      f"less like English; --lm-seconds gives it longer)", file=out)
            for temperature in (0.5, 0.8, 1.0):
                text = "".join(model.generate("The ", 240, temperature=temperature, seed=seed))
                print(f"\n  temperature {temperature}:\n    The " + text.replace("\n", "\n    "), file=out)
    finally:
        torch.set_num_threads(threads)
    if not loss < uniform - LEARNT:              # what it learnt, whatever the machine's speed
        return [f"demo: the language model's validation loss stayed at {loss:.2f} nats/char, not {LEARNT} below "
                f"a uniform guess ({uniform:.2f}): it did not learn"]
    return []


Section = Callable[..., List[str]]

#: (title, function) in the order the demo shows them.
SECTIONS: List[tuple[str, Section]] = [
    ("1. 'hello': a character RNN, LSTM and GRU trained with rnnkit's hand-written BPTT", hello_section),
    ("2. Streaming: one time step at a time with layer.step()", streaming_section),
    ("3. A drop-in for torch.nn: same weights, same numbers", parity_section),
    ("4. A character language model: two minutes of training, then generated text", language_model_section),
]


def run(*, seed: int = 0, steps: Optional[int] = None, verbose: bool = False, threads: Optional[int] = None,
        lm_seconds: float = 120.0, out: Optional[TextIO] = None) -> List[str]:
    """Run every section; return the problems found (empty when all is well).

    ``threads``: torch's thread count for the whole demo (restored afterwards). None: one thread for
    the tiny models of the first sections (more gain nothing, and on a busy machine torch's thread
    pool stalls when its threads have to share cores) and torch's default for the language model.
    """
    out = sys.stdout if out is None else out
    problems: List[str] = []
    t0 = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1 if threads is None else threads)
    try:
        for title, section in SECTIONS:
            print(f"\n{title}", file=out, flush=True)
            problems += section(out, seed=seed, steps=steps, verbose=verbose, lm_seconds=lm_seconds,
                                lm_threads=previous_threads if threads is None else threads)
    finally:
        torch.set_num_threads(previous_threads)
    status = "all good" if not problems else f"{len(problems)} problem(s)"
    print(f"\nDemo finished in {time.perf_counter() - t0:.1f} s: {status}.", file=out, flush=True)
    return problems
