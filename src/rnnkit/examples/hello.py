"""The introductions' exercise: an RNN learns to predict the next character of "hello".

Given h, e, l, l (one-hot) it must output e, l, l, o. The two l's are the point: after the first
"l" the answer is "l", after the second it is "o", so the model must use its hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rnnkit.nn import ManyToMany

WORD = "hello"
VOCAB = sorted(set(WORD))                  # ['e', 'h', 'l', 'o']


@dataclass
class HelloResult:
    """``cell``; ``prediction``: the decoded outputs for "hell"; ``steps`` taken; final ``loss``."""

    cell: str
    prediction: str
    steps: int
    loss: float


def encode(text: str) -> torch.Tensor:
    """One-hot (1, len(text), 4) for characters of "hello"."""
    index = torch.tensor([VOCAB.index(ch) for ch in text])
    return F.one_hot(index, len(VOCAB)).float().unsqueeze(0)


def decode(logits: torch.Tensor) -> str:
    """(1, T, 4) scores -> the most likely character at each step."""
    return "".join(VOCAB[i] for i in logits.argmax(-1)[0].tolist())


def run(cell: str = "lstm", steps: int = 500, seed: int = 0, hidden_size: int = 8,
        lr: float = 0.05, verbose: bool = False) -> HelloResult:
    """Train a character model on "hello" until it predicts "ello" (and its loss is below 0.05).

    Args:
        cell: "rnn", "lstm" or "gru". steps: the most optimiser steps to take.
        seed: torch seed. hidden_size: width of h. lr: Adam's learning rate.
        verbose: print progress every 50 steps.
    """
    torch.manual_seed(seed)
    inputs, targets = encode(WORD[:-1]), torch.tensor([[VOCAB.index(ch) for ch in WORD[1:]]])
    model = ManyToMany(len(VOCAB), hidden_size, len(VOCAB), cell=cell)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    prediction, loss_value = "", float("inf")
    for step in range(1, steps + 1):
        logits = model(inputs).output                                        # (1, 4, 4)
        loss = F.cross_entropy(logits.reshape(-1, len(VOCAB)), targets.reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        prediction, loss_value = decode(logits), loss.item()
        if verbose and step % 50 == 0:
            print(f"  {cell:>4} step {step:3d}  loss {loss_value:.4f}  predicts {prediction!r}")
        if prediction == WORD[1:] and loss_value < 0.05:
            break
    with torch.no_grad():
        prediction = decode(model(inputs).output)
    return HelloResult(cell, prediction, step, loss_value)


if __name__ == "__main__":
    for name in ("rnn", "lstm", "gru"):
        result = run(name, verbose=True)
        print(f"{name}: 'hell' -> {result.prediction!r} after {result.steps} steps (loss {result.loss:.4f})")
