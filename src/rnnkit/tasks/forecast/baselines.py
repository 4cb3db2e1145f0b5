"""The statistical benchmarks of the M4 competition: Naive, Seasonal Naive, Naive2, SES and Theta.

They follow the organisers' R code (``Benchmarks and Evaluation.R`` in the M4-methods repository,
run with the R package forecast 8.2), which produced the official benchmark forecasts:

- seasonality: the 90% autocorrelation test at lag m (``seasonality_test``), and when it says
  seasonal, classical multiplicative decomposition (``seasonal_indices``, R's ``decompose``);
- Naive2, SES and Theta forecast the seasonally adjusted series and multiply the forecast back by
  the seasonal indices that continue the cycle;
- SES is forecast's ``ses()``: an ETS(A,N,N) model whose smoothing parameter and initial level
  minimise the in-sample one-step mean squared error, found by R's Nelder-Mead from alpha = 0.5
  and the mean of the first ten values (reproduced step by step here, so the forecasts are R's);
- Theta is M4's ``Theta.classic``: the mean of the linear trend line and SES on the theta = 2 line.

Every function takes one series' history ``y``: a 1-D float array without NaN (callers drop
leading NaN, or fill gaps, first; a NaN anywhere raises ValueError), a horizon ``h >= 1`` and
the seasonal period ``m >= 1`` (1: none), and returns the (h,) float64 forecast. NumPy only.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

_TCRIT = 1.645            # the one-sided 95% / two-sided 90% normal quantile of M4's test
_ALPHA_BOUNDS = (1e-4, 0.9999)   # forecast::ets's default "usual" bounds of alpha
_BIG = 1.0e35             # the value R's Nelder-Mead gives an infinite objective


def _history(y) -> np.ndarray:
    """``y`` as a float64 (n,) array, checked: 1-D, not empty, no NaN, finite."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one series), got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("y is empty: a forecast needs at least one observation")
    missing = np.flatnonzero(np.isnan(y))
    if len(missing):
        raise ValueError(f"y has NaN (first at index {missing[0]}): fill or drop missing values first")
    if not np.isfinite(y).all():
        raise ValueError("y has infinite values")
    return y


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _acf(y: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelations at lags 0..max_lag, as M4's ``acf``: mean-centred, each lag's sum of
    products divided by the lag-0 sum of squares (R's ``acf`` gives the same)."""
    d = y - y.mean()                                                      # (n,)
    return np.array([d[k:] @ d[:len(d) - k] for k in range(max_lag + 1)]) / (d @ d)


def seasonality_test(y, m: int) -> bool:
    """M4's 90% test of seasonality at period ``m``.

    The series is seasonal when it has at least 3m values and
    |r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n), r_k its autocorrelation at lag k (the
    R benchmarks' version; M4's ML_benchmarks.py leaves r_1 unsquared). ``m == 1`` and a constant
    series are never seasonal. (R's ``acf`` stops at lag 10 log10(n), so M4's R code also calls
    non-seasonal a series with 3m <= n < 10^(m/10), e.g. hourly ones shorter than 252; we do not.)

    Args:
        y: (n,) history. m: seasonal period.
    Outputs:
        bool.
    """
    y, m = _history(y), _positive(m, "m")
    if m == 1 or len(y) < 3 * m or np.ptp(y) == 0:
        return False
    r = _acf(y, m)                                                        # (m + 1,)
    limit = _TCRIT * math.sqrt((1 + 2 * np.sum(r[1:m] ** 2)) / len(y))
    return bool(abs(r[m]) > limit)


def seasonal_indices(y, m: int) -> np.ndarray:
    """Multiplicative seasonal indices of classical decomposition (R's ``decompose``).

    The trend is a centred moving average of order m (2 x m for even m); the ratios y / trend are
    averaged per season position and normalised to mean 1. ``si[k]`` is the index of the values
    ``y[t]`` with ``t % m == k`` (t from 0 at the first value), so the deseasonalised series is
    ``y / si[arange(n) % m]`` and forecast step j = 1..h (time n - 1 + j) takes
    ``si[(n - 1 + j) % m]``: the cycle continues, the first step gets the index of y[n - m].

    Args:
        y: (n,) history with n >= 2m. m: seasonal period.
    Outputs:
        (m,) float64 indices, mean 1.
    """
    y, m = _history(y), _positive(m, "m")
    n = len(y)
    if n < 2 * m:
        raise ValueError(f"seasonal_indices needs two full periods (>= {2 * m} values), got {n}")
    weights = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    half = len(weights) // 2
    ratio = np.full(n, np.nan)                                            # (n,) y / trend
    ratio[half:n - half] = y[half:n - half] / np.convolve(y, weights, mode="valid")
    figure = np.array([np.nanmean(ratio[k::m]) for k in range(m)])        # (m,)
    return figure / figure.mean()


def _adjusted(y: np.ndarray, h: int, m: int) -> Tuple[np.ndarray, np.ndarray]:
    """(the series M4 forecasts, the (h,) indices to multiply its forecast by): y and ones when
    ``seasonality_test`` says not seasonal, else y deseasonalised and the continuing indices."""
    if not seasonality_test(y, m):
        return y, np.ones(h)
    n, si = len(y), seasonal_indices(y, m)
    return y / si[np.arange(n) % m], si[(n + np.arange(h)) % m]


def naive(y, h: int, m: int = 1) -> np.ndarray:
    """The last value repeated h times (``m`` is unused: it is there for the common signature)."""
    y, h, _ = _history(y), _positive(h, "h"), _positive(m, "m")
    return np.full(h, y[-1])


def seasonal_naive(y, h: int, m: int) -> np.ndarray:
    """The last m values repeated over the horizon (all of y repeated when it is shorter, as M4's code)."""
    y, h, m = _history(y), _positive(h, "h"), _positive(m, "m")
    return np.resize(y[-m:], h)


def naive2(y, h: int, m: int) -> np.ndarray:
    """Naive on the seasonally adjusted series (when M4's test finds seasonality), reseasonalised."""
    y, h, m = _history(y), _positive(h, "h"), _positive(m, "m")
    adjusted, indices = _adjusted(y, h, m)
    return adjusted[-1] * indices


# --- simple exponential smoothing as forecast::ses (forecast 8.2) ---------------------------------

def _ses_mse(params: Sequence[float], y: List[float]) -> float:
    """ETS(A,N,N)'s in-sample one-step MSE at (alpha, initial level), as forecast's C ``etscalc``
    computes it (the running mean updated point by point); inf outside forecast's alpha bounds."""
    alpha, level = params
    if not _ALPHA_BOUNDS[0] <= alpha <= _ALPHA_BOUNDS[1]:
        return math.inf
    mse, count = 0.0, 0.0
    for value in y:
        error = value - level
        count += 1.0
        mse = (mse * (count - 1.0) + error * error) / count
        level = level + alpha * error
    return mse


def _nelder_mead(f: Callable[[List[float]], float], start: Sequence[float], reltol: float = 2.0 ** -26,
                 maxit: int = 2000) -> List[float]:
    """R's Nelder-Mead (``nmmin`` of optim.c, reflection 1, contraction 0.5, expansion 2), step by
    step, so that it stops where R stops: when the simplex's values are within
    reltol (|f(start)| + reltol) of each other, or after ``maxit`` evaluations.

    Inputs: f: the objective of a parameter list; start: the first vertex.
    Outputs: the best vertex.
    """
    n = len(start)

    def value(x):
        v = f(x)
        return v if math.isfinite(v) else _BIG

    f0 = f(list(start))
    if not math.isfinite(f0):
        raise ValueError("the objective cannot be evaluated at the initial parameters")
    convtol = reltol * (abs(f0) + reltol)
    step = max([0.1 * abs(v) for v in start] + [0.0]) or 0.1
    points, values = [list(start)], [f0]        # n + 1 vertices; point j > 0 moves coordinate j - 1
    size = 0.0
    for j in range(n):
        point, trystep = list(start), step
        while point[j] == start[j]:
            point[j] = start[j] + trystep
            trystep *= 10
        size += trystep
        points.append(point)
        values.append(None)
    oldsize, count, low = size, 1, 0
    while True:
        for j in range(n + 1):                  # (re)evaluate every vertex but the best
            if values[j] is None:
                values[j], count = value(points[j]), count + 1
        high = low
        for j in range(n + 1):
            if j != low:
                if values[j] < values[low]:
                    low = j
                if values[j] > values[high]:
                    high = j
        if values[high] <= values[low] + convtol:
            break
        centroid = []
        for i in range(n):
            total = -points[high][i]
            for point in points:
                total += point[i]
            centroid.append(total / n)
        reflected = [2.0 * centroid[i] - points[high][i] for i in range(n)]
        vr, count = value(reflected), count + 1
        if vr < values[low]:
            expanded = [2.0 * reflected[i] + (1 - 2.0) * centroid[i] for i in range(n)]
            ve, count = value(expanded), count + 1
            points[high], values[high] = (expanded, ve) if ve < vr else (reflected, vr)
        else:
            vh = values[high]
            if vr < vh:
                points[high], values[high] = reflected, vr
            contracted = [0.5 * points[high][i] + 0.5 * centroid[i] for i in range(n)]
            vc, count = value(contracted), count + 1
            if vc < values[high]:
                points[high], values[high] = contracted, vc
            elif vr >= vh:                       # shrink towards the best vertex
                size = 0.0
                for j in range(n + 1):
                    if j != low:
                        points[j] = [0.5 * (points[j][i] - points[low][i]) + points[low][i] for i in range(n)]
                        size += sum(abs(points[j][i] - points[low][i]) for i in range(n))
                        values[j] = None
                if size >= oldsize:
                    break
                oldsize = size
        if count > maxit:
            break
    return points[low]


def _ses_level(y: np.ndarray) -> float:
    """The final level of forecast::ses on ``y``: alpha and the initial level fitted by Nelder-Mead
    from alpha = 0.5 (forecast 8.2's start: the middle of the bounds) and the mean of the first
    ten values, then the level run through the series."""
    values = y.tolist()
    lower, upper = _ALPHA_BOUNDS
    start = [lower + 0.5 * (upper - lower), sum(values[:10]) / min(10, len(values))]
    alpha, level = _nelder_mead(lambda p: _ses_mse(p, values), start)
    for value in values:
        level = level + alpha * (value - level)
    return level


def ses(y, h: int, m: int) -> np.ndarray:
    """Simple exponential smoothing of the seasonally adjusted series, reseasonalised (M4's SES).

    forecast's ``ets`` skips the optimisation for series of 6 values or fewer (it falls back to
    ``HoltWinters``); here they are fitted the same way as longer ones."""
    y, h, m = _history(y), _positive(h, "h"), _positive(m, "m")
    adjusted, indices = _adjusted(y, h, m)
    return _ses_level(adjusted) * indices


def _trend_line(y: np.ndarray, h: int) -> Tuple[np.ndarray, np.ndarray]:
    """Least-squares line of y on t = 1..n: its (n,) fitted values and (h,) values at n+1..n+h."""
    n = len(y)
    t = np.arange(1, n + h + 1, dtype=np.float64)                         # (n + h,)
    t_mean = t[:n].mean()
    slope = ((t[:n] - t_mean) @ (y - y.mean())) / ((t[:n] - t_mean) @ (t[:n] - t_mean)) if n > 1 else 0.0
    line = y.mean() + slope * (t - t_mean)                                # (n + h,)
    return line[:n], line[n:]


def theta(y, h: int, m: int) -> np.ndarray:
    """M4's Theta benchmark (``Theta.classic``) on the seasonally adjusted series, reseasonalised.

    With L the linear trend line of the adjusted series z, the forecast is the mean of SES on the
    theta = 2 line 2z - L and of L extrapolated (which adds half L's drift to the SES level), set to
    0 where negative."""
    y, h, m = _history(y), _positive(h, "h"), _positive(m, "m")
    adjusted, indices = _adjusted(y, h, m)
    line_in, line_out = _trend_line(adjusted, h)                          # (n,), (h,)
    level = _ses_level(2.0 * adjusted - line_in)
    return np.maximum(0.5 * level + 0.5 * line_out, 0.0) * indices


BASELINES: Dict[str, Callable[..., np.ndarray]] = {
    "naive": naive, "snaive": seasonal_naive, "naive2": naive2, "ses": ses, "theta": theta}


def forecast_all(series: Sequence, h: int, m: int, method: str) -> np.ndarray:
    """The forecasts of ``BASELINES[method]`` for each series.

    Args:
        series: N 1-D histories (lengths may differ). h: horizon. m: seasonal period.
        method: a key of ``BASELINES``.
    Outputs:
        (N, h) float64.
    """
    if method not in BASELINES:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(BASELINES)}")
    h = _positive(h, "h")
    forecast = BASELINES[method]
    return np.stack([forecast(y, h, m) for y in series]) if len(series) else np.zeros((0, h))
