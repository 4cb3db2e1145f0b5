"""Forecast accuracy: the M4 competition's sMAPE, MASE, OWA and MSIS, with MAE, RMSE, quantile
losses and interval coverage; per series, and as additive statistics for corpus-level figures.

Arrays are (N, h): N series, h forecast steps (a (h,) array is one series); quantile forecasts are
(N, h, Q). A NaN in ``actual`` is a missing observation: that point is skipped everywhere, neither
scored nor counted (a series with no observed point scores NaN). A NaN forecast where the actual
is observed raises ValueError.

``statistics`` returns sums and counts that add up over parts of a data set (the engine adds the
dicts of validation batches key by key); ``from_statistics`` turns the totals into metrics. Corpus
sMAPE, MASE, MAE and MSIS are means over all observed points, as M4's R code averages its
(series x horizon) error matrix, so with complete data they equal the mean of the per-series values.
NumPy only.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np

Scale = Union[float, np.ndarray]


def _series(x, name: str, ndim: int = 2) -> np.ndarray:
    """``x`` as float64 with ``ndim`` dimensions (one fewer: a single series)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == ndim - 1:
        x = x[None]
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions (series, steps{', quantiles' * (ndim == 3)}), "
                         f"got shape {x.shape}")
    return x


def _observed(actual, **forecasts) -> tuple:
    """(actual (N, h) with NaN set to 0, the (N, h) mask of observed points, each forecast as (N, h, ...)),
    checked: shapes agree and no forecast is NaN where the actual is observed."""
    actual = _series(actual, "actual")
    mask = ~np.isnan(actual)                                              # (N, h)
    checked = []
    for name, value in forecasts.items():
        value = _series(value, name, 3 if name == "quantile_forecasts" else 2)
        if value.shape[:2] != actual.shape:
            raise ValueError(f"{name} has shape {value.shape}, actual {actual.shape}")
        missing = np.isnan(value) if value.ndim == 2 else np.isnan(value).any(2)    # (N, h)
        if (missing & mask).any():
            raise ValueError(f"{name} has NaN where the actual is observed")
        checked.append(np.where(mask if value.ndim == 2 else mask[..., None], value, 0.0))
    return (np.where(mask, actual, 0.0), mask, *checked)


def _per_series(terms: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N,) mean of the (N, h) ``terms`` over each series' observed points (NaN for none)."""
    count = mask.sum(1)
    return np.divide(terms.sum(1), count, out=np.full(len(count), np.nan), where=count > 0)


def _column(scale: Scale, n: int) -> np.ndarray:
    """A per-series scale (float or (N,)) as an (N, 1) column."""
    scale = np.asarray(scale, dtype=np.float64)
    if scale.ndim == 0:
        scale = np.full(n, scale)
    if scale.shape != (n,):
        raise ValueError(f"scale must be a float or one value per series ({n}), got shape {scale.shape}")
    return scale[:, None]


def _smape_terms(actual: np.ndarray, forecast: np.ndarray, mask: np.ndarray) -> np.ndarray:
    denominator = np.abs(actual) + np.abs(forecast)                       # (N, h)
    terms = np.divide(200.0 * np.abs(actual - forecast), denominator, out=np.zeros_like(denominator),
                      where=denominator > 0)
    return terms * mask


def _scaled_terms(errors: np.ndarray, scale: Scale, mask: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mask, errors / _column(scale, len(errors)), 0.0)


def _interval_terms(actual, lower, upper, alpha: float) -> np.ndarray:
    """M4's interval score per point: width plus 2/alpha times the distance outside the interval."""
    below, above = np.maximum(lower - actual, 0.0), np.maximum(actual - upper, 0.0)
    return (upper - lower) + (2.0 / alpha) * (below + above)


def _pinball_sums(actual, quantile_forecasts, quantiles, mask) -> np.ndarray:
    """(Q,) sums over observed points of 2 |(y - f_q)(1{y <= f_q} - q)|."""
    q = np.asarray(quantiles, dtype=np.float64)
    if q.shape != quantile_forecasts.shape[2:]:
        raise ValueError(f"{len(q)} quantile levels for {quantile_forecasts.shape[2]} quantile forecasts")
    error = actual[..., None] - quantile_forecasts                        # (N, h, Q)
    loss = 2.0 * np.abs(error * ((error <= 0) - q))
    return (loss * mask[..., None]).sum((0, 1))


def smape(actual, forecast) -> np.ndarray:
    """Symmetric MAPE in percent, per series: the mean over steps of 200 |y - f| / (|y| + |f|).

    A point where y = f = 0 scores 0 (M4's code would give NaN; its data are positive).
    Inputs: actual, forecast: (N, h). Outputs: (N,)."""
    actual, mask, forecast = _observed(actual, forecast=forecast)
    return _per_series(_smape_terms(actual, forecast, mask), mask)


def mase_scale(history, m: int) -> float:
    """MASE's denominator: the mean |y_t - y_{t-m}| over the in-sample ``history`` (the seasonal
    naive's in-sample error, NaN pairs skipped); lag 1 when the history has no more than m values
    (M4's series never do; GluonTS reverts to lag 1 likewise). A constant history gives 0, and
    MASE is then inf.

    Inputs: history: (n,) with n >= 2; m: seasonal period >= 1. Outputs: float."""
    history = np.asarray(history, dtype=np.float64)
    if history.ndim != 1 or len(history) < 2:
        raise ValueError(f"the history must be 1-D with at least 2 values, got shape {history.shape}")
    if int(m) != m or m < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    lag = int(m) if len(history) > m else 1
    differences = np.abs(history[lag:] - history[:-lag])
    differences = differences[~np.isnan(differences)]
    if not len(differences):
        raise ValueError("the history has no pair of observed values one season apart")
    return float(differences.mean())


def _scales(history, m: int) -> np.ndarray:
    """(N,) ``mase_scale`` of each history (a list of 1-D arrays, or one 1-D array)."""
    if np.ndim(history[0]) == 0:
        history = [history]
    return np.array([mase_scale(series, m) for series in history])


def mase(actual, forecast, scale: Scale) -> np.ndarray:
    """Mean absolute scaled error per series: mean |y - f| over steps divided by ``scale``.

    Inputs: actual, forecast: (N, h); scale: (N,) or a float (``mase_scale`` of each history).
    Outputs: (N,)."""
    actual, mask, forecast = _observed(actual, forecast=forecast)
    return _per_series(_scaled_terms(np.abs(actual - forecast), scale, mask), mask)


def owa(smape, mase, smape_naive2, mase_naive2) -> float:
    """M4's overall weighted average: 0.5 (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2), each figure
    the mean over series (pass per-series arrays or the means)."""
    mean = lambda x: float(np.mean(x))                                    # noqa: E731
    return 0.5 * (mean(smape) / mean(smape_naive2) + mean(mase) / mean(mase_naive2))


def mae(actual, forecast) -> np.ndarray:
    """Mean absolute error per series. Inputs: (N, h). Outputs: (N,)."""
    actual, mask, forecast = _observed(actual, forecast=forecast)
    return _per_series(np.abs(actual - forecast), mask)


def rmse(actual, forecast) -> np.ndarray:
    """Root mean squared error per series. Inputs: (N, h). Outputs: (N,)."""
    actual, mask, forecast = _observed(actual, forecast=forecast)
    return np.sqrt(_per_series((actual - forecast) ** 2, mask))


def quantile_loss(actual, quantile_forecasts, quantiles: Sequence[float]) -> np.ndarray:
    """Per quantile level q, the sum over observed points of twice the pinball loss,
    2 |(y - f_q)(1{y <= f_q} - q)| (GluonTS's ``QuantileLoss``).

    Inputs: actual: (N, h); quantile_forecasts: (N, h, Q); quantiles: Q levels in (0, 1).
    Outputs: (Q,) sums."""
    actual, mask, quantile_forecasts = _observed(actual, quantile_forecasts=quantile_forecasts)
    return _pinball_sums(actual, quantile_forecasts, quantiles, mask)


def weighted_quantile_loss(actual, quantile_forecasts, quantiles: Sequence[float]) -> float:
    """The mean over quantile levels of ``quantile_loss`` / sum |y| (GluonTS's ``mean_wQuantileLoss``)."""
    losses = quantile_loss(actual, quantile_forecasts, quantiles)         # (Q,)
    return float(np.mean(losses) / np.nansum(np.abs(_series(actual, "actual"))))


def coverage(actual, lower, upper) -> np.ndarray:
    """Per series, the share of observed points inside [lower, upper]. Inputs: (N, h). Outputs: (N,)."""
    actual, mask, lower, upper = _observed(actual, lower=lower, upper=upper)
    return _per_series((lower <= actual) & (actual <= upper) & mask, mask)


def msis(actual, lower, upper, history, m: int, alpha: float = 0.05) -> np.ndarray:
    """M4's mean scaled interval score per series: the mean over steps of
    (u - l) + 2/alpha (l - y) 1{y < l} + 2/alpha (y - u) 1{y > u}, divided by ``mase_scale``.

    Inputs: actual, lower, upper: (N, h) (the 100(1 - alpha)% interval); history: the N in-sample
    series (one 1-D array when N = 1); m: seasonal period. Outputs: (N,)."""
    actual, mask, lower, upper = _observed(actual, lower=lower, upper=upper)
    terms = _interval_terms(actual, lower, upper, alpha)
    return _per_series(_scaled_terms(terms, _scales(history, m), mask), mask)


def statistics(actual, forecast, scale: Scale, naive2=None, quantile_forecasts=None,
               quantiles: Optional[Sequence[float]] = None, lower=None, upper=None,
               alpha: float = 0.05) -> Dict[str, Union[float, np.ndarray]]:
    """Sums and counts over the observed points of one part of a data set, to add up over parts.

    Args:
        actual, forecast: (N, h). scale: (N,) or float, each series' ``mase_scale``.
        naive2: (N, h) Naive2 forecasts, for OWA. quantile_forecasts: (N, h, Q) with ``quantiles``
            (Q levels), for the weighted quantile loss. lower, upper: (N, h) bounds of the
            100(1 - alpha)% interval, for coverage and MSIS.
    Outputs:
        ``points``, ``smape_sum``, ``mase_sum``, ``abs_error_sum``, ``squared_error_sum``,
        ``abs_actual_sum``; with naive2 ``naive2_smape_sum``, ``naive2_mase_sum``; with quantiles
        ``quantile_loss_sum`` (Q,); with an interval ``covered``, ``msis_sum``.
    """
    if (quantile_forecasts is None) != (quantiles is None):
        raise ValueError("pass quantile_forecasts and quantiles together")
    if (lower is None) != (upper is None):
        raise ValueError("pass lower and upper together")
    given = {name: value for name, value in dict(forecast=forecast, naive2=naive2, lower=lower, upper=upper,
                                                 quantile_forecasts=quantile_forecasts).items()
             if value is not None}
    actual, mask, *arrays = _observed(actual, **given)
    arrays = dict(zip(given, arrays))
    error = actual - arrays["forecast"]                                   # (N, h)
    totals = {"points": int(mask.sum()),
              "smape_sum": float(_smape_terms(actual, arrays["forecast"], mask).sum()),
              "mase_sum": float(_scaled_terms(np.abs(error), scale, mask).sum()),
              "abs_error_sum": float(np.abs(error).sum()),
              "squared_error_sum": float((error ** 2).sum()),
              "abs_actual_sum": float(np.abs(actual).sum())}
    if naive2 is not None:
        totals["naive2_smape_sum"] = float(_smape_terms(actual, arrays["naive2"], mask).sum())
        totals["naive2_mase_sum"] = float(_scaled_terms(np.abs(actual - arrays["naive2"]), scale, mask).sum())
    if quantiles is not None:
        totals["quantile_loss_sum"] = _pinball_sums(actual, arrays["quantile_forecasts"], quantiles, mask)
    if lower is not None:
        inside = (arrays["lower"] <= actual) & (actual <= arrays["upper"]) & mask
        totals["covered"] = int(inside.sum())
        terms = _interval_terms(actual, arrays["lower"], arrays["upper"], alpha)
        totals["msis_sum"] = float(_scaled_terms(terms, scale, mask).sum())
    return totals


def from_statistics(totals: dict) -> Dict[str, float]:
    """Metrics from ``statistics`` summed over the parts of a data set: ``smape``, ``mase``,
    ``mae``, ``rmse`` (over all observed points) and ``points``; ``owa`` with Naive2's sums,
    ``weighted_quantile_loss`` with quantile losses, ``coverage`` and ``msis`` with an interval."""
    points = totals["points"]
    mean = lambda key: totals[key] / points if points else float("nan")   # noqa: E731
    metrics = {"smape": mean("smape_sum"), "mase": mean("mase_sum"), "mae": mean("abs_error_sum"),
               "rmse": float(np.sqrt(mean("squared_error_sum"))), "points": int(points)}
    if "naive2_smape_sum" in totals:
        metrics["owa"] = owa(totals["smape_sum"], totals["mase_sum"],
                             totals["naive2_smape_sum"], totals["naive2_mase_sum"])
    if "quantile_loss_sum" in totals:
        metrics["weighted_quantile_loss"] = float(np.mean(totals["quantile_loss_sum"]) / totals["abs_actual_sum"])
    if "covered" in totals:
        metrics["coverage"] = mean("covered")
        metrics["msis"] = mean("msis_sum")
    return metrics
