"""Product time axes: the start of each compositing period within the workflow's period."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from fluxscape.pipeline.config import Period

STEP_DAYS = {"16D": 16, "8D": 8, "1D": 1}


def period_starts(period: Period) -> pd.DatetimeIndex:
    """Start dates of the compositing periods that begin within [start, end].

    ``16D``/``8D`` restart on 1 January each year (the MODIS convention: DOY 1, 17, ...);
    ``1M`` gives the first of each month; ``1D`` every day."""
    start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    if period.step == "1M":
        return pd.date_range(start.replace(day=1), end, freq="MS").rename("time")
    if period.step == "1D":
        return pd.date_range(start, end, freq="D").rename("time")
    days = STEP_DAYS[period.step]
    starts = [
        pd.Timestamp(year, 1, 1) + pd.Timedelta(days=d)
        for year in range(start.year, end.year + 1)
        for d in range(0, 366, days)
        if (pd.Timestamp(year, 1, 1) + pd.Timedelta(days=d)).year == year
    ]
    return pd.DatetimeIndex([s for s in starts if start <= s <= end], name="time")


def period_index(times: pd.DatetimeIndex, when: datetime | date) -> int | None:
    """Index of the period that contains ``when`` (None when outside the axis)."""
    ts = pd.Timestamp(when)
    pos = int(np.searchsorted(times.values, np.datetime64(ts, "ns"), side="right")) - 1
    if pos < 0:
        return None
    if pos + 1 < len(times):
        return pos if ts < times[pos + 1] else None
    return pos if ts - times[pos] < pd.Timedelta(days=31) else None


def period_lengths(times: pd.DatetimeIndex, step: str) -> np.ndarray:
    """Days in each period of an axis from :func:`period_starts` with ``step`` (int array):
    ``8D``/``16D`` periods end at the next nominal start but never after 31 December (the
    last MODIS composite of a year is 5-6 or 13-14 days), ``1M`` periods are calendar months
    and ``1D`` periods one day."""
    starts = pd.DatetimeIndex(times)
    if step == "1M":
        return np.asarray(starts.days_in_month, dtype=np.int64)
    if step == "1D":
        return np.ones(len(starts), dtype=np.int64)
    nominal = starts + pd.Timedelta(days=STEP_DAYS[step])
    year_end = pd.DatetimeIndex([pd.Timestamp(t.year + 1, 1, 1) for t in starts])
    ends = np.minimum(nominal.values, year_end.values)
    return ((ends - starts.values) / np.timedelta64(1, "D")).astype(np.int64)
