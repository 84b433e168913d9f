"""Product time axes: the start of each compositing period within the workflow's period."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from fluxscape.pipeline.schema import Period

STEP_DAYS = {"16D": 16, "8D": 8, "1D": 1}


def period_starts(period: Period, step: str | None = None) -> pd.DatetimeIndex:
    """Start dates of the compositing periods that begin within [start, end].

    ``step`` (default ``period.step``; a product may set its own): ``16D``/``8D`` restart on
    1 January each year (the MODIS convention: DOY 1, 17, ...); ``1M`` gives the first of each
    month; ``1D`` every day."""
    step = step or period.step
    start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    if step == "1M":
        return pd.date_range(start.replace(day=1), end, freq="MS").rename("time")
    if step == "1D":
        return pd.date_range(start, end, freq="D").rename("time")
    days = STEP_DAYS[step]
    starts = [
        pd.Timestamp(year, 1, 1) + pd.Timedelta(days=d)
        for year in range(start.year, end.year + 1)
        for d in range(0, 366, days)
        if (pd.Timestamp(year, 1, 1) + pd.Timedelta(days=d)).year == year
    ]
    return pd.DatetimeIndex([s for s in starts if start <= s <= end], name="time")


def period_end(start: pd.Timestamp, step: str | None) -> pd.Timestamp:
    """End (exclusive) of the period of ``step`` that begins at ``start``: 16D/8D periods stop
    at the end of the year (the next one restarts on 1 January); without a step, 31 days."""
    if step == "1D":
        return start + pd.Timedelta(days=1)
    if step == "1M":
        return start + pd.offsets.MonthBegin(1)
    if step in STEP_DAYS:
        return min(start + pd.Timedelta(days=STEP_DAYS[step]), pd.Timestamp(start.year + 1, 1, 1))
    return start + pd.Timedelta(days=31)


def period_index(
    times: pd.DatetimeIndex, when: datetime | date, step: str | None = None
) -> int | None:
    """Index of the period that contains ``when`` (None when outside the axis); the last
    period ends as a period of ``step`` does (:func:`period_end`)."""
    ts = pd.Timestamp(when)
    pos = int(np.searchsorted(times.values, np.datetime64(ts, "ns"), side="right")) - 1
    if pos < 0:
        return None
    if pos + 1 < len(times):
        return pos if ts < times[pos + 1] else None
    return pos if ts < period_end(times[pos], step) else None


def period_lengths(times: pd.DatetimeIndex, step: str) -> np.ndarray:
    """Days in each period of an axis from :func:`period_starts` with ``step`` (int array),
    each period ending as :func:`period_end` says (the last MODIS composite of a year is 5-6
    or 13-14 days, ``1M`` periods are calendar months, ``1D`` periods one day)."""
    starts = pd.DatetimeIndex(times)
    return np.array([(period_end(t, step) - t).days for t in starts], dtype=np.int64)


def time_bounds(times: pd.DatetimeIndex | np.ndarray, step: str | None) -> np.ndarray:
    """CF bounds of an axis from :func:`period_starts`: an ``(n, 2)`` datetime64[ns] array of
    each period's start and (exclusive) end, each period ending as :func:`period_end` says."""
    starts = pd.DatetimeIndex(times)
    ends = [period_end(t, step) for t in starts]
    return np.stack([starts.values, pd.DatetimeIndex(ends).values], axis=1).astype("datetime64[ns]")


def store_period_ends(ds) -> pd.DatetimeIndex:
    """Each step's exclusive end for a product store with a ``time`` axis: its CF bounds
    ``time_bnds``, or, for a store of an earlier fluxscape without them, inferred from the
    period starts (:func:`fluxscape.ml.timesteps.period_bounds`)."""
    if "time_bnds" in ds.variables:
        return pd.DatetimeIndex(ds["time_bnds"].values[:, 1])
    from fluxscape.ml.timesteps import period_bounds

    return period_bounds(pd.DatetimeIndex(ds["time"].values))[1]
