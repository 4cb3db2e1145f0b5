"""Forecasting end to end on generated series: it beats seasonal naive, its intervals are
calibrated, missing values are masked, it resumes exactly, and every command (train, predict,
evaluate, backtest) works and refuses bad input in one line."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.tasks import forecast
from rnnkit.tasks.forecast.config import ForecastData
from rnnkit.tasks.forecast.series import read_series
from rnnkit.tasks.forecast.windows import Features, prepare, window_batch
from rnnkit.train import TrainConfig, find_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")
H = 24


def series_frame(n: int = 8, days: int = 21, *, multiplicative: bool = False, noise: float = 1.0, seed: int = 0,
                 promo: bool = False) -> pd.DataFrame:
    """Hourly series with a daily and a weekly season, a trend, Gaussian noise of sd ``noise``
    (multiplicative: the seasons scale with a growing level); with ``promo`` a known-future 0/1
    column that adds 15 to the value."""
    rng, rows = np.random.default_rng(seed), []
    T = 24 * days
    t = np.arange(T)
    for s in range(n):
        season = np.sin(2 * np.pi * t / 24 + s) + 0.6 * np.sin(2 * np.pi * t / 168)
        if multiplicative:
            y = (20 + 10 * s) * (1 + 0.002 * t * (1 + s % 3)) * (1 + 0.3 * season)
        else:
            y = 20 + 10 * s + 0.02 * t * (s % 3) + 8 * season
        frame = pd.DataFrame({"unique_id": f"s{s}", "ds": pd.date_range("2021-01-04", periods=T, freq="h"),
                              "y": y + rng.normal(0, noise, T)})
        if promo:
            frame["promo"] = (rng.random(T) < 0.2).astype(float)
            frame["y"] += 15 * frame["promo"]
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def split(frame: pd.DataFrame, h: int = H):
    """(history, the last h steps of each series)."""
    return frame.groupby("unique_id").head(len(frame) // frame.unique_id.nunique() - h), \
        frame.groupby("unique_id").tail(h)


def quick(steps: int = 400, **kwargs) -> TrainConfig:
    return TrainConfig(**{"max_steps": steps, "eval_every": 100, "lr": 1e-2, "clip_grad_norm": 1.0, "schedule": "cosine",
                          "warmup_steps": 20, "progress": False, "tensorboard": False, **kwargs})


SMALL = dict(hidden_size=32, dropout=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    frame = series_frame()
    history, future = split(frame)
    out = tmp_path_factory.mktemp("forecast") / "run"
    forecast.fit(history, out, data=ForecastData(horizon=H, input_size=96, batch_size=32), model=SMALL, train=quick())
    return out, history, future


def test_it_beats_seasonal_naive_and_its_80_percent_interval_covers_about_80_percent(trained):
    out, history, future = trained
    result = forecast.evaluate(out, history, actuals=future)
    snaive = result["baselines"]["snaive"]
    assert result["mase"] < 0.6 * snaive["mase"] and result["smape"] < 0.6 * snaive["smape"], (result, snaive)
    assert 0.75 <= result["coverage"] <= 0.85, result["coverage"]          # 0.1-0.9: 80%, noise Gaussian
    assert result["points"] == 8 * H and result["series"] == 8


def test_multiplicative_seasons_with_a_growing_level(tmp_path):
    history, future = split(series_frame(multiplicative=True))
    forecast.fit(history, tmp_path / "run", data=ForecastData(horizon=H, input_size=96, batch_size=32, log=True),
                 model=SMALL, train=quick())
    result = forecast.evaluate(tmp_path / "run", history, actuals=future)
    assert result["mase"] < 0.6 * result["baselines"]["snaive"]["mase"], result


def test_a_future_covariate_is_used(tmp_path):
    frame = series_frame(promo=True, seed=3)
    history, future = split(frame)
    forecast.fit(history, tmp_path / "run", data=ForecastData(horizon=H, input_size=96, batch_size=32,
                                                              future_covariates=["promo"]), model=SMALL, train=quick())
    with pytest.raises(ValueError, match="give their values over the horizon with --future"):
        forecast.predict(tmp_path / "run", history)
    predicted = forecast.predict(tmp_path / "run", history, future=future.drop(columns="y"))
    merged = predicted.merge(future, on=["unique_id", "ds"])
    lift = merged.groupby("promo").apply(lambda g: (g.forecast - g.y).abs().mean(), include_groups=False)
    assert lift.max() < 5                                     # the promotions' +15 is forecast
    assert len(predicted) == 8 * H and {"q0.1", "q0.5", "q0.9"} <= set(predicted.columns)


def test_validation_reports_what_evaluate_reports(trained, tmp_path):
    _, history, future = trained
    result = forecast.fit(history, tmp_path / "run", valid=future, data=ForecastData(horizon=H, input_size=96),
                          model=SMALL, train=quick(steps=20, eval_every=20))
    evaluated = forecast.evaluate(tmp_path / "run", history, actuals=future)
    for key in ("smape", "mase", "owa", "weighted_quantile_loss", "coverage", "msis"):
        assert evaluated[key] == pytest.approx(result.metrics[key], rel=1e-9), key


def test_missing_values_are_masked_not_learnt():
    frame = series_frame(n=1)
    frame.loc[100:140, "y"] = np.nan
    series = read_series(frame)
    features = Features.learn(series, ForecastData(horizon=H), 24, [24], False)
    batch = window_batch(prepare(series, features), features, [0], [150], 96, H)
    gap = slice(100 - (150 - 96), 141 - (150 - 96))
    assert (batch.observed[0, gap] == 0).all() and (batch.target[0, gap] == 0).all()
    model = forecast.ForecastEnsemble(forecast.ForecastModel(horizon=H, season=24, lags=[24], input_sizes=[96],
                                                             known_features=features.known_size, hidden_size=8)).eval()
    batch.observed[0, 96 + 5] = 0                                   # a horizon value, masked
    hidden = batch.target.clone()
    hidden[0, 96 + 5] = 1e6                                         # whatever it holds...
    loss = model.loss(batch)
    assert torch.isfinite(loss) and loss == model.loss(dataclasses.replace(batch, target=hidden))   # ... no change


def test_decoder_lags_read_the_history_a_lag_of_at_least_the_horizon_points_to():
    series = read_series(series_frame(n=1))
    features = Features.learn(series, ForecastData(horizon=36), 24, [24, 168], False)
    prepared, origin, L = prepare(series, features), 300, 96
    batch = window_batch(prepared, features, [0], [origin], L, 36)
    expected = (prepared.values[0][origin - 168:origin - 168 + 36] - batch.loc[0].item()) / batch.scale[0].item()
    assert np.allclose(batch.lagged[0, L:, 1].numpy(), expected, atol=1e-5)     # a week before each horizon step
    model = forecast.Forecaster(forecast.ForecastModel(horizon=36, season=24, lags=[24, 168], decoder_lags=True,
                                                       known_features=features.known_size, hidden_size=8)).eval()
    assert model.decoder_lag_columns == [1]            # lag 24 < horizon 36: part of it is the future
    assert model.local[0].in_features == 8 + 8 + features.known_size + 2 + 1
    with torch.no_grad():
        base = model.quantiles(batch, [0.5])
        week, day = batch.lagged.clone(), batch.lagged.clone()
        week[:, L:, 1] += 1.0
        day[:, L:, 0] += 1.0
        assert not torch.allclose(model.quantiles(dataclasses.replace(batch, lagged=week), [0.5]), base)
        assert torch.equal(model.quantiles(dataclasses.replace(batch, lagged=day), [0.5]), base)
    with pytest.raises(ValueError, match="needs a lag of at least the horizon"):
        forecast.ForecastModel(horizon=48, lags=[24], decoder_lags=True)
    with pytest.raises(ValueError, match="is for the direct decoder"):
        forecast.ForecastModel(decoder="autoregressive", decoder_lags=True)


def test_resume_is_exact(tmp_path):
    history, _ = split(series_frame(n=3, days=10))
    data = ForecastData(horizon=H, input_size=48, batch_size=16, windows_per_series=4)
    full = forecast.fit(history, tmp_path / "a", data=data, model=SMALL, train=quick(steps=12, eval_every=4))
    forecast.fit(history, tmp_path / "b", data=data, model=SMALL, train=quick(steps=7, eval_every=4))
    rest = forecast.fit(history, tmp_path / "b", data=data, model=SMALL, train=quick(steps=12, eval_every=4),
                        resume=True)
    assert [rest.losses[s] for s in range(8, 13)] == [full.losses[s] for s in range(8, 13)]
    assert rest.metrics == full.metrics


def test_without_holdout_every_step_trains_and_the_training_loss_is_monitored(tmp_path):
    short = series_frame(n=2, days=2)                  # 48 steps: one 24-step window and its 24-step horizon
    data = ForecastData(horizon=H, input_size=24, batch_size=4, windows_per_series=2)
    with pytest.raises(ValueError, match="no series left|shorter"):
        forecast.fit(short, tmp_path / "held", data=data, model=SMALL, train=quick(steps=2))   # none to hold out
    everything = ForecastData(horizon=H, input_size=24, batch_size=4, windows_per_series=2, holdout=False)
    with pytest.raises(ValueError, match="pass --monitor loss"):
        forecast.fit(short, tmp_path / "mase", data=everything, model=SMALL, train=quick(steps=2, monitor="mase"))
    result = forecast.fit(short, tmp_path / "all", data=everything, model=SMALL, train=quick(steps=4, eval_every=2))
    assert result.steps == 4 and set(result.metrics) == {"loss"}
    assert forecast.predict(tmp_path / "all" / "BEST", short).shape[0] == 2 * H


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t", "negative_binomial"])
def test_the_autoregressive_decoder_samples_every_likelihood(tmp_path, likelihood):
    frame = series_frame(n=3, days=8)
    if likelihood == "negative_binomial":
        frame["y"] = np.random.default_rng(0).poisson(frame["y"].clip(lower=1))
    history, future = split(frame)
    forecast.fit(history, tmp_path / "run", data=ForecastData(horizon=12, input_size=48, batch_size=16),
                 model=dict(SMALL, decoder="autoregressive", likelihood=likelihood, samples=20),
                 train=quick(steps=6, eval_every=6))
    first = forecast.predict(tmp_path / "run", history, quantiles=[0.05, 0.5, 0.95])
    again = forecast.predict(tmp_path / "run", history, quantiles=[0.05, 0.5, 0.95])
    assert len(first) == 3 * 12 and np.isfinite(first[["q0.05", "q0.5", "q0.95"]].to_numpy()).all()
    assert (first["q0.05"] <= first["q0.95"]).all() and first.equals(again)      # sampled from a fixed seed


def test_an_ensemble_forecasts_the_median_of_its_members(tmp_path):
    history, future = split(series_frame(n=3, days=10))
    forecast.fit(history, tmp_path / "run", data=ForecastData(horizon=H, input_size=48), model=SMALL,
                 train=quick(steps=4, eval_every=4), ensemble=3)
    model = rnnkit.load(tmp_path / "run")
    assert model.model.config.input_sizes == [48, 36, 60] and len(model.model.members) == 3
    assert len(forecast.predict(tmp_path / "run", history)) == 3 * H


def test_forecasters_trained_apart_forecast_as_one_ensemble(tmp_path, capsys):
    history, future = split(series_frame(n=3, days=10))
    history.to_csv(tmp_path / "history.csv", index=False)
    future.to_csv(tmp_path / "future.csv", index=False)
    for name, seed in (("a", 0), ("b", 1)):
        forecast.fit(history, tmp_path / name, data=ForecastData(horizon=H, input_size=48), model=SMALL,
                     train=quick(steps=4, eval_every=4, seed=seed))
    both = [tmp_path / "a", tmp_path / "b"]
    joined = forecast.load(both)
    assert joined.model.config.input_sizes == [48, 48] and len(joined.model.members) == 2
    apart = [forecast.predict(path, history) for path in both]
    together = forecast.predict(both, history)
    for column in ("q0.1", "q0.5", "q0.9"):                   # the median of two: their mean
        np.testing.assert_allclose(together[column], (apart[0][column] + apart[1][column]) / 2, rtol=1e-5)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(both[0]), "--checkpoint", str(both[1]), "--data",
                 str(tmp_path / "history.csv"), "--actuals", str(tmp_path / "future.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["smape"] > 0
    forecast.fit(history, tmp_path / "wide", data=ForecastData(horizon=H, input_size=48), model=dict(SMALL, hidden_size=8),
                 train=quick(steps=4, eval_every=4))
    with pytest.raises(ValueError, match="their networks differ in hidden_size"):
        forecast.load([tmp_path / "a", tmp_path / "wide"])


def test_the_command_line_trains_predicts_evaluates_and_backtests(trained, tmp_path, capsys):
    out, history, future = trained
    history.to_csv(tmp_path / "history.csv", index=False)
    future.to_csv(tmp_path / "future.csv", index=False)
    run = tmp_path / "cli"
    assert main(["train", "forecast", "--data", str(tmp_path / "history.csv"), "--horizon", "24", "--out", str(run),
                 "--max-steps", "4", "--eval-every", "4", "--hidden-size", "8", "--no-progress", "--no-tensorboard"]) == 0
    assert find_checkpoint(run).config["task"]["task"] == "forecast"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(out), "--data", str(tmp_path / "history.csv"), "--output",
                 str(tmp_path / "f.csv"), "--plot", str(tmp_path / "f.png"), "--horizon", "12"]) == 0
    written = pd.read_csv(tmp_path / "f.csv")
    assert list(written.columns) == ["unique_id", "ds", "forecast", "q0.1", "q0.5", "q0.9"] and len(written) == 8 * 12
    assert (tmp_path / "f.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(out), "--data", str(tmp_path / "history.csv"), "--method",
                 "naive2", "--horizon", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 8 * 2
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(tmp_path / "history.csv"), "--actuals",
                 str(tmp_path / "future.csv"), "--per-series", str(tmp_path / "s.csv"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["baselines"]) == {"naive", "snaive", "naive2", "ses", "theta"} and "owa" in result
    assert len(pd.read_csv(tmp_path / "s.csv")) == 8
    assert main(["backtest", "--checkpoint", str(out), "--data", str(tmp_path / "history.csv"), "--windows", "2",
                 "--plot", str(tmp_path / "b.png")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("smape ") and "window 1:" in text and "window 2:" in text and "naive2:" in text
    assert (tmp_path / "b.png").exists()


def test_bad_forecasting_input_is_one_line(trained, tmp_path, capsys):
    out, history, future = trained
    history.to_csv(tmp_path / "history.csv", index=False)
    capsys.readouterr()
    train = ["train", "forecast", "--data", str(tmp_path / "history.csv"), "--out", str(tmp_path / "o")]
    assert main(train) == 1
    assert "argument --horizon: horizon must be given" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(train + ["--horizon", "0"])
    assert exit_info.value.code == 2
    capsys.readouterr()
    assert main(train + ["--horizon", "24", "--target-col", "sales"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sales" in err and "unique_id" in err and not (tmp_path / "o").exists()
    assert main(["predict", "--checkpoint", str(out), "text"]) == 2
    assert "takes no INPUT" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(tmp_path / "history.csv")]) == 1
    assert "give --actuals FILE" in capsys.readouterr().err
    assert main(["backtest", "--checkpoint", str(out), "--data", str(tmp_path / "history.csv"), "--windows",
                 "1000"]) == 1
    assert "give fewer --windows" in capsys.readouterr().err
    short = pd.concat([history, pd.DataFrame({"unique_id": "tiny", "ds": pd.date_range("2021-01-04", periods=10,
                                                                                      freq="h"), "y": 1.0})])
    with pytest.warns(UserWarning, match="1 of 9 series of the data are shorter"):
        forecast.fit(short, tmp_path / "short", data=ForecastData(horizon=H, input_size=48), model=SMALL,
                     train=quick(steps=2, eval_every=2))
    assert math.isfinite(find_checkpoint(tmp_path / "short").config["step"])
