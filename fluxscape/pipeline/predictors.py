"""Predictor fields for the flux models, on a tile or at tower points.

Three kinds of predictor, all on the product's time axis (period starts ``times``):

* variables of a ``vi`` store of the run (same grid and time axis), read at pixels;
* gridded meteorology (``cf_meteo`` files), averaged over each period on its own grid first
  and then interpolated bilinearly to the pixel centres (so memory follows the tile and the
  number of periods, not the length of the daily record);
* the season: sine and cosine of the period's middle day of year;
* the static land cover (MODIS MCD12Q1 tiles): the class of the nearest 500 m pixel as
  one-hot ``lc_<code>`` features, the same lookup (:func:`land_cover_at`) for towers and tiles.

Every function returns float32/float64 arrays with dims ``(time, y, x)`` for tiles or a
DataFrame indexed by (site, time) for points; NaN where a predictor is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import Transformer

from fluxscape.errors import FluxscapeError
from fluxscape.readers.cf_meteo import open_cf_meteo
from fluxscape.readers.modis_hdf4 import (
    GRID_X_MIN_M,
    GRID_Y_MAX_M,
    SINUSOIDAL_PROJ,
    TILE_SIZE_M,
    open_modis_tile,
    parse_filename,
    read_grids,
)

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
) -> xr.Dataset:
    """Period means of the meteorology in ``paths`` on the files' own grid, dims (time, lat,
    lon), cut to ``bbox`` (W, S, E, N, degrees) plus one cell; a period without any day of
    data is NaN. FluxscapeError when a variable is in none of the files."""
    parts = []
    for path in paths:
        ds = open_cf_meteo(path)
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
    a ``site`` dim (points)."""
    return periods.interp(lon=lon, lat=lat, method="linear")


def store_at_points(
    store, variables: Sequence[str], lon: np.ndarray, lat: np.ndarray, window: int = 1
) -> xr.Dataset:
    """Variables of a product store at points (nearest pixel, or the mean of a ``window`` x
    ``window`` block around it), dims (site, time); the pixel centre in ``pixel_x/pixel_y``."""
    ds = xr.open_zarr(store, consolidated=True)[list(variables)]
    x = ds["x"].values
    y = ds["y"].values
    col = np.abs(x[None, :] - np.asarray(lon)[:, None]).argmin(axis=1)
    row = np.abs(y[None, :] - np.asarray(lat)[:, None]).argmin(axis=1)
    half = window // 2
    blocks = []
    for r, c in zip(row, col, strict=True):
        block = ds.isel(
            y=slice(max(r - half, 0), r + half + 1), x=slice(max(c - half, 0), c + half + 1)
        )
        blocks.append(block.mean(("y", "x"), skipna=True).load())
    out = xr.concat(blocks, dim="site")
    return out.assign_coords(pixel_x=("site", x[col]), pixel_y=("site", y[row]))


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


def land_cover_files(paths: Sequence[str], key: str = "land_cover") -> dict[tuple[int, int], str]:
    """The MCD12Q1 file of each tile (h, v) among ``paths``: the latest year, since the flux
    models use the land cover as a static map (FLUXCOM's plant functional types). Other files
    are ignored; FluxscapeError naming ``key`` when there is no MCD12Q1 file at all."""
    latest: dict[tuple[int, int], tuple[int, str]] = {}
    for path in paths:
        meta = parse_filename(path)
        if not meta or meta["product"] != "MCD12Q1":
            continue
        tile = (meta["h"], meta["v"])
        year = int(meta["start"].year)
        if tile not in latest or year > latest[tile][0]:
            latest[tile] = (year, str(path))
    if not latest:
        shown = [str(p) for p in list(paths)[:3]]
        raise FluxscapeError(
            f"{key}: no MCD12Q1 file (MCD12Q1.AYYYY001.hHHvVV.061.*.hdf) among {len(paths)} "
            f"file(s) {shown}"
        )
    return {tile: path for tile, (_, path) in latest.items()}


def land_cover_at(
    files: dict[tuple[int, int], str], layer: str, lon: np.ndarray, lat: np.ndarray
) -> np.ndarray:
    """Land-cover class (``layer`` of MCD12Q1: ``LC_Type1`` IGBP or ``LC_Type5`` PFT) of the
    500 m pixel holding each point (nearest neighbour; lon/lat in degrees, any shape).
    ``files`` from :func:`land_cover_files`. Returns int16 codes of the same shape, -1 where
    no tile covers the point or the pixel is fill."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    x, y = Transformer.from_crs("EPSG:4326", SINUSOIDAL_PROJ, always_xy=True).transform(
        lon.ravel(), lat.ravel()
    )
    x, y = np.asarray(x), np.asarray(y)
    h = np.floor((x - GRID_X_MIN_M) / TILE_SIZE_M).astype(int)
    v = np.floor((GRID_Y_MAX_M - y) / TILE_SIZE_M).astype(int)
    out = np.full(x.shape, -1, np.int16)
    for (th, tv), path in files.items():
        sel = np.flatnonzero((h == th) & (v == tv))
        if not sel.size:
            continue
        grid = read_grids(path)[0]
        (ulx, uly), (lrx, lry) = grid.upper_left, grid.lower_right
        col = np.floor((x[sel] - ulx) / ((lrx - ulx) / grid.xdim)).astype(int)
        row = np.floor((uly - y[sel]) / ((uly - lry) / grid.ydim)).astype(int)
        col, row = np.clip(col, 0, grid.xdim - 1), np.clip(row, 0, grid.ydim - 1)
        r0, c0 = int(row.min()), int(col.min())
        roi = (slice(r0, int(row.max()) + 1), slice(c0, int(col.max()) + 1))
        values = open_modis_tile(path, [layer], roi=roi)[layer].values
        picked = values[row - r0, col - c0]
        out[sel] = np.where(np.isfinite(picked), picked, -1).astype(np.int16)
    return out.reshape(lon.shape)


def land_cover_features(codes: np.ndarray, classes: Sequence[int]) -> dict[str, np.ndarray]:
    """One-hot ``lc_<code>`` features (float64, same shape as ``codes``) for ``classes`` (the
    classes found at the towers, fixed in the model card); a code not in ``classes`` or -1
    (no class) is all zero."""
    codes = np.asarray(codes)
    return {f"lc_{c}": (codes == c).astype("float64") for c in classes}
