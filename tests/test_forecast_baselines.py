"""The M4 benchmarks of ``rnnkit.tasks.forecast.baselines`` on tiny generated series, against values
worked out by hand or by a straightforward independent formula (no data files are read)."""

import math

import numpy as np
import pytest

from rnnkit.tasks.forecast.baselines import (BASELINES, forecast_all, naive, naive2, seasonal_indices,
                                             seasonal_naive, seasonality_test, ses, theta)

# Three periods of a pure cycle: the 2x4 moving average is 25 everywhere, so the indices are y / 25.
CYCLE = np.tile([10.0, 20.0, 30.0, 40.0], 3)


def test_naive_and_seasonal_naive():
    y = np.arange(1.0, 9.0)                                   # 1..8
    np.testing.assert_array_equal(naive(y, 3), [8, 8, 8])
    np.testing.assert_array_equal(seasonal_naive(y, 6, 4), [5, 6, 7, 8, 5, 6])
    np.testing.assert_array_equal(seasonal_naive(y, 3, 1), [8, 8, 8])
    np.testing.assert_array_equal(seasonal_naive([1.0, 2.0], 5, 4), [1, 2, 1, 2, 1])   # shorter than m
    assert naive(y, 2).dtype == np.float64


def test_short_trend_is_not_seasonal_and_naive2_is_naive():
    y = np.arange(1.0, 9.0)
    # m = 4: 8 values < 3m, so not tested. m = 2: mean 4.5, sum of squares 42, r1 = 26.25 / 42 = 0.625,
    # r2 = 11.5 / 42 = 0.274 < 1.645 sqrt((1 + 2 * 0.625^2) / 8) = 0.776.
    assert not seasonality_test(y, 4)
    assert not seasonality_test(y, 2)
    assert 11.5 / 42 < 1.645 * math.sqrt((1 + 2 * 0.625 ** 2) / 8)
    np.testing.assert_array_equal(naive2(y, 3, 4), [8, 8, 8])
    assert not seasonality_test(y, 1) and not seasonality_test(np.full(30, 2.0), 4)


def test_cycle_by_hand():
    # d = y - 25 = (-15, -5, 5, 15) x 3, sum d^2 = 1500; lag sums -75, -750, -425, 1000, so
    # r4 = 2/3 > 1.645 sqrt((1 + 2 (0.05^2 + 0.5^2 + 0.2833^2)) / 12) = 0.613.
    r = np.array([-75.0, -750.0, -425.0]) / 1500
    assert 1000 / 1500 > 1.645 * math.sqrt((1 + 2 * np.sum(r ** 2)) / 12)
    assert seasonality_test(CYCLE, 4)
    np.testing.assert_allclose(seasonal_indices(CYCLE, 4), [0.4, 0.8, 1.2, 1.6])
    np.testing.assert_allclose(naive2(CYCLE, 6, 4), [10, 20, 30, 40, 10, 20])


def test_indices_follow_the_first_value_and_the_forecast_continues_the_cycle():
    y = np.tile([10.0, 20.0, 30.0, 40.0], 4)[1:]              # starts at 20, ends at 40
    assert seasonality_test(y, 4)
    np.testing.assert_allclose(seasonal_indices(y, 4), [0.8, 1.2, 1.6, 0.4])
    # the last value 40 / 1.6 = 25 deseasonalised; step 1 is at t = 15, index si[15 % 4] = 0.4
    np.testing.assert_allclose(naive2(y, 5, 4), [10, 20, 30, 40, 10])
    np.testing.assert_allclose(ses(y, 5, 4), [10, 20, 30, 40, 10], rtol=1e-6)


def test_odd_period_uses_a_simple_moving_average():
    np.testing.assert_allclose(seasonal_indices(np.tile([1.0, 2.0, 3.0], 3), 3), [0.5, 1.0, 1.5])


def _seasonality_by_loops(y, m):
    """M4's test written out with loops, as in M4's acf: sum (y_t - mean)(y_{t-k} - mean) / sum (y_t - mean)^2."""
    n, mean = len(y), sum(y) / len(y)
    denominator = sum((v - mean) ** 2 for v in y)
    acf = [sum((y[t] - mean) * (y[t - k] - mean) for t in range(k, n)) / denominator for k in range(m + 1)]
    limit = 1.645 * math.sqrt((1 + 2 * sum(acf[k] ** 2 for k in range(1, m))) / n)
    return abs(acf[m]) > limit


def _indices_by_loops(y, m):
    """Classical multiplicative decomposition written out: centred 2 x m moving average (m even)."""
    n, half = len(y), m // 2
    ratios = [[] for _ in range(m)]
    for t in range(half, n - half):
        trend = (0.5 * y[t - half] + sum(y[t - half + 1:t + half]) + 0.5 * y[t + half]) / m
        ratios[t % m].append(y[t] / trend)
    figure = np.array([np.mean(r) for r in ratios])
    return figure / figure.mean()


def test_against_straightforward_formulas():
    rng = np.random.default_rng(0)
    t = np.arange(60)
    for amplitude in (0.0, 0.3, 3.0):                        # none, weak and strong seasonality
        y = 50 + 0.1 * t + amplitude * np.sin(2 * np.pi * t / 6) + rng.normal(0, 1, 60)
        assert seasonality_test(y, 6) == _seasonality_by_loops(list(y), 6)
        np.testing.assert_allclose(seasonal_indices(y, 6), _indices_by_loops(list(y), 6), rtol=1e-12)
    assert seasonality_test(y, 6)


def _best_ses_level(y, alphas):
    """The final level of the SES with the least in-sample one-step MSE over a grid of alphas, the
    initial level solved exactly (the one-step forecasts are linear in it)."""
    paths, weights = np.zeros(len(alphas)), np.ones(len(alphas))       # level from l0 = 0, and d level / d l0
    residual, gain = [], []
    for value in y:
        residual.append(value - paths)
        gain.append(weights.copy())
        paths, weights = paths + alphas * (value - paths), weights * (1 - alphas)
    residual, gain = np.array(residual), np.array(gain)                   # (n, A)
    l0 = (residual * gain).sum(0) / (gain * gain).sum(0)
    mse = ((residual - gain * l0) ** 2).mean(0)
    best = np.argmin(mse)
    return paths[best] + weights[best] * l0[best]


def test_ses_is_the_least_squares_smoother():
    rng = np.random.default_rng(1)
    y = 50 + np.cumsum(rng.normal(0, 1, 40)) + rng.normal(0, 2, 40)
    expected = _best_ses_level(y, np.linspace(1e-4, 0.9999, 4000))
    np.testing.assert_allclose(ses(y, 3, 1), np.full(3, expected), rtol=1e-3)


def test_ses_on_a_line_tracks_the_last_value():
    # one-step errors are smallest at the upper bound alpha = 0.9999, whose level lags by (1 - a) / a
    a = 0.9999
    np.testing.assert_allclose(ses(np.arange(1.0, 21.0), 3, 1), np.full(3, 20 - (1 - a) / a), atol=1e-5)
    np.testing.assert_allclose(ses(np.full(20, 5.0), 2, 1), [5, 5])


def test_theta_adds_half_the_drift():
    # y = 2 + 3t: the theta line 2y - L is y itself, its SES level is y_n, and L continues the line,
    # so the mean is y_n + 1.5 j
    y = 2 + 3 * np.arange(1.0, 31.0)
    np.testing.assert_allclose(theta(y, 4, 1), y[-1] + 1.5 * np.arange(1, 5), atol=1e-3)


def test_theta_sets_negative_forecasts_to_zero():
    forecast = theta(np.array([10.0, 8.0, 6.0, 4.0, 2.0]), 4, 1)        # about 2 - j
    np.testing.assert_allclose(forecast[:2], [1, 0], atol=1e-3)
    np.testing.assert_array_equal(forecast[2:], [0, 0])


def test_forecast_all_and_the_registry():
    assert list(BASELINES) == ["naive", "snaive", "naive2", "ses", "theta"]
    series = [CYCLE, np.arange(1.0, 9.0), np.array([4.0])]
    for method, forecast in BASELINES.items():
        out = forecast_all(series, 5, 4, method)
        assert out.shape == (3, 5) and out.dtype == np.float64
        np.testing.assert_array_equal(out[1], forecast(series[1], 5, 4))
        np.testing.assert_allclose(out[2], [4] * 5)
    assert forecast_all([], 3, 4, "naive").shape == (0, 3)
    with pytest.raises(ValueError, match="unknown method"):
        forecast_all(series, 5, 4, "arima")


@pytest.mark.parametrize("method", list(BASELINES))
def test_bad_input(method):
    forecast = BASELINES[method]
    for h in (0, -1, 1.5):
        with pytest.raises(ValueError, match="h must be"):
            forecast(CYCLE, h, 4)
    with pytest.raises(ValueError, match="fill or drop missing values first"):
        forecast(np.array([1.0, np.nan, 3.0]), 2, 1)
    with pytest.raises(ValueError, match="fill or drop missing values first"):
        forecast(np.array([np.nan, 2.0, 3.0]), 2, 1)
    with pytest.raises(ValueError, match="empty"):
        forecast(np.array([]), 2, 1)
    with pytest.raises(ValueError, match="1-D"):
        forecast(np.ones((2, 3)), 2, 1)
    with pytest.raises(ValueError, match="m must be"):
        forecast(CYCLE, 2, 0)


def test_seasonal_indices_need_two_periods():
    with pytest.raises(ValueError, match="two full periods"):
        seasonal_indices(np.arange(1.0, 8.0), 4)
