"""One feature builder for the flux models: training at the towers and prediction on tiles.

:func:`block_features` builds the feature Dataset (dims time, y, x) of a block of the product
grid (region rows/cols slices and the block's GeoBox) from a picklable :class:`FeatureSpec`.
A tile task calls it with its tile; the driver calls it with the 1 x 1 block of the target-grid
pixel that holds each tower (:func:`tower_pixels`). So a tower's training features are, by
construction, the features of its pixel on the map:

* vi variables of the ``source`` store (and the phenology store's sos/eos): with ``window`` > 1
  the nanmean over the ``window`` x ``window`` block around each pixel, read with a halo of
  ``window // 2`` pixels around the block (clipped to the region) and cropped after the moving
  mean; then gaps filled in time;
* meteorology (files of a ``meteorology`` source, opened through the reader registry):
  period means on the files' own grid, interpolated bilinearly to the pixel centres;
* layers of a raster source (``lai``, ``fpar`` of MCD15A2H, ...): per period, the mean of
  the usable observations of the granules starting in it, read onto the block through the
  source (nearest pixel), then gaps filled in time;
* land surface temperature: the ``lst`` variable (K) of an ``lst`` store on the product grid
  (its own step, e.g. 8 days), averaged per product period, with the ``window``, gaps filled
  in time;
* elevation (files of a source giving ``elevation``: a DEM), static, interpolated bilinearly
  to the pixel centres;
* the season (sin/cos of each period's middle day of year), the same for every pixel;
* land cover: the ``land_cover`` layer of the latest land-cover granule of each native grid,
  read onto the block through its source (:func:`~fluxscape.pipeline.inputs.read_onto_tile`,
  nearest pixel to each pixel centre), one-hot for the classes fixed in the model card.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from fluxscape.pipeline import predictors as pred
from fluxscape.pipeline.inputs import TileInputs, read_onto_tile
from fluxscape.readers.ontile import Granule, tile_lonlat

#: The feature of a DEM input (m above sea level).
ELEVATION = "elevation"
#: The feature of an lst store (K, period mean of daytime LST).
LST = "lst"


@dataclass(frozen=True)
class FeatureSpec:
    """Everything :func:`block_features` needs (picklable, shipped with every tile task).

    ``times``/``ends``: the product periods [start, end); ``source``: the vi store (on the
    product grid) and ``predictors`` its variables; ``meteo_files`` of reader ``meteo_reader``
    with ``meteo_variables``; ``lst``: an lst store (on the product grid) giving ``lst`` (K);
    ``elevation_files`` of reader ``elevation_reader`` (a DEM, m);
    ``phenology``: a phenology store (on the product grid) giving
    ``days_since_sos`` and ``season_fraction``; ``seasonal``: ``doy_sin``/``doy_cos``;
    ``land_cover_granules`` (one per native grid) of reader ``land_cover_reader`` read as
    layer ``land_cover_layer`` by ``land_cover_resampling`` (``nearest`` source pixel or the
    ``mode`` of those under the pixel), one-hot for ``land_cover_classes``; ``window``: the pixel
    window of the vi and phenology features; ``features``: the output variables in order."""

    times: tuple
    ends: tuple
    source: str
    predictors: tuple[str, ...]
    features: tuple[str, ...]
    window: int = 1
    meteo_files: tuple[str, ...] = ()
    meteo_variables: tuple[str, ...] = ()
    meteo_reader: str = ""
    layers: tuple[str, ...] = ()
    layers_reader: str = ""
    layers_granules: tuple[Granule, ...] = ()
    lst: str | None = None
    elevation_files: tuple[str, ...] = ()
    elevation_reader: str = ""
    phenology: str | None = None
    seasonal: bool = True
    land_cover_granules: tuple[Granule, ...] = ()
    land_cover_reader: str = ""
    land_cover_layer: str = "LC_Type1"
    land_cover_classes: tuple[int, ...] = ()
    land_cover_resampling: str = "nearest"


def feature_names(
    predictors: Sequence[str],
    meteo_variables: Sequence[str] = (),
    phenology: bool = False,
    seasonal: bool = True,
    land_cover_classes: Sequence[int] = (),
    layers: Sequence[str] = (),
    elevation: bool = False,
    lst: bool = False,
) -> list[str]:
    """The model features in order: vi variables, meteorology, source layers (LAI, FPAR),
    ``lst``, ``elevation``, phenology, the season, then one ``lc_<code>`` per land-cover
    class."""
    names = list(predictors) + list(meteo_variables) + list(layers)
    if lst:
        names.append(LST)
    if elevation:
        names.append(ELEVATION)
    if phenology:
        names += list(pred.PHENOLOGY_FEATURES)
    if seasonal:
        names += list(pred.SEASON_FEATURES)
    return names + [f"lc_{c}" for c in land_cover_classes]


# --- towers on the grid -----------------------------------------------------------------------


def to_grid_crs(geobox: GeoBox, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """lon/lat points (degrees) as x, y in the ``geobox``'s CRS (pyproj)."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    if geobox.crs.geographic and geobox.crs.epsg == 4326:
        return lon, lat
    tr = Transformer.from_crs("EPSG:4326", geobox.crs.to_wkt(), always_xy=True)
    return tuple(np.asarray(v, float) for v in tr.transform(lon, lat))


def tower_pixels(
    geobox: GeoBox, lon: np.ndarray, lat: np.ndarray, nearest: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column of the ``geobox`` pixel holding each lon/lat point (degrees), and
    whether the point lies on the grid at all: the points are transformed to the grid's CRS
    (pyproj) and through the GeoBox's inverse affine. A point off the grid gets row/col -1,
    or with ``nearest`` the grid's pixel nearest to it (``inside`` still says it is off)."""
    x, y = to_grid_crs(geobox, lon, lat)
    col, row = ~geobox.affine * (x, y)
    row = np.floor(np.asarray(row, float))
    col = np.floor(np.asarray(col, float))
    ny, nx = geobox.shape.yx
    inside = np.isfinite(row) & np.isfinite(col) & (row >= 0) & (row < ny)
    inside &= (col >= 0) & (col < nx)
    if nearest:
        known = np.isfinite(row) & np.isfinite(col)
        row = np.where(known, np.clip(row, 0, ny - 1), -1)
        col = np.where(known, np.clip(col, 0, nx - 1), -1)
    else:
        row, col = np.where(inside, row, -1), np.where(inside, col, -1)
    return row.astype(np.int64), col.astype(np.int64), inside


# --- land cover through its source ------------------------------------------------------------


def latest_per_grid(granules: Iterable[Granule]) -> tuple[Granule, ...]:
    """The latest granule of each native grid (``Granule.key``): the land cover is a static
    map (FLUXCOM's plant functional types), so each grid's latest year is used for every
    period."""
    latest: dict = {}
    for g in granules:
        if g.key not in latest or (g.start, g.path) > (latest[g.key].start, latest[g.key].path):
            latest[g.key] = g
    return tuple(sorted(latest.values(), key=lambda g: g.path))


def land_cover_codes(
    reader: str,
    granules: Sequence[Granule],
    layer: str,
    geobox: GeoBox,
    record: TileInputs | None = None,
    resampling: str = "nearest",
) -> np.ndarray:
    """Land-cover class codes (int16, shape of ``geobox``) of ``layer`` read onto the block
    through the source: with ``nearest`` the source pixel nearest each pixel centre, with
    ``mode`` the most common class of the source pixels under each pixel (for a grid coarser
    than the source); -1 where no granule gives a class. Granules are used in order; the first
    one giving a class at a pixel wins."""
    record = record if record is not None else TileInputs()
    codes = np.full(geobox.shape.yx, -1, np.int16)
    meets = [g for g in granules if g.meets(geobox)]
    options = {"land_cover_layer": layer, "resampling": resampling}
    for _, out in read_onto_tile(reader, meets, geobox, {"land_cover"}, options, record):
        fill = (codes == -1) & np.asarray(out["usable"], bool)
        codes[fill] = np.asarray(out["land_cover"])[fill]
    return codes


# --- layers of a raster source, averaged per period ----------------------------------------


def layer_periods(
    reader: str,
    granules: Sequence[Granule],
    layers: Sequence[str],
    geobox: GeoBox,
    times: pd.DatetimeIndex,
    ends: pd.DatetimeIndex,
    record: TileInputs | None = None,
) -> dict[str, np.ndarray]:
    """Per period [times[i], ends[i]), the mean of the usable values of ``layers`` of the
    granules starting in it, read onto ``geobox`` through the source: float64 (time, y, x),
    NaN where a period has no usable observation."""
    record = record if record is not None else TileInputs()
    label = pred.period_of_days(pd.DatetimeIndex([g.start for g in granules]), times, ends)
    period = {g.path: int(t) for g, t in zip(granules, label, strict=True) if t >= 0}
    chosen = [g for g in granules if g.path in period and g.meets(geobox)]
    shape = (len(times), *geobox.shape.yx)
    total = {v: np.zeros(shape) for v in layers}
    count = np.zeros(shape)
    for g, out in read_onto_tile(reader, chosen, geobox, set(layers), {}, record):
        t = period[g.path]
        use = np.asarray(out["usable"], bool)
        for v in layers:
            total[v][t] += np.where(use, out[v], 0.0)
        count[t] += use
    with np.errstate(invalid="ignore", divide="ignore"):
        return {v: np.where(count > 0, total[v] / count, np.nan) for v in layers}


# --- the vi and phenology stores with a window ------------------------------------------------


def _halo(region: slice, size: int, half: int) -> slice:
    return slice(max(region.start - half, 0), min(region.stop + half, size))


def window_mean(values: np.ndarray, rows: slice, cols: slice, read: tuple, half: int):
    """The nanmean over the ``2 * half + 1`` square window around each pixel of the block
    ``rows``/``cols`` (region indices), from ``values`` (..., y, x) read over the region
    slices ``read`` (the block grown by ``half`` and clipped to the region): pixels outside
    the region count as missing. Summed in the same order for every pixel, so a pixel's value
    does not depend on the block it is computed in."""
    if half == 0:
        return values
    ny, nx = rows.stop - rows.start, cols.stop - cols.start
    pad = np.full((*values.shape[:-2], ny + 2 * half, nx + 2 * half), np.nan, "float64")
    r0, c0 = read[0].start - (rows.start - half), read[1].start - (cols.start - half)
    pad[..., r0 : r0 + values.shape[-2], c0 : c0 + values.shape[-1]] = values
    total = np.zeros((*values.shape[:-2], ny, nx))
    count = np.zeros_like(total)
    width = 2 * half + 1
    for dy in range(width):
        for dx in range(width):
            v = pad[..., dy : dy + ny, dx : dx + nx]
            ok = np.isfinite(v)
            total += np.where(ok, v, 0.0)
            count += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def store_block(store: str, variables: Sequence[str], rows: slice, cols: slice, window: int):
    """Variables of a product store (on the product grid) over the block, as float64 with
    dims (..., y, x) and the block's coordinates, each the ``window`` nanmean around the
    pixel (:func:`window_mean`)."""
    half = window // 2
    with xr.open_zarr(store, consolidated=True) as ds:
        read = (_halo(rows, ds.sizes["y"], half), _halo(cols, ds.sizes["x"], half))
        sub = ds[list(variables)].isel(y=read[0], x=read[1]).load()
        y = ds["y"].values[rows]
        x = ds["x"].values[cols]
    out = {}
    for v in variables:
        da = sub[v].astype("float64")
        data = window_mean(da.values, rows, cols, read, half)
        coords = {d: da[d].values for d in da.dims[:-2] if d in da.coords}
        out[v] = xr.DataArray(data, dims=da.dims, coords=coords | {"y": y, "x": x})
    return xr.Dataset(out)


# --- the feature builder ----------------------------------------------------------------------


def block_features(
    spec: FeatureSpec,
    rows: slice,
    cols: slice,
    geobox: GeoBox,
    record: TileInputs | None = None,
) -> xr.Dataset:
    """The feature Dataset (dims time, y, x; float64; variables in ``spec.features`` order)
    of the block ``rows``/``cols`` of the product grid, whose GeoBox is ``geobox``. Files the
    land cover read are added to ``record``."""
    times, ends = pd.DatetimeIndex(spec.times), pd.DatetimeIndex(spec.ends)
    vi = store_block(spec.source, spec.predictors, rows, cols, spec.window)
    feats = {v: pred.fill_time_gaps(vi[v].transpose("time", "y", "x")) for v in spec.predictors}
    base = xr.zeros_like(feats[spec.predictors[0]])
    if spec.meteo_files:
        lon, lat = tile_lonlat(geobox)
        bbox = (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))
        met = pred.meteo_periods(
            spec.meteo_files, times, ends, spec.meteo_variables, bbox, reader=spec.meteo_reader
        )
        met = pred.meteo_at(
            met, xr.DataArray(lon, dims=("y", "x")), xr.DataArray(lat, dims=("y", "x"))
        )
        for v in spec.meteo_variables:
            values = met[v].transpose("time", "y", "x").values.astype("float64")
            feats[v] = base.copy(data=values)
    if spec.layers:
        means = layer_periods(
            spec.layers_reader, spec.layers_granules, spec.layers, geobox, times, ends, record
        )
        for v in spec.layers:
            feats[v] = pred.fill_time_gaps(base.copy(data=means[v]))
    if spec.lst:
        block = store_block(spec.lst, [LST], rows, cols, spec.window)
        values = pred.store_periods(block[LST], times, ends)
        feats[LST] = pred.fill_time_gaps(base.copy(data=values))
    if spec.elevation_files:
        lon, lat = tile_lonlat(geobox)
        elev = pred.static_at(spec.elevation_files, spec.elevation_reader, ELEVATION, lon, lat)
        feats[ELEVATION] = base + xr.DataArray(elev, dims=("y", "x"))
    if spec.phenology:
        ph = store_block(spec.phenology, ["sos", "eos"], rows, cols, spec.window)
        phen = pred.phenology_features(ph["sos"], ph["eos"], times, ends)
        for k, v in phen.items():
            feats[k] = base.copy(data=v.transpose("time", "y", "x").values)
    if spec.seasonal:
        for name, values in pred.season_features(times, ends).items():
            feats[name] = base + xr.DataArray(values, dims="time")
    if spec.land_cover_classes:
        codes = land_cover_codes(
            spec.land_cover_reader,
            spec.land_cover_granules,
            spec.land_cover_layer,
            geobox,
            record,
            spec.land_cover_resampling,
        )
        for k, v in pred.land_cover_features(codes, spec.land_cover_classes).items():
            feats[k] = base + xr.DataArray(v, dims=("y", "x"))
    return xr.Dataset(feats)[list(spec.features)]
