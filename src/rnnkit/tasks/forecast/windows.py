"""Series -> the forecaster's inputs: per-step features, per-window scaling, and windows.

A *window* of series ``i`` at origin ``e`` is the ``L`` steps of context before ``e`` and the
``H`` steps from ``e`` on (their values are the targets in training, unknown when forecasting).
Values are transformed (``log1p`` if asked) and scaled by the context's observed values (mean
absolute value, or median and IQR); a missing value is 0 with ``observed`` 0, so it is masked in
the loss and never learnt as a value.

- ``Features``: what turns a ``SeriesSet`` into per-step arrays (calendar columns, covariates and
  their standardisation, the ids of the embedding), learnt on the training series and saved in
  every checkpoint, so that prediction computes exactly the training features.
- ``Prepared``: a series set with its feature arrays, extended by the horizon for forecasting.
- ``ForecastBatch``: a batch of windows as tensors; ``window_batch`` builds one.
- ``TrainWindows``: the training windows of an epoch, drawn across series and time from
  ``seed + epoch`` (the same for the same epoch: exact resume).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from .config import ForecastData
from .series import SeriesSet, calendar_features, calendar_names


@dataclass
class Features:
    """How a ``SeriesSet`` becomes per-step features (saved as a dict in every checkpoint).

    Attributes:
        freq, season: the data's frequency alias (None for steps) and seasonal period.
        calendar: names of the calendar columns. future, past: covariate names.
        mean, std: standardisation of each covariate (name -> float), from the training series.
        ids: the series of the id embedding, in embedding order ([] without one).
        scaling, log, lags: as ``ForecastData.scaling``, ``.log`` and the model's lags.
    """

    freq: Optional[str]
    season: int
    calendar: List[str]
    future: List[str]
    past: List[str]
    mean: Dict[str, float]
    std: Dict[str, float]
    ids: List[str]
    scaling: str
    log: bool
    lags: List[int]

    @classmethod
    def learn(cls, series: SeriesSet, data: ForecastData, season: int, lags: List[int],
              embed_ids: bool) -> "Features":
        """The features of ``series`` (the training set) as ``data`` asks."""
        calendar = calendar_names(series.freq) if data.calendar else []
        covariates = {**series.past, **series.future}
        mean = {name: float(np.nanmean(np.concatenate(arrays))) for name, arrays in covariates.items()}
        std = {name: float(np.nanstd(np.concatenate(arrays))) or 1.0 for name, arrays in covariates.items()}
        if data.log:
            low = min(float(np.nanmin(v)) for v in series.values if np.isfinite(v).any())
            if low < 0:
                raise ValueError(f"log (--log) needs values >= 0, and the series go down to {low:g}")
        return cls(series.freq, season, calendar, list(data.future_covariates), list(data.past_covariates), mean, std,
                   list(series.ids) if embed_ids else [], data.scaling, data.log, sorted(set(lags)))

    @property
    def known_size(self) -> int:
        """Features known at every step, also in the future: calendar columns and future covariates."""
        return len(self.calendar) + len(self.future)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Features":
        return cls(**data)


@dataclass
class Prepared:
    """A series set with its features, for windows.

    Attributes:
        values: per series (T_i,) float64, transformed (log1p if asked), NaN where missing.
        known: per series (T_i + extra, K) float32: calendar and standardised future covariates,
            over the history and ``extra`` steps beyond it.
        past: per series (T_i, P) float32: standardised past covariates (0 where missing).
        index: per series, its row of the id embedding (-1: none, or a series never seen).
    """

    values: List[np.ndarray]
    known: List[np.ndarray]
    past: List[np.ndarray]
    index: np.ndarray


def prepare(series: SeriesSet, features: Features, *, extra: int = 0,
            future: Optional[Dict[str, List[np.ndarray]]] = None) -> Prepared:
    """``series`` as arrays for windows; ``extra`` future steps of known features (the horizon
    when forecasting), whose covariate values ``future`` gives (``read_future``)."""
    missing = [name for name in features.future + features.past if name not in {**series.future, **series.past}]
    if missing:
        raise ValueError(f"the data has no covariate column {missing[0]!r}, which the model was trained with: "
                         f"give a file with the columns {features.future + features.past}")
    if extra and features.future and future is None:
        raise ValueError(f"the model reads future covariates {features.future}: give their values over the "
                         f"horizon with --future FILE")
    values = [np.log1p(v) if features.log else np.asarray(v, dtype=np.float64) for v in series.values]
    standard = lambda name, array: np.nan_to_num((array - features.mean[name]) / features.std[name])  # noqa: E731
    times = series.times if not extra else [np.concatenate([t, f]) for t, f in zip(series.times, series.future_times(extra))]
    known, past = [], []
    for i, t in enumerate(times):
        columns = [calendar_features(t, series.freq)] if features.calendar else []
        for name in features.future:
            history = series.future[name][i]
            ahead = future[name][i] if extra else np.zeros(0)
            columns.append(standard(name, np.concatenate([history, ahead]))[:, None])
        known.append(np.concatenate(columns, axis=1).astype(np.float32) if columns else
                     np.zeros((len(t), 0), dtype=np.float32))
        past.append(np.stack([standard(name, series.past[name][i]) for name in features.past], axis=1).astype(np.float32)
                    if features.past else np.zeros((len(values[i]), 0), dtype=np.float32))
    lookup = {sid: k for k, sid in enumerate(features.ids)}
    index = np.array([lookup.get(sid, -1) for sid in series.ids], dtype=np.int64)
    unseen = int((index < 0).sum()) if features.ids else 0
    if unseen:
        warnings.warn(f"{unseen} series the model never saw (their ids are new) get the mean id embedding",
                      stacklevel=2)
    return Prepared(values, known, past, index)


@dataclass
class ForecastBatch:
    """Windows as tensors: L context steps then H horizon steps, time along dim 1.

    Attributes:
        target: (B, L+H) scaled values, 0 where missing or unknown. observed: (B, L+H) 1/0.
        lagged: (B, L+H, N_lags) the scaled values ``lag`` steps before each step (0 if missing).
        known: (B, L+H, K) calendar and future covariates. past: (B, L+H, P), 0 over the horizon.
        index: (B,) rows of the id embedding (-1: none). loc, scale: (B,) the windows' scaling.
        context: L, the steps of context.
        actual: (B, H) the horizon's true values, untransformed (NaN where missing), for validation.
        mase_scale: (B,) each series' in-sample seasonal-naive error; naive2: (B, H) Naive2's forecast.
    """

    target: Tensor
    observed: Tensor
    lagged: Tensor
    known: Tensor
    past: Tensor
    index: Tensor
    loc: Tensor
    scale: Tensor
    context: int
    actual: Optional[Tensor] = None
    mase_scale: Optional[Tensor] = None
    naive2: Optional[Tensor] = None

    def cut(self, context: int) -> "ForecastBatch":
        """The same windows with only their last ``context`` steps of context (an ensemble member
        that reads less history); the scaling stays the full context's."""
        if context == self.context:
            return self
        drop = self.context - context
        if drop < 0:
            raise ValueError(f"a batch with {self.context} steps of context cannot give {context}")
        steps = slice(drop, None)
        return dataclasses.replace(self, target=self.target[:, steps], observed=self.observed[:, steps],
                                   lagged=self.lagged[:, steps], known=self.known[:, steps], past=self.past[:, steps],
                                   context=context)


def window_scale(context: np.ndarray, scaling: str) -> tuple:
    """(loc, scale) of a window from its context's observed values (``scaling`` of ``ForecastData``)."""
    seen = context[np.isfinite(context)]
    if scaling == "none" or not seen.size:
        return 0.0, 1.0
    if scaling == "robust":
        low, middle, high = np.percentile(seen, [25, 50, 75])
        spread = high - low or np.mean(np.abs(seen - middle)) or abs(middle) or 1.0
        return float(middle), float(spread)
    return 0.0, float(np.mean(np.abs(seen))) or 1.0


def window_batch(prepared: Prepared, features: Features, rows: Sequence[int], origins: Sequence[int],
                 context: int, horizon: int) -> ForecastBatch:
    """The windows of series ``rows`` at ``origins`` (the first horizon step of each), as a batch.
    Steps before a series' start or after its end (the future, when forecasting) are missing."""
    L, H, lags = context, horizon, features.lags
    reach = L + max(lags, default=0)                   # history a window reads, lags included
    B, K, P = len(rows), features.known_size, len(features.past)
    values = np.full((B, reach + H), np.nan)
    known, past = np.zeros((B, L + H, K), np.float32), np.zeros((B, L + H, P), np.float32)
    for b, (i, e) in enumerate(zip(rows, origins)):
        y = prepared.values[i]
        lo, hi = max(0, e - reach), min(len(y), e + H)
        values[b, lo - (e - reach):hi - (e - reach)] = y[lo:hi]
        lo_k, hi_k = max(0, e - L), min(len(prepared.known[i]), e + H)
        known[b, lo_k - (e - L):hi_k - (e - L)] = prepared.known[i][lo_k:hi_k]
        hi_p = min(len(prepared.past[i]), e)
        past[b, lo_k - (e - L):hi_p - (e - L)] = prepared.past[i][lo_k:hi_p]
    scales = np.array([window_scale(v[reach - L:reach], features.scaling) for v in values])      # (B, 2)
    scaled = (values - scales[:, :1]) / scales[:, 1:]                                   # (B, reach + H)
    observed = np.isfinite(scaled)
    filled = np.where(observed, scaled, 0.0)
    lagged = np.stack([filled[:, reach - L - lag:reach + H - lag] for lag in lags], axis=2) if lags else \
        np.zeros((B, L + H, 0))
    as_tensor = lambda array, dtype=torch.float32: torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)  # noqa: E731
    return ForecastBatch(as_tensor(filled[:, reach - L:]), as_tensor(observed[:, reach - L:]), as_tensor(lagged),
                         torch.from_numpy(known), torch.from_numpy(past),
                         torch.as_tensor(prepared.index[list(rows)]), as_tensor(scales[:, 0], torch.float64),
                         as_tensor(scales[:, 1], torch.float64), L)


class TrainWindows:
    """The training windows of each epoch, for ``Trainer.fit``.

    Args:
        prepared, features: the training series. context, horizon: L and H.
        per_series: windows drawn from each series per epoch. batch_size: windows per batch.
        seed: epoch e draws from ``seed + e``.

    A window's origin is drawn uniformly among the steps that leave a full horizon of targets
    after it and at least ``min(L, season)`` steps of history before it.
    """

    def __init__(self, prepared: Prepared, features: Features, context: int, horizon: int, *, per_series: int,
                 batch_size: int, seed: int = 0):
        self.prepared, self.features, self.context, self.horizon = prepared, features, context, horizon
        self.per_series, self.batch_size, self.seed = per_series, batch_size, seed
        first = max(1, min(context, features.season))
        self.ranges = [(first, len(v) - horizon) for v in prepared.values]           # origins in [first, last]
        usable = [i for i, (a, b) in enumerate(self.ranges) if b >= a]
        if not usable:
            raise ValueError(f"no series is long enough for a training window: each needs at least "
                             f"{first + horizon} steps (horizon {horizon})")
        self.usable = np.array(usable)

    def __len__(self) -> int:
        return -(-len(self.usable) * self.per_series // self.batch_size)

    def __call__(self, epoch: int = 0) -> Iterator[ForecastBatch]:
        rng = np.random.default_rng(self.seed + epoch)
        rows = np.repeat(self.usable, self.per_series)
        rng.shuffle(rows)
        origins = [int(rng.integers(self.ranges[i][0], self.ranges[i][1] + 1)) for i in rows]
        for start in range(0, len(rows), self.batch_size):
            yield window_batch(self.prepared, self.features, rows[start:start + self.batch_size],
                               origins[start:start + self.batch_size], self.context, self.horizon)
