"""Forecast metrics of ``rnnkit.tasks.forecast.metrics`` on tiny examples worked out by hand, the
additive statistics and the skipping of missing actuals (generated data only)."""

import numpy as np
import pytest

from rnnkit.tasks.forecast import metrics

# Two series, two steps each.
# A: actual (1, 3), forecast (3, 1), Naive2 (2, 2), history (1, 2, 4), m = 1: scale (1 + 2) / 2 = 1.5
# B: actual (2, 2), forecast (2, 6), Naive2 (4, 4), history (1, 2, 3, 6), m = 2: scale (2 + 4) / 2 = 3
ACTUAL = np.array([[1.0, 3.0], [2.0, 2.0]])
FORECAST = np.array([[3.0, 1.0], [2.0, 6.0]])
NAIVE2 = np.array([[2.0, 2.0], [4.0, 4.0]])


def _scales():
    return np.array([metrics.mase_scale([1.0, 2.0, 4.0], 1), metrics.mase_scale([1.0, 2.0, 3.0, 6.0], 2)])


def test_two_series_by_hand():
    np.testing.assert_allclose(_scales(), [1.5, 3.0])
    # sMAPE: A 200 * 2 / 4 = 100 at both steps; B 0 and 200 * 4 / 8 = 100, mean 50
    np.testing.assert_allclose(metrics.smape(ACTUAL, FORECAST), [100.0, 50.0])
    # MASE: A mean |e| = 2, / 1.5; B mean |e| = 2, / 3
    np.testing.assert_allclose(metrics.mase(ACTUAL, FORECAST, _scales()), [4 / 3, 2 / 3])
    # Naive2: sMAPE A (200/3 + 40) / 2 = 160/3, B 200 * 2 / 6 = 200/3; MASE A 1 / 1.5, B 2 / 3
    smape_n2, mase_n2 = metrics.smape(ACTUAL, NAIVE2), metrics.mase(ACTUAL, NAIVE2, _scales())
    np.testing.assert_allclose(smape_n2, [160 / 3, 200 / 3])
    np.testing.assert_allclose(mase_n2, [2 / 3, 2 / 3])
    # OWA: 0.5 (75 / 60 + 1 / (2/3)) = 0.5 (1.25 + 1.5)
    owa = metrics.owa(metrics.smape(ACTUAL, FORECAST), metrics.mase(ACTUAL, FORECAST, _scales()), smape_n2, mase_n2)
    assert owa == pytest.approx(1.375)
    assert metrics.owa(75.0, 1.0, 60.0, 2 / 3) == pytest.approx(1.375)
    totals = metrics.statistics(ACTUAL, FORECAST, _scales(), naive2=NAIVE2)
    got = metrics.from_statistics(totals)
    assert got["smape"] == pytest.approx(75.0) and got["mase"] == pytest.approx(1.0)
    assert got["owa"] == pytest.approx(1.375) and got["points"] == 4
    assert got["mae"] == pytest.approx(2.0) and got["rmse"] == pytest.approx(np.sqrt((4 + 4 + 0 + 16) / 4))


def test_mae_rmse_and_one_series_as_1d():
    np.testing.assert_allclose(metrics.mae([1.0, 3.0], [2.0, 1.0]), [1.5])
    np.testing.assert_allclose(metrics.rmse([1.0, 3.0], [2.0, 1.0]), [np.sqrt(2.5)])
    np.testing.assert_allclose(metrics.mase([1.0, 3.0], [2.0, 1.0], 0.5), [3.0])


def test_smape_zero_over_zero_is_zero():
    np.testing.assert_array_equal(metrics.smape([[0.0, 1.0]], [[0.0, 1.0]]), [0.0])
    np.testing.assert_allclose(metrics.smape([[0.0, 0.0]], [[0.0, 1.0]]), [100.0])   # (0 + 200) / 2


def test_mase_scale():
    assert metrics.mase_scale([1.0, 2.0, 4.0], 5) == pytest.approx(1.5)      # history <= m: lag 1
    assert metrics.mase_scale([1.0, np.nan, 3.0, 4.0], 1) == pytest.approx(1.0)   # pairs with NaN skipped
    assert metrics.mase_scale([5.0, 5.0, 5.0], 1) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mase_scale([1.0], 1)
    with pytest.raises(ValueError, match="m must be"):
        metrics.mase_scale([1.0, 2.0], 0)
    with pytest.raises(ValueError, match="no pair"):
        metrics.mase_scale([1.0, np.nan, 3.0], 1)
    np.testing.assert_array_equal(metrics.mase([[1.0]], [[2.0]], 0.0), [np.inf])


def test_quantile_losses_by_hand():
    actual = np.array([[1.0, 2.0]])
    quantiles = [0.1, 0.9]
    forecasts = np.array([[[0.0, 0.0], [2.0, 3.0]]])                        # (1, 2 steps, 2 quantiles)
    # q = 0.1: 2 * 1 * 0.1 (y above f) + 0 = 0.2; q = 0.9: 2 * 1 * 0.9 + 2 * 1 * 0.1 (y below f) = 2.0
    np.testing.assert_allclose(metrics.quantile_loss(actual, forecasts, quantiles), [0.2, 2.0])
    assert metrics.weighted_quantile_loss(actual, forecasts, quantiles) == pytest.approx(1.1 / 3)
    with pytest.raises(ValueError, match="quantile levels"):
        metrics.quantile_loss(actual, forecasts, [0.5])


def test_coverage_and_msis_by_hand():
    np.testing.assert_allclose(metrics.coverage([[1.0, 2.0, 3.0, 4.0]], [[0, 2.5, 3, 5]], [[2, 3, 3, 6]]), [0.5])
    # widths 2 and 2, the second misses by 1: (2 + 2 + 40 * 1) / 2 = 22, scaled by 1.5
    got = metrics.msis([[1.0, 5.0]], [[0.0, 2.0]], [[2.0, 4.0]], [1.0, 2.0, 4.0], 1, alpha=0.05)
    np.testing.assert_allclose(got, [22 / 1.5])
    got = metrics.msis(np.array([[1.0, 5.0], [1.0, 5.0]]), [[0.0, 2.0]] * 2, [[2.0, 4.0]] * 2,
                       [np.array([1.0, 2.0, 4.0]), np.array([1.0, 4.0])], 1)
    np.testing.assert_allclose(got, [22 / 1.5, 22 / 3])


def test_missing_actuals_are_skipped():
    actual = np.array([[1.0, np.nan], [np.nan, np.nan], [2.0, 2.0]])
    forecast = np.array([[3.0, np.nan], [7.0, 8.0], [2.0, 6.0]])            # NaN forecast where y is missing: fine
    np.testing.assert_allclose(metrics.smape(actual, forecast), [100.0, np.nan, 50.0])
    np.testing.assert_allclose(metrics.mae(actual, forecast), [2.0, np.nan, 2.0])
    np.testing.assert_allclose(metrics.coverage(actual, forecast - 10, forecast - 0.5), [1.0, np.nan, 0.5])
    got = metrics.from_statistics(metrics.statistics(actual, forecast, 1.0))
    assert got["points"] == 3
    assert got["smape"] == pytest.approx(200 / 3) and got["mae"] == pytest.approx(6 / 3)   # (2 + 0 + 4) / 3
    with pytest.raises(ValueError, match="NaN where the actual is observed"):
        metrics.smape([[1.0, 2.0]], [[1.0, np.nan]])


def _random_part(rng, n, h=6, q=(0.1, 0.5, 0.9)):
    actual = rng.gamma(2.0, 10.0, (n, h))
    actual[rng.random((n, h)) < 0.2] = np.nan
    forecast = actual + rng.normal(0, 3, (n, h))
    forecast[np.isnan(forecast)] = 1.0
    quantile_forecasts = np.nan_to_num(forecast)[..., None] + np.array(q) * 4 - 2
    return dict(actual=actual, forecast=forecast, scale=rng.uniform(0.5, 2, n),
                naive2=forecast + rng.normal(0, 5, (n, h)), quantile_forecasts=quantile_forecasts, quantiles=q,
                lower=forecast - 4, upper=forecast + 4)


def test_statistics_add_up_over_parts():
    rng = np.random.default_rng(0)
    whole = _random_part(rng, 10)
    cut = lambda part, rows: {k: (v[rows] if k != "quantiles" else v) for k, v in part.items()}   # noqa: E731
    parts = [metrics.statistics(**cut(whole, rows)) for rows in (slice(0, 3), slice(3, 4), slice(4, 10))]
    totals = parts[0]
    for part in parts[1:]:
        totals = {name: totals[name] + value for name, value in part.items()}
    assert set(totals) == set(metrics.statistics(**whole))
    reduced, direct = metrics.from_statistics(totals), metrics.from_statistics(metrics.statistics(**whole))
    assert set(reduced) == {"smape", "mase", "mae", "rmse", "points", "owa", "weighted_quantile_loss",
                            "coverage", "msis"}
    for name, value in direct.items():
        assert reduced[name] == pytest.approx(value, rel=1e-12), name
    # the corpus figures are means over observed points
    observed = ~np.isnan(whole["actual"])
    y, f = whole["actual"][observed], whole["forecast"][observed]
    assert direct["smape"] == pytest.approx(np.mean(200 * np.abs(y - f) / (np.abs(y) + np.abs(f))))
    assert direct["weighted_quantile_loss"] == pytest.approx(
        metrics.weighted_quantile_loss(whole["actual"], whole["quantile_forecasts"], whole["quantiles"]))


def test_complete_data_corpus_figures_are_means_of_series():
    rng = np.random.default_rng(1)
    part = _random_part(rng, 5)
    actual = np.nan_to_num(part["actual"], nan=3.0)
    args = (actual, part["forecast"])
    got = metrics.from_statistics(metrics.statistics(*args, part["scale"], naive2=part["naive2"],
                                                     lower=part["lower"], upper=part["upper"]))
    assert got["smape"] == pytest.approx(metrics.smape(*args).mean())
    assert got["mase"] == pytest.approx(metrics.mase(*args, part["scale"]).mean())
    assert got["coverage"] == pytest.approx(metrics.coverage(actual, part["lower"], part["upper"]).mean())
    assert got["owa"] == pytest.approx(metrics.owa(metrics.smape(*args), metrics.mase(*args, part["scale"]),
                                                   metrics.smape(actual, part["naive2"]),
                                                   metrics.mase(actual, part["naive2"], part["scale"])))


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        metrics.smape(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="dimensions"):
        metrics.smape(np.ones((2, 3, 1)), np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match="one value per series"):
        metrics.mase(np.ones((2, 3)), np.ones((2, 3)), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="together"):
        metrics.statistics(np.ones((2, 3)), np.ones((2, 3)), 1.0, lower=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="together"):
        metrics.statistics(np.ones((2, 3)), np.ones((2, 3)), 1.0, quantiles=[0.5])
