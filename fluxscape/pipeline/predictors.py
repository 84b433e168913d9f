"""Predictor fields for the flux models: the pieces :mod:`fluxscape.pipeline.features`
(the one feature builder, for towers and tiles alike) puts together.

All on the product's time axis (period starts ``times``, ends ``ends``):

* gap filling of vi series in time (:func:`fill_time_gaps`);
* gridded meteorology (files of a source giving ``meteorology``), averaged over
  each period on its own grid first and then interpolated bilinearly to the pixel centres (so
  memory follows the block and the number of periods, not the length of the daily record);
* the season: sine and cosine of the period's middle day of year;
* phenology: where each period falls in the growing season, from a phenology store's sos/eos;
* land cover: one-hot ``lc_<code>`` features of class codes (the codes themselves are read
  through the land-cover source, see :func:`fluxscape.pipeline.features.land_cover_codes`).

NaN where a predictor is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import remote
from fluxscape.readers.registry import get_reader, open_file

SEASON_FEATURES = ("doy_sin", "doy_cos")


def period_of_days(days: pd.DatetimeIndex, times: pd.DatetimeIndex, ends) -> np.ndarray:
    """Index of the period each day falls in (-1 outside every period)."""
    days = pd.DatetimeIndex(days)
    pos = np.searchsorted(times.values, days.values, side="right") - 1
    ok = (pos >= 0) & (days.values < np.asarray(ends.values)[np.clip(pos, 0, None)])
    return np.where(ok, pos, -1)


def _middle_days(times: pd.DatetimeIndex, ends: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The middle of each period [times[i], ends[i])."""
    return pd.DatetimeIndex(times) + (pd.DatetimeIndex(ends) - pd.DatetimeIndex(times)) / 2


def season_features(times: pd.DatetimeIndex, ends: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """``doy_sin``/``doy_cos`` of each period's middle day (1-D over time)."""
    mid = _middle_days(times, ends)
    angle = 2 * np.pi * (np.asarray(mid.dayofyear, float) - 1) / 365.25
    return {"doy_sin": np.sin(angle), "doy_cos": np.cos(angle)}


def meteo_periods(
    paths: Sequence[str],
    times: pd.DatetimeIndex,
    ends: pd.DatetimeIndex,
    variables: Sequence[str],
    bbox: tuple[float, float, float, float] | None = None,
    reader: str | None = None,
) -> xr.Dataset:
    """Period means of the meteorology in ``paths`` (opened by the ``reader`` source: dims
    time, lat, lon) on the files' own grid, cut to ``bbox`` (W, S, E, N, degrees) plus one
    cell; a period without any day of data is NaN. FluxscapeError when a variable is in none
    of the files. Without ``reader``, each file's source is detected."""
    open_meteo = get_reader(reader).open if reader else open_file
    parts = []
    for path in paths:
        ds = open_meteo(remote.local(path))  # a URL: its staged copy
        if bbox is not None:
            w, s, e, n = bbox
            dlat = float(np.abs(np.diff(ds["lat"].values[:2]))[0]) if ds.sizes["lat"] > 1 else 1
            dlon = float(np.abs(np.diff(ds["lon"].values[:2]))[0]) if ds.sizes["lon"] > 1 else 1
            ds = ds.sel(
                lat=slice(s - 1.5 * dlat, n + 1.5 * dlat), lon=slice(w - 1.5 * dlon, e + 1.5 * dlon)
            )
        missing = [v for v in variables if v not in ds]
        if missing:
            raise FluxscapeError(f"{path}: meteorology lacks {missing} (has {list(ds.data_vars)})")
        label = period_of_days(pd.DatetimeIndex(ds["time"].values), times, ends)
        keep = label >= 0
        if not keep.any():
            continue
        sub = ds[list(variables)].isel(time=np.flatnonzero(keep)).load()
        sub = sub.assign_coords(period=("time", label[keep]))
        parts.append((sub.groupby("period").sum("time"), sub["period"].to_series().value_counts()))
    if not parts:
        raise FluxscapeError(f"no meteorology in {list(paths)[:3]} covers the period")
    sums = None
    counts = np.zeros(len(times))
    for summed, count in parts:
        summed = summed.reindex(period=np.arange(len(times)), fill_value=0.0)
        sums = summed if sums is None else sums + summed
        counts[count.index.to_numpy()] += count.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / xr.DataArray(np.where(counts > 0, counts, np.nan), dims="period")
    return mean.rename(period="time").assign_coords(time=times.values)


def meteo_at(periods: xr.Dataset, lon, lat) -> xr.Dataset:
    """Bilinear interpolation of period-mean meteorology (from :func:`meteo_periods`) to
    points: ``lon``/``lat`` 1-D arrays of pixel centres (a grid, dims y/x) or DataArrays sharing
    a ``site`` dim (points). Points outside the meteorology's grid are NaN; so are all points
    when the grid was cut to fewer than two cells a side (a tile beyond the files' extent, e.g.
    the corners of a projected grid around a lon/lat region)."""
    if periods.sizes.get("lat", 0) < 2 or periods.sizes.get("lon", 0) < 2:
        shape = {d: s for d, s in periods.sizes.items() if d not in ("lat", "lon")}
        target = xr.broadcast(xr.DataArray(lon), xr.DataArray(lat))[0]
        nan = xr.full_like(target, np.nan, dtype="float64")
        return xr.Dataset(
            {
                v: nan.expand_dims({d: periods[d].values for d in shape}).copy()
                for v in periods.data_vars
            }
        )
    return periods.interp(lon=lon, lat=lat, method="linear")


def store_periods(da: xr.DataArray, times: pd.DatetimeIndex, ends: pd.DatetimeIndex) -> np.ndarray:
    """A store variable on its own time axis (``time``, y, x; e.g. an 8-day ``lst`` store) as
    the mean of its finite values per product period [times[i], ends[i]) (each of its steps
    counted in the period holding the step's start): float64 (len(times), y, x), NaN where a
    period has none."""
    label = period_of_days(pd.DatetimeIndex(da["time"].values), times, ends)
    values = np.asarray(da.transpose("time", ...).values, float)
    total = np.zeros((len(times), *values.shape[1:]))
    count = np.zeros_like(total)
    for step, period in enumerate(label):
        if period >= 0:
            ok = np.isfinite(values[step])
            total[period] += np.where(ok, values[step], 0.0)
            count[period] += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def static_at(
    paths: Sequence[str], reader: str, variable: str, lon: np.ndarray, lat: np.ndarray
) -> np.ndarray:
    """A static field (e.g. ``elevation`` of a DEM source: dims lat, lon ascending) at the
    points ``lon``/``lat`` (degrees, any shape), bilinear between the files' cell centres:
    each file is cut to the points' bounds plus a cell and interpolated; the first file
    giving a finite value at a point wins; NaN where none does."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    out = np.full(lon.shape, np.nan)
    open_static = get_reader(reader).open
    x = xr.DataArray(lon.reshape(-1), dims="point")
    y = xr.DataArray(lat.reshape(-1), dims="point")
    for path in paths:
        ds = open_static(remote.local(path))  # a URL: its staged copy
        if variable not in ds:
            raise FluxscapeError(f"{path}: gives no {variable} (has {list(ds.data_vars)})")
        field = ds[variable]
        dlat = float(np.abs(np.diff(field["lat"].values[:2]))[0]) if field.sizes["lat"] > 1 else 1
        dlon = float(np.abs(np.diff(field["lon"].values[:2]))[0]) if field.sizes["lon"] > 1 else 1
        field = field.sel(
            lat=slice(lat.min() - dlat, lat.max() + dlat),
            lon=slice(lon.min() - dlon, lon.max() + dlon),
        )
        if field.sizes["lat"] < 2 or field.sizes["lon"] < 2:
            continue
        values = field.load().interp(lon=x, lat=y, method="linear").values.reshape(lon.shape)
        fill = np.isnan(out) & np.isfinite(values)
        out[fill] = values[fill]
        if np.isfinite(out).all():
            break
    return out


def fill_time_gaps(da: xr.DataArray) -> xr.DataArray:
    """Fill a composite series' gaps (periods without a usable observation) by linear
    interpolation in time, and the ends by the nearest value, per pixel: the gap-filled
    predictors FLUXCOM-style upscaling expects. Pixels with no value at all stay NaN."""
    filled = da.interpolate_na(dim="time", method="linear", use_coordinate=False)
    return filled.interpolate_na(
        dim="time", method="nearest", use_coordinate=False, fill_value="extrapolate"
    )


PHENOLOGY_FEATURES = ("days_since_sos", "season_fraction")


def phenology_features(
    sos: xr.DataArray, eos: xr.DataArray, times: pd.DatetimeIndex, ends: pd.DatetimeIndex
) -> dict[str, xr.DataArray]:
    """Where each period's middle day falls in the growing season, from a phenology store.

    ``sos``/``eos``: day of year, dims (year, season, *space). For each period the season is
    the latest one of that year that started on or before the middle day (season 1 before
    the first start). Returns ``days_since_sos`` (days, negative before the start) and
    ``season_fraction`` ((day - sos) / (eos - sos) clipped to [0, 1]), dims (time, *space);
    NaN where the pixel has no season that year."""
    mid = _middle_days(times, ends)
    doy = xr.DataArray(np.asarray(mid.dayofyear, float), dims="time")
    years = xr.DataArray(np.asarray(mid.year), dims="time")
    s = sos.sel(year=years)  # (time, season, *space)
    e = eos.sel(year=years)
    started = (s <= doy).fillna(False)
    n_seasons = s.sizes["season"]
    index = xr.DataArray(np.arange(n_seasons), dims="season")
    latest = xr.where(started, index, -1).max("season").clip(min=0)
    s_pick = s.isel(season=latest)
    e_pick = e.isel(season=latest)
    since = doy - s_pick
    fraction = (since / (e_pick - s_pick)).clip(0, 1)
    drop = [c for c in ("year", "season") if c in since.coords]
    return {
        "days_since_sos": since.drop_vars(drop).transpose("time", ...),
        "season_fraction": fraction.drop_vars(drop).transpose("time", ...),
    }


def land_cover_features(codes: np.ndarray, classes: Sequence[int]) -> dict[str, np.ndarray]:
    """One-hot ``lc_<code>`` features (float64, same shape as ``codes``) for ``classes`` (the
    classes found at the towers, fixed in the model card); a code not in ``classes`` or -1
    (no class) is all zero."""
    codes = np.asarray(codes)
    return {f"lc_{c}": (codes == c).astype("float64") for c in classes}
