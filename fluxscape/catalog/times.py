"""Time ranges: one definition for catalog search and for opening a product.

A query range is ``(start, end)`` (either side ``None`` or ``..`` = open) or the text
``"START/END"``. :func:`bounds` turns it into UTC instants: ``start`` is the first instant it
names and ``end`` the last, so a bare date ends at 23:59:59.999999 that day, ``2021-06`` at the
end of June and ``2021`` at the end of the year; a datetime is that instant (an offset or ``Z``
is converted to UTC, a datetime without one is UTC).

Each step of a product covers the span :func:`step_spans` gives: a ``year`` step the whole
calendar year; a ``time`` step its whole period, from the CF bounds ``time_bnds`` the store
carries (a store of an earlier fluxscape without them: the instant its period starts). A
product's temporal extent (:func:`extent`, written to its collection
and the index) runs from the first step's start to the last step's end. A search finds a product
when its extent overlaps the range (:func:`overlap_sql`) and opening it keeps the steps whose
spans overlap the range (:func:`overlaps`), so a product a search finds at the ends of its
extent gives a step when opened with the same range, and one it does not find gives none.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from fluxscape.errors import FluxscapeError

TimeRange = tuple[str | None, str | None]
Bounds = tuple[datetime | None, datetime | None]

#: Text naming a whole year, month or day (the end of the range is the end of it).
_PERIODS = [
    (re.compile(r"\d{4}"), pd.DateOffset(years=1)),
    (re.compile(r"\d{4}-\d{2}"), pd.DateOffset(months=1)),
    (re.compile(r"\d{4}-?\d{2}-?\d{2}"), pd.DateOffset(days=1)),
]
_MICROSECOND = pd.Timedelta(microseconds=1)


def parse_range(text: str | None) -> TimeRange:
    """``"2021-01-01/2021-12-31"`` (either side may be empty or ``..``) -> (start, end)."""
    if not text:
        return (None, None)
    if "/" not in text:
        raise FluxscapeError(f"time range {text!r}: expected START/END, e.g. 2021-04-01/2021-10-31")
    start, end = (_open_side(p) for p in text.split("/", 1))
    for v in (start, end):
        if v is not None:
            _timestamp(v, text)
    return (start, end)


def _open_side(value) -> str | None:
    text = None if value is None else str(value).strip()
    return None if text in (None, "", "..") else text


def _timestamp(text: str, source: str) -> pd.Timestamp:
    """An ISO 8601 date or datetime (it starts with the year: ``June`` is not a date here,
    though pandas would read it as June of this year) as a naive UTC Timestamp."""
    try:
        value = pd.Timestamp(text) if re.match(r"\d{4}", text) else pd.NaT
    except ValueError as exc:
        raise FluxscapeError(f"time range {source!r}: {text!r} is not a date") from exc
    if value is pd.NaT:
        raise FluxscapeError(f"time range {source!r}: {text!r} is not a date")
    if value.tzinfo is not None:
        value = value.tz_convert(UTC).tz_localize(None)
    return value


def bounds(time: TimeRange | str | None) -> Bounds:
    """The first and last instant (UTC, naive, microseconds) of a query range; None = open."""
    if time is None:
        return (None, None)
    start, end = parse_range(time) if isinstance(time, str) else map(_open_side, time)
    source = f"{start or '..'}/{end or '..'}"
    lo = hi = None
    if start is not None:
        lo = _timestamp(start, source).floor("us").to_pydatetime()
    if end is not None:
        last = _timestamp(end, source)
        for pattern, length in _PERIODS:
            if pattern.fullmatch(end):
                last = last + length - _MICROSECOND
                break
        hi = last.floor("us").to_pydatetime()
    return (lo, hi)


def step_spans(ds) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The time dimension of a product (``time`` or ``year``) and the first and last instant
    (datetime64, UTC) each of its steps covers; None when it has neither."""
    if "time" in ds.dims:
        starts = ds["time"].values.astype("datetime64[us]")
        if "time_bnds" not in ds.variables:
            return "time", starts, starts.copy()
        ends = ds["time_bnds"].values[:, 1].astype("datetime64[us]") - np.timedelta64(1, "us")
        return "time", starts, np.maximum(ends, starts)
    if "year" in ds.dims:
        years = np.asarray(ds["year"].values, dtype=int)
        starts = np.array([f"{y:04d}-01-01" for y in years], dtype="datetime64[us]")
        ends = np.array([f"{y:04d}-12-31T23:59:59" for y in years], dtype="datetime64[us]")
        return "year", starts, ends
    return None


def extent(ds) -> tuple[datetime, datetime]:
    """A product's temporal extent (UTC-aware): the first step's start, the last step's end."""
    _, starts, ends = step_spans(ds)
    return _aware(starts.min()), _aware(ends.max())


def _aware(value: np.datetime64) -> datetime:
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=UTC)


def overlaps(starts, ends, span: Bounds):
    """Which of the spans ``starts[i]..ends[i]`` overlap ``span`` (ends inclusive); the
    Python twin of :func:`overlap_sql`."""
    lo, hi = span
    keep = np.ones(np.shape(starts), dtype=bool)
    if hi is not None:
        keep &= starts <= np.datetime64(hi, "us")
    if lo is not None:
        keep &= ends >= np.datetime64(lo, "us")
    return keep


def overlap_sql(start_column: str, end_column: str, span: Bounds) -> tuple[list[str], list]:
    """SQL conditions (and their parameters) for rows whose ``start_column..end_column``
    overlaps ``span`` (ends inclusive); the SQL twin of :func:`overlaps`."""
    lo, hi = span
    where, params = [], []
    if hi is not None:
        where.append(f"{start_column} <= CAST(? AS TIMESTAMP)")
        params.append(hi)
    if lo is not None:
        where.append(f"{end_column} >= CAST(? AS TIMESTAMP)")
        params.append(lo)
    return where, params


def select_steps(ds, time: TimeRange | str | None):
    """The steps of ``ds`` whose spans overlap the range ``time`` (all of them for None)."""
    spans = step_spans(ds)
    if time is None or spans is None:
        return ds
    dim, starts, ends = spans
    keep = np.flatnonzero(overlaps(starts, ends, bounds(time)))
    if len(keep) and keep[-1] - keep[0] + 1 == len(keep):
        return ds.isel({dim: slice(int(keep[0]), int(keep[-1]) + 1)})  # contiguous: a slice
    return ds.isel({dim: keep})
