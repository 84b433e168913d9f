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

No satpy reader exists for this product; netCDF4 reads the file, xarray's CF decoder unpacks
it, and this module adds the reflectance, the grid checks and the error messages.

Reading once (issue #18): tiles of a region all meet the same scenes, so a file's header
(:class:`PtreeMeta`) is parsed once per process and file version (path, size, mtime) and the
decoded variables are kept in 256-pixel blocks in the per-process granule cache
(:mod:`fluxscape.readers.granule_cache`, ``FLUXSCAPE_GRANULE_CACHE_MIB``); a read opens the
file at most once (header and data through one handle) and not at all when both are cached.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.granule_cache import (
    BLOCKS,
    assemble,
    file_stamp,
    keep_blocks,
    missing_span,
    window_blocks,
)
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


def _check_file(path: Path) -> None:
    """ReaderError unless ``path`` is a non-empty file starting like NetCDF/HDF5."""
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ReaderError(f"{path}: empty file (0 bytes), not a P-Tree NetCDF file")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic[:4] not in (b"\x89HDF", b"CDF\x01", b"CDF\x02"):
        raise ReaderError(f"{path}: not a NetCDF/HDF5 file (starts with {magic[:4]!r})")


def _open_raw(path: Path) -> xr.Dataset:
    """The file as xarray with CF scale/offset/fill decoded and times left as numbers (for
    :func:`valid_counts`; tile reads go through :func:`read_window`)."""
    _check_file(path)
    try:
        return xr.open_dataset(path, engine="netcdf4", decode_times=False, mask_and_scale=True)
    except Exception as exc:  # netCDF4/HDF5 errors (truncated, corrupt) -> one clear line
        raise ReaderError(
            f"{path}: cannot open as NetCDF4, truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc


def _open_nc(path: Path):
    """The file as a ``netCDF4.Dataset`` (checked first: see :func:`_check_file`). Every
    open of a P-Tree file for its metadata or data goes through here (tests count them)."""
    import netCDF4

    _check_file(path)
    try:
        return netCDF4.Dataset(path, "r")
    except Exception as exc:  # netCDF4/HDF5 errors (truncated, corrupt) -> one clear line
        raise ReaderError(
            f"{path}: cannot open as NetCDF4, truncated or corrupt ({type(exc).__name__}: {exc})"
        ) from exc


def _masked_float(var) -> np.ndarray:
    """A netCDF4 variable's values (CF fill masked, scale/offset applied) as float64 with NaN
    for fill, through xarray's CF decoding as ``xr.open_dataset(mask_and_scale=True)``
    (cheaper than netCDF4's masked arrays)."""
    var.set_auto_maskandscale(False)
    raw = xr.Variable(var.dimensions, np.asarray(var[:]), dict(var.__dict__))
    decoded = xr.conventions.decode_cf_variable(var.name, raw, decode_times=False)
    return np.asarray(decoded.values, dtype=float)


def _grid_axis(path: Path, nc, name: str) -> tuple[float, float, int]:
    """A 1-D regular coordinate of an open file: (first centre, step, size), degrees,
    checked."""
    if name not in nc.variables or nc.variables[name].dimensions != (name,):
        raise ReaderError(f"{path}: no 1-D coordinate variable {name!r}")
    try:
        values = _masked_float(nc.variables[name]).ravel()
    except Exception as exc:
        raise ReaderError(f"{path}: cannot read {name!r} ({exc})") from exc
    if values.size < 2 or not np.all(np.isfinite(values)):
        raise ReaderError(f"{path}: {name!r} has {values.size} values or non-finite ones")
    # Coordinates are float32 in real files: take the step from the end points and rebuild
    # the axis in float64 (origin to 1e-5 degree, step to 1e-6 degree), then check it.
    step = round((values[-1] - values[0]) / (values.size - 1), 6)
    origin = round(values[0], 5)
    rebuilt = origin + step * np.arange(values.size)
    if step == 0 or np.max(np.abs(rebuilt - values)) > max(1e-4, 0.01 * abs(step)):
        raise ReaderError(
            f"{path}: {name!r} is not a regular grid (steps {np.diff(values).min():.6g}.."
            f"{np.diff(values).max():.6g} degrees)"
        )
    return float(origin), float(step), int(values.size)


def _decode_time(path: Path, nc, name: str) -> datetime | None:
    """A ``start_time``/``end_time`` variable ("<unit> since <date>") as a UTC datetime; None
    when the variable is absent; ReaderError when it cannot be parsed."""
    if name not in nc.variables:
        return None
    var = nc.variables[name]
    units = str(getattr(var, "units", ""))
    m = _TIME_UNITS_RE.fullmatch(units)
    if not m:
        raise ReaderError(f"{path}: {name} units {units!r} are not '<unit> since <date>'")
    try:
        ref = pd.Timestamp(m.group(2).strip().replace(" 0:0:0", " 00:00:00"))
    except (ValueError, TypeError) as exc:
        raise ReaderError(f"{path}: {name} units {units!r}: unparsable reference date") from exc
    if ref is pd.NaT or ref.tzinfo is not None and ref.utcoffset() != timedelta(0):
        raise ReaderError(f"{path}: {name} units {units!r}: unparsable reference date")
    values = _masked_float(var).ravel()
    if values.size == 0 or not np.isfinite(values[0]):
        raise ReaderError(f"{path}: {name} has no finite value")
    try:
        when = ref.tz_localize(None) + pd.to_timedelta(values[0], unit=m.group(1).lower())
    except (OverflowError, ValueError) as exc:
        raise ReaderError(f"{path}: {name} value {values[0]!r} is out of range") from exc
    if not 1970 <= when.year <= 2100:
        raise ReaderError(f"{path}: {name} decodes to {when}, outside 1970-2100")
    return when.round("ms").to_pydatetime()


def _times(path: Path, nc) -> tuple[datetime, datetime, datetime]:
    """(nominal start, observation start, observation end) in UTC."""
    start = _decode_time(path, nc, "start_time")
    end = _decode_time(path, nc, "end_time")
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


@dataclass(frozen=True)
class PtreeMeta:
    """What a P-Tree file's header says: its regular grid (first pixel centre, step in
    degrees and size of each axis; latitudes north to south as stored), times (UTC) and
    its data variables (dims and attributes, CF packing included)."""

    lon0: float
    dlon: float
    nlon: int
    lat0: float
    dlat: float
    nlat: int
    nominal: datetime
    start: datetime
    end: datetime
    variables: dict  # name -> (dims, attrs)

    @property
    def lon(self) -> np.ndarray:
        """Pixel-centre longitudes (degrees east), float64."""
        return self.lon0 + self.dlon * np.arange(self.nlon)

    @property
    def lat(self) -> np.ndarray:
        """Pixel-centre latitudes (degrees north, as stored), float64."""
        return self.lat0 + self.dlat * np.arange(self.nlat)


def _parse_meta(path: Path, nc) -> PtreeMeta:
    lon = _grid_axis(path, nc, "longitude")
    lat = _grid_axis(path, nc, "latitude")
    nominal, start, end = _times(path, nc)
    skip = {*nc.dimensions, "start_time", "end_time"}
    variables = {
        name: (tuple(var.dimensions), dict(var.__dict__))
        for name, var in nc.variables.items()
        if name not in skip
    }
    return PtreeMeta(*lon, *lat, nominal, start, end, variables)


#: (path, size, mtime_ns) -> PtreeMeta: a file version's header parsed once per process
_META: dict[tuple[str, int, int], PtreeMeta] = {}
_META_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        return file_stamp(path)
    except FileNotFoundError as exc:
        raise ReaderError(f"{path}: no such file") from exc
    except OSError as exc:
        raise ReaderError(f"{path}: cannot read ({exc.strerror})") from exc


class _Handle:
    """One lazily opened netCDF4 handle shared by the metadata and data reads of one call."""

    def __init__(self, path: Path):
        self.path = path
        self.nc = None

    def __call__(self):
        if self.nc is None:
            self.nc = _open_nc(self.path)
        return self.nc

    def close(self) -> None:
        if self.nc is not None:
            self.nc.close()
            self.nc = None


def _meta_of(path: Path, stamp: tuple, handle: _Handle) -> PtreeMeta:
    meta = _META.get(stamp)
    if meta is None:
        meta = _parse_meta(path, handle())
        with _META_LOCK:
            if len(_META) >= 4096:  # a bound on a worker's memory (~26 KiB each)
                _META.clear()
            _META[stamp] = meta
    return meta


def file_meta(path: str | Path) -> PtreeMeta:
    """The header of a P-Tree file (grid, times, variables), parsed once per process and
    file version (path, size, modification time); ReaderError for a file that is not a
    readable P-Tree NetCDF file."""
    path = Path(path)
    handle = _Handle(path)
    try:
        return _meta_of(path, _stamp(path), handle)
    finally:
        handle.close()


def granule_info(path: str | Path) -> dict:
    """Header-only summary of a P-Tree file: ``start``/``end`` (observation period, UTC),
    ``nominal_start``, ``platform``, ``bbox`` [W, S, E, N] degrees (pixel edges), ``pixels``,
    ``lines``, ``resolution_deg`` and the file's ``variables``."""
    path = Path(path)
    m = file_meta(path)
    lon, lat = m.lon, m.lat
    name = parse_filename(path)
    half_x, half_y = abs(m.dlon) / 2, abs(m.dlat) / 2
    return {
        "path": str(path),
        "start": m.start,
        "end": m.end,
        "nominal_start": m.nominal,
        "platform": {"H08": "Himawari-8", "H09": "Himawari-9"}.get(name["platform"], "")
        if name
        else "",
        "bbox": [
            round(float(lon.min() - half_x), 6),
            round(float(lat.min() - half_y), 6),
            round(float(lon.max() + half_x), 6),
            round(float(lat.max() + half_y), 6),
        ],
        "pixels": int(m.nlon),
        "lines": int(m.nlat),
        "resolution_deg": round(abs(m.dlon), 6),
        "variables": list(m.variables),
    }


def _window(lon: np.ndarray, lat: np.ndarray, bbox: Sequence[float]) -> tuple[slice, slice]:
    w, s, e, n = (float(v) for v in bbox)
    tol = 1e-6  # degrees: a pixel centre on the bbox edge is inside
    cols = np.flatnonzero((lon >= w - tol) & (lon <= e + tol))
    rows = np.flatnonzero((lat >= s - tol) & (lat <= n + tol))
    if cols.size == 0 or rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


#: The block cache holds square blocks of this many pixels of each decoded variable: a
#: tile's window is put together from the blocks it meets, so that neighbouring tiles share
#: blocks (a full-disk 2 km file is 6001 x 6001 pixels; the sample world's are 37 x 37).
BLOCK = 256


def _decode_cf(path: Path, name: str, meta: PtreeMeta, raw: np.ndarray) -> np.ndarray:
    """Stored values -> float with NaN for fill, through xarray's CF decoding (the same as
    ``xr.open_dataset(mask_and_scale=True)``)."""
    dims, attrs = meta.variables[name]
    var = xr.Variable(dims, raw, dict(attrs))
    return np.asarray(xr.conventions.decode_cf_variable(name, var, decode_times=False).values)


def _read_stored(path: Path, handle: _Handle, name: str, y0: int, y1: int, x0: int, x1: int):
    try:
        var = handle().variables[name]
        var.set_auto_maskandscale(False)
        return np.asarray(var[y0:y1, x0:x1])
    except ReaderError:
        raise
    except Exception as exc:  # HDF5 read errors in a damaged file
        raise ReaderError(f"{path}: cannot read data ({type(exc).__name__}: {exc})") from exc


def _read_variable(
    path: Path, stamp: tuple, meta: PtreeMeta, handle: _Handle, name: str, rows, cols
) -> np.ndarray:
    """Decoded values of ``name`` over the window, through the per-process block cache
    (``granule_cache.BLOCKS``, keyed by the file version, the variable and the block):
    blocks not cached are read with one hyperslab read and kept."""
    r0, r1, c0, c1 = rows.start, rows.stop, cols.start, cols.stop
    if BLOCKS.max_bytes <= 0:
        return _decode_cf(path, name, meta, _read_stored(path, handle, name, r0, r1, c0, c1))
    blocks = window_blocks(BLOCKS, (stamp, name), r0, r1, c0, c1, BLOCK)
    missing = [b for b, v in blocks.items() if v is None]
    if missing:
        y0, y1, x0, x1 = missing_span(missing, BLOCK, meta.nlat, meta.nlon)
        stored = _read_stored(path, handle, name, y0, y1, x0, x1)
        part = _decode_cf(path, name, meta, stored)
        keep_blocks(BLOCKS, (stamp, name), part, y0, x0, missing, blocks, BLOCK)
    return assemble(blocks, r0, r1, c0, c1, BLOCK, next(iter(blocks.values())).dtype)


def read_window(
    path: str | Path, names: Sequence[str], bbox: Sequence[float] | None = None
) -> tuple[PtreeMeta, slice, slice, dict[str, np.ndarray]]:
    """Decoded variables of a P-Tree file over the pixel centres inside ``bbox`` ([W, S, E,
    N] degrees; None: the whole grid), opening the file at most once and not at all when
    its header and the blocks asked for are in this process's caches.

    Returns the file's :class:`PtreeMeta`, the (rows, cols) window of its grid and
    ``{name: (rows, cols) array}`` (float, NaN for fill, CF scale/offset applied; the
    arrays may be shared with the cache: do not write into them). ReaderError for a
    missing variable, a variable not on ``(latitude, longitude)``, an empty window or
    albedo/tbb variables that are all fill in it."""
    return _read_window(Path(path), lambda meta: list(names), bbox)


def _read_window(path: Path, choose, bbox) -> tuple[PtreeMeta, slice, slice, dict]:
    """:func:`read_window` of the variables ``choose(meta)`` names (it may raise
    ReaderError), the header and data through one handle."""
    stamp = _stamp(path)
    handle = _Handle(path)
    try:
        meta = _meta_of(path, stamp, handle)
        names = choose(meta)
        unknown = [v for v in names if v not in meta.variables]
        if unknown:
            raise ReaderError(f"{path}: no variable(s) {', '.join(unknown)} in file")
        for name in names:
            if meta.variables[name][0] != _DIMS:
                raise ReaderError(
                    f"{path}: {name} has dims {meta.variables[name][0]}, expected {_DIMS} "
                    f"({meta.nlat} x {meta.nlon})"
                )
        rows, cols = (
            (slice(0, meta.nlat), slice(0, meta.nlon))
            if bbox is None
            else _window(meta.lon, meta.lat, bbox)
        )
        if rows.stop <= rows.start or cols.stop <= cols.start:
            raise ReaderError(f"{path}: no pixel centre inside bbox {list(bbox)}")
        arrays = {n: _read_variable(path, stamp, meta, handle, n, rows, cols) for n in names}
    finally:
        handle.close()
    bands = [v for v in names if v.startswith(("albedo_", "tbb_"))]
    if bands and all(not np.isfinite(arrays[v]).any() for v in bands):
        raise ReaderError(f"{path}: every albedo/tbb value is fill (_FillValue): no data")
    return meta, rows, cols, arrays


def _require(path: Path, meta: PtreeMeta) -> None:
    missing = [v for v in REQUIRED if v not in meta.variables]
    if missing:
        raise ReaderError(
            f"{path}: missing variable(s) {', '.join(missing)}; a P-Tree L1 gridded file has "
            f"albedo_01..albedo_06 and SOZ (it has {', '.join(sorted(meta.variables))})"
        )


def _window_geobox(meta: PtreeMeta, rows: slice, cols: slice):
    """The EPSG:4326 GeoBox of a window of the file's grid (pixel edges half a step out)."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    x0 = meta.lon[cols][0] - meta.dlon / 2
    y0 = meta.lat[rows][0] - meta.dlat / 2
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    return GeoBox(shape, Affine(meta.dlon, 0.0, x0, 0.0, meta.dlat, y0), "EPSG:4326")


def _cos_sun(soz: np.ndarray) -> np.ndarray:
    """cos(solar zenith) as float32, NaN where the sun is at or below the horizon."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.cos(np.radians(soz.astype(np.float32)))
        return np.where(mu > 0, mu, np.nan).astype(np.float32)


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
    chosen: list[str] = []

    def choose(meta: PtreeMeta) -> list[str]:
        _require(path, meta)
        optional = [v for v in (*TBB, "SAZ", "SAA", "SOA", "Hour") if v in meta.variables]
        if variables is not None:
            unknown = [v for v in variables if v not in meta.variables]
            if unknown:
                raise ReaderError(f"{path}: no variable(s) {', '.join(unknown)} in file")
            optional = [v for v in variables if v not in REQUIRED]
        chosen[:] = [*REQUIRED, *optional]
        return chosen

    meta, rows, cols, arrays = _read_window(path, choose, bbox)
    return _dataset(path, meta, rows, cols, chosen, arrays)


def _dataset(path: Path, meta: PtreeMeta, rows, cols, names, arrays) -> xr.Dataset:
    from odc.geo.xr import xr_coords

    lon, lat = meta.lon[cols], meta.lat[rows]
    coords = xr_coords(_window_geobox(meta, rows, cols), crs_coord_name="spatial_ref")
    ds = xr.Dataset(coords={"spatial_ref": coords["spatial_ref"]})
    ds = ds.assign_coords(
        x=("x", lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}),
        y=("y", lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
    )
    mu = _cos_sun(arrays["SOZ"])
    for name in names:
        values = arrays[name].astype(np.float32)
        long_name = meta.variables[name][1].get("long_name", name)
        attrs = {"long_name": str(long_name), "grid_mapping": "spatial_ref"}
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
        ds["observation_time"] = _pixel_times(meta.nominal, ds["Hour"].values)
    ds = ds.assign_coords(time=np.datetime64(meta.nominal, "ns"))
    ds["time"].attrs["long_name"] = "nominal start of the observation (timeline), UTC"
    name_meta = parse_filename(path)
    ds.attrs.update(
        platform={"H08": "Himawari-8", "H09": "Himawari-9"}[name_meta["platform"]]
        if name_meta
        else "",
        sensor="ahi",
        product="P-Tree Himawari L1 gridded data",
        observation_start_time=meta.start.isoformat(),
        observation_end_time=meta.end.isoformat(),
        resolution_deg=round(abs(meta.dlon), 6),
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
    nc = _open_nc(path)
    try:
        missing = [v for v in ("albedo_01", "latitude") if v not in nc.variables]
    finally:
        nc.close()
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
    from its regular lat/lon grid, cut to the tile's bbox + 0.1 degree). Only the variables
    those layers need are read (:func:`read_window`: the file is opened at most once, not at
    all when this process has its blocks); the nearest-pixel index is computed once per
    (native grid, tile) and kept in ``context``."""
    from fluxscape.readers.ahi_hsd import screen_clouds
    from fluxscape.readers.ontile import day_of_year, gather, nearest_index, tile_bbox

    path = Path(granule.path)
    if "lst" in layers:
        albedo = ["albedo_03", "albedo_04"]
        thermal = ["tbb_13", "tbb_15"]
    else:
        bands = {PTREE_LAYERS[n][-2:] for n in layers if n in PTREE_LAYERS} | {"03"}
        albedo = [f"albedo_{b}" for b in sorted(bands)]
        thermal = ["tbb_13"]
    names = [*albedo, "SOZ", *thermal]

    def choose(meta: PtreeMeta) -> list[str]:
        _require(path, meta)
        return names

    meta, rows, cols, arrays = _read_window(path, choose, tile_bbox(tile, 0.1))
    if context["index"] is None:
        context["index"] = nearest_index(_window_geobox(meta, rows, cols), tile)
    index = context["index"]
    if index.empty:
        return None
    mu = _cos_sun(arrays["SOZ"])
    reflectance = {n[-2:]: arrays[n].astype(np.float32) / mu for n in albedo}
    if "lst" in layers:
        out = _lst_layers(
            reflectance["03"],
            reflectance["04"],
            arrays["tbb_13"].astype(np.float32),
            arrays["tbb_15"].astype(np.float32),
            index,
            options.get("max_qa", 0),
        )
        out["view_time"] = _solar_time(granule, context)
        out["doy"] = np.full(index.valid.shape, day_of_year(granule.start), "float32")
        out["files"] = [granule.path]
        return out
    w = index.window
    out = {
        name: gather(reflectance[var[-2:]][w], index, np.nan).astype("float32")
        for name, var in PTREE_LAYERS.items()
        if name in layers or name == "red"
    }
    bt = gather(arrays["tbb_13"].astype(np.float32)[w], index, np.nan)
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


def _lst_layers(red, nir, bt13, bt15, index, max_qa: int) -> dict:
    """From a window of red and NIR reflectance and B13/B15 brightness temperature (K) on the
    native grid: ``lst`` (K, Ulivieri split window on tbb_13/tbb_15 with emissivities from the
    scene's NDVI), ``qc`` and ``reliability`` (the :func:`lst_quality` class, decided on the native
    grid since the cloud buffer needs the neighbours; -1 off the grid) and ``usable``
    (reliability <= ``max_qa`` and LST finite) on the tile."""
    from fluxscape.readers import split_window
    from fluxscape.readers.ontile import gather

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
