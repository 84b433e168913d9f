"""Period bounds of a product time axis (period starts -> [start, end) in days)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fluxscape.errors import FluxscapeError

__all__ = ["period_bounds", "days_per_month"]


def period_bounds(
    starts: pd.DatetimeIndex | np.ndarray, end: pd.Timestamp | str | None = None
) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Start and (exclusive) end of each period of a time axis given by its period starts.

    Period i covers ``[starts[i], starts[i+1])``. The end of the last period is ``end`` when
    given; otherwise it is inferred: when every start is the 1st of a month (monthly, yearly
    axes), the typical step in whole months after the last start, else the typical (median)
    step length, clipped at the next 1 January when the axis restarts on 1 January each year
    (MODIS 8-/16-day axes: DOY 1, 17, ..., 353).

    Returns ``(starts, ends)`` as DatetimeIndex (naive, day precision expected). Raises
    FluxscapeError when the starts are not strictly increasing or fewer than one.
    """
    starts = pd.DatetimeIndex(starts)
    if len(starts) == 0:
        raise FluxscapeError("time axis is empty: no periods to aggregate to")
    if not starts.is_monotonic_increasing or not starts.is_unique:
        raise FluxscapeError("time axis: period starts must be strictly increasing")
    if end is not None:
        last_end = pd.Timestamp(end)
    elif (starts.day == 1).all():  # monthly, seasonal or yearly axis: step in whole months
        months = starts.year.to_numpy() * 12 + starts.month.to_numpy()
        step_m = int(np.median(np.diff(months))) if len(starts) > 1 else 1
        last_end = starts[-1] + pd.DateOffset(months=max(step_m, 1))
    elif len(starts) == 1:
        last_end = starts[-1] + pd.Timedelta(days=1)
    else:
        ns = starts.values.astype("datetime64[ns]").astype(np.int64)
        step = pd.Timedelta(float(np.median(np.diff(ns))), unit="ns").round("D")
        last_end = starts[-1] + step
        year_end = pd.Timestamp(year=starts[-1].year + 1, month=1, day=1)
        restarts = (starts.dayofyear == 1).sum() >= 1 and step > pd.Timedelta(days=1)
        if restarts and last_end > year_end:
            last_end = year_end
    if last_end <= starts[-1]:
        raise FluxscapeError(f"time axis: end {last_end} is not after the last start {starts[-1]}")
    ends = pd.DatetimeIndex([*starts[1:], last_end])
    return starts, ends


def days_per_month(starts: pd.DatetimeIndex, ends: pd.DatetimeIndex) -> pd.DataFrame:
    """Days of each period falling in each calendar month.

    Returns a DataFrame (index: period number 0..n-1, columns: month-start Timestamps) of day
    counts, so that ``rates @ table`` turns per-day rates per period into monthly sums.
    """
    # every day of every period at once (a date range per period cost ~100 ms a call)
    first = pd.DatetimeIndex(starts).normalize()
    lengths = np.clip((pd.DatetimeIndex(ends).normalize() - first).days.to_numpy(), 0, None)
    period = np.repeat(np.arange(len(first)), lengths)
    offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    days = np.repeat(first.values, lengths) + offset.astype("timedelta64[D]")
    months = pd.DatetimeIndex(days).to_period("M").to_timestamp()
    codes, columns = pd.factorize(months, sort=True)
    counts = np.zeros((len(first), len(columns)))
    np.add.at(counts, (period, codes), 1.0)
    return pd.DataFrame(counts, index=pd.Index(range(len(first))), columns=columns)
