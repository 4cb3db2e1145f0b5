"""Time series for forecasting: files and DataFrames -> one checked ``SeriesSet``, and back.

- ``read_series``: long tables (Nixtla's ``unique_id, ds, y``), wide ones (M4's ``V1`` id, ``V2..Vn``
  values) and single series, from CSV, TSV, Parquet (where pyarrow is installed) or a DataFrame.
- ``read_future``: the known-future covariates for the h steps after each series' end.
- ``calendar_features``, ``calendar_names``: timestamp features for a frequency, in [-0.5, 0.5].

Every reader fails with a one-line ValueError naming the file and line (or the DataFrame's index),
the column or the series, and what to do.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from ...data.tables import csv_records, read_text
from ...files import check_encoding

FORMATS = ("auto", "long", "wide", "single")
SINGLE_ID = "series"                                  # the id of a single-series file's series
_MISSING = {"", "nan", "NaN", "NA", "N/A", "null", "NULL", "None"}    # cells read as missing (NaN)
_DAY_NS = 86_400 * 10**9
_NO_TIME = "the time is empty: give every row a timestamp or an integer step"
_ALIASES = "a pandas offset alias such as 'h', '15min', 'D', 'W', 'MS' or 'QS'"


@dataclass
class SeriesSet:
    """Time series, each with its own length, checked: sorted, regular, finite or NaN.

    Attributes:
        ids: series ids, in the order of first appearance.
        values: per series (T_i,) float64, NaN where missing.
        times: per series (T_i,) datetime64[ns] timestamps, or int64 steps.
        freq: pandas offset alias of the timestamps ("h", "D", "15min", "MS", ...); None for
            integer steps (which go by 1).
        past: past-only covariates: name -> per series (T_i,) float64 (NaN where missing).
        future: known-future covariates over the history: name -> per series (T_i,) float64.
    """

    ids: List[str]
    values: List[np.ndarray]
    times: List[np.ndarray]
    freq: Optional[str] = None
    past: Dict[str, List[np.ndarray]] = field(default_factory=dict)
    future: Dict[str, List[np.ndarray]] = field(default_factory=dict)

    def __post_init__(self):
        lengths = self.lengths()
        for name, arrays in [("values", self.values), ("times", self.times),
                             *self.past.items(), *self.future.items()]:
            if len(arrays) != len(self.ids) or any(len(a) != n for a, n in zip(arrays, lengths)):
                raise ValueError(f"SeriesSet: {name!r} needs one array per id, of the length of its values")

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> np.ndarray:
        """(N,) int64: the number of steps of each series."""
        return np.array([len(v) for v in self.values], dtype=np.int64)

    def select(self, ids: Sequence[str]) -> "SeriesSet":
        """The series ``ids``, in that order (arrays are shared, not copied)."""
        index = {sid: i for i, sid in enumerate(self.ids)}
        unknown = [sid for sid in ids if sid not in index]
        if unknown:
            raise ValueError(f"no series {unknown[0]!r} ({len(unknown)} unknown ids); the ids are "
                             f"{_listed(self.ids)}")
        rows = [index[sid] for sid in ids]
        return self._take(rows, self.lengths()[rows])

    def cut(self, end: int) -> "SeriesSet":
        """Every series without its last ``end`` steps (the held-out part of a backtest)."""
        _check_count(end, "cut: end", 0)
        lengths = self.lengths()
        short = np.flatnonzero(lengths <= end)
        if short.size:
            raise ValueError(f"cut({end}): series {self.ids[short[0]]!r} has only {lengths[short[0]]} steps "
                             f"({short.size} series have <= {end}): give a smaller end, or select() longer series")
        return self._take(range(len(self)), lengths - end)

    def _take(self, rows, stops) -> "SeriesSet":
        # The series ``rows``, each cut to its first ``stops[k]`` steps.
        def pick(arrays):
            return [arrays[i][:stop] for i, stop in zip(rows, stops)]
        return SeriesSet([self.ids[i] for i in rows], pick(self.values), pick(self.times), self.freq,
                         {name: pick(a) for name, a in self.past.items()},
                         {name: pick(a) for name, a in self.future.items()})

    def to_frame(self, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y") -> pd.DataFrame:
        """Long format: one row per step, columns id, time, target, then the past and future covariates."""
        columns = {id_col: np.repeat(np.array(self.ids, dtype=object), self.lengths()),
                   time_col: _concat(self.times), target_col: _concat(self.values)}
        for name, arrays in {**self.past, **self.future}.items():
            columns[name] = _concat(arrays)
        return pd.DataFrame(columns)

    def future_times(self, h: int) -> List[np.ndarray]:
        """Per series (h,): the h timestamps (datetime64[ns]) or steps (int64) after its last one."""
        _check_count(h, "future_times: h", 0)
        if self.freq is None:
            return [t[-1] + np.arange(1, h + 1, dtype=np.int64) for t in self.times]
        offset = _offset(self.freq)
        return [pd.date_range(t[-1], periods=h + 1, freq=offset)[1:].as_unit("ns").to_numpy() for t in self.times]


def read_series(source, *, format: str = "auto", id_col: str = "unique_id", time_col: str = "ds",
                target_col: str = "y", freq: Optional[str] = None, future_covariates: Sequence[str] = (),
                past_covariates: Sequence[str] = (), encoding: str = "utf-8") -> SeriesSet:
    """Read time series from a file (CSV; TSV by the suffix .tsv; Parquet by .parquet) or a DataFrame.

    Args:
        format: ``"long"``: columns ``id_col, time_col, target_col`` (other columns ignored unless
            named as covariates), rows in any order. ``"wide"``: M4's layout, the first column the
            id, the others the values of one series per row (trailing empty cells are padding);
            integer steps 0..T-1. ``"single"``: one numeric column, optionally with a time column
            (``time_col``, else the one non-numeric column); id ``"series"``. ``"auto"``: long if
            the three columns are there, wide if the header is V1..Vn, else single if it fits.
        time_col: timestamps (parsed; time zones dropped, wall-clock time kept) or integer steps.
        freq: pandas offset alias; None: inferred (``pandas.infer_freq``, else the most common gap
            if all series share it). Given, it is checked against the data.
        future_covariates, past_covariates: columns read as covariates (long and single formats).

    Empty cells (and NaN, NA, null) read as NaN, a missing value. Missing steps are not filled:
    give them as rows with an empty target. A series with no value at all is skipped (one
    warning counts them).
    """
    check_encoding(encoding)
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    past, future = list(past_covariates), list(future_covariates)
    named = [id_col, time_col, target_col, *past, *future]
    twice = [name for name in named if named.count(name) > 1]
    if twice:
        raise ValueError(f"column {twice[0]!r} is named twice among the id, time and target columns and the "
                         f"covariates: give each its own column")
    table = _Table.open(source, encoding)
    fmt, t_col, y_col = _detect(table, format, id_col, time_col, target_col, past + future)
    if fmt == "wide":
        if past or future:
            raise ValueError(f"{table.name}: the wide format holds no covariates; give them in the long format")
        ids, values = _read_wide(table)
        series = SeriesSet(ids, values, [np.arange(len(v), dtype=np.int64) for v in values])
    else:
        id_name = id_col if fmt == "long" else None
        table.require([c for c in (id_name, t_col, y_col) if c is not None] + past + future)
        ids, times, groups, columns = _read_columns(table, id_name, t_col, [y_col, *past, *future])

        def pick(name):
            return [columns[name][g] for g in groups]
        series = SeriesSet(ids, pick(y_col), [times[g] for g in groups], None,
                           {name: pick(name) for name in past}, {name: pick(name) for name in future})
    series = _drop_empty(table.name, series)
    series.freq = _frequency(table.name, series, freq)
    return series


def read_future(source, series: SeriesSet, h: int, *, id_col: str = "unique_id", time_col: str = "ds",
                encoding: str = "utf-8") -> Dict[str, List[np.ndarray]]:
    """The known-future covariates of ``series`` (its ``future`` names) for the h steps after each end.

    ``source`` is long format (file or DataFrame) with ``id_col``, ``time_col`` and the covariates;
    rows of other ids or times (the history, say) are ignored. Returns name -> per series (h,) float64.
    A missing row or value in a horizon raises, naming the series and the first missing time.
    """
    check_encoding(encoding)
    names = list(series.future)
    if not names:
        raise ValueError("the series have no known-future covariates: read them with "
                         "read_series(..., future_covariates=[...]) first")
    _check_count(h, "read_future: h", 1)
    table = _Table.open(source, encoding)
    table.require([id_col, time_col, *names])
    ids, times, groups, covariates = _read_columns(table, id_col, time_col, names)
    kind, wanted_kind = ("integer steps" if times.dtype.kind == "i" else "timestamps"), (
        "integer steps" if series.freq is None else "timestamps")
    if kind != wanted_kind:
        raise ValueError(f"{table.name}: {time_col!r} holds {kind}, but the series have {wanted_kind}: "
                         f"give the same kind of times")
    rows_of = dict(zip(ids, groups))
    out = {name: [] for name in names}
    for sid, wanted in zip(series.ids, series.future_times(h)):
        rows = rows_of.get(sid, np.empty(0, dtype=np.int64))                         # sorted by time
        at = np.searchsorted(times[rows], wanted)                                    # (h,)
        found = at < len(rows)
        found[found] = times[rows[at[found]]] == wanted[found]
        if not found.all():
            k = int(np.argmin(found))
            raise ValueError(f"{table.name}: series {sid!r} has no row at {_stamp(wanted[k])} (step {k + 1} of "
                             f"the horizon of {h}): give the known-future covariates for all {h} steps after "
                             f"each series' end")
        rows = rows[at]
        for name in names:
            values = covariates[name][rows]                                            # (h,)
            _refuse(np.isnan(values), lambda k: table.where(rows[k]),
                    lambda k: f"{name!r} of series {sid!r} is missing at {_stamp(wanted[k])} (step {k + 1} of {h}): "
                              f"give its value for the whole horizon")
            out[name].append(values)
    return out


def calendar_names(freq: Optional[str]) -> List[str]:
    """The names of ``calendar_features``' columns for ``freq``: none for integer steps (None) or years."""
    if freq is None:
        return []
    offset = _offset(freq)
    for kinds, names in _CALENDAR_OF:
        if isinstance(offset, kinds):
            return list(names)
    raise ValueError(f"no calendar features are known for the frequency {freq!r}: give {_ALIASES}")


def calendar_features(times: np.ndarray, freq: Optional[str]) -> np.ndarray:
    """(T, K) float32 features of the timestamps ``times`` for ``freq``, each in [-0.5, 0.5] (GluonTS's
    time features): hour of day and day of week for hourly data, day of week, month and year for
    daily, ..., none (K = 0) for integer steps. ``calendar_names(freq)`` names the K columns."""
    names, times = calendar_names(freq), np.asarray(times)
    if not names:
        return np.zeros((len(times), 0), dtype=np.float32)
    if times.dtype.kind != "M":
        raise ValueError(f"calendar features need timestamps, not {times.dtype} (integer steps have freq None)")
    index = pd.DatetimeIndex(times)
    return np.stack([np.asarray(_CALENDAR[name](index), dtype=np.float64) for name in names], axis=1).astype(np.float32)


_CALENDAR = {                           # name -> (DatetimeIndex -> (T,) in [-0.5, 0.5]), as in GluonTS
    "second_of_minute": lambda t: t.second / 59.0 - 0.5,
    "minute_of_hour": lambda t: t.minute / 59.0 - 0.5,
    "hour_of_day": lambda t: t.hour / 23.0 - 0.5,
    "day_of_week": lambda t: t.day_of_week / 6.0 - 0.5,
    "day_of_month": lambda t: (t.day - 1) / 30.0 - 0.5,
    "day_of_year": lambda t: (t.day_of_year - 1) / 365.0 - 0.5,
    "week_of_year": lambda t: (t.isocalendar().week.to_numpy(np.float64) - 1) / 52.0 - 0.5,
    "month_of_year": lambda t: (t.month - 1) / 11.0 - 0.5,
}
_O = pd.offsets
_CALENDAR_OF = [                        # offset classes -> the features of their data
    ((_O.Second, _O.Milli, _O.Micro, _O.Nano), ("second_of_minute", "minute_of_hour", "hour_of_day", "day_of_week")),
    ((_O.Minute,), ("minute_of_hour", "hour_of_day", "day_of_week")),
    ((_O.Hour, _O.BusinessHour, _O.CustomBusinessHour), ("hour_of_day", "day_of_week")),
    ((_O.Day, _O.BusinessDay, _O.CustomBusinessDay), ("day_of_week", "day_of_month", "day_of_year")),
    ((_O.Week,), ("week_of_year", "month_of_year")),
    ((_O.MonthBegin, _O.MonthEnd, _O.BusinessMonthBegin, _O.BusinessMonthEnd, _O.CustomBusinessMonthBegin,
      _O.CustomBusinessMonthEnd, _O.SemiMonthBegin, _O.SemiMonthEnd, _O.WeekOfMonth, _O.LastWeekOfMonth,
      _O.QuarterBegin, _O.QuarterEnd, _O.BQuarterBegin, _O.BQuarterEnd, _O.FY5253Quarter), ("month_of_year",)),
    ((_O.YearBegin, _O.YearEnd, _O.BYearBegin, _O.BYearEnd, _O.FY5253, _O.Easter), ()),
]


# ------------------------------------------------------------------------------------ reading tables

class _Table:
    """A table being read: a file's header and records (read once: row by row, or all as columns of
    strings), or a DataFrame; ``where(pos)`` names a data row in messages."""

    def __init__(self, name: str, columns: list, *, records=None, frame=None, place=None):
        self.name, self.columns = name, columns
        self._records, self._frame, self._place = records, frame, place

    @classmethod
    def open(cls, source, encoding: str) -> "_Table":
        if isinstance(source, pd.DataFrame):
            index = source.index
            return cls("the DataFrame", list(source.columns), frame=source, place=lambda pos: f"index {index[pos]}")
        path = Path(source)
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = _read_parquet(path)
            return cls(str(path), list(frame.columns), frame=frame, place=lambda pos: f"row {pos + 1}")
        records = csv_records(path, read_text(path, encoding), "\t" if path.suffix.lower() == ".tsv" else ",")
        header = next(records, (0, None))[1]
        if header is None:
            raise ValueError(f"{path} has no rows: give a header, then one row per step (or per series)")
        return cls(str(path), [name.strip() for name in header], records=records)

    def place(self, pos: int) -> str:
        return self._place(pos)

    def where(self, pos: int) -> str:
        return f"{self.name}, {self._place(pos)}"

    def require(self, names: List[str]) -> None:
        missing = [name for name in names if name not in self.columns]
        if missing:
            raise ValueError(f"{self.name} has no column {', '.join(map(repr, missing))}; its columns are: "
                             f"{_listed(self.columns, 20)} (name the columns with id_col=, time_col=, "
                             f"target_col= and the covariates)")
        twice = [name for name in names if self.columns.count(name) > 1]
        if twice:
            raise ValueError(f"{self.name} has two columns named {twice[0]!r}: give each column its own name")

    def frame(self) -> pd.DataFrame:
        """All the rows (a file's cells as strings); a table of no rows raises."""
        if self._frame is None:
            lines, rows, width = [], [], len(self.columns)
            for line, record in self._records:
                if len(record) != width:
                    raise ValueError(f"{self.name}, line {line}: {len(record)} fields, the header has {width} "
                                     f"(is the delimiter right?)")
                lines.append(line)
                rows.append(record)
            self._frame = pd.DataFrame(rows, columns=self.columns, dtype=object)
            self._place = lambda pos: f"line {lines[pos]}"
        if len(self._frame) == 0:
            raise ValueError(f"{self.name} has a header but no data rows: give one row per step")
        return self._frame

    def rows(self) -> Iterator[Tuple[str, list]]:
        """(where, cells) of each row in turn: a file's records as they come, of any length."""
        if self._records is None:
            for pos, row in enumerate(self._frame.itertuples(index=False, name=None)):
                yield self.where(pos), list(row)
        else:
            for line, record in self._records:
                yield f"{self.name}, line {line}", record


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ValueError(f"{path} does not exist or is not a file")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ValueError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow); or give the series "
                         f"as CSV") from None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable Parquet file ({error})") from None


def _detect(table: _Table, format: str, id_col, time_col, target_col, covariates) -> Tuple[str, object, object]:
    # (format, time column, target column) of ``table``.
    columns = table.columns
    if format == "long" or (format == "auto" and all(c in columns for c in (id_col, time_col, target_col))):
        return "long", time_col, target_col
    if format == "wide" or (format == "auto" and len(columns) > 1
                            and [str(c) for c in columns] == [f"V{i}" for i in range(1, len(columns) + 1)]):
        return "wide", None, None
    single = _single_columns(table, time_col, covariates)
    if single:
        return ("single", *single)
    if format == "single":
        raise ValueError(f"{table.name}: a single series needs one numeric column besides the time column and the "
                         f"covariates; its columns are: {_listed(columns, 20)}")
    missing = [c for c in (id_col, time_col, target_col) if c not in columns]
    raise ValueError(f"{table.name}: cannot tell its format: not long (no column {', '.join(map(repr, missing))}), "
                     f"not wide (the header is not V1, V2, ...), not single (one numeric column, optionally with "
                     f"a time column); its columns are: {_listed(columns, 20)}; name the columns with id_col=, "
                     f"time_col=, target_col=, or give format=")


def _single_columns(table: _Table, time_col, covariates) -> Optional[Tuple[object, object]]:
    # (time column or None, value column) of a single series, or None where the columns do not fit.
    rest = [c for c in table.columns if c != time_col and c not in covariates]
    if len(rest) == 1:
        return (time_col if time_col in table.columns else None), rest[0]
    if time_col in table.columns or len(rest) != 2:
        return None
    frame = table.frame()
    numeric = [c for c in rest if _is_numeric(frame[c])]
    return ((rest[0] if numeric == rest[1:] else rest[1]), numeric[0]) if len(numeric) == 1 else None


def _read_wide(table: _Table) -> Tuple[List[str], List[np.ndarray]]:
    # M4's layout: a row's first cell the id, the others its values, padded with empty cells at the end.
    names, raw_ids, places, values = table.columns, [], [], []
    for where, cells in table.rows():
        if len(cells) > len(names):
            raise ValueError(f"{where}: {len(cells)} fields, the header has {len(names)}")
        row = _floats(pd.Series(cells[1:], dtype=object), lambda j: f"{where}, column {names[j + 1]!r}")
        given = np.flatnonzero(~np.isnan(row))
        values.append(row[:given[-1] + 1 if given.size else 0])                  # (T_i,) without the padding
        raw_ids.append(cells[0])
        places.append(where)
    if not values:
        raise ValueError(f"{table.name} has a header but no data rows: give one series per row")
    ids = list(_ids(pd.Series(raw_ids, dtype=object), lambda i: f"{places[i]}, column {names[0]!r}"))
    first = {}
    for i, sid in enumerate(ids):
        if first.setdefault(sid, i) != i:
            raise ValueError(f"{places[i]}: series {sid!r} is also on {places[first[sid]]}: give each series one row")
    return ids, values


def _read_columns(table: _Table, id_name, time_name, value_names):
    # Series ids (in order of first appearance), all rows' times, each series' rows sorted by time,
    # and the value columns: (ids, (N,) times, [(T_i,) row numbers], {name: (N,) float64}).
    frame = table.frame()

    def at(name):
        return lambda pos: f"{table.where(pos)}, column {name!r}"
    keys = np.full(len(frame), SINGLE_ID, dtype=object) if id_name is None else _ids(frame[id_name], at(id_name))
    times = np.arange(len(frame), dtype=np.int64) if time_name is None else _times(frame[time_name], at(time_name))
    values = {name: _floats(frame[name], at(name)) for name in value_names}
    codes, uniques = pd.factorize(keys)
    order = np.lexsort((times.view(np.int64), codes))                           # by series, then time
    same = (codes[order][1:] == codes[order][:-1]) & (times[order][1:] == times[order][:-1])
    if same.any():
        first, second = order[np.argmax(same)], order[np.argmax(same) + 1]
        raise ValueError(f"{table.where(second)}: series {uniques[codes[second]]!r} has the time "
                         f"{_stamp(times[second])} twice (also at {table.place(first)}): give each time once "
                         f"per series")
    groups = np.split(order, np.cumsum(np.bincount(codes))[:-1])
    return list(uniques), times, groups, values


def _ids(column: pd.Series, where: Callable[[int], str]) -> np.ndarray:
    # (N,) object: the ids as stripped strings; an empty one raises.
    text = column.astype(str).str.strip()
    _refuse((column.isna() | (text == "")).to_numpy(), where,
            lambda i: "the series id is empty: give every row the id of its series")
    return text.to_numpy(dtype=object)


def _floats(column: pd.Series, where: Callable[[int], str]) -> np.ndarray:
    # (N,) float64: empty cells (and NaN, NA, null) are NaN; anything else not a finite number raises.
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
    else:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        missing = (column.isna() | column.astype(str).str.strip().isin(_MISSING)).to_numpy()
        bad = (np.isnan(values) & ~missing) | np.isinf(values)
    _refuse(bad, where, lambda i: f"{_shown(column.iloc[i])} is not a finite number: give numbers, or an empty "
                                  f"cell where a value is missing")
    return values


def _is_numeric(column: pd.Series) -> bool:
    try:
        _floats(column, str)
    except ValueError:
        return False
    return True


def _times(column: pd.Series, where: Callable[[int], str]) -> np.ndarray:
    # (N,) datetime64[ns] timestamps (time zones dropped, wall-clock time kept), or int64 steps.
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        stamps = column
    elif pd.api.types.is_integer_dtype(column.dtype) and not column.isna().any():
        return column.to_numpy(dtype=np.int64)
    elif pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        _refuse(np.isnan(values), where, lambda i: _NO_TIME)
        _refuse(values != np.round(values), where,
                lambda i: f"{_shown(column.iloc[i])} is not an integer step: give whole numbers, or timestamps")
        return values.astype(np.int64)
    else:
        text = column.astype(str).str.strip()
        _refuse((column.isna() | text.isin(_MISSING)).to_numpy(), where, lambda i: _NO_TIME)
        if text.str.fullmatch(r"[+-]?\d+").all():
            return text.astype(np.int64).to_numpy()
        try:
            stamps = pd.to_datetime(text, errors="coerce")
        except (ValueError, TypeError):
            raise ValueError(f"{where(0)} and below: the timestamps are not in one time zone (their UTC offsets "
                             f"differ): give them in one time zone, or all in UTC") from None
        _refuse(stamps.isna().to_numpy(), where,
                lambda i: f"{text.iloc[i]!r} is not a timestamp in the format of the first ({text.iloc[0]!r}), "
                          f"nor an integer step: give all the times in one format")
    _refuse(stamps.isna().to_numpy(), where, lambda i: _NO_TIME)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.dt.as_unit("ns").to_numpy()


def _drop_empty(name: str, series: SeriesSet) -> SeriesSet:
    # The series with at least one value; those without are skipped with one warning.
    empty = [sid for sid, v in zip(series.ids, series.values) if np.isnan(v).all()]
    if len(empty) == len(series):
        raise ValueError(f"{name}: none of its {len(series)} series has a value: give numbers in the target column")
    if empty:
        warnings.warn(f"{name}: skipped {len(empty)} of {len(series)} series with no values ({_listed(empty)})",
                      stacklevel=3)
        skipped = set(empty)
        series = series.select([sid for sid in series.ids if sid not in skipped])
    return series


# --------------------------------------------------------------------------------------- frequency

def _frequency(name: str, series: SeriesSet, freq: Optional[str]) -> Optional[str]:
    # The series' offset alias: ``freq`` checked against the data, else inferred; None for integer steps.
    if series.times[0].dtype.kind == "i":
        if freq is not None:
            raise ValueError(f"{name}: freq={freq!r} was given, but the series have integer steps, not "
                             f"timestamps: leave freq out (steps go by 1)")
        offset = None
    elif freq is not None:
        offset = _offset(freq)
        for sid, t in zip(series.ids, series.times):
            found = _infer(t)
            if found is not None and found != offset:
                raise ValueError(f"{name}: freq={freq!r} disagrees with series {sid!r}, whose timestamps go by "
                                 f"{found.freqstr!r}: give freq={found.freqstr!r}, or leave freq out to infer it")
            offset = offset if found is None else found                 # pandas' spelling: "h" for "60min"
    else:
        offset = _infer_common(name, series)
    for sid, t in zip(series.ids, series.times):
        _check_steps(f"{name}: series {sid!r}", t, offset)
    return None if offset is None else offset.freqstr


def _infer(t: np.ndarray):
    # pandas' inferred offset of the timestamps ``t``, or None.
    if len(t) < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # pandas 3 announces that it will return an offset
        found = pd.infer_freq(pd.DatetimeIndex(t))
    return None if found is None else to_offset(found)


def _infer_common(name: str, series: SeriesSet):
    # The one offset pandas infers for the series, else the most common gap if all series share it.
    found = {}
    for sid, t in zip(series.ids, series.times):
        offset = _infer(t)
        if offset is not None:
            found.setdefault(offset.freqstr, (sid, offset))
    if len(found) > 1:
        named = ", ".join(f"{sid!r} by {alias!r}" for alias, (sid, _) in found.items())
        raise ValueError(f"{name}: the series go by different frequencies ({named}): read those of each "
                         f"frequency apart")
    if found:
        return next(iter(found.values()))[1]
    gaps = set()
    for t in series.times:
        if len(t) > 1:
            steps, counts = np.unique(np.diff(t.view(np.int64)), return_counts=True)
            gaps.add(int(steps[np.argmax(counts)]))
    if len(gaps) == 1:
        gap = gaps.pop()
        return to_offset(f"{gap // _DAY_NS}D") if gap % _DAY_NS == 0 else to_offset(pd.Timedelta(gap))
    raise ValueError(f"{name}: cannot infer the frequency of the timestamps (the series are too short, or their "
                     f"most common gaps differ): give freq=, {_ALIASES}")


def _check_steps(what: str, t: np.ndarray, offset) -> None:
    # Raise unless the sorted, distinct times ``t`` go by one step of ``offset`` (None: integer steps of 1).
    pos = _positions(t, offset)
    unit = "step 1" if offset is None else f"frequency {offset.freqstr!r}"
    off = np.flatnonzero(pos < 0)
    if off.size and off[0] == 0:
        raise ValueError(f"{what}: its first timestamp {_stamp(t[0])} is not on the {unit}: give timestamps on "
                         f"it, or the right freq=")
    if off.size:
        i = off[0]
        raise ValueError(f"{what}: the gap from {_stamp(t[i - 1])} to {_stamp(t[i])} is not a multiple of the "
                         f"{unit}: give regular times, or the right freq=")
    jumps = np.flatnonzero(np.diff(pos) > 1)
    if jumps.size:
        j = jumps[0]
        missing = pos[j + 1] - pos[j] - 1
        raise ValueError(f"{what}: {missing} missing step{'s' if missing > 1 else ''} between {_stamp(t[j])} and "
                         f"{_stamp(t[j + 1])} ({unit}): fill them, or give them as rows with an empty target "
                         f"(read as missing values, which the model masks)")


def _positions(t: np.ndarray, offset) -> np.ndarray:
    # (T,) int64: each time's step number from the first; -1 where it is off the grid of ``offset``.
    if offset is None:
        return t - t[0]
    step = offset.nanos if isinstance(offset, _O.Tick) else (
        offset.n * _DAY_NS if isinstance(offset, _O.Day) else None)      # pandas 3's Day: 24 h on naive times
    if step:
        gap = t.view(np.int64) - t.view(np.int64)[0]
        return np.where(gap % step == 0, gap // step, -1)
    return pd.date_range(t[0], t[-1], freq=offset).get_indexer(pd.DatetimeIndex(t))


def _offset(freq):
    try:
        offset = to_offset(freq)
    except (ValueError, TypeError):
        offset = None
    if offset is None or offset.n < 1:
        raise ValueError(f"unknown frequency {freq!r}: give {_ALIASES}")
    return offset


# ------------------------------------------------------------------------------------------ helpers

def _refuse(bad: np.ndarray, where: Callable[[int], str], what: Callable[[int], str]) -> None:
    # A ValueError "<where(i)>: <what(i)>" at the first row i that is ``bad``.
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{where(i)}: {what(i)}")


def _check_count(value, what: str, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{what} is {value!r}; give a number of steps >= {least}")


def _stamp(t) -> str:
    # An integer step, a timestamp, or the date of a timestamp at midnight.
    if np.asarray(t).dtype.kind in "iu":
        return str(int(t))
    stamp = pd.Timestamp(t)
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _listed(names: Sequence, most: int = 5) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > most else ""
    return ", ".join(map(repr, list(names)[:most])) + more


def _concat(arrays: List[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0)
