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

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import remote
from fluxscape.readers.granule_cache import file_stamp
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


@functools.lru_cache(maxsize=32)
def _open_meteo(reader: str | None, path: str, size: int, mtime_ns: int) -> xr.Dataset:
    """The meteorology file ``path`` opened (lazily) by the ``reader`` source (detected when
    None), once per process and file version (``size``/``mtime_ns``, from
    :func:`~fluxscape.readers.granule_cache.file_stamp`, are the key: a changed file is
    opened again). Every tile and tower of a run cuts its window from the same files, and
    opening and decoding them was most of the meteorology's cost."""
    return get_reader(reader).open(path) if reader else open_file(path)


def _period_sums(values: np.ndarray, label: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums over the leading (time) axis of ``values`` per period ``label`` (0..n-1; NaN
    counted as 0, as xarray's skipna sum) and the number of days per period (NaN days
    included): ``(sums of values' dtype, shape (n, ...); counts, shape (n,))``. Days of
    one period are added in their order in ``values`` (a stable sort), so the float32 sums
    equal xarray's ``groupby("period").sum()`` bit for bit. Written with numpy because
    xarray's groupby (without flox) builds a Dataset per group, most of its cost here."""
    order = np.argsort(label, kind="stable")
    ordered = label[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    data = values[order]
    data = np.where(np.isnan(data), data.dtype.type(0), data)
    sums = np.zeros((n, *values.shape[1:]), dtype=values.dtype)
    # np.sum over the leading axis adds day after day as xarray's sum does; np.add.reduceat
    # sums in another order (a different float32 rounding), hence one sum per period
    for start, stop in zip(starts, [*starts[1:], len(ordered)], strict=True):
        sums[ordered[start]] = data[start:stop].sum(axis=0)
    return sums, np.bincount(label, minlength=n).astype(float)


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
    of the files. Without ``reader``, each file's source is detected. A day whose value is
    NaN adds 0 to its period's sum but counts among the period's days. Each file is opened
    once per process and file version (:func:`_open_meteo`)."""
    sums = None
    counts = np.zeros(len(times))
    for path in paths:
        local = remote.local(path)  # a URL: its staged copy
        ds = _open_meteo(reader, *file_stamp(local))
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
        summed = {}
        for v in variables:
            da = sub[v].transpose("time", ...)
            total, count = _period_sums(da.values, label[keep], len(times))
            coords = {d: da[d].values for d in da.dims[1:]}
            summed[v] = xr.DataArray(
                total, dims=("period", *da.dims[1:]), coords=coords, attrs=da.attrs
            )
        summed = xr.Dataset(summed, attrs=sub.attrs)
        # files on different grids add where they overlap (xarray's inner join), as before
        sums = summed if sums is None else sums + summed
        counts += count
    if sums is None:
        raise FluxscapeError(f"no meteorology in {list(paths)[:3]} covers the period")
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


def _fill_leading_axis(values: np.ndarray) -> np.ndarray:
    """:func:`fill_time_gaps` on a numpy array whose leading axis is time (any dtype of
    float; computed in float64, returned in the input's dtype)."""
    n = values.shape[0]
    flat = values.reshape(n, -1)
    valid = ~np.isnan(flat)
    if valid.all() or n == 0:
        return values.copy()
    steps = np.arange(n)[:, None]
    # the last valid step at or before each step, and the first at or after it (n: none)
    before = np.maximum.accumulate(np.where(valid, steps, -1), axis=0)
    after = np.minimum.accumulate(np.where(valid, steps, n)[::-1], axis=0)[::-1]
    columns = np.arange(flat.shape[1])[None, :]
    y0 = flat[np.clip(before, 0, n - 1), columns].astype("float64")
    y1 = flat[np.clip(after, 0, n - 1), columns].astype("float64")
    x = np.broadcast_to(steps, flat.shape).astype("float64")
    x0, x1 = before.astype("float64"), after.astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        # np.interp's own arithmetic (numpy compiled_base.c): slope from the left point,
        # the right point where that gives NaN
        slope = (y1 - y0) / (x1 - x0)
        linear = slope * (x - x0) + y0
        again = np.isnan(linear)
        linear[again] = slope[again] * (x[again] - x1[again]) + y1[again]
        flat_again = again & np.isnan(linear) & (y0 == y1)
        linear[flat_again] = y0[flat_again]
    out = flat.copy()
    # xarray leaves a series with fewer than two values as it is (its "all NaN but one"
    # fast track): a pixel observed once keeps NaN in its other periods; kept so
    many = valid.sum(axis=0) >= 2
    valid = valid | ~many[None, :]
    inner = ~valid & (before >= 0) & (after < n)
    out[inner] = linear[inner]
    head = ~valid & (before < 0) & (after < n)  # before the first value: the first value
    out[head] = y1[head]
    tail = ~valid & (before >= 0) & (after >= n)  # after the last value: the last value
    out[tail] = y0[tail]
    return out.reshape(values.shape)


def fill_time_gaps(da: xr.DataArray) -> xr.DataArray:
    """Fill a composite series' gaps (periods without a usable observation) by linear
    interpolation in time, and the ends by the nearest value, per pixel: the gap-filled
    predictors FLUXCOM-style upscaling expects. Pixels with no value at all stay NaN; so do
    the other periods of a pixel with one value only (as xarray has it). ``da``: any dims
    including ``time`` (steps taken as equally spaced); the same dims, coordinates and
    attributes out. The values equal xarray's ``interpolate_na`` (linear, then nearest with
    extrapolation, ``use_coordinate=False``) bit for bit; written with numpy because xarray
    interpolates pixel by pixel (a Python call per pixel)."""
    axis = da.get_axis_num("time")
    values = np.moveaxis(np.asarray(da.values), axis, 0)
    return da.copy(data=np.moveaxis(_fill_leading_axis(values), 0, axis))


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
