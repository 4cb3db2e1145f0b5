"""The forecaster's settings: how series become training windows (``ForecastData``), the model
(``ForecastModel``), ``fit``'s other options (``ForecastFit``), and the flags of ``rnnkit
evaluate`` / ``predict`` / ``backtest`` for forecasters. Every field is a flag (``rnnkit.options``);
standard library only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional

from ...files import check_encoding
from ...options import ConfigError, check, option

DECODERS = ("direct", "autoregressive")
LIKELIHOODS = ("gaussian", "student_t", "negative_binomial")
SCALINGS = ("mean_abs", "robust", "none")
BASELINE_METHODS = ("naive", "snaive", "naive2", "ses", "theta")

#: Seasonal period of a pandas frequency alias (its unit), for when ``--season`` is not given.
SEASONS = {"min": 60, "h": 24, "D": 7, "B": 5, "W": 52, "M": 12, "MS": 12, "ME": 12, "Q": 4, "QS": 4, "QE": 4}


def season_of(freq: Optional[str]) -> int:
    """The usual seasonal period of a frequency (hourly 24, daily 7, monthly 12, quarterly 4,
    weekly 52, minutes 60); 1 for integer steps or another frequency."""
    if freq is None:
        return 1
    unit = re.sub(r"^\d+", "", freq).split("-")[0]
    return SEASONS.get(unit, 1)


def _quantiles(values: List[float]) -> None:
    if not values or any(not 0 < q < 1 for q in values) or len(set(values)) != len(values):
        raise ValueError(f"quantiles must be distinct levels between 0 and 1, such as 0.1,0.5,0.9; got {values}")


@dataclass
class ForecastData:
    """How a file of series becomes training windows: a window is ``input_size`` steps of history
    (the context) and the ``horizon`` steps after it, cut at a random point of a random series, its
    values scaled by its context (undone on output). Missing values stay missing and are masked."""

    horizon: Optional[int] = option(None, help="steps to forecast (required)", min=1, default_text="none: give it")
    format: str = option("auto", help="long (id, time, value columns), wide (M4: one series per row, V1..Vn) or a "
                                      "single series", choices=("auto", "long", "wide", "single"))
    id_col: str = option("unique_id", help="long format: the series id column")
    time_col: str = option("ds", help="long format: the time column (timestamps or integer steps)")
    target_col: str = option("y", help="long format: the value column")
    freq: Optional[str] = option(None, help="frequency of the timestamps, a pandas alias such as h, D, MS",
                                 default_text="inferred from the timestamps")
    season: Optional[int] = option(None, help="seasonal period, for seasonal lags, MASE and the baselines", min=1,
                                   default_text="from the frequency: 24 hourly, 7 daily, 12 monthly, 1 for steps")
    input_size: Optional[int] = option(None, help="steps of history the model reads (its context)", min=1,
                                       default_text="4 x horizon")
    future_covariates: List[str] = option([], help="columns known in advance (prices, holidays), comma-separated; "
                                                   "predict reads their future values from --future",
                                          default_text="none")
    past_covariates: List[str] = option([], help="columns known only up to the forecast origin, comma-separated",
                                        default_text="none")
    calendar: bool = option(True, help="no calendar features (hour of day, day of week, ...) from the timestamps",
                            flag="--no-calendar", default_text="calendar features on")
    scaling: str = option("mean_abs", help="per-window scaling: mean absolute value, median and IQR, or none",
                          choices=SCALINGS)
    log: bool = option(False, help="model log(1 + y) (values must be >= 0)")
    windows_per_series: int = option(16, help="training windows drawn from each series per epoch", min=1)
    batch_size: int = option(64, help="windows per batch", min=1)
    holdout: bool = option(True, flag="--no-holdout",
                           help="train on every step of each series, its most recent ones included: no validation "
                                "(give --monitor loss; BEST is the checkpoint of the lowest training loss)",
                           default_text="without --valid, the last horizon steps of each series are the validation")
    encoding: str = option("utf-8", help="text encoding of the files", valid=check_encoding, metavar="CODEC")

    def __post_init__(self):
        check(self)
        if self.horizon is None:
            raise ConfigError("horizon", "horizon must be given: the number of steps to forecast")
        if set(self.future_covariates) & set(self.past_covariates):
            raise ValueError(f"{sorted(set(self.future_covariates) & set(self.past_covariates))} are named as both "
                             f"future and past covariates: give each column once")

    def context(self) -> int:
        """The context length: ``input_size``, or 4 x horizon."""
        return self.input_size or 4 * self.horizon


#: The input sizes of an ensemble's members, as multiples of ``ForecastData.context()``.
ENSEMBLE_FACTORS = (1.0, 0.75, 1.25, 0.5, 1.5, 0.625, 1.125, 0.875, 1.375, 1.75)


def ensemble_sizes(context: int, members: int) -> List[int]:
    """The context length of each of ``members`` networks (the factors above, in turn)."""
    return [max(1, round(context * ENSEMBLE_FACTORS[k % len(ENSEMBLE_FACTORS)])) for k in range(members)]


@dataclass
class ForecastModel:
    """The network: a stack of rnnkit layers reading the context, then one of two decoders.

    ``direct`` (MQ-RNN): the encoder's final state and each future step's known features give all
    ``horizon`` steps at once, as quantiles (trained with the pinball loss). ``autoregressive``
    (DeepAR): the network rolls forward one step at a time on its own samples, each step a
    ``likelihood`` (trained by maximum likelihood); quantiles come from ``samples`` paths.
    """

    decoder: str = option("direct", help="direct multi-horizon quantiles (MQ-RNN) or autoregressive sampling "
                                         "(DeepAR)", choices=DECODERS)
    cell: str = option("lstm", help="recurrent cell", choices=("lstm", "gru", "rnn"))
    hidden_size: int = option(64, help="hidden size", min=1)
    num_layers: int = option(2, flag="--layers", help="recurrent layers", min=1)
    dropout: float = option(0.1, help="dropout between layers and in the decoder", min=0, below=1)
    quantiles: List[float] = option([0.1, 0.5, 0.9], help="quantile levels forecast (0.5, the point forecast, is "
                                                          "always added)", valid=_quantiles)
    likelihood: str = option("student_t", help="autoregressive: the distribution of each step", choices=LIKELIHOODS)
    samples: int = option(100, help="autoregressive: sample paths per series for quantiles", min=1)
    lags: Optional[List[int]] = option(None, help="lags of the series fed as inputs, comma-separated", min=1,
                                       default_text="the season (1 too for autoregressive)")
    decoder_lags: bool = option(False, help="direct: the decoder also reads, at each horizon step, the values of "
                                            "the lags of at least the horizon (they lie in the history: 168, the "
                                            "week of hourly data, with --lags 24,168)",
                                default_text="the encoder alone reads the lags")
    id_embedding: int = option(0, help="size of a learned embedding of each series' id (0: none; a series "
                                       "the model never saw gets the mean embedding)", min=0)
    # fixed by the data
    horizon: int = option(1, help="steps forecast", min=1, cli=False)
    input_sizes: List[int] = option([1], help="context steps of each member of the ensemble", min=1, cli=False)
    known_features: int = option(0, help="features known at every step (calendar, future covariates)", min=0,
                                 cli=False)
    past_features: int = option(0, help="features known up to the origin (past covariates)", min=0, cli=False)
    num_series: int = option(0, help="series with an embedding", min=0, cli=False)
    season: int = option(1, help="seasonal period", min=1, cli=False)

    def __post_init__(self):
        check(self)
        if self.decoder_lags and self.decoder != "direct":
            raise ValueError("--decoder-lags is for the direct decoder: the autoregressive one reads its lags at "
                             "every step")
        if self.decoder_lags and self.lags is not None and not any(lag >= self.horizon for lag in self.lags):
            raise ValueError(f"--decoder-lags needs a lag of at least the horizon ({self.horizon}), got --lags "
                             f"{','.join(map(str, self.lags))}: add one, such as 168 for hourly data")
        if 0.5 not in self.quantiles:
            self.quantiles = sorted(self.quantiles + [0.5])
        else:
            self.quantiles = sorted(self.quantiles)


@dataclass
class ForecastFit:
    """``fit``'s other options."""

    ensemble: int = option(1, help="train this many networks together (each its own initial weights and input "
                                   "size: 1, 0.75, 1.25, 0.5, 1.5, ... x --input-size) and forecast the median "
                                   "of their quantiles", min=1)

    def __post_init__(self):
        check(self)


@dataclass
class ForecastEvaluate:
    """``rnnkit evaluate`` of a forecaster: ``--data`` is the history, ``--actuals`` what came next."""

    actuals: Optional[str] = option(None, help="the values after the history, in the same format (M4's test file)",
                                    metavar="FILE", default_text="none: give it")
    per_series: Optional[str] = option(None, help="also write each series' metrics to this CSV", metavar="CSV",
                                       default_text="not written")
    future: Optional[str] = option(None, help="future covariates over the horizon (long format)", metavar="FILE",
                                   default_text="none")

    def __post_init__(self):
        check(self)


@dataclass
class ForecastPredict:
    """``rnnkit predict`` of a forecaster: the history comes with ``--data``."""

    data: Optional[str] = option(None, help="the series to forecast from (their history)", metavar="FILE",
                                 default_text="none: give it")
    horizon: Optional[int] = option(None, help="steps to forecast (at most the trained horizon)", min=1,
                                    default_text="the trained horizon")
    quantiles: Optional[List[float]] = option(None, help="quantile levels to output (trained ones for the direct "
                                                         "decoder)", valid=_quantiles, default_text="the trained ones")
    future: Optional[str] = option(None, help="future covariates over the horizon (long format)", metavar="FILE",
                                   default_text="none")
    method: str = option("model", help="forecast with the model or one of the baselines",
                         choices=("model",) + BASELINE_METHODS)
    plot: Optional[str] = option(None, help="write a PNG of history, forecast and intervals", metavar="PNG",
                                 default_text="none")
    plot_series: int = option(4, help="series in --plot (the first ones of the file)", min=1)

    def __post_init__(self):
        check(self)


@dataclass
class ForecastBacktest:
    """``rnnkit backtest``: forecasts from ``windows`` past origins, ``step`` steps apart, with no
    retraining, scored against what followed each origin."""

    windows: int = option(3, help="forecast origins", min=1)
    step: Optional[int] = option(None, help="steps between origins", min=1, default_text="the horizon")
    plot: Optional[str] = option(None, help="write a PNG of the backtest forecasts", metavar="PNG",
                                 default_text="none")

    def __post_init__(self):
        check(self)
