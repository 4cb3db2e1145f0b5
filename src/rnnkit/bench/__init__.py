"""Benchmarks of rnnkit against torch.nn.

* :mod:`rnnkit.bench.layers` -- ``rnnkit bench layers``: RNN/LSTM/GRU layers,
  forward, forward+backward and single streaming steps;
* :mod:`rnnkit.bench.timing` -- torch-free helpers for timing candidates side by
  side (warmup, alternating runs, medians).

Importing this package is cheap; :mod:`rnnkit.bench.layers` imports torch.
"""

__all__ = ["layers", "timing"]
