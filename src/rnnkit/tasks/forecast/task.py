"""Forecasting as the engine trains it (``ForecastTask``), the validation windows it is scored on
(``HorizonWindows``: each series' next ``horizon`` steps), and the trained forecaster
(``TrainedForecaster``) that ``predict``, ``evaluate`` and ``backtest`` use."""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from rnnkit.train import Task
from rnnkit.train.devices import to_device

from . import baselines, metrics
from .model import ForecastEnsemble
from .series import SeriesSet
from .windows import Features, ForecastBatch, Prepared, prepare, window_batch

SAMPLING_SEED = 0            # autoregressive forecasts draw their paths from this seed: the same every time


def clean_history(y: np.ndarray) -> np.ndarray:
    """A history for the baselines, which take no missing values: leading and trailing missing
    values dropped, inner ones interpolated linearly."""
    y = np.asarray(y, dtype=np.float64)
    seen = np.flatnonzero(np.isfinite(y))
    if not seen.size:
        raise ValueError("a series has no values to forecast from")
    y = y[seen[0]:seen[-1] + 1]
    gaps = ~np.isfinite(y)
    if gaps.any():
        y = y.copy()
        y[gaps] = np.interp(np.flatnonzero(gaps), np.flatnonzero(~gaps), y[~gaps])
    return y


def unscale(forecast: Tensor, batch: ForecastBatch, log: bool) -> np.ndarray:
    """(B, H, Q) scaled forecasts back in the data's units (and out of log1p)."""
    loc, scale = batch.loc.view(-1, 1, 1).cpu().numpy(), batch.scale.view(-1, 1, 1).cpu().numpy()
    values = loc + scale * forecast.double().cpu().numpy()
    return np.expm1(values) if log else values


def levels_of(quantiles: Sequence[float]) -> tuple:
    """(levels, index of the median, alpha of the widest interval) of a list of quantile levels."""
    levels = sorted(set(quantiles) | {0.5})
    return levels, levels.index(0.5), 1.0 - (levels[-1] - levels[0])


class HorizonWindows:
    """Each series' window at its end: the context before it and the ``horizon`` steps after it,
    whose true values ``actual`` (N, H) come with the batches, with each series' MASE scale and
    Naive2 forecast, for validation and evaluation. ``len()`` batches of ``batch_size``."""

    def __init__(self, prepared: Prepared, features: Features, history: SeriesSet, actual: np.ndarray,
                 context: int, horizon: int, batch_size: int):
        self.prepared, self.features, self.context, self.horizon = prepared, features, context, horizon
        self.actual, self.batch_size = np.asarray(actual, dtype=np.float64), batch_size
        cleaned = [clean_history(v) for v in history.values]
        m = features.season
        self.mase_scale = np.array([metrics.mase_scale(y, m) for y in cleaned])
        self.naive2 = baselines.forecast_all(cleaned, horizon, m, "naive2")
        self.origins = [len(v) for v in history.values]

    def __len__(self) -> int:
        return -(-len(self.origins) // self.batch_size)

    def __call__(self, epoch: int = 0):
        for start in range(0, len(self.origins), self.batch_size):
            rows = list(range(start, min(start + self.batch_size, len(self.origins))))
            batch = window_batch(self.prepared, self.features, rows, [self.origins[i] for i in rows], self.context,
                                 self.horizon)
            batch.actual = torch.from_numpy(self.actual[rows])
            _horizon_targets(batch, self.actual[rows], self.features.log)
            batch.mase_scale = torch.from_numpy(self.mase_scale[rows])
            batch.naive2 = torch.from_numpy(self.naive2[rows])
            yield batch


def _horizon_targets(batch: ForecastBatch, actual: np.ndarray, log: bool) -> None:
    """Put the true horizon values (N, H), transformed and scaled as the window's, into its targets,
    so that the validation loss is computed on them."""
    values = np.log1p(actual) if log else actual
    scaled = (values - batch.loc.numpy()[:, None]) / batch.scale.numpy()[:, None]
    seen = np.isfinite(scaled)
    L = batch.context
    batch.target[:, L:] = torch.from_numpy(np.where(seen, scaled, 0.0)).to(batch.target.dtype)
    batch.observed[:, L:] = torch.from_numpy(seen).to(batch.observed.dtype)


class ForecastTask(Task):
    """Training and validation of a ``ForecastEnsemble`` on ``ForecastBatch`` es.

    Args:
        model: the ``ForecastEnsemble``. features: its ``Features``. info: the rest of what the checkpoint
            records (the data settings, fit options).

    Validation statistics: ``rnnkit.tasks.forecast.metrics.statistics`` of the point forecast (the
    median), the quantiles and the widest interval against the actual values, with Naive2's for
    OWA, plus the loss; the metrics are sMAPE, MASE, OWA, MAE, RMSE, the weighted quantile loss,
    coverage and MSIS over every observed point.
    """

    def __init__(self, model: ForecastEnsemble, features: Features, info: dict):
        self.model, self.features, self.info = model, features, info

    def training_step(self, batch: ForecastBatch) -> Tensor:
        return self.model(batch)                                    # ForecastEnsemble.forward: its loss

    def forecast(self, batch: ForecastBatch, levels: Sequence[float]) -> np.ndarray:
        """(B, H, Q) forecasts at ``levels`` in the data's units."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SAMPLING_SEED)
            scaled = self.model.quantiles(batch, levels)
        return unscale(scaled, batch, self.features.log)

    def validation_step(self, batch: ForecastBatch) -> dict:
        levels, median, alpha = levels_of(self.model.config.quantiles)
        forecast = self.forecast(batch, levels)                                         # (B, H, Q)
        stats = metrics.statistics(batch.actual.cpu().numpy(), forecast[..., median], batch.mase_scale.cpu().numpy(),
                                   naive2=batch.naive2.cpu().numpy(), quantile_forecasts=forecast, quantiles=levels,
                                   lower=forecast[..., 0], upper=forecast[..., -1], alpha=alpha)
        return dict(stats, loss_sum=float(self.model.loss(batch)) * len(batch.actual), windows=len(batch.actual))

    def validation_metrics(self, totals: dict, batches: int) -> dict:
        return dict(metrics.from_statistics(totals), loss=totals["loss_sum"] / totals["windows"])

    def config(self) -> dict:
        return {"task": "forecast", "model": self.model.config_dict(), "features": self.features.to_dict(), **self.info}


class TrainedForecaster:
    """A trained forecaster (an ensemble of one or more networks) with the features it reads.

    Attributes: ``model`` (``ForecastEnsemble`` in eval mode), ``features``, ``config`` (the
    checkpoint's), ``horizon``, ``quantiles`` (the levels the direct decoder was trained for),
    ``data`` (the ``ForecastData`` fields it was trained with: how files are read).
    """

    def __init__(self, model: ForecastEnsemble, features: Features, config: dict):
        self.model, self.features, self.config = model.eval(), features, config
        self.horizon, self.quantiles = model.config.horizon, model.config.quantiles
        self.data = config["task"]["data"]
        self.device = next(model.parameters()).device

    @property
    def season(self) -> int:
        return self.features.season

    def forecast(self, series: SeriesSet, *, horizon: Optional[int] = None, quantiles: Optional[Sequence[float]] = None,
                 future=None, batch_size: int = 256) -> tuple:
        """Forecasts from the end of each series, in batched passes.

        Inputs: series: the histories. horizon: at most the trained one (default it). quantiles:
            levels to give (default the trained ones; the median is always there). future: known
            covariates over the horizon (``read_future``).
        Outputs: (levels, (N, h, Q) forecasts in the data's units, increasing along Q).
        """
        h = horizon or self.horizon
        if h > self.horizon:
            raise ValueError(f"horizon {h} is longer than the {self.horizon} steps the model was trained for")
        levels = levels_of(quantiles or self.quantiles)[0]
        prepared = prepare(series, self.features, extra=self.horizon, future=future)
        task, parts = ForecastTask(self.model, self.features, {}), []
        for start in range(0, len(series), batch_size):
            rows = list(range(start, min(start + batch_size, len(series))))
            batch = window_batch(prepared, self.features, rows, [len(series.values[i]) for i in rows],
                                 self.model.context, self.horizon)
            parts.append(task.forecast(to_device(batch, self.device), levels))
        return levels, np.concatenate(parts)[:, :h]
