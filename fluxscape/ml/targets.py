"""Training targets (GPP, RECO, NEE, FCH4) from FLUXNET FULLSET data, on a product time axis.

Input is a dataset as :func:`fluxscape.readers.fluxnet.read_fluxnet` returns it for an
aggregated file (DD, WW or MM: carbon fluxes already in gC m-2 d-1, ``*_QC`` = fraction of
measured or good-quality gap-filled half-hours). Each record is kept when its QC fraction is
``>= min_qc`` (the per-day rule of FLUXCOM for DD files) and its value finite; good records
are averaged, weighted by the days they span, over each period of the target time axis. A
period's ``coverage`` is good days / days in period; below ``min_coverage`` the target is NaN
and stays in the table with its ``n_valid`` and ``coverage`` so that rows are dropped on
purpose (:func:`training_rows`), never silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.ml.timesteps import period_bounds
from fluxscape.readers.fluxnet import good_quality

__all__ = [
    "FLUX_COLUMNS",
    "TARGET_UNITS",
    "aggregate_drivers",
    "build_targets",
    "flux_columns",
    "site_table",
    "training_rows",
]

#: Source column per target and partitioning (FLUXNET2015 variable u* threshold, reference).
FLUX_COLUMNS: dict[str, dict[str, str]] = {
    "NT": {"gpp": "GPP_NT_VUT_REF", "reco": "RECO_NT_VUT_REF", "nee": "NEE_VUT_REF"},
    "DT": {"gpp": "GPP_DT_VUT_REF", "reco": "RECO_DT_VUT_REF", "nee": "NEE_VUT_REF"},
}
#: FLUXNET-CH4 gap-filled methane flux (Delwiche et al. 2021), used when present.
FCH4_COLUMN = "FCH4_F_ANNOPTLM"
TARGET_UNITS = {
    "gpp": "gC m-2 d-1",
    "reco": "gC m-2 d-1",
    "nee": "gC m-2 d-1",
    "fch4": "nmolCH4 m-2 s-1",
}
_AGGREGATED = ("DD", "WW", "MM")


def flux_columns(partition: str = "NT", fch4: bool = True) -> dict[str, str]:
    """Target name -> FULLSET column for the ``partition`` ("NT" night-time or "DT" daytime)."""
    key = partition.upper()
    if key not in FLUX_COLUMNS:
        raise FluxscapeError(f"partition must be 'NT' or 'DT', got {partition!r}")
    cols = dict(FLUX_COLUMNS[key])
    if fch4:
        cols["fch4"] = FCH4_COLUMN
    return cols


def _record_days(ds: xr.Dataset) -> np.ndarray:
    """Days spanned by each record (DD 1, WW from time_end or 7, MM the month length)."""
    times = pd.DatetimeIndex(ds["time"].values)
    res = ds.attrs.get("resolution")
    if res == "DD":
        return np.ones(len(times))
    if res == "MM":
        return times.days_in_month.to_numpy(dtype=float)
    if "time_end" in ds.coords:  # WW: TIMESTAMP_END is the last day of the week
        ends = pd.DatetimeIndex(ds["time_end"].values)
        return ((ends - times).days + 1).to_numpy(dtype=float)
    return np.full(len(times), 7.0)


def _site(ds: xr.Dataset) -> str:
    if "site_id" in ds.attrs:
        return str(ds.attrs["site_id"])
    return str(ds["site"].values) if "site" in ds.coords else "unknown"


def _check(ds: xr.Dataset) -> str:
    source = ds.attrs.get("source_file", "<dataset>")
    res = ds.attrs.get("resolution")
    if res not in _AGGREGATED:
        raise FluxscapeError(
            f"{source}: targets need a DD, WW or MM FULLSET file (gC m-2 d-1, QC as a "
            f"fraction); got resolution {res!r}"
        )
    return source


def _period_index(
    ds: xr.Dataset, starts: pd.DatetimeIndex, ends: pd.DatetimeIndex, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Period number of each record (-1 outside the axis) and the days of each record."""
    times = pd.DatetimeIndex(ds["time"].values)
    days = _record_days(ds)
    idx = starts.searchsorted(times, side="right") - 1
    inside = (idx >= 0) & (times < ends[-1])
    idx = np.where(inside, idx, -1)
    period_days = (ends - starts).days.to_numpy()
    rec_end = times + pd.to_timedelta(days, unit="D")
    longer = inside & (rec_end > ends[np.clip(idx, 0, None)])
    if longer.any():
        i = int(np.flatnonzero(longer)[0])
        raise FluxscapeError(
            f"{source}: record starting {times[i].date()} ({days[i]:.0f} days, resolution "
            f"{ds.attrs.get('resolution')}) crosses the end of its target period "
            f"({period_days[idx[i]]} days); use finer records (e.g. DD) for this time axis"
        )
    return idx, days


def _aggregate(
    values: np.ndarray, good: np.ndarray, idx: np.ndarray, days: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Day-weighted mean of good values per period, good-record count and good days."""
    use = good & (idx >= 0)
    w = np.where(use, days, 0.0)
    v = np.where(use, values, 0.0)
    wsum = np.bincount(idx[use], weights=w[use], minlength=n)
    vsum = np.bincount(idx[use], weights=(v * w)[use], minlength=n)
    count = np.bincount(idx[use], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(wsum > 0, vsum / np.where(wsum > 0, wsum, 1.0), np.nan)
    return mean, count, wsum


def build_targets(
    ds: xr.Dataset,
    periods: pd.DatetimeIndex,
    partition: str = "NT",
    min_qc: float = 0.8,
    min_coverage: float = 0.5,
    period_end: pd.Timestamp | str | None = None,
    targets: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """Targets of one site aggregated to a time axis, with QC filtering and coverage.

    Parameters
    ----------
    ds:
        One site's FULLSET DD/WW/MM dataset from ``read_fluxnet`` (it must hold the flux
        columns and their QC partner ``NEE_VUT_REF_QC``; FCH4_F_ANNOPTLM is used if present).
    periods:
        Period starts of the target axis (daily, 8-/16-day, monthly); see
        :func:`fluxscape.ml.timesteps.period_bounds` for the end of the last period.
    partition:
        "NT" (GPP_NT_VUT_REF, RECO_NT_VUT_REF) or "DT" (GPP_DT_VUT_REF, RECO_DT_VUT_REF);
        NEE is NEE_VUT_REF either way.
    min_qc:
        A record is good when its QC fraction is >= min_qc and its value finite.
    min_coverage:
        A period's target is NaN when good days / days in period is below this.
    targets:
        Subset of ("gpp", "reco", "nee", "fch4"); default: all available (fch4 only if its
        column is in ``ds``). A requested target whose column is absent raises.

    Returns
    -------
    DataFrame, one row per period: ``site``, ``time`` (period start), then for each target
    ``<t>`` (gC m-2 d-1; fch4 nmolCH4 m-2 s-1), ``<t>_n_valid`` (good records) and
    ``<t>_coverage`` (0-1). ``attrs`` record partition, thresholds, source columns and units.
    """
    source = _check(ds)
    starts, ends = period_bounds(periods, period_end)
    columns = flux_columns(partition)
    wanted = (
        list(targets)
        if targets is not None
        else [t for t in columns if t != "fch4" or columns[t] in ds.data_vars]
    )
    unknown = [t for t in wanted if t not in columns]
    if unknown:
        raise FluxscapeError(f"unknown target(s) {unknown}; choose from {list(columns)}")
    missing = [columns[t] for t in wanted if columns[t] not in ds.data_vars]
    if missing:
        raise FluxscapeError(f"{source}: target column(s) not in dataset: {', '.join(missing)}")

    idx, days = _period_index(ds, starts, ends, source)
    period_days = (ends - starts).days.to_numpy(dtype=float)
    n = len(starts)
    out: dict[str, object] = {
        "site": _site(ds),
        "time": starts,
    }
    for t in wanted:
        col = columns[t]
        good = good_quality(ds, col, min_qc=min_qc).values
        mean, count, gdays = _aggregate(ds[col].values.astype(float), good, idx, days, n)
        coverage = np.minimum(gdays / period_days, 1.0)
        out[t] = np.where(coverage >= min_coverage, mean, np.nan)
        out[f"{t}_n_valid"] = count
        out[f"{t}_coverage"] = coverage
    table = pd.DataFrame(out)
    table.attrs = {
        "source_file": source,
        "partition": partition.upper(),
        "min_qc": min_qc,
        "min_coverage": min_coverage,
        "columns": {t: columns[t] for t in wanted},
        "units": {t: TARGET_UNITS[t] for t in wanted},
    }
    return table


def aggregate_drivers(
    ds: xr.Dataset,
    variables: list[str],
    periods: pd.DatetimeIndex,
    min_coverage: float = 0.5,
    period_end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Day-weighted period means of tower meteorology (e.g. TA_F, SW_IN_F, VPD_F, P_F).

    Same time logic as :func:`build_targets` but without QC filtering (``*_F`` columns are
    gap-filled); a period with finite data on fewer than ``min_coverage`` of its days is NaN.
    Returns a DataFrame with ``site``, ``time`` and one column per variable (source units).
    """
    source = _check(ds)
    missing = [v for v in variables if v not in ds.data_vars]
    if missing:
        raise FluxscapeError(f"{source}: driver column(s) not in dataset: {', '.join(missing)}")
    starts, ends = period_bounds(periods, period_end)
    idx, days = _period_index(ds, starts, ends, source)
    period_days = (ends - starts).days.to_numpy(dtype=float)
    out: dict[str, object] = {"site": _site(ds), "time": starts}
    for v in variables:
        values = ds[v].values.astype(float)
        mean, _, gdays = _aggregate(values, np.isfinite(values), idx, days, len(starts))
        out[v] = np.where(gdays / period_days >= min_coverage, mean, np.nan)
    return pd.DataFrame(out)


def training_rows(
    table: pd.DataFrame, target: str, features: list[str] | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows usable to train ``target``: finite target (and finite features when given).

    Returns ``(rows, counts)`` with counts ``{"rows": all, "missing_target": n,
    "missing_features": n, "kept": n}`` so that the caller can report what was dropped.
    """
    if target not in table.columns:
        raise FluxscapeError(f"training table has no target column {target!r}")
    ok_target = np.isfinite(table[target].to_numpy(dtype=float))
    ok_features = np.ones(len(table), bool)
    if features:
        missing = [f for f in features if f not in table.columns]
        if missing:
            raise FluxscapeError(f"training table has no feature column(s) {missing}")
        ok_features = np.isfinite(table[features].to_numpy(dtype=float)).all(axis=1)
    keep = ok_target & ok_features
    counts = {
        "rows": len(table),
        "missing_target": int((~ok_target).sum()),
        "missing_features": int((ok_target & ~ok_features).sum()),
        "kept": int(keep.sum()),
    }
    return table.loc[keep].reset_index(drop=True), counts


def site_table(
    ds: xr.Dataset,
    drivers: list[str],
    periods: pd.DatetimeIndex | None = None,
    **target_options,
) -> pd.DataFrame:
    """Targets and tower meteorology of one site on one time axis (default: the file's own).

    ``drivers`` are meteorological columns of the same file (e.g. TA_F, SW_IN_F, VPD_F, P_F);
    flux columns are refused (they would leak the target). ``target_options`` go to
    :func:`build_targets`. Returns ``site``, ``time``, the targets with their ``_n_valid`` and
    ``_coverage`` columns, then the drivers.
    """
    from fluxscape.ml.models import leaking_features

    leaks = leaking_features(drivers)
    if leaks:
        raise FluxscapeError(f"drivers include tower flux columns (leakage): {leaks}")
    if periods is None:
        periods = pd.DatetimeIndex(ds["time"].values)
    t = build_targets(ds, periods, **target_options)
    d = aggregate_drivers(ds, drivers, periods, period_end=target_options.get("period_end"))
    out = t.merge(d, on=["site", "time"], how="left")
    out.attrs = t.attrs
    return out
