"""Time-series forecasting: one global recurrent model over many series, point forecasts and
quantiles over a horizon, with covariates, the classical baselines (naive, seasonal naive, Naive2,
SES, Theta), M4's metrics, backtests and plots.

Python API (imported on first use; it speaks pandas): ``fit``, ``predict`` (a DataFrame of
forecasts), ``evaluate``, ``backtest``, ``load``; the settings ``ForecastData`` and
``ForecastModel``.
"""

from ..._lazy import exports
from ..spec import Command, TaskSpec
from .config import ForecastBacktest, ForecastData, ForecastEvaluate, ForecastFit, ForecastModel, ForecastPredict

SPEC = TaskSpec(
    name="forecast",
    summary="a global forecaster of many time series (long, wide/M4 or single-series CSV)",
    description="Train one recurrent forecaster (rnnkit LSTM/GRU/RNN over scaled windows, then a direct quantile "
                "decoder or an autoregressive one) over all the series of a file.",
    data=ForecastData, model=ForecastModel, fit_options=ForecastFit, evaluate_options=ForecastEvaluate,
    predict_options=ForecastPredict, api="rnnkit.tasks.forecast.api", ensembles=True,
    data_help="the series to train on (CSV: long unique_id,ds,y; wide M4 rows V1..Vn; or one series)",
    valid_help="the values after each series, scored as the validation (default: the last --horizon steps of "
               "each series held out)",
    inputs="none: forecasters read --data FILE", line_inputs=False,
    commands=(Command("backtest", ForecastBacktest, "backtest",
                      "rolling-origin evaluation of a forecaster: forecasts from past origins, no retraining"),),
    train_defaults={"lr": 3e-3, "eval_every": 200, "monitor": "mase"}, epochs=20,
)

__getattr__, __dir__, _lazy = exports(__name__, {
    "fit": ".api", "predict": ".api", "evaluate": ".api", "backtest": ".api", "load": ".api", "read": ".api",
    "exportable": ".api",
    "predict_rows": ".api", "show": ".api", "forecast_frame": ".api",
    "read_series": ".series", "SeriesSet": ".series", "ForecastEnsemble": ".model", "Forecaster": ".model",
    "TrainedForecaster": ".task", "baselines": ".baselines", "metrics": ".metrics",
})
__all__ = ["SPEC", "ForecastData", "ForecastModel", "ForecastFit", "ForecastEvaluate", "ForecastPredict",
           "ForecastBacktest"] + _lazy
