"""The attention of one translation as a heat map."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from rnnkit.files import atomic_write


def plot_attention(path: Path, weights, source: Sequence[str], target: Sequence[str]) -> None:
    """Save attention ``weights`` (T, S): a row per target subword (``<eos>`` last), a column per
    source subword, as a PNG at ``path``, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if weights is None:
        raise ValueError("this translator has no attention (--attention none): there is nothing to plot")
    weights = weights[:len(target), :len(source)].numpy()
    fig, ax = plt.subplots(figsize=(min(16, 2 + 0.4 * len(source)), min(16, 2 + 0.4 * len(target))))
    try:
        ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(source)), labels=list(source), rotation=60, ha="right")
        ax.set_yticks(range(len(target)), labels=list(target))
        ax.set_xlabel("source")
        ax.set_ylabel("translation")
        fig.tight_layout()
        with atomic_write(path, binary=True) as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
