"""The confusion matrix as a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from rnnkit.files import atomic_write


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: Path) -> None:
    """Save the (C, C) confusion matrix (rows: true class, columns: predicted) as a PNG at ``path``,
    written atomically; counts are written in the cells for up to 30 classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = min(12, 2 + 0.5 * len(names))
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), labels=names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if len(names) <= 30:
            for (i, j), count in np.ndenumerate(matrix):
                ax.text(j, i, str(count), ha="center", va="center",
                        color="white" if count > matrix.max() / 2 else "black")
        fig.tight_layout()
        with atomic_write(path, binary=True) as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
