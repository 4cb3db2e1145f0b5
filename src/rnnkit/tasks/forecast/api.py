"""Forecasting from files or DataFrames: ``fit``, ``predict``, ``evaluate``, ``backtest``, ``load``.
The command line (``rnnkit train forecast``, ``predict``, ``evaluate``, ``backtest``) calls these;
they are the Python API for the same jobs, and speak pandas: a path or a long-format DataFrame in,
a DataFrame of forecasts out.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from rnnkit.train import TrainConfig, Trainer, TrainResult, run_directory
from rnnkit.train.checkpoint import load_task_model

from ..spec import checkpoint_paths
from . import baselines, metrics
from .config import BASELINE_METHODS, ForecastData, ForecastModel, ensemble_sizes, season_of
from .model import ForecastEnsemble
from .series import SeriesSet, read_future, read_series
from .task import ForecastTask, HorizonWindows, TrainedForecaster, clean_history, levels_of
from .windows import Features, ForecastBatch, TrainWindows, prepare


def read(source, data: dict, *, what: str = "data") -> SeriesSet:
    """The series of ``source`` (a path or a DataFrame), read with the ``ForecastData`` fields in ``data``."""
    return read_series(source, format=data["format"], id_col=data["id_col"], time_col=data["time_col"],
                       target_col=data["target_col"], freq=data["freq"], future_covariates=data["future_covariates"],
                       past_covariates=data["past_covariates"], encoding=data["encoding"])


def _keep_long_enough(series: SeriesSet, least: int, what: str) -> SeriesSet:
    """The series with at least ``least`` steps; the others are dropped, counted in one warning."""
    keep = [sid for sid, n in zip(series.ids, series.lengths()) if n >= least]
    if not keep:
        raise ValueError(f"no series of the {what} has the {least} steps the model needs (horizon and history): "
                         f"give longer series or a shorter --horizon")
    if len(keep) < len(series):
        warnings.warn(f"{len(series) - len(keep)} of {len(series)} series of the {what} are shorter than the "
                      f"{least} steps the model needs and were left out", stacklevel=3)
    return series.select(keep)


def _actuals(source, history: SeriesSet, data: dict, horizon: int) -> np.ndarray:
    """(N, horizon) values after each history's end, read from ``source`` (the same format)."""
    following = read(source, data, what="actuals")
    missing = [sid for sid in history.ids if sid not in set(following.ids)]
    if missing:
        raise ValueError(f"the actual values have no series {missing[0]!r} ({len(missing)} of the {len(history)} "
                         f"series of the history are missing): give the values after each series' history")
    rows = following.select(history.ids)
    short = [sid for sid, n in zip(rows.ids, rows.lengths()) if n < horizon]
    if short:
        raise ValueError(f"the actual values of series {short[0]!r} ({len(short)} series) have fewer than the "
                         f"{horizon} steps of the horizon")
    return np.stack([v[:horizon] for v in rows.values])


def fit(path, out, *, valid=None, data: ForecastData, model: Optional[dict] = None, train: TrainConfig,
        resume: bool = False, ensemble: int = 1) -> TrainResult:
    """Train one global forecaster over all the series of ``path`` (a file or a long-format
    DataFrame); checkpoints and log go to ``out``.

    Args:
        valid: the values after each series (a file or DataFrame in the same format), scored as the
            validation; without it the last ``horizon`` steps of each series are held out, unless
            ``data.holdout`` is False: then training sees every step and there is no validation
            (``train.monitor`` must be "loss").
        data: how series become windows (``horizon`` is required). model: ``ForecastModel`` fields.
        ensemble: networks trained together, each with its own input size (``ensemble_sizes``).
        resume: continue the run in ``out``.
    """
    out, model = Path(out), dict(model or {})
    ForecastModel(**model)                                # bad options fail before the data is read
    if not data.holdout and valid is not None:
        raise ValueError("--no-holdout trains on every step, so there is nothing to validate on: drop --valid or "
                         "--no-holdout")
    if not data.holdout and train.monitor != "loss":
        raise ValueError(f"--no-holdout leaves no validation to score --monitor {train.monitor}: pass --monitor loss "
                         f"(the training loss picks BEST)")
    with run_directory(out, resume=resume, task="forecast"):
        settings = asdict(data)
        series = read(path, settings)
        season = data.season or season_of(series.freq)
        H, L = data.horizon, data.context()
        first = max(1, min(L, season))
        if not data.holdout:                     # every step is training data
            history = _keep_long_enough(series, first + H, "data")
        elif valid is None:
            series = _keep_long_enough(series, first + 2 * H, "data")
            history, actual = series.cut(H), np.stack([v[-H:] for v in series.values])
        else:
            history = _keep_long_enough(series, first + H, "data")
            actual = _actuals(valid, history, settings, H)
        lags = model.get("lags") or ([season] if season > 1 else [])
        config = ForecastModel(**dict(model, lags=lags, horizon=H, season=season,
                                      input_sizes=ensemble_sizes(L, ensemble)))
        features = Features.learn(history, data, season, lags, embed_ids=config.id_embedding > 0)
        config = ForecastModel(**dict(asdict(config), known_features=features.known_size,
                                      past_features=len(features.past), num_series=len(features.ids)))
        prepared = prepare(history, features)
        context = max(config.input_sizes)
        train_windows = TrainWindows(prepared, features, context, H, per_series=data.windows_per_series,
                                     batch_size=data.batch_size, seed=train.seed)
        valid_windows = None
        if data.holdout:
            if valid is None:                   # the held-out steps' known covariates: the series' own
                ahead = {name: [a[-H:] for a in series.future[name]] for name in features.future}
            else:
                ahead = read_future(valid, history, H, id_col=data.id_col, time_col=data.time_col,
                                    encoding=data.encoding) if features.future else None
            valid_prepared = prepare(history, features, extra=H, future=ahead)  # known features over the horizon
            valid_windows = HorizonWindows(valid_prepared, features, history, actual, context, H, batch_size=256)
        torch.manual_seed(train.seed)
        task = ForecastTask(ForecastEnsemble(config), features, {"data": settings, "fit": {"ensemble": ensemble}})
        return Trainer(task, train, out).fit(train_windows, valid_windows, resume=resume)


def load(path, *, device: str = "cpu") -> TrainedForecaster:
    """Rebuild the forecaster saved in ``path`` (a run directory or a checkpoint directory).

    Several paths give one forecaster holding all their networks, whose forecasts are the median
    of theirs (``ForecastEnsemble``): networks trained apart (other seeds, other processes) on
    the same data, with the same features and network options but for their input sizes.
    """
    paths = checkpoint_paths(path)
    loaded = []
    for one in paths:
        model, task, checkpoint = load_task_model(one, "forecast",
                                                  lambda task: ForecastEnsemble(ForecastModel(**task["model"])), device)
        loaded.append((model, task, checkpoint.config))
    if len(loaded) > 1:
        return _joined(loaded, paths)
    model, task, config = loaded[0]
    return TrainedForecaster(model, Features.from_dict(task["features"]), config)


#: Network options that may differ between the checkpoints of one ensemble.
_FREE_IN_ENSEMBLE = ("input_sizes", "dropout")


def _joined(loaded: list, paths: list) -> TrainedForecaster:
    """One ``TrainedForecaster`` of the networks of several loaded checkpoints (``load``)."""
    model, task, config = loaded[0]
    first = {key: value for key, value in task["model"].items() if key not in _FREE_IN_ENSEMBLE}
    for (other, other_task, _), path in zip(loaded[1:], paths[1:]):
        if other_task["features"] != task["features"]:
            differ = sorted(key for key in task["features"] if task["features"][key] != other_task["features"].get(key))
            raise ValueError(f"{path} cannot join {paths[0]} in one ensemble: their features differ "
                             f"({', '.join(differ)}): ensemble forecasters trained on the same data with the same "
                             f"data options")
        theirs = {key: value for key, value in other_task["model"].items() if key not in _FREE_IN_ENSEMBLE}
        if theirs != first:
            differ = sorted(key for key in first if first[key] != theirs.get(key))
            raise ValueError(f"{path} cannot join {paths[0]} in one ensemble: their networks differ in "
                             f"{', '.join(differ)}: ensemble forecasters of the same network options")
    members = [member for one, _, _ in loaded for member in one.members]
    sizes = [size for one, _, _ in loaded for size in one.config.input_sizes]
    joined = ForecastEnsemble(ForecastModel(**dict(task["model"], input_sizes=sizes)), members)
    config = dict(config, task=dict(task, model=asdict(joined.config), fit=dict(task.get("fit", {}),
                                                                               ensemble=len(members))))
    return TrainedForecaster(joined, Features.from_dict(task["features"]), config)


def _baseline_forecasts(series: SeriesSet, h: int, m: int, method: str) -> np.ndarray:
    """(N, h) forecasts of a baseline (``baselines.BASELINES``) from each history."""
    return baselines.forecast_all([clean_history(v) for v in series.values], h, m, method)


def forecast_frame(series: SeriesSet, levels: Sequence[float], forecast: np.ndarray, *, id_col: str = "unique_id",
                   time_col: str = "ds") -> pd.DataFrame:
    """Long-format forecasts: a row per series and step, with the point forecast (the median) and a
    column per quantile level (``q0.1``, ...)."""
    h = forecast.shape[1]
    times = np.concatenate([t for t in series.future_times(h)])
    frame = pd.DataFrame({id_col: np.repeat(np.array(series.ids, dtype=object), h), time_col: times,
                          "forecast": forecast[..., list(levels).index(0.5)].reshape(-1)})
    for k, q in enumerate(levels):
        frame[f"q{q:g}"] = forecast[..., k].reshape(-1)
    return frame


def predict(checkpoint, data, *, horizon: Optional[int] = None, quantiles: Optional[Sequence[float]] = None,
            future=None, method: str = "model", device: str = "cpu") -> pd.DataFrame:
    """Forecasts of every series of ``data`` (a file or a DataFrame, read as in training) from its
    end, in one batched pass.

    Args:
        horizon, quantiles: at most the trained horizon; quantile levels (default the trained ones).
        future: known covariates over the horizon (a file or DataFrame, long format).
        method: "model", or a baseline ("naive", "snaive", "naive2", "ses", "theta"), which gives
            point forecasts only.
    Outputs:
        a long-format DataFrame: id, time, ``forecast``, and ``q<level>`` columns.
    """
    trained = load(checkpoint, device=device)
    series = read(data, trained.data)
    levels, forecast = _forecast(trained, series, horizon=horizon, quantiles=quantiles, future=future, method=method)
    return forecast_frame(series, levels, forecast, id_col=trained.data["id_col"], time_col=trained.data["time_col"])


def _forecast(trained: TrainedForecaster, series: SeriesSet, *, horizon=None, quantiles=None, future=None,
              method: str = "model") -> tuple:
    """(levels, (N, h, Q) forecasts) of the model or a baseline (a baseline: the median level only)."""
    h = horizon or trained.horizon
    if method != "model":
        if method not in BASELINE_METHODS:
            raise ValueError(f"method must be 'model' or one of {', '.join(BASELINE_METHODS)}, got {method!r}")
        return [0.5], _baseline_forecasts(series, h, trained.season, method)[..., None]
    if trained.features.future and future is not None:
        future = read_future(future, series, trained.horizon, id_col=trained.data["id_col"],
                             time_col=trained.data["time_col"], encoding=trained.data["encoding"])
    return trained.forecast(series, horizon=h, quantiles=quantiles, future=future)


def _scores(history: SeriesSet, actual: np.ndarray, levels, forecast: np.ndarray, m: int) -> tuple:
    """(statistics, per-series table) of (N, h, Q) ``forecast`` against ``actual`` (N, h)."""
    cleaned = [clean_history(v) for v in history.values]
    scale = np.array([metrics.mase_scale(y, m) for y in cleaned])
    naive2 = baselines.forecast_all(cleaned, actual.shape[1], m, "naive2")
    median = list(levels).index(0.5)
    interval = {}
    if len(levels) > 1:
        interval = dict(quantile_forecasts=forecast, quantiles=list(levels), lower=forecast[..., 0],
                        upper=forecast[..., -1], alpha=1.0 - (levels[-1] - levels[0]))
    stats = metrics.statistics(actual, forecast[..., median], scale, naive2=naive2, **interval)
    table = pd.DataFrame({"series": history.ids, "smape": metrics.smape(actual, forecast[..., median]),
                          "mase": metrics.mase(actual, forecast[..., median], scale),
                          "mae": metrics.mae(actual, forecast[..., median])})
    return stats, table


def _baseline_scores(history: SeriesSet, actual: np.ndarray, m: int) -> Dict[str, dict]:
    """sMAPE, MASE and OWA of each baseline on the same forecasts."""
    found = {}
    for method in BASELINE_METHODS:
        forecast = _baseline_forecasts(history, actual.shape[1], m, method)[..., None]
        scored = metrics.from_statistics(_scores(history, actual, [0.5], forecast, m)[0])
        found[method] = {key: scored[key] for key in ("smape", "mase", "owa")}
    return found


def evaluate(checkpoints, path, *, actuals=None, per_series: Optional[str] = None, future=None,
             device: str = "cpu") -> dict:
    """Forecasts from the end of each series of ``path`` scored against ``actuals`` (the values
    that followed, same format): sMAPE, MASE, OWA (against Naive2 computed in the same run), MAE,
    RMSE, the weighted quantile loss (a CRPS estimate) and the widest interval's coverage and MSIS;
    and, under ``baselines``, the sMAPE, MASE and OWA of naive, seasonal naive, Naive2, SES and Theta.
    ``per_series``: also write each series' sMAPE, MASE and MAE to this CSV (atomically).
    """
    if actuals is None:
        raise ValueError("evaluating a forecaster needs the values that followed the history: give --actuals FILE")
    trained = load(checkpoints, device=device)
    history = read(path, trained.data)
    actual = _actuals(actuals, history, trained.data, trained.horizon)
    levels, forecast = _forecast(trained, history, future=future)
    stats, table = _scores(history, actual, levels, forecast, trained.season)
    result = dict(metrics.from_statistics(stats), series=len(history), horizon=trained.horizon,
                  baselines=_baseline_scores(history, actual, trained.season))
    if per_series:
        from rnnkit.files import write_text_atomic

        write_text_atomic(per_series, table.to_csv(index=False))
        result["per_series_csv"] = str(per_series)
    return result


def backtest(checkpoints, path, *, windows: int = 3, step: Optional[int] = None, plot: Optional[str] = None,
             device: str = "cpu") -> dict:
    """Rolling-origin evaluation with no retraining: forecasts from ``windows`` origins, ``step``
    steps apart (default the horizon), the last one a horizon before the end of each series,
    scored against what followed each origin. Outputs: overall metrics, ``windows``: each
    window's, and ``baselines``: the baselines' overall sMAPE, MASE and OWA."""
    trained = load(checkpoints, device=device)
    series, H = read(path, trained.data), trained.horizon
    step = step or H
    totals, baseline_totals, per_window, shown = {}, {}, {}, []
    for w in range(windows):
        end = H + (windows - 1 - w) * step                      # steps after the origin, to the end
        usable = [sid for sid, n in zip(series.ids, series.lengths()) if n > end + trained.season]
        if not usable:
            raise ValueError(f"backtest window {w + 1}: no series is longer than {end + trained.season} steps: "
                             f"give fewer --windows or a smaller --step")
        part = series.select(usable)
        history = part.cut(end)
        actual = np.stack([v[len(h):len(h) + H] for v, h in zip(part.values, history.values)])
        levels, forecast = _forecast(trained, history)
        stats = _scores(history, actual, levels, forecast, trained.season)[0]
        per_window[f"window {w + 1}"] = {key: value for key, value in metrics.from_statistics(stats).items()
                                         if key in ("smape", "mase", "owa", "coverage", "points")}
        totals = {key: totals[key] + value if key in totals else value for key, value in stats.items()}
        for method in BASELINE_METHODS:
            base = _baseline_forecasts(history, H, trained.season, method)[..., None]
            b_stats = _scores(history, actual, [0.5], base, trained.season)[0]
            bucket = baseline_totals.setdefault(method, {})
            for key, value in b_stats.items():
                bucket[key] = bucket[key] + value if key in bucket else value
        shown.append((history, levels, forecast, actual))
    result = dict(metrics.from_statistics(totals), windows=per_window,
                  baselines={method: {key: value for key, value in metrics.from_statistics(t).items()
                                      if key in ("smape", "mase", "owa")} for method, t in baseline_totals.items()})
    if plot:
        from .plots import plot_backtest

        plot_backtest(series, shown, Path(plot))
        result["plot_png"] = str(plot)
    return result


def predict_rows(checkpoints, inputs: Sequence[str], *, data=None, horizon=None, quantiles=None, future=None,
                 method: str = "model", plot: Optional[str] = None, plot_series: int = 4,
                 device: str = "cpu") -> List[dict]:
    """``rnnkit predict``'s rows: one per series and step (``predict``'s DataFrame), and with
    ``plot`` a PNG of the first ``plot_series`` series' history, forecast and interval."""
    if data is None:
        raise ValueError("forecasting reads the series' history from a file: give --data FILE")
    trained = load(checkpoints, device=device)
    series = read(data, trained.data)
    levels, forecast = _forecast(trained, series, horizon=horizon, quantiles=quantiles, future=future, method=method)
    frame = forecast_frame(series, levels, forecast, id_col=trained.data["id_col"], time_col=trained.data["time_col"])
    if plot:
        from .plots import plot_forecasts

        plot_forecasts(series, levels, forecast, Path(plot), count=plot_series)
    frame[trained.data["time_col"]] = frame[trained.data["time_col"]].astype(str)
    return frame.to_dict("records")


def show(row: dict) -> str:
    """How ``rnnkit predict`` prints a forecast row: tab-separated values."""
    return "\t".join(f"{value:.6g}" if isinstance(value, float) else str(value) for value in row.values())


class _Forecast(torch.nn.Module):
    """A forecaster's quantiles (B, H, Q), in the data's units, from the tensors of its windows."""

    def __init__(self, model: ForecastEnsemble, log: bool):
        super().__init__()
        self.model, self.log, self.levels = model, log, list(model.config.quantiles)

    def forward(self, target, observed, lagged, known, past, index, loc, scale):
        batch = ForecastBatch(target, observed, lagged, known, past, index, loc, scale, self.model.context)
        values = loc.view(-1, 1, 1) + scale.view(-1, 1, 1) * self.model.quantiles(batch, self.levels)
        return torch.expm1(values) if self.log else values


def exportable(trained: TrainedForecaster):
    """``rnnkit export``: a direct-decoder forecaster, ``(target, observed, lagged, known, past,
    series_index, series_loc, series_scale) -> quantiles (B, H, Q)`` in the data's units: the ``ForecastBatch`` fields
    of B windows of L context + H horizon steps (L, H and the feature widths fixed by the
    checkpoint, B dynamic). Making those windows from a history stays outside the model."""
    from rnnkit.export import Exportable

    model = trained.model
    config = model.config
    if config.decoder != "direct":
        raise ValueError("rnnkit export writes deterministic models, and the autoregressive decoder samples its "
                         "forecasts: export a forecaster trained with --decoder direct")
    L, H = model.context, config.horizon
    lags = len(model.members[0].lags)

    def make_inputs(batch: int, length: int, generator: torch.Generator):
        steps = L + H
        observed = (torch.rand(batch, steps, generator=generator) > 0.1).float()
        observed[:, L:] = 0                                                           # the horizon is unknown
        target = torch.randn(batch, steps, generator=generator) * observed
        past = torch.randn(batch, steps, config.past_features, generator=generator)
        past[:, L:] = 0
        index = torch.randint(0, config.num_series, (batch,), generator=generator) if config.num_series \
            else torch.full((batch,), -1)
        return (target, observed, torch.randn(batch, steps, lags, generator=generator),
                torch.randn(batch, steps, config.known_features, generator=generator), past, index,
                torch.randn(batch, generator=generator), torch.rand(batch, generator=generator) + 0.5)

    # (the ONNX graph's names: "index" would collide with a node's)
    names = ["target", "observed", "lagged", "known", "past", "series_index", "series_loc", "series_scale"]
    return Exportable(_Forecast(model, trained.features.log).eval(), make_inputs, names, ["quantiles"],
                      {name: {0: "batch"} for name in names})
