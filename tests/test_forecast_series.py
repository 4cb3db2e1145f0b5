"""Time series for forecasting: long, wide (M4) and single-series tables -> SeriesSet -> long frames."""

import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from rnnkit.tasks.forecast.series import (SeriesSet, calendar_features, calendar_names, read_future,
                                          read_series)

LONG = ("unique_id,ds,y,price,temp\n"
        "b,2021-03-01 01:00,20,1.5,7\n"
        "a,2021-03-01 02:00,3,2.0,8\n"          # rows in any order
        "a,2021-03-01 00:00,1,2.0,6\n"
        "b,2021-03-01 00:00,10,1.5,\n"
        "a,2021-03-01 01:00,,2.5,7\n")          # an empty y is a missing value


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def hours(start, n):
    return pd.date_range(start, periods=n, freq="h").as_unit("ns")


def frame(ids, times, y, **columns):
    return pd.DataFrame({"unique_id": np.array(ids, dtype=object), "ds": times, "y": np.asarray(y, float),
                         **columns})


def error(source, match, **options):
    with pytest.raises(ValueError, match=match) as info:
        read_series(source, **options)
    assert "\n" not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------------------------------------- formats

def test_long_csv_is_grouped_by_first_appearance_sorted_by_time_and_round_trips(tmp_path):
    series = read_series(write(tmp_path, "long.csv", LONG), future_covariates=["price"], past_covariates=["temp"])
    assert series.ids == ["b", "a"] and series.freq == "h" and len(series) == 2
    assert series.lengths().tolist() == [2, 3]
    np.testing.assert_array_equal(series.values[1], [1.0, np.nan, 3.0])                  # NaN kept
    assert series.times[1].dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(series.times[1], hours("2021-03-01", 3).to_numpy())
    np.testing.assert_array_equal(series.future["price"][1], [2.0, 2.5, 2.0])
    np.testing.assert_array_equal(series.past["temp"][0], [np.nan, 7.0])
    expected = frame(["b", "b", "a", "a", "a"], np.concatenate([hours("2021-03-01", 2), hours("2021-03-01", 3)]),
                     [10, 20, 1, np.nan, 3], temp=[np.nan, 7, 6, 7, 8], price=[1.5, 1.5, 2.0, 2.5, 2.0])
    pd.testing.assert_frame_equal(series.to_frame(), expected)


def test_long_dataframe_round_trips_and_other_columns_are_ignored():
    df = frame(["x"] * 4 + ["y"] * 2, np.concatenate([hours("2020-01-01", 4), hours("2020-02-01 05:00", 2)]),
               [1, 2, np.nan, 4, 5, 6])
    series = read_series(df.assign(note="ignored"))
    pd.testing.assert_frame_equal(series.to_frame(), df)
    renamed = series.to_frame(id_col="id", time_col="t", target_col="v")
    again = read_series(renamed, id_col="id", time_col="t", target_col="v")
    assert again.ids == series.ids and again.freq == "h"


def test_integer_steps_round_trip_through_a_tsv(tmp_path):
    path = write(tmp_path, "steps.tsv", "unique_id\tds\ty\nM1\t3\t1.5\nM1\t1\t0.5\nM1\t2\t1\nM2\t1\t7\n")
    series = read_series(path)
    assert series.freq is None and series.times[0].dtype == np.int64
    np.testing.assert_array_equal(series.times[0], [1, 2, 3])
    np.testing.assert_array_equal(series.future_times(2)[1], [2, 3])
    out = tmp_path / "again.csv"
    series.to_frame().to_csv(out, index=False)
    pd.testing.assert_frame_equal(read_series(out).to_frame(), series.to_frame())


def test_m4_wide_file_with_quoted_cells_and_padding(tmp_path):
    text = ('"V1","V2","V3","V4","V5"\n'
            '"H1","605","586","","586"\n'          # an inner empty cell is a missing value
            '"H2","3.5","4",,\n'                   # padding: stripped
            '"H3","","1","2","3"\n')               # a leading empty cell is kept
    series = read_series(write(tmp_path, "Hourly-train.csv", text))
    assert series.ids == ["H1", "H2", "H3"] and series.freq is None
    assert series.lengths().tolist() == [4, 2, 4]
    np.testing.assert_array_equal(series.values[0], [605, 586, np.nan, 586])
    np.testing.assert_array_equal(series.values[2], [np.nan, 1, 2, 3])
    np.testing.assert_array_equal(series.times[1], [0, 1])
    wide = pd.read_csv(write(tmp_path, "again.csv", text))            # the same from pandas' own reader
    pd.testing.assert_frame_equal(read_series(wide).to_frame(), series.to_frame())
    assert read_series(write(tmp_path, "any.csv", "id,a,b\nS,1,2\n"), format="wide").ids == ["S"]


def test_single_series_files(tmp_path):
    plain = read_series(write(tmp_path, "y.csv", "sales\n1\n2\n\n4\n"))           # blank lines skipped
    assert plain.ids == ["series"] and plain.freq is None and plain.times[0].tolist() == [0, 1, 2]
    dated = read_series(write(tmp_path, "air.csv", "Month,#Passengers\n1949-01,112\n1949-02,118\n1949-03,\n"))
    assert dated.freq == "MS" and np.isnan(dated.values[0][2])
    named = read_series(write(tmp_path, "ds.csv", "ds,value,temp\n5,1,0\n6,2,1\n"), past_covariates=["temp"])
    assert named.times[0].tolist() == [5, 6] and named.past["temp"][0].tolist() == [0, 1]


def test_parquet_round_trips(tmp_path):                  # pyarrow is a test dependency (the parquet extra)
    df = frame(["a"] * 3, hours("2020-01-01", 3), [1, 2, 3])
    df.to_parquet(tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(read_series(tmp_path / "s.parquet").to_frame(), df)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)                  # as if it were not installed
    error(write(tmp_path, "s.parquet", "PAR1"), "needs pyarrow")


def test_encoding_is_used_and_checked(tmp_path):
    path = write(tmp_path, "latin.csv", "unique_id,ds,y\ncafé,1,2\ncafé,2,3\n", encoding="latin-1")
    assert read_series(path, encoding="latin-1").ids == ["café"]
    error(path, "unknown text encoding 'bogus'", encoding="bogus")
    error(path, "not valid utf-8")


# ----------------------------------------------------------------------------------------- frequency

@pytest.mark.parametrize("alias, expected", [("h", "h"), ("15min", "15min"), ("D", "D"), ("MS", "MS"),
                                             ("W", "W-SUN"), ("QS", "QS-JAN")])
def test_frequency_is_inferred(alias, expected):
    times = pd.date_range("2021-01-03", periods=5, freq=alias).as_unit("ns")
    assert read_series(frame(["a"] * 5, times, range(5))).freq == expected


def test_frequency_from_the_most_common_gap_and_from_short_series():
    times = pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-04", "2021-01-05"]).as_unit("ns")
    error(frame(["a"] * 4, times, range(4)), r"series 'a': 1 missing step between 2021-01-02 and 2021-01-04 "
          r"\(frequency 'D'\): fill them, or give them as rows with an empty target")
    two = pd.to_datetime(["2021-01-01 00:00", "2021-01-01 06:00"] * 2).as_unit("ns")
    assert read_series(frame(["a", "a", "b", "b"], two, range(4))).freq == "6h"
    error(frame(["a"], two[:1], [1]), "cannot infer the frequency.*give freq=")


def test_given_frequency_is_checked():
    times = hours("2021-01-01", 4)
    assert read_series(frame(["a"] * 4, times, range(4)), freq="60min").freq == "h"
    error(frame(["a"] * 4, times, range(4)), r"freq='D' disagrees with series 'a', whose timestamps go by 'h': "
          r"give freq='h'", freq="D")
    error(frame(["a"] * 4, times, range(4)), "unknown frequency 'hourly'", freq="hourly")
    error(frame(["a"] * 3, [1, 2, 3], range(3)), "integer steps, not timestamps: leave freq out", freq="h")
    mid = pd.to_datetime(["2021-01-15", "2021-02-15"]).as_unit("ns")
    error(frame(["a"] * 2, mid, range(2)), "first timestamp 2021-01-15 is not on the frequency 'MS'", freq="MS")


def test_series_of_different_frequencies_are_refused():
    times = np.concatenate([hours("2021-01-01", 3), pd.date_range("2021-01-01", periods=3, freq="D").as_unit("ns")])
    error(frame(["a"] * 3 + ["b"] * 3, times, range(6)), r"different frequencies \('a' by 'h', 'b' by 'D'\)")


# ----------------------------------------------------------------------------------------- bad input

def test_missing_or_empty_file(tmp_path):
    error(tmp_path / "nope.csv", "nope.csv does not exist")
    error(write(tmp_path, "empty.csv", ""), "empty.csv is empty")
    error(write(tmp_path, "header.csv", "unique_id,ds,y\n"), "header but no data rows")


def test_missing_columns_are_named_with_those_that_exist(tmp_path):
    message = error(write(tmp_path, "s.csv", "id,time,value,x\na,1,2,3\n"), "cannot tell its format")
    assert "not long (no column 'unique_id', 'ds', 'y')" in message and "not wide" in message
    assert "its columns are: 'id', 'time', 'value', 'x'" in message
    error(write(tmp_path, "s.csv", "unique_id,ds,value\na,1,2\n"), "has no column 'y'; its columns are: "
          "'unique_id', 'ds', 'value'", format="long")
    error(write(tmp_path, "c.csv", LONG), "has no column 'promo'", future_covariates=["promo"])
    error(write(tmp_path, "c.csv", LONG), "column 'price' is named twice", future_covariates=["price"],
          past_covariates=["price"])


@pytest.mark.parametrize("cell, shown", [("abc", "'abc'"), ("inf", "'inf'"), ("1,5", "'1,5'")])
def test_values_that_are_not_finite_numbers_name_line_and_column(tmp_path, cell, shown):
    text = f'unique_id,ds,y,price\na,1,1,0\na,2,"{cell}",0\n'
    error(write(tmp_path, "bad.csv", text), rf"bad.csv, line 3, column 'y': {shown} is not a finite number")
    text = f'unique_id,ds,y,price\na,1,1,0\na,2,2,"{cell}"\n'
    error(write(tmp_path, "bad.csv", text), rf"line 3, column 'price': {shown}", past_covariates=["price"])
    error(write(tmp_path, "bad.csv", f'"V1","V2","V3"\n"H1","1","{cell}"\n'), rf"line 2, column 'V3': {shown}")
    error(frame(["a", "a"], [1, 2], [1.0, np.inf]), r"the DataFrame, index 1, column 'y': inf is not a finite")


def test_bad_times_and_ids(tmp_path):
    error(write(tmp_path, "t.csv", "unique_id,ds,y\na,2021-01-01,1\na,01/02/2021,2\n"),
          r"line 3, column 'ds': '01/02/2021' is not a timestamp in the format of the first \('2021-01-01'\)")
    error(write(tmp_path, "t.csv", "unique_id,ds,y\na,,1\n"), "line 2, column 'ds': the time is empty")
    error(write(tmp_path, "t.csv", "unique_id,ds,y\n,1,1\n"), "line 2, column 'unique_id': the series id is empty")
    error(write(tmp_path, "t.csv", "unique_id,ds,y\na,1,1,9\n"), "line 2: 4 fields, the header has 3")


def test_duplicate_timestamp_names_series_and_time(tmp_path):
    text = "unique_id,ds,y\na,2021-01-01,1\nb,2021-01-01,1\na,2021-01-02,2\na,2021-01-01,3\n"
    error(write(tmp_path, "d.csv", text), r"d.csv, line 5: series 'a' has the time 2021-01-01 twice "
          r"\(also at line 2\): give each time once per series")
    error(write(tmp_path, "w.csv", '"V1","V2"\n"H1","1"\n"H1","2"\n'), "line 3: series 'H1' is also on .*line 2")


def test_irregular_and_missing_steps_are_not_filled(tmp_path):
    times = pd.to_datetime(["2021-01-01 00:00", "2021-01-01 01:00", "2021-01-01 02:00",
                            "2021-01-01 03:30"]).as_unit("ns")
    error(frame(["s"] * 4, times, range(4)), r"series 's': the gap from 2021-01-01 02:00:00 to 2021-01-01 "
          r"03:30:00 is not a multiple of the frequency 'h'")
    text = "unique_id,ds,y\na,1,1\na,2,1\na,5,1\n"
    error(write(tmp_path, "m.csv", text), r"series 'a': 2 missing steps between 2 and 5 \(step 1\): fill them, "
          r"or give them as rows with an empty target")


def test_series_without_values_are_skipped_with_one_warning(tmp_path):
    text = '"V1","V2","V3"\n"H1","1","2"\n"H2","",""\n"H3",,\n'
    with pytest.warns(UserWarning, match=r"skipped 2 of 3 series with no values \('H2', 'H3'\)"):
        series = read_series(write(tmp_path, "w.csv", text))
    assert series.ids == ["H1"]
    error(write(tmp_path, "none.csv", "unique_id,ds,y\na,1,\nb,1,NaN\n"), "none of its 2 series has a value")


def test_unknown_format():
    error(frame(["a"], [1], [1]), "unknown format 'excel'", format="excel")


# ----------------------------------------------------------------------------- set operations, future

def test_cut_select_and_future_times():
    times = np.concatenate([hours("2021-01-01 22:00", 4), hours("2021-06-01", 3)])
    series = read_series(frame(["a"] * 4 + ["b"] * 3, times, range(7), promo=np.arange(7.0)),
                         future_covariates=["promo"])
    cut = series.cut(2)
    assert cut.lengths().tolist() == [2, 1] and cut.future["promo"][0].tolist() == [0, 1]
    np.testing.assert_array_equal(cut.future_times(2)[0], hours("2021-01-02 00:00", 2).to_numpy())
    assert series.cut(0).lengths().tolist() == [4, 3]
    with pytest.raises(ValueError, match=r"cut\(3\): series 'b' has only 3 steps"):
        series.cut(3)
    with pytest.raises(ValueError, match="cut: end is -1"):
        series.cut(-1)
    picked = series.select(["b"])
    assert picked.ids == ["b"] and picked.values[0].tolist() == [4, 5, 6] and picked.freq == "h"
    with pytest.raises(ValueError, match=r"no series 'c' \(1 unknown ids\); the ids are 'a', 'b'"):
        series.select(["c"])
    monthly = SeriesSet(["m"], [np.ones(2)], [pd.date_range("2021-11-01", periods=2, freq="MS").as_unit("ns")
                                              .to_numpy()], "MS")
    assert [str(t)[:10] for t in monthly.future_times(2)[0]] == ["2022-01-01", "2022-02-01"]
    with pytest.raises(ValueError, match="'times' needs one array per id"):
        SeriesSet(["m"], [np.ones(2)], [np.arange(3)])


def test_read_future(tmp_path):
    history = frame(["a"] * 3 + ["b"] * 2, np.concatenate([hours("2021-01-01", 3), hours("2021-01-01", 2)]),
                    range(5), promo=np.zeros(5))
    series = read_series(history, future_covariates=["promo"])
    rows = "".join(f"{sid},{t},{v}\n" for sid, t, v in [
        ("b", "2021-01-01 03:00", 7), ("b", "2021-01-01 02:00", 6), ("a", "2021-01-01 04:00", 2),
        ("a", "2021-01-01 03:00", 1), ("a", "2021-01-01 05:00", 9), ("zz", "2021-01-01 00:00", 0)])
    path = write(tmp_path, "future.csv", "unique_id,ds,promo\n" + rows)
    future = read_future(path, series, 2)
    assert list(future) == ["promo"]
    assert [v.tolist() for v in future["promo"]] == [[1, 2], [6, 7]]
    with pytest.raises(ValueError, match=r"series 'b' has no row at 2021-01-01 04:00:00 \(step 3 of the horizon "
                                         r"of 3\): give the known-future covariates for all 3 steps"):
        read_future(path, series, 3)
    gap = write(tmp_path, "gap.csv", "unique_id,ds,promo\na,2021-01-01 03:00,\nb,2021-01-01 02:00,1\n")
    with pytest.raises(ValueError, match=r"gap.csv, line 2: 'promo' of series 'a' is missing at 2021-01-01 "
                                         r"03:00:00 \(step 1 of 1\)"):
        read_future(gap, series, 1)
    with pytest.raises(ValueError, match="no known-future covariates"):
        read_future(path, read_series(history), 2)
    with pytest.raises(ValueError, match="has no column 'promo'"):
        read_future(history.drop(columns="promo"), series, 2)


# --------------------------------------------------------------------------------- calendar features

@pytest.mark.parametrize("freq, names", [
    ("15min", ["minute_of_hour", "hour_of_day", "day_of_week"]),
    ("h", ["hour_of_day", "day_of_week"]),
    ("D", ["day_of_week", "day_of_month", "day_of_year"]),
    ("W-SUN", ["week_of_year", "month_of_year"]),
    ("MS", ["month_of_year"]),
    ("QS-JAN", ["month_of_year"]),
    ("YS-JAN", []),
    (None, []),
])
def test_calendar_features_shapes_and_ranges(freq, names):
    n = 100 if freq == "YS-JAN" else 500
    times = (np.arange(n) if freq is None
             else pd.date_range("2019-12-25", periods=n, freq=freq).as_unit("ns").to_numpy())
    features = calendar_features(times, freq)
    assert calendar_names(freq) == names
    assert features.shape == (n, len(names)) and features.dtype == np.float32
    if names:
        assert features.min() >= -0.5 and features.max() <= 0.5
        assert np.all(features.max(axis=0) - features.min(axis=0) > 0.5)      # each feature varies


def test_calendar_feature_values():
    times = pd.to_datetime(["2021-01-04 00:00", "2021-01-10 23:00"]).as_unit("ns").to_numpy()  # Mon, Sun
    np.testing.assert_allclose(calendar_features(times, "h"), [[-0.5, -0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="calendar features need timestamps"):
        calendar_features(np.arange(3), "h")


def test_reading_is_quiet_on_clean_input(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_series(write(tmp_path, "long.csv", LONG))
