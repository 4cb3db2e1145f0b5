"""Forecasts as pictures: history, point forecast and prediction interval (matplotlib PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from rnnkit.files import atomic_write

from .series import SeriesSet

HISTORY_SHOWN = 4                       # horizons of history drawn before a forecast


def _figure(count: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(count, 1, figsize=(10, 2.6 * count), squeeze=False)
    return plt, fig, axes[:, 0]


def _save(plt, fig, path: Path) -> None:
    try:
        fig.tight_layout()
        with atomic_write(path, binary=True) as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)


def _draw(ax, series: SeriesSet, i: int, levels: Sequence[float], forecast: np.ndarray, label: str,
          actual=None) -> None:
    """One series: its recent history, the median forecast and the widest interval (and, if given,
    what actually followed)."""
    h = forecast.shape[1]
    times, values = series.times[i], series.values[i]
    ahead = series.future_times(h)[i]
    start = max(0, len(values) - HISTORY_SHOWN * h)
    ax.plot(times[start:], values[start:], color="black", linewidth=1, label="history")
    if actual is not None:
        ax.plot(ahead, actual, color="black", linewidth=1, linestyle=":", label="actual")
    ax.plot(ahead, forecast[i, :, list(levels).index(0.5)], color="tab:blue", linewidth=1.5, label=label)
    if len(levels) > 1:
        ax.fill_between(ahead, forecast[i, :, 0], forecast[i, :, -1], color="tab:blue", alpha=0.25,
                        label=f"{levels[0]:g}-{levels[-1]:g} quantiles")
    ax.set_title(series.ids[i], fontsize=9, loc="left")


def plot_forecasts(series: SeriesSet, levels: Sequence[float], forecast: np.ndarray, path: Path, *,
                   count: int = 4) -> None:
    """PNG of the first ``count`` series: history, forecast (N, h, Q) median and interval."""
    count = min(count, len(series))
    plt, fig, axes = _figure(count)
    for i, ax in enumerate(axes):
        _draw(ax, series, i, levels, forecast, "forecast")
    axes[0].legend(fontsize=8, loc="upper left")
    _save(plt, fig, path)


def plot_backtest(series: SeriesSet, windows: List[tuple], path: Path, *, count: int = 3) -> None:
    """PNG of a backtest: for the first ``count`` series, each window's forecast against what followed
    (``windows``: (history, levels, forecast, actual) per window, as ``backtest`` made them)."""
    count = min(count, len(windows[-1][0]))
    plt, fig, axes = _figure(count)
    for i, ax in enumerate(axes):
        sid = windows[-1][0].ids[i]
        ax.plot(series.times[series.ids.index(sid)], series.values[series.ids.index(sid)], color="black",
                linewidth=0.8)
        for k, (history, levels, forecast, actual) in enumerate(windows):
            if sid in history.ids:
                j = history.ids.index(sid)
                ahead = history.future_times(forecast.shape[1])[j]
                ax.plot(ahead, forecast[j, :, list(levels).index(0.5)], linewidth=1.5, label=f"window {k + 1}")
        ax.set_title(sid, fontsize=9, loc="left")
    axes[0].legend(fontsize=8, loc="upper left")
    _save(plt, fig, path)
