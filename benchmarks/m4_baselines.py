"""M4 Hourly: our statistical benchmarks (``rnnkit.tasks.forecast.baselines``) against the official ones.

    python benchmarks/m4_baselines.py [--data-dir DIR] [--json result.json]

For the 414 hourly series (horizon 48, seasonal period 24) it forecasts Naive, sNaive, Naive2, SES
and Theta, then (a) compares Naive, sNaive, Naive2 and SES with the organisers' forecasts in
``benchmarks/submission-*.hourly.csv`` (largest absolute and relative difference; the files carry
about ten significant digits) and (b) scores all five with sMAPE, MASE and OWA (relative to our
Naive2) on ``Hourly-test.csv`` beside the official figures of
``benchmarks/m4_hourly_point_forecast_scores.csv``. The organisers' OWA is that of the sMAPE and
MASE rounded to 3 decimals (SES: 0.5 (18.094 / 18.383 + 2.385 / 2.395) = 0.9901, where the unrounded
figures give 0.9900), so both are shown. Exit status 1 if a method is not reproduced: forecasts
beyond rounding (relative 1e-8), sMAPE or MASE at 3 decimals, or the OWA of the rounded at 4.

Measured (2 CPU cores, about 10 s): every method reproduces the official forecasts to 5e-10
relative and the official scores, Naive2 18.383 / 2.395, sNaive 13.912 / 1.193, Naive 43.003 /
11.608, SES 18.094 / 2.385 and Theta 18.138 / 2.455 (sMAPE / MASE). SES and Theta match only with
forecast 8.2's fit, reproduced here: alpha starting at 0.5 (later forecast releases start at 0.2,
which moves the SES forecasts of the first 60 series by up to 3e-6 relative), the initial level at
the mean of the first ten values, and R's Nelder-Mead with its stopping rule (the exact
least-squares optimum moves SES forecasts by up to 2e-4 relative, 156 of the 414 series beyond
rounding).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from common import data_dir, print_machine, run, write_result

from rnnkit.tasks.forecast import metrics
from rnnkit.tasks.forecast.baselines import BASELINES, forecast_all

H, M = 48, 24
OFFICIAL_FILES = {"naive": "Naive", "snaive": "sNaive", "naive2": "Naive2", "ses": "SES"}   # submission-{}.hourly.csv
OFFICIAL_IDS = {"naive": "Naive", "snaive": "sNaive", "naive2": "Naive2", "ses": "SES", "theta": "Theta"}
RELATIVE_TOLERANCE = 1e-8


def read_rows(path: Path):
    """(ids, values) of an M4 csv: the first column is the id, the rest numbers (empty cells dropped)."""
    ids, values = [], []
    with open(path, newline="") as file:
        rows = csv.reader(file)
        next(rows)
        for row in rows:
            ids.append(row[0])
            values.append(np.array([float(v) for v in row[1:] if v != ""]))
    return ids, values


def read_official_scores(path: Path) -> dict:
    """{method_id: {"smape", "mase", "owa"}} of the Hourly columns."""
    with open(path, newline="") as file:
        return {row["method_id"]: {"smape": float(row["sMAPE_hourly"]), "mase": float(row["MASE_hourly"]),
                                   "owa": float(row["OWA_hourly"])} for row in csv.DictReader(file)}


def differences(ours: np.ndarray, official: np.ndarray) -> dict:
    """Largest absolute and relative difference between two (N, h) forecasts."""
    gap = np.abs(ours - official)
    relative = gap / np.maximum(np.abs(official), np.finfo(np.float64).tiny)
    return {"max_abs_diff": float(gap.max()), "max_rel_diff": float(relative.max())}


def read_official_forecast(data: Path, method: str, ids) -> np.ndarray:
    """The (N, h) official forecasts of ``method`` (a submission file's name), in the order of ``ids``."""
    official_ids, rows = read_rows(data / "benchmarks" / f"submission-{method}.hourly.csv")
    if official_ids != ids:
        raise ValueError(f"submission-{method}.hourly.csv lists other series than Hourly-train.csv")
    return np.stack(rows)


def reproduced(result: dict) -> bool:
    """Whether our figures are the official ones: sMAPE and MASE to 3 decimals, the OWA of the rounded
    figures to 4, and the forecasts (where the official ones are given) to ``RELATIVE_TOLERANCE``."""
    official = result["official"]
    return (all(round(result[key], 3) == official[key] for key in ("smape", "mase"))
            and round(result["owa_of_rounded"], 4) == official["owa"]
            and result.get("max_rel_diff", 0.0) <= RELATIVE_TOLERANCE)


def print_table(results: dict) -> None:
    """One line per method: the differences from the official forecasts, then ours and the official scores."""
    print(f"{'method':8} {'max |diff|':>11} {'max rel':>9} {'sMAPE':>7} {'official':>8} {'MASE':>7} "
          f"{'official':>8} {'OWA':>7} {'rounded':>7} {'official':>8} {'seconds':>7}")
    for name, r in results.items():
        gaps = f"{r['max_abs_diff']:11.2e} {r['max_rel_diff']:9.1e}" if "max_abs_diff" in r else f"{'-':>11} {'-':>9}"
        print(f"{name:8} {gaps} {r['smape']:7.3f} {r['official']['smape']:8.3f} {r['mase']:7.3f} "
              f"{r['official']['mase']:8.3f} {r['owa']:7.4f} {r['owa_of_rounded']:7.4f} {r['official']['owa']:8.4f} "
              f"{r['seconds']:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="directory holding Hourly-train.csv, Hourly-test.csv and benchmarks/ "
                        "(default: ../shared/data/m4_hourly)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()
    data = data_dir("m4_hourly", args.data_dir)
    print_machine()

    ids, train = read_rows(data / "Hourly-train.csv")
    test_ids, test = read_rows(data / "Hourly-test.csv")
    if test_ids != ids:
        raise ValueError("Hourly-train.csv and Hourly-test.csv list different series")
    actual = np.stack(test)                                               # (N, H)
    scales = np.array([metrics.mase_scale(y, M) for y in train])          # (N,)
    official_scores = read_official_scores(data / "benchmarks" / "m4_hourly_point_forecast_scores.csv")

    forecasts, seconds = {}, {}
    for name in BASELINES:
        begin = time.perf_counter()
        forecasts[name] = forecast_all(train, H, M, name)                 # (N, H)
        seconds[name] = time.perf_counter() - begin

    naive2 = metrics.from_statistics(metrics.statistics(actual, forecasts["naive2"], scales))
    results = {}
    for name, forecast in forecasts.items():
        scores = metrics.from_statistics(metrics.statistics(actual, forecast, scales, naive2=forecasts["naive2"]))
        result = {"smape": scores["smape"], "mase": scores["mase"], "owa": scores["owa"],
                  # the organisers' OWA is of the sMAPE and MASE rounded to 3 decimals
                  "owa_of_rounded": metrics.owa(*(round(x, 3) for x in (scores["smape"], scores["mase"],
                                                                         naive2["smape"], naive2["mase"]))),
                  "official": official_scores[OFFICIAL_IDS[name]], "seconds": round(seconds[name], 2)}
        if name in OFFICIAL_FILES:
            result.update(differences(forecast, read_official_forecast(data, OFFICIAL_FILES[name], ids)))
        result["reproduced"] = reproduced(result)
        results[name] = result

    print_table(results)
    write_result(args.json, {"benchmark": "m4_hourly_baselines", "series": len(ids), "horizon": H,
                             "seasonal_period": M, "methods": results})
    failed = [name for name, result in results.items() if not result["reproduced"]]
    if failed:
        raise SystemExit(f"error: not reproduced: {', '.join(failed)}")


if __name__ == "__main__":
    run(main)
