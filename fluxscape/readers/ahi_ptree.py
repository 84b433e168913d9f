"""Himawari-8/9 AHI "L1 gridded data" from JAXA's P-Tree system (NetCDF4, equal lat/lon grid).

Format: JAXA EORC, "README for the Himawari L1 Gridded Data through the JAXA's P-Tree System"
(https://www.eorc.jaxa.jp/ptree/userguide.html). File names::

    NC_{H08|H09}_{YYYYMMDD}_{hhmm}_R21_FLDK.{pixels:05d}_{lines:05d}.nc   full disk
    NC_{H08|H09}_{YYYYMMDD}_{hhmm}_r14_FLDK.02701_02601.nc                Japan area (1 km)

Variables on dims ``(latitude, longitude)`` (1-D coordinates, latitudes north to south):
``albedo_01``..``albedo_06`` (reflectance x cos(SOZ), *not* reflectance), ``tbb_07``..
``tbb_16`` (K; the Japan product has fewer), ``SAZ``/``SAA``/``SOZ``/``SOA`` (degrees) and
``Hour`` (observation time, UT hours), stored as ``short`` with CF ``scale_factor``/
``add_offset``/``_FillValue``; ``start_time``/``end_time`` hold the observation period.
The grid size varies (2401 x 2401 at 5 km and 6001 x 6001 at 2 km up to Sept 2025, 2801/
7001 pixels after the October 2025 longitude extension, 2701 x 2601 for Japan, or a regional
subset), so it is always taken from the file's coordinates, never assumed.

No satpy reader exists for this product; netCDF4/xarray decode the CF packing and this
module adds the reflectance, the grid checks and the error messages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.magic import require
from fluxscape.readers.ontile import Granule
from fluxscape.readers.registry import FileSummary, ReaderSpec, register

SPEC_URL = "https://www.eorc.jaxa.jp/ptree/userguide.html"

FILENAME_RE = re.compile(
    r"NC_(?P<platform>H0[89])_(?P<date>\d{8})_(?P<time>\d{4})_(?P<product>[Rr]\d{2})_FLDK"
    r"\.(?P<pixels>\d{5})_(?P<lines>\d{5})\.nc"
)

ALBEDO = tuple(f"albedo_{b:02d}" for b in range(1, 7))
TBB = tuple(f"tbb_{b:02d}" for b in range(7, 17))
ANGLES = ("SAZ", "SAA", "SOZ", "SOA")
#: Variables every P-Tree L1 gridded file carries (full disk and Japan area alike).
REQUIRED = (*ALBEDO, "SOZ")
#: Central wavelengths (um) of AHI bands 1-16 (nominal, JMA).
WAVELENGTH = dict(
    zip(
        range(1, 17),
        (0.47, 0.51, 0.64, 0.86, 1.6, 2.3, 3.9, 6.2, 6.9, 7.3, 8.6, 9.6, 10.4, 11.2, 12.4, 13.3),
        strict=True,
    )
)
_TIME_UNITS_RE = re.compile(r"\s*(days|hours|minutes|seconds)\s+since\s+(.+)", re.IGNORECASE)
_DIMS = ("latitude", "longitude")


def parse_filename(path: str | Path) -> dict | None:
    """Platform, nominal time, product (``R21`` full disk, ``r14`` Japan) and the pixel and
    line numbers from a P-Tree file name; None if it does not follow the convention."""
    m = FILENAME_RE.fullmatch(Path(path).name)
    if not m:
        return None
    try:
        start = datetime.strptime(m["date"] + m["time"], "%Y%m%d%H%M")
    except ValueError:
        return None
    return {
        "platform": m["platform"],
        "start": start,
        "product": m["product"],
        "pixels": int(m["pixels"]),
        "lines": int(m["lines"]),
    }


def _open_raw(path: Path) -> xr.Dataset:
    """The file as xarray with CF scale/offset/fill decoded and times left as numbers."""
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ReaderError(f"{path}: empty file (0 bytes), not a P-Tree NetCDF file")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic[:4] not in (b"\x89HDF", b"CDF\x01", b"CDF\x02"):
        raise ReaderError(f"{path}: not a NetCDF/HDF5 file (starts with {magic[:4]!r})")
    try:
        return xr.open_dataset(path, engine="netcdf4", decode_times=False, mask_and_scale=True)
    except Exception as exc:  # netCDF4/HDF5 errors (truncated, corrupt) -> one clear line
        raise ReaderError(
            f"{path}: cannot open as NetCDF4, truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc


def _grid_axis(path: Path, ds: xr.Dataset, name: str) -> tuple[np.ndarray, float]:
    """A 1-D regular coordinate and its step (degrees), checked."""
    if name not in ds.variables or ds[name].dims != (name,):
        raise ReaderError(f"{path}: no 1-D coordinate variable {name!r}")
    try:
        values = np.asarray(ds[name].values, dtype=float)
    except Exception as exc:
        raise ReaderError(f"{path}: cannot read {name!r} ({exc})") from exc
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ReaderError(f"{path}: {name!r} has {values.size} values or non-finite ones")
    # Coordinates are float32 in real files: take the step from the end points and rebuild
    # the axis in float64 (origin to 1e-5 degree, step to 1e-6 degree), then check it.
    step = round((values[-1] - values[0]) / (values.size - 1), 6)
    rebuilt = round(values[0], 5) + step * np.arange(values.size)
    if step == 0 or np.max(np.abs(rebuilt - values)) > max(1e-4, 0.01 * abs(step)):
        raise ReaderError(
            f"{path}: {name!r} is not a regular grid (steps {np.diff(values).min():.6g}.."
            f"{np.diff(values).max():.6g} degrees)"
        )
    return rebuilt, step


def _decode_time(path: Path, ds: xr.Dataset, name: str) -> datetime | None:
    """A ``start_time``/``end_time`` variable ("<unit> since <date>") as a UTC datetime; None
    when the variable is absent; ReaderError when it cannot be parsed."""
    if name not in ds.variables:
        return None
    var = ds[name]
    units = str(var.attrs.get("units", ""))
    m = _TIME_UNITS_RE.fullmatch(units)
    if not m:
        raise ReaderError(f"{path}: {name} units {units!r} are not '<unit> since <date>'")
    try:
        ref = pd.Timestamp(m.group(2).strip().replace(" 0:0:0", " 00:00:00"))
    except (ValueError, TypeError) as exc:
        raise ReaderError(f"{path}: {name} units {units!r}: unparsable reference date") from exc
    if ref is pd.NaT or ref.tzinfo is not None and ref.utcoffset() != timedelta(0):
        raise ReaderError(f"{path}: {name} units {units!r}: unparsable reference date")
    values = np.asarray(var.values, dtype=float).ravel()
    if values.size == 0 or not np.isfinite(values[0]):
        raise ReaderError(f"{path}: {name} has no finite value")
    try:
        when = ref.tz_localize(None) + pd.to_timedelta(values[0], unit=m.group(1).lower())
    except (OverflowError, ValueError) as exc:
        raise ReaderError(f"{path}: {name} value {values[0]!r} is out of range") from exc
    if not 1970 <= when.year <= 2100:
        raise ReaderError(f"{path}: {name} decodes to {when}, outside 1970-2100")
    return when.round("ms").to_pydatetime()


def _times(path: Path, ds: xr.Dataset) -> tuple[datetime, datetime, datetime]:
    """(nominal start, observation start, observation end) in UTC."""
    start = _decode_time(path, ds, "start_time")
    end = _decode_time(path, ds, "end_time")
    meta = parse_filename(path)
    if meta is None and start is None:
        raise ReaderError(
            f"{path}: no start_time variable and no NC_H0x_YYYYMMDD_hhmm_... file name to "
            "take the observation time from"
        )
    nominal = meta["start"] if meta else start.replace(second=0, microsecond=0)
    start = start or nominal
    end = end or nominal + timedelta(minutes=10)
    if end < start:
        raise ReaderError(f"{path}: end_time {end} is before start_time {start}")
    return nominal, start, end


def granule_info(path: str | Path) -> dict:
    """Header-only summary of a P-Tree file: ``start``/``end`` (observation period, UTC),
    ``nominal_start``, ``platform``, ``bbox`` [W, S, E, N] degrees (pixel edges), ``pixels``,
    ``lines``, ``resolution_deg`` and the file's ``variables``."""
    path = Path(path)
    ds = _open_raw(path)
    try:
        lon, dlon = _grid_axis(path, ds, "longitude")
        lat, dlat = _grid_axis(path, ds, "latitude")
        nominal, start, end = _times(path, ds)
        variables = [v for v in ds.data_vars if v not in ("start_time", "end_time")]
    finally:
        ds.close()
    meta = parse_filename(path)
    half_x, half_y = abs(dlon) / 2, abs(dlat) / 2
    return {
        "path": str(path),
        "start": start,
        "end": end,
        "nominal_start": nominal,
        "platform": {"H08": "Himawari-8", "H09": "Himawari-9"}.get(meta["platform"], "")
        if meta
        else "",
        "bbox": [
            round(float(lon.min() - half_x), 6),
            round(float(lat.min() - half_y), 6),
            round(float(lon.max() + half_x), 6),
            round(float(lat.max() + half_y), 6),
        ],
        "pixels": int(lon.size),
        "lines": int(lat.size),
        "resolution_deg": round(abs(dlon), 6),
        "variables": variables,
    }


def _window(lon: np.ndarray, lat: np.ndarray, bbox: Sequence[float]) -> tuple[slice, slice]:
    w, s, e, n = (float(v) for v in bbox)
    tol = 1e-6  # degrees: a pixel centre on the bbox edge is inside
    cols = np.flatnonzero((lon >= w - tol) & (lon <= e + tol))
    rows = np.flatnonzero((lat >= s - tol) & (lat <= n + tol))
    if cols.size == 0 or rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def open_ptree(
    path: str | Path,
    variables: Sequence[str] | None = None,
    bbox: Sequence[float] | None = None,
) -> xr.Dataset:
    """Read a P-Tree Himawari L1 gridded NetCDF file.

    Parameters
    ----------
    path:
        ``NC_H0x_..._FLDK.<pixels>_<lines>.nc``.
    variables:
        Variables to return besides the mandatory ``albedo_01..06`` and ``SOZ``; default all
        of ``tbb_07..16``, ``SAZ``, ``SAA``, ``SOA`` and ``Hour`` that the file has.
    bbox:
        [W, S, E, N] degrees: read only the pixel centres inside it (large full-disk files).

    Returns
    -------
    xarray.Dataset
        Dims ``(y, x)`` with 1-D ``x`` = longitude (degrees east, pixel centres, west to east)
        and ``y`` = latitude (degrees north, as stored: north to south), both read from the
        file; ``spatial_ref`` carries EPSG:4326 (``crs_wkt``). Variables (float32, NaN for
        fill): ``albedo_01..06`` (reflectance x cos(SOZ), 0-1 as stored), ``reflectance_01..06``
        (= albedo / cos(SOZ), 0-1; NaN where the sun is below the horizon), ``tbb_*`` (K),
        ``SOZ``/``SOA``/``SAZ``/``SAA`` (degrees), ``Hour`` (UT hours) and
        ``observation_time`` (datetime64 per pixel from ``Hour`` and the date). Scalar
        coordinate ``time`` = nominal start (file name timeline); attributes
        ``observation_start_time``/``observation_end_time`` from ``start_time``/``end_time``.

    Raises
    ------
    ReaderError
        Empty, truncated or foreign file; missing mandatory variable; irregular grid or
        variable on other dims; unparsable times; every band all fill.
    """
    path = Path(path)
    raw = _open_raw(path)
    try:
        return _decode(path, raw, variables, bbox)
    finally:
        raw.close()


def _decode(path: Path, raw: xr.Dataset, variables, bbox) -> xr.Dataset:
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_coords

    lon, dlon = _grid_axis(path, raw, "longitude")
    lat, dlat = _grid_axis(path, raw, "latitude")
    missing = [v for v in REQUIRED if v not in raw.data_vars]
    if missing:
        raise ReaderError(
            f"{path}: missing variable(s) {', '.join(missing)}; a P-Tree L1 gridded file has "
            f"albedo_01..albedo_06 and SOZ (it has {', '.join(sorted(raw.data_vars))})"
        )
    optional = [v for v in (*TBB, "SAZ", "SAA", "SOA", "Hour") if v in raw.data_vars]
    if variables is not None:
        unknown = [v for v in variables if v not in raw.data_vars]
        if unknown:
            raise ReaderError(f"{path}: no variable(s) {', '.join(unknown)} in file")
        optional = [v for v in variables if v not in REQUIRED]
    names = [*REQUIRED, *optional]
    for name in names:
        if raw[name].dims != _DIMS:
            raise ReaderError(
                f"{path}: {name} has dims {raw[name].dims}, expected {_DIMS} "
                f"({lat.size} x {lon.size})"
            )
    nominal, start, end = _times(path, raw)
    rows, cols = (slice(None), slice(None)) if bbox is None else _window(lon, lat, bbox)
    lon, lat = lon[cols], lat[rows]
    if lon.size == 0 or lat.size == 0:
        raise ReaderError(f"{path}: no pixel centre inside bbox {list(bbox)}")
    try:
        sub = raw[names].isel(latitude=rows, longitude=cols).load()
    except Exception as exc:  # HDF5 read errors in a damaged file
        raise ReaderError(f"{path}: cannot read data ({type(exc).__name__}: {exc})") from exc
    bands = [v for v in names if v.startswith(("albedo_", "tbb_"))]
    if all(not np.isfinite(sub[v].values).any() for v in bands):
        raise ReaderError(f"{path}: every albedo/tbb value is fill (_FillValue): no data")

    x0 = lon[0] - dlon / 2
    y0 = lat[0] - dlat / 2
    from affine import Affine

    gbox = GeoBox((lat.size, lon.size), Affine(dlon, 0.0, x0, 0.0, dlat, y0), "EPSG:4326")
    coords = xr_coords(gbox, crs_coord_name="spatial_ref")
    ds = xr.Dataset(coords={"spatial_ref": coords["spatial_ref"]})
    ds = ds.assign_coords(
        x=("x", lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
        y=("y", lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
    )
    soz = sub["SOZ"].values.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.cos(np.radians(soz))
        mu = np.where(mu > 0, mu, np.nan).astype(np.float32)
    for name in names:
        arr = sub[name]
        values = arr.values.astype(np.float32)
        attrs = {"long_name": str(arr.attrs.get("long_name", name)), "grid_mapping": "spatial_ref"}
        if name.startswith("albedo_"):
            band = int(name[-2:])
            attrs.update(units="1", wavelength_um=WAVELENGTH[band])
            attrs["long_name"] = (
                f"AHI band {band:02d} ({WAVELENGTH[band]} um) albedo = TOA reflectance x cos(SOZ)"
            )
            ds[name] = (("y", "x"), values, attrs)
            ds[f"reflectance_{band:02d}"] = (
                ("y", "x"),
                values / mu,
                {
                    "units": "1",
                    "standard_name": "toa_bidirectional_reflectance",
                    "long_name": f"AHI band {band:02d} ({WAVELENGTH[band]} um) TOA reflectance "
                    "= albedo / cos(SOZ)",
                    "wavelength_um": WAVELENGTH[band],
                    "grid_mapping": "spatial_ref",
                },
            )
        elif name.startswith("tbb_"):
            band = int(name[-2:])
            attrs.update(
                units="K",
                standard_name="toa_brightness_temperature",
                wavelength_um=WAVELENGTH[band],
            )
            ds[name] = (("y", "x"), values, attrs)
        elif name == "Hour":
            attrs.update(units="hour")
            ds[name] = (("y", "x"), values, attrs)
        else:
            standard = {
                "SOZ": "solar_zenith_angle",
                "SOA": "solar_azimuth_angle",
                "SAZ": "sensor_zenith_angle",
                "SAA": "sensor_azimuth_angle",
            }[name]
            attrs.update(units="degree", standard_name=standard)
            ds[name] = (("y", "x"), values, attrs)
    if "Hour" in ds:
        ds["observation_time"] = _pixel_times(nominal, ds["Hour"].values)
    ds = ds.assign_coords(time=np.datetime64(nominal, "ns"))
    ds["time"].attrs["long_name"] = "nominal start of the observation (timeline), UTC"
    meta = parse_filename(path)
    ds.attrs.update(
        platform={"H08": "Himawari-8", "H09": "Himawari-9"}[meta["platform"]] if meta else "",
        sensor="ahi",
        product="P-Tree Himawari L1 gridded data",
        observation_start_time=start.isoformat(),
        observation_end_time=end.isoformat(),
        resolution_deg=round(abs(dlon), 6),
        source_file=str(path),
        format_reference=SPEC_URL,
    )
    return ds


def _pixel_times(nominal: datetime, hours: np.ndarray) -> xr.DataArray:
    """Per-pixel observation time from UT hours of the nominal day (a scan that runs past
    midnight has hours < nominal hour - 12, which belong to the next day)."""
    day = np.datetime64(nominal.date(), "ns")
    h = np.asarray(hours, dtype=float)
    h = np.where(h < nominal.hour - 12, h + 24, h)
    ok = np.isfinite(h)
    offset = np.where(ok, np.round(np.where(ok, h, 0) * 3.6e12), 0).astype("timedelta64[ns]")
    times = np.where(ok, day + offset, np.datetime64("NaT", "ns"))
    return xr.DataArray(
        times,
        dims=("y", "x"),
        attrs={"long_name": "observation time of the pixel (from Hour), UTC"},
    )


# --- registry --------------------------------------------------------------------------------


def _sniff(path: Path) -> bool:
    """NetCDF with ``albedo_01`` and ``latitude``; ReaderError saying what is missing
    otherwise."""
    path = Path(path)
    require(path, ("hdf5", "netcdf3"), "NetCDF", "P-Tree gridded files are NetCDF-4")
    ds = _open_raw(path)
    try:
        missing = [v for v in ("albedo_01", "latitude") if v not in ds.variables]
    finally:
        ds.close()
    if missing:
        raise ReaderError(
            f"{path}: has no variable {' or '.join(missing)} (P-Tree L1 gridded files hold "
            "albedo_01..06, tbb_07..16, SOZ, latitude, longitude)"
        )
    return True


#: Variables whose valid values ``inspect`` counts: red, NIR and the 10.4 um window band.
MAIN_VARIABLES = ("albedo_03", "albedo_04", "tbb_13")


def valid_counts(path: str | Path, rows: int = 512) -> dict[str, int]:
    """Finite (not fill) values of each :data:`MAIN_VARIABLES` the file has, read in blocks of
    ``rows`` lines."""
    path = Path(path)
    ds = _open_raw(path)
    try:
        counts = {}
        for name in (v for v in MAIN_VARIABLES if v in ds.data_vars):
            var = ds[name]
            dim = var.dims[0]
            total = 0
            for i in range(0, var.sizes[dim], rows):
                total += int(np.isfinite(var.isel({dim: slice(i, i + rows)}).values).sum())
            counts[name] = total
    except Exception as exc:  # netCDF4/HDF5 errors (truncated, corrupt) -> one clear line
        raise ReaderError(f"{path}: cannot read the data ({exc})") from exc
    finally:
        ds.close()
    return counts


def _summarize(path: Path) -> FileSummary:
    """Header summary; ``details["valid_values"]`` counts valid values of the main bands."""
    info = granule_info(path)
    counts = valid_counts(path)
    empty = bool(counts) and not any(counts.values())
    return FileSummary(
        path=str(path),
        reader="ahi_ptree",
        variables=info["variables"],
        bbox=info["bbox"],
        time=[info["start"].isoformat(), info["end"].isoformat()],
        details={
            "platform": info["platform"],
            "pixels": info["pixels"],
            "lines": info["lines"],
            "resolution_deg": info["resolution_deg"],
            "nominal_start": info["nominal_start"].isoformat(),
            "valid_values": counts,
        }
        | ({"warnings": [f"no valid data: {', '.join(counts)} are all fill"]} if empty else {}),
    )


# --- source: P-Tree scenes onto a tile --------------------------------------------------------

#: Reflectance layers of P-Tree files: standard layer -> variable.
PTREE_LAYERS = {
    "blue": "reflectance_01",
    "green": "reflectance_02",
    "red": "reflectance_03",
    "nir": "reflectance_04",
    "swir16": "reflectance_05",
    "swir22": "reflectance_06",
}
#: Native P-Tree pixels around a cloudy pixel whose LST is "other quality" (reliability 1):
#: cloud edges and thin cloud the brightness tests miss make the split window too cold.
LST_CLOUD_BUFFER = 2


def _granule_info(path: str | Path) -> Granule:
    """A P-Tree file as a granule: nominal time, grid extent (grid shape and bbox as the
    native-grid key), reflectance layers it holds and ``lst`` when it has B13 and B15."""
    info = granule_info(path)
    have = set(info["variables"])
    layers = {name for name, var in PTREE_LAYERS.items() if f"albedo_{var[-2:]}" in have}
    if {"tbb_13", "tbb_15"} <= have and {"red", "nir"} <= layers:
        layers.add("lst")
    return Granule(
        str(path),
        info["nominal_start"],
        tuple(info["bbox"]),
        (info["pixels"], info["lines"], tuple(info["bbox"])),
        (str(path),),
        layers=frozenset(layers),
    )


def _prepare(granule: Granule, tile, options: dict) -> dict:
    from fluxscape.readers.ontile import tile_lonlat

    lon, lat = tile_lonlat(tile)
    return {"lon": lon, "lat": lat, "index": None}


def _read(granule: Granule, tile, layers, options: dict, context: dict) -> dict | None:
    """Reflectance layers (cloud-screened as HSD scenes are) or, when ``lst`` is asked for,
    the split-window land surface temperature, of one P-Tree file on the tile (nearest pixel
    from its regular lat/lon grid, cut to the tile's bbox + 0.1 degree)."""
    from fluxscape.readers.ahi_hsd import screen_clouds
    from fluxscape.readers.ontile import day_of_year, gather, nearest_index, tile_bbox

    thermal = ["tbb_13", "tbb_15"] if "lst" in layers else ["tbb_13"]
    ds = open_ptree(granule.path, variables=thermal, bbox=tile_bbox(tile, 0.1))
    if context["index"] is None:
        context["index"] = nearest_index(ds.odc.geobox, tile)
    index = context["index"]
    if index.empty:
        return None
    if "lst" in layers:
        out = _lst_layers(ds, index, options.get("max_qa", 0))
        out["view_time"] = _solar_time(granule, context)
        out["doy"] = np.full(index.valid.shape, day_of_year(granule.start), "float32")
        out["files"] = [granule.path]
        return out
    w = index.window
    out = {
        name: gather(ds[var].values[w], index, np.nan).astype("float32")
        for name, var in PTREE_LAYERS.items()
        if name in layers or name == "red"
    }
    bt = gather(ds["tbb_13"].values[w], index, np.nan)
    out = screen_clouds(out, bt, granule, context["lon"], context["lat"])
    out["files"] = [granule.path]
    return out


def _solar_time(granule: Granule, context: dict) -> np.ndarray:
    from fluxscape.readers.ontile import solar_geometry

    return solar_geometry(granule.start, context["lon"], context["lat"])[0]


def lst_quality(red: np.ndarray, bt13: np.ndarray, lst: np.ndarray) -> np.ndarray:
    """MOD11-like quality class per native pixel: 0 good, 1 other quality (within
    :data:`LST_CLOUD_BUFFER` pixels of a cloud), 2 cloud (bright red or B13 colder than
    the AHI cold-cloud threshold), 3 not produced (no LST: fill or night)."""
    from scipy.ndimage import binary_dilation

    from fluxscape.readers.ahi_hsd import COLD_CLOUD_K
    from fluxscape.readers.ontile import cloud_screen

    with np.errstate(invalid="ignore"):
        cloudy = cloud_screen(red) | (bt13 < COLD_CLOUD_K)
    near = cloudy
    if LST_CLOUD_BUFFER > 0 and cloudy.any():
        near = binary_dilation(cloudy, np.ones((3, 3), bool), iterations=LST_CLOUD_BUFFER)
    quality = np.where(near, 1, 0)
    quality = np.where(cloudy, 2, quality)
    return np.where(np.isfinite(lst) & np.isfinite(red), quality, 3)


def _lst_layers(ds: xr.Dataset, index, max_qa: int) -> dict:
    """``lst`` (K, Ulivieri split window on tbb_13/tbb_15 with emissivities from the scene's
    NDVI), ``qc`` and ``reliability`` (the :func:`lst_quality` class, decided on the native
    grid since the cloud buffer needs the neighbours; -1 off the grid) and ``usable``
    (reliability <= ``max_qa`` and LST finite) on the tile."""
    from fluxscape.readers import split_window
    from fluxscape.readers.ontile import gather

    red, nir = ds["reflectance_03"].values, ds["reflectance_04"].values
    bt13, bt15 = ds["tbb_13"].values, ds["tbb_15"].values
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
    lst = split_window.split_window_lst(bt13, bt15, *split_window.ndvi_emissivity(ndvi))
    quality = lst_quality(red, bt13, lst)
    w = index.window
    out = {"lst": gather(lst[w], index, np.nan).astype("float32")}
    out["qc"] = gather(quality[w], index, -1).astype("int32")
    out["reliability"] = out["qc"]
    out["usable"] = (out["qc"] >= 0) & (out["qc"] <= max_qa) & np.isfinite(out["lst"])
    return out


SPEC = register(
    ReaderSpec(
        name="ahi_ptree",
        patterns=(FILENAME_RE.pattern,),
        sniff=_sniff,
        open=open_ptree,
        summarize=_summarize,
        description=(
            "JAXA P-Tree Himawari L1 gridded NetCDF (NC_H0x_..._R21_FLDK.<px>_<ln>.nc): "
            "albedo, reflectance = albedo / cos(SOZ), tbb (K), angles, on the file's lat/lon grid"
        ),
        capabilities=frozenset({*PTREE_LAYERS, "lst"}),
        many_per_day=True,
        granule_info=_granule_info,
        prepare=_prepare,
        read=_read,
        quality="LST: Ulivieri et al. 1994 split window on B13/B15 with NDVI emissivity, "
        "cloud and 2-pixel cloud-edge class; reflectance: bright-red and cold-B13 cloud screen",
    )
)
