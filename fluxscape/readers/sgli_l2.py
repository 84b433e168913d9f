"""GCOM-C SGLI Level-2 land tile products (VGI, LST, LAI, RSRF) in JAXA's EQA tiles (HDF5).

Format specification: JAXA, "SGLI Higher Level Product Format Description"
(listed on https://shikisai.jaxa.jp/faq/faq0040.html, with the per-product QA flag tables) and,
for the tile geolocation, the "GCOM-C Data Users Handbook" (SGC-180024).
Cross-checked against the open readers ``K0gata/SGLI_Python_Open_Tool:spot/level2.py`` and
``TTY6335/SGLI_L2``. satpy has no reader for these tiles, so this thin h5py reader is ours.

File names (matched on the base name)::

    GC1SG1_{YYYYMMDD}{D|N}{01D|08D|01M}_T{vv}{hh}_L2SG_{PPPP}{R}_{vvvv}.h5

``PPPP`` is the product padded with ``_`` (``VGI_``, ``LST_``, ``LAI_``, ``RSRF``), ``R`` the
tile resolution (``Q`` = 250 m, 4800 x 4800 pixels; ``K`` = 1 km, 1200 x 1200), ``vv``/``hh`` the
vertical (from the north pole) and horizontal (from 180 W) tile numbers of 10-degree tiles.

Layout: ``/Global_attributes`` (``Tile_number``, ``Image_start_time``, ``Image_end_time``, ...,
each a 1-element array), ``/Image_data`` (attrs ``Number_of_lines``/``Number_of_pixels``; uint16
product layers and ``QA_flag``), ``/Geometry_data`` (``Obs_time`` in daily tiles [hedged]).
Each product layer carries ``Slope``, ``Offset``, ``Error_DN``, ``Minimum_valid_DN``,
``Maximum_valid_DN``, ``Unit`` and ``Data_description``; decoding follows JAXA::

    value = DN * Slope + Offset, NaN where DN == Error_DN or outside [Minimum, Maximum]_valid_DN

``QA_flag`` is a bit field and is returned undecoded (uint16). The per-product QA bit meanings
differ between products and are only partly known here [hedged]; :data:`QA_BITS` lists the
bits this package writes in its sample files and uses for cloud masking.

Geolocation: the EQA grid is an equal-area, sinusoidal-like grid whose number of pixels per
latitude row is rounded to an integer, so it is not affine in any standard CRS (ESRI:53008
comes within ~0.2 pixel). No maintained library (pyproj, odc-geo, pyresample, satpy) computes
it, so the handbook formula is written out here, vectorised with numpy (:func:`eqa_lonlat`
and its inverse :func:`eqa_pixel`).

Importing this module registers the ``sgli_l2`` reader with :mod:`fluxscape.readers.registry`.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.readers.magic import require
from fluxscape.readers.ontile import Granule
from fluxscape.readers.registry import FileSummary, ReaderSpec, register

__all__ = [
    "L2_NAME_PATTERN",
    "PRODUCT_LAYERS",
    "QA_BITS",
    "TILE_PIXELS",
    "cloud_mask",
    "decode_dn",
    "eqa_lonlat",
    "eqa_pixel",
    "eqa_step_deg",
    "granule_info",
    "open_sgli_l2",
    "parse_l2_filename",
    "tile_bbox",
    "tile_pixel_index",
    "tile_window",
    "tiles_for_bbox",
    "window_for_bbox",
]

SPEC_URL = (
    "SGLI Higher Level Product Format Description (https://shikisai.jaxa.jp/faq/faq0040.html)"
)
HANDBOOK = "GCOM-C Data Users Handbook SGC-180024 (EQA tile geolocation)"

#: Pixels per tile side for each resolution letter of the file name.
TILE_PIXELS = {"Q": 4800, "K": 1200}
#: The EQA tiling: 18 rows x 36 columns of 10-degree tiles.
N_VTILES, N_HTILES, TILE_DEG = 18, 36, 10.0

L2_NAME_PATTERN = (
    r"GC1SG1_(?P<date>\d{8})(?P<daynight>[DN])(?P<period>01D|08D|01M)_T(?P<vtile>\d{2})"
    r"(?P<htile>\d{2})_L2SG_(?P<product>[A-Z0-9_]{4})(?P<res>[QK])_(?P<version>\d{4})\.h5"
)
_NAME_RE = re.compile(L2_NAME_PATTERN)

#: Product layers each product must carry in /Image_data [layer names hedged].
PRODUCT_LAYERS: dict[str, tuple[str, ...]] = {
    "VGI": ("NDVI", "EVI"),
    "LST": ("LST",),
    "LAI": ("LAI",),
    "RSRF": (),  # any Rs_VNxx / Rs_SWxx bands
}

#: QA_flag bits written by :mod:`fluxscape.sample.sgli_writer` and used by :func:`cloud_mask`.
#: JAXA defines QA bits per product (Higher Level Product Format Description); these positions
#: are a hedged common subset: check them against a real file before masking real data.
QA_BITS = {
    "no_data": 0,
    "water": 1,
    "snow_ice": 2,
    "cloud_shadow": 3,
    "cloudy": 4,
    "cloud_adjacent_or_thin": 5,
}

_TIME_FORMATS = ("%Y%m%d %H:%M:%S.%f", "%Y%m%d %H:%M:%S")
_NOT_DECODED = ("QA_flag", "Line_tai93")


def _is_bit_layer(name: str) -> bool:
    """QA_flag and other flag/time-stamp layers: returned as stored integers."""
    return name in _NOT_DECODED or "flag" in name.lower()


# --- small HDF5 helpers (shared with sgli_l1b) -------------------------------------------------


def open_h5(path: Path) -> h5py.File:
    """Open ``path`` read-only with h5py; ReaderError (file and problem) when that fails."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ReaderError(f"{path}: empty file (0 bytes), not an SGLI HDF5 product")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReaderError(f"{path}: not a readable HDF5 file ({msg})") from exc


def is_hdf5(path: Path) -> bool:
    """True when ``path`` starts with the HDF5 signature (at offset 0; user blocks ignored)."""
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89HDF\r\n\x1a\n"


def attr_value(attrs, key: str, where: str):
    """One attribute as a Python scalar or str: JAXA stores most attributes as 1-element
    arrays, byte strings are decoded. ReaderError naming ``where`` and ``key`` if absent."""
    if key not in attrs:
        raise ReaderError(f"{where}: missing attribute {key!r}")
    try:
        value = attrs[key]
    except (OSError, TypeError, ValueError) as exc:
        raise ReaderError(f"{where}: unreadable attribute {key!r} ({exc})") from exc
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ReaderError(f"{where}: attribute {key!r} has {value.size} values, expected 1")
        value = value.reshape(-1)[0]
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace").rstrip("\x00").strip()
    if isinstance(value, np.generic):
        return value.item()
    return value


def attr_number(attrs, key: str, where: str) -> float:
    """A numeric attribute (see :func:`attr_value`); ReaderError when it is not a number."""
    value = attr_value(attrs, key, where)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ReaderError(f"{where}: attribute {key!r} is not a number ({value!r})") from exc
    if not np.isfinite(number):
        raise ReaderError(f"{where}: attribute {key!r} is not finite ({value!r})")
    return number


def parse_jaxa_time(text: str, where: str, key: str) -> datetime:
    """A JAXA time string ``"YYYYMMDD hh:mm:ss.fff"`` (UTC) as a naive datetime."""
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(str(text).strip(), fmt)
        except ValueError:
            continue
    raise ReaderError(
        f"{where}: attribute {key!r} = {text!r} is not a time 'YYYYMMDD hh:mm:ss.fff'"
    )


def _group(h5: h5py.File, name: str, path: Path) -> h5py.Group:
    obj = h5.get(name)
    if not isinstance(obj, h5py.Group):
        raise ReaderError(f"{path}: no /{name} group, not an SGLI product")
    return obj


# --- EQA tile geometry -------------------------------------------------------------------------


def eqa_step_deg(n: int) -> float:
    """Latitude spacing (degrees) of an EQA tile with ``n`` pixels per side: 180 / (18 n)
    (1/120 degree for 1 km tiles, 1/480 for 250 m tiles)."""
    return 180.0 / (N_VTILES * n)


def _np0(n: int) -> int:
    # NP0 = 2 * round(180 / d) pixels along the equator; 180 / d = 18 n exactly.
    return 2 * N_VTILES * n


def _pixels_in_row(lat: np.ndarray, n: int) -> np.ndarray:
    # NP_i = round(NP0 cos(lat)), rounding half up as in the handbook.
    return np.floor(_np0(n) * np.cos(np.radians(lat)) + 0.5)


def eqa_lonlat(rows, cols, vtile: int, htile: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre longitude and latitude (degrees, WGS84) of tile pixels.

    ``rows``/``cols`` are 0-based line/pixel numbers inside tile ``T{vtile}{htile}`` with ``n``
    pixels per side; they broadcast against each other (e.g. ``rows[:, None]``, ``cols[None]``).
    Returns float64 arrays ``(lon, lat)``; pixels beyond the edge of the globe (|lon| > 180,
    the corners of tiles near the date line and the poles) get NaN longitude.
    """
    rows = np.asarray(rows, dtype=np.float64)
    cols = np.asarray(cols, dtype=np.float64)
    d = eqa_step_deg(n)
    lat = 90.0 - (rows + vtile * n + 0.5) * d
    np_i = _pixels_in_row(lat, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        lon = 360.0 / np_i * (cols + htile * n - _np0(n) / 2 + 0.5)
    lon = np.where(np.abs(lon) <= 180.0, lon, np.nan)
    lat, lon = np.broadcast_arrays(lat, lon)
    return np.array(lon), np.array(lat)


def eqa_pixel(lon, lat, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Global EQA line and column (int64, 0-based from the north pole and from the grid's
    west edge) of the pixel that contains each lon/lat (degrees); the inverse of
    :func:`eqa_lonlat`. Tile numbers are ``line // n`` and ``col // n``."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    d = eqa_step_deg(n)
    line = np.clip(np.floor((90.0 - lat) / d), 0, N_VTILES * n - 1).astype(np.int64)
    np_i = _pixels_in_row(90.0 - (line + 0.5) * d, n)
    col = np.floor(lon * np_i / 360.0 + _np0(n) / 2).astype(np.int64)
    return line, col


def tile_pixel_index(
    lon, lat, vtile: int, htile: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest-neighbour lookup into tile ``T{vtile}{htile}``: for each target lon/lat
    (degrees, any shape, e.g. the pixel centres of a lon/lat target grid) the row and column
    of the tile pixel that contains it, and ``valid`` (False where the point lies in another
    tile). Exact (no search tree): the inverse of the EQA formula. Gather with
    ``data[rows, cols]`` and mask with ``valid``; rows/cols are 0 where invalid."""
    line, col = eqa_pixel(lon, lat, n)
    rows, cols = line - vtile * n, col - htile * n
    valid = (rows >= 0) & (rows < n) & (cols >= 0) & (cols < n)
    return np.where(valid, rows, 0), np.where(valid, cols, 0), valid


def _bbox_lines(bbox, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global lines meeting bbox and, per line, the first and last global column inside it."""
    w, s, e, nn = (float(v) for v in bbox)
    if not (w <= e and s <= nn):
        raise ValueError(f"bbox must be [W, S, E, N] with W <= E and S <= N, got {bbox}")
    d = eqa_step_deg(n)
    top = int(np.clip(np.floor((90.0 - nn) / d), 0, N_VTILES * n - 1))
    bottom = int(np.clip(np.floor((90.0 - s) / d), 0, N_VTILES * n - 1))
    lines = np.arange(top, bottom + 1)
    np_i = _pixels_in_row(90.0 - (lines + 0.5) * d, n)
    first = np.floor(w * np_i / 360.0 + _np0(n) / 2).astype(np.int64)
    last = np.floor(e * np_i / 360.0 + _np0(n) / 2).astype(np.int64)
    return lines, first, last


def tiles_for_bbox(bbox, n: int = 1200) -> list[tuple[int, int]]:
    """EQA tiles ``(vtile, htile)`` that contain any pixel of a lon/lat bbox [W, S, E, N]."""
    lines, first, last = _bbox_lines(bbox, n)
    tiles = set()
    for v in np.unique(lines // n):
        sel = lines // n == v
        for h in range(int(first[sel].min() // n), int(last[sel].max() // n) + 1):
            if 0 <= h < N_HTILES:
                tiles.add((int(v), h))
    return sorted(tiles)


def tile_window(vtile: int, htile: int, bbox, n: int) -> tuple[slice, slice] | None:
    """Rows and columns of tile ``T{vtile}{htile}`` (``n`` pixels per side) whose pixels meet
    the lon/lat bbox [W, S, E, N] (degrees); None when the tile does not meet it. Use it as the
    ``roi`` of :func:`open_sgli_l2`."""
    lines, first, last = _bbox_lines(bbox, n)
    in_tile = (lines // n) == vtile
    if not in_tile.any():
        return None
    lines, first, last = lines[in_tile], first[in_tile], last[in_tile]
    c0 = np.maximum(first, htile * n)
    c1 = np.minimum(last, (htile + 1) * n - 1)
    ok = c0 <= c1
    if not ok.any():
        return None
    rows = lines[ok] - vtile * n
    return (
        slice(int(rows.min()), int(rows.max()) + 1),
        slice(int(c0[ok].min() - htile * n), int(c1[ok].max() - htile * n) + 1),
    )


def tile_bbox(vtile: int, htile: int, n: int) -> list[float]:
    """Lon/lat envelope [W, S, E, N] (degrees) of tile ``T{vtile}{htile}``: pixel edges, from
    the EQA formula along every row (the tile is a curved quadrilateral, not a rectangle)."""
    d = eqa_step_deg(n)
    lat = 90.0 - (np.arange(vtile * n, (vtile + 1) * n) + 0.5) * d
    np_i = _pixels_in_row(lat, n)
    west = 360.0 / np_i * (htile * n - _np0(n) / 2)
    east = 360.0 / np_i * ((htile + 1) * n - _np0(n) / 2)
    north = 90.0 - vtile * TILE_DEG
    return [
        float(np.clip(west.min(), -180.0, 180.0)),
        north - TILE_DEG,
        float(np.clip(east.max(), -180.0, 180.0)),
        north,
    ]


def name_bbox(name: str) -> list[float] | None:
    """The lon/lat envelope of the EQA tile ``T{vv}{hh}`` an SGLI L2 file name gives (at its
    resolution's pixel edges, :func:`tile_bbox`); None for a name without one."""
    # string splitting, not _NAME_RE: the index applies this to every name of an archive
    # (10^6 of them); GC1SG1_<date><period>_T<vvhh>_L2SG_<product><res>_<version>.h5
    if not name.startswith("GC1SG1_") or not name.endswith(".h5") or name[-8] != "_":
        return None
    tile, res = name[20:25], name[-9]
    if name[19] != "_" or tile[0] != "T" or not tile[1:].isdigit() or res not in TILE_PIXELS:
        return None
    return _tile_bbox_cached(int(tile[1:3]), int(tile[3:5]), TILE_PIXELS[res])


@functools.lru_cache(maxsize=4096)
def _tile_bbox_cached(vtile: int, htile: int, n: int) -> list[float]:
    return tile_bbox(vtile, htile, n)


# --- file names and metadata -------------------------------------------------------------------


def parse_l2_filename(path: str | Path) -> dict | None:
    """Fields of an SGLI L2 tile file name, or None if it does not follow the convention:
    ``date`` (datetime), ``day_night`` (D/N), ``period`` (01D/08D/01M), ``vtile``, ``htile``,
    ``tile`` (``"0529"``), ``product`` (``"VGI"``, underscores stripped), ``resolution``
    (Q/K), ``n`` (pixels per side) and ``version``."""
    m = _NAME_RE.fullmatch(Path(path).name)
    if not m:
        return None
    return {
        "date": datetime.strptime(m["date"], "%Y%m%d"),
        "day_night": m["daynight"],
        "period": m["period"],
        "vtile": int(m["vtile"]),
        "htile": int(m["htile"]),
        "tile": m["vtile"] + m["htile"],
        "product": m["product"].rstrip("_"),
        "resolution": m["res"],
        "n": TILE_PIXELS[m["res"]],
        "version": m["version"],
    }


def _read_info(h5: h5py.File, path: Path) -> dict:
    """Tile, size, times and product of an open L2 file (metadata only)."""
    glob_attrs = _group(h5, "Global_attributes", path).attrs
    image = _group(h5, "Image_data", path)
    where = f"{path}: /Global_attributes"
    tile = str(attr_value(glob_attrs, "Tile_number", where))
    if not re.fullmatch(r"\d{4}", tile):
        raise ReaderError(f"{where}: Tile_number {tile!r} is not 'vvhh'")
    vtile, htile = int(tile[:2]), int(tile[2:])
    if not (0 <= vtile < N_VTILES and 0 <= htile < N_HTILES):
        raise ReaderError(f"{where}: Tile_number {tile!r} is outside the 18 x 36 EQA tiles")
    start = parse_jaxa_time(
        attr_value(glob_attrs, "Image_start_time", where), where, "Image_start_time"
    )
    end = parse_jaxa_time(attr_value(glob_attrs, "Image_end_time", where), where, "Image_end_time")
    if end < start:
        raise ReaderError(f"{where}: Image_end_time {end} is before Image_start_time {start}")
    img_where = f"{path}: /Image_data"
    n_lines = int(attr_number(image.attrs, "Number_of_lines", img_where))
    n_pixels = int(attr_number(image.attrs, "Number_of_pixels", img_where))
    if n_lines != n_pixels or n_lines not in TILE_PIXELS.values():
        raise ReaderError(
            f"{img_where}: tile size {n_lines} x {n_pixels}, expected 4800 x 4800 or 1200 x 1200"
        )
    meta = parse_l2_filename(path)
    if meta is not None:
        if meta["n"] != n_lines:
            raise ReaderError(
                f"{path}: file name says {meta['resolution']} ({meta['n']} pixels) "
                f"but /Image_data has {n_lines} lines"
            )
        if meta["tile"] != tile:
            raise ReaderError(f"{path}: file name says tile {meta['tile']}, file says {tile}")
    if meta is not None:
        product = meta["product"]
    elif "Product_name" in glob_attrs:
        product = str(attr_value(glob_attrs, "Product_name", where))
    else:
        product = "unknown"
    layers = [k for k, v in image.items() if isinstance(v, h5py.Dataset)]
    return {
        "tile": tile,
        "vtile": vtile,
        "htile": htile,
        "n": n_lines,
        "start": start,
        "end": end,
        "product": product,
        "layers": layers,
        "has_obs_time": isinstance(h5.get("Geometry_data/Obs_time"), h5py.Dataset),
        "meta": meta,
    }


def granule_info(path: str | Path) -> dict:
    """Cheap index entry for an L2 tile (reads attributes only, no pixel data).

    Keys: ``start``/``end`` (datetime, UTC, from Image_start_time/Image_end_time), ``bbox``
    [W, S, E, N] (degrees: the tile's envelope from the EQA formula), ``tile`` (``"0529"``),
    ``vtile``, ``htile``, ``n`` (pixels per side), ``product``, ``period`` (01D/08D/01M or
    None), ``day_night``, ``variables`` (datasets of /Image_data) and ``chunks`` (the on-disk
    chunk shape of the first layer, to align Dask chunks with).
    """
    path = Path(path)
    with open_h5(path) as h5:
        info = _read_info(h5, path)
        first = h5["Image_data"][info["layers"][0]] if info["layers"] else None
        chunks = list(first.chunks) if first is not None and first.chunks else None
    meta = info["meta"] or {}
    variables = list(info["layers"]) + (["Obs_time"] if info["has_obs_time"] else [])
    return {
        "start": info["start"],
        "end": info["end"],
        "bbox": tile_bbox(info["vtile"], info["htile"], info["n"]),
        "tile": info["tile"],
        "vtile": info["vtile"],
        "htile": info["htile"],
        "n": info["n"],
        "product": info["product"],
        "period": meta.get("period"),
        "day_night": meta.get("day_night"),
        "variables": variables,
        "chunks": chunks,
    }


def window_for_bbox(path: str | Path, bbox) -> tuple[slice, slice] | None:
    """Rows/cols of the tile in ``path`` that cover a lon/lat bbox [W, S, E, N] (degrees), or
    None when the tile does not meet it (reads attributes only)."""
    info = granule_info(path)
    return tile_window(info["vtile"], info["htile"], bbox, info["n"])


# --- decoding ----------------------------------------------------------------------------------


def decode_dn(dn: np.ndarray, attrs, where: str, dtype=np.float32) -> np.ndarray:
    """Physical values (``dtype``, float32 by default) from stored DNs with the dataset's
    JAXA attributes:
    ``DN * Slope + Offset``, NaN where DN == Error_DN or DN is outside
    [Minimum_valid_DN, Maximum_valid_DN]. Slope and Offset are required; the validity
    attributes are applied when present (as JAXA's own tools do)."""
    slope = attr_number(attrs, "Slope", where)
    offset = attr_number(attrs, "Offset", where)
    invalid = np.zeros(dn.shape, dtype=bool)
    if "Error_DN" in attrs:
        invalid |= dn == attr_number(attrs, "Error_DN", where)
    if "Minimum_valid_DN" in attrs:
        invalid |= dn < attr_number(attrs, "Minimum_valid_DN", where)
    if "Maximum_valid_DN" in attrs:
        invalid |= dn > attr_number(attrs, "Maximum_valid_DN", where)
    values = dn.astype(dtype) * dtype(slope) + dtype(offset)
    values[invalid] = np.nan
    return values


def cloud_mask(qa: np.ndarray | xr.DataArray) -> np.ndarray | xr.DataArray:
    """True where QA_flag marks no data, cloud, cloud shadow or cloud adjacency/thin cloud
    (bits of :data:`QA_BITS`); the pixels to drop before compositing."""
    bad = 0
    for name in ("no_data", "cloudy", "cloud_shadow", "cloud_adjacent_or_thin"):
        bad |= 1 << QA_BITS[name]
    return (qa & bad) != 0


def _units(attrs, where: str) -> str:
    if "Unit" not in attrs:
        return ""
    unit = str(attr_value(attrs, "Unit", where))
    return {"NA": "1", "N/A": "1", "-": "1", "Kelvin": "K", "m^2/m^2": "m2 m-2"}.get(unit, unit)


def _read_layer(dset: h5py.Dataset, roi, path: Path, name: str) -> np.ndarray:
    try:
        return np.asarray(dset[roi] if roi is not None else dset[()])
    except (OSError, ValueError, TypeError) as exc:
        raise ReaderError(f"{path}: cannot read {dset.name} ({exc})") from exc


def open_sgli_l2(
    path: str | Path,
    variables: list[str] | None = None,
    roi: tuple[slice, slice] | None = None,
) -> xr.Dataset:
    """Read an SGLI L2 land tile into an xarray Dataset.

    ``variables``: names of /Image_data datasets (``NDVI``, ``EVI``, ``LST``, ``LAI``,
    ``Rs_VN08``, ``QA_flag``, ...) and/or ``Obs_time``; None reads all of them. ``roi`` =
    (row slice, column slice) of the tile reads only that window (see :func:`tile_window`).

    Returns dims ``(y, x)``: ``y``/``x`` coordinates are the integer row/column numbers inside
    the tile; ``lat``/``lon`` are 2-D float64 pixel-centre coordinates in degrees (WGS84,
    EQA handbook formula). Product layers are float32 physical values (NaN where Error_DN or
    outside the valid DN range) with ``units`` from the file (LST K, LAI m2 m-2, NDVI/EVI and
    Rs_* reflectance 1); ``QA_flag`` stays uint16 bits; ``Obs_time`` (daily tiles) is
    datetime64[ns], UTC, NaT where unobserved. Scalar coordinate ``time``: for daily (01D)
    tiles the middle of Image_start_time..Image_end_time (the overpass), for 8-day/monthly
    composites the composite start date (like the MODIS reader). Attributes carry the tile,
    product, period and ``time_coverage_start``/``time_coverage_end`` (ISO 8601, UTC).

    Memory: a full 250 m tile is 4800 x 4800 pixels (two float64 coordinate arrays of 184 MB);
    read such tiles by ``roi``.

    Raises ReaderError naming the file and the problem (not HDF5, truncated, missing group,
    attribute, time or product layer, unknown variable).
    """
    path = Path(path)
    with open_h5(path) as h5:
        info = _read_info(h5, path)
        image = h5["Image_data"]
        n = info["n"]
        meta = info["meta"]
        if meta is not None:
            required = PRODUCT_LAYERS.get(info["product"], ())
            missing = [name for name in required if name not in info["layers"]]
            if missing or not [k for k in info["layers"] if not _is_bit_layer(k)]:
                raise ReaderError(
                    f"{path}: {info['product']} file has no product layer "
                    f"{missing or 'at all'} in /Image_data (it has {sorted(info['layers'])})"
                )
        available = list(info["layers"]) + (["Obs_time"] if info["has_obs_time"] else [])
        wanted = available if variables is None else list(dict.fromkeys(variables))
        unknown = [v for v in wanted if v not in available]
        if unknown:
            raise ReaderError(
                f"{path}: no dataset {unknown} in /Image_data or /Geometry_data; "
                f"it has {sorted(available)}"
            )
        if roi is None:
            rows, cols = slice(0, n), slice(0, n)
        else:
            rows, cols = (slice(*s.indices(n)[:2]) for s in roi)
            if rows.stop <= rows.start or cols.stop <= cols.start:
                raise ReaderError(f"{path}: empty roi {roi} for a {n} x {n} tile")
        window = (rows, cols)
        data_vars = {}
        for name in wanted:
            dset = h5["Geometry_data/Obs_time"] if name == "Obs_time" else image[name]
            where = f"{path}: {dset.name}"
            if dset.shape != (n, n):
                raise ReaderError(f"{where} has shape {dset.shape}, the tile is {n} x {n}")
            dn = _read_layer(dset, window, path, name)
            attrs = {"long_name": _description(dset.attrs, where) or name}
            if _is_bit_layer(name):
                values = dn
                attrs["units"] = "1"
                if name == "QA_flag":
                    attrs["flag_bits_hedged"] = ", ".join(
                        f"{bit}:{key}" for key, bit in QA_BITS.items()
                    )
            elif name == "Obs_time":
                hours = decode_dn(dn, dset.attrs, where, np.float64)
                day = meta["date"] if meta is not None else info["start"]
                day0 = np.datetime64(day.date(), "ns")
                ns = np.round(np.where(np.isfinite(hours), hours, 0.0) * 3.6e12)
                values = day0 + ns.astype("timedelta64[ns]")
                values[~np.isfinite(hours)] = np.datetime64("NaT")
                attrs = {"long_name": "observation time of each pixel (UTC)"}
            else:
                values = decode_dn(dn, dset.attrs, where)
                attrs["units"] = _units(dset.attrs, where)
            data_vars[name] = (("y", "x"), values, attrs)
    lon, lat = eqa_lonlat(
        np.arange(rows.start, rows.stop)[:, None],
        np.arange(cols.start, cols.stop)[None, :],
        info["vtile"],
        info["htile"],
        n,
    )
    coords = {
        "y": ("y", np.arange(rows.start, rows.stop), {"long_name": "line number in the tile"}),
        "x": ("x", np.arange(cols.start, cols.stop), {"long_name": "pixel number in the tile"}),
        "lat": (("y", "x"), lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": (("y", "x"), lon, {"units": "degrees_east", "standard_name": "longitude"}),
        "time": _nominal_time(info),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds["time"].attrs["long_name"] = (
        "overpass (middle of image start/end)" if _is_daily(info) else "composite start"
    )
    ds.attrs.update(
        source_file=str(path),
        product=info["product"],
        tile=info["tile"],
        vtile=info["vtile"],
        htile=info["htile"],
        pixels_per_tile=n,
        grid="SGLI EQA tiles (18 x 36 tiles of 10 degrees, handbook SGC-180024)",
        time_coverage_start=info["start"].isoformat(),
        time_coverage_end=info["end"].isoformat(),
        format_reference=f"{SPEC_URL}; {HANDBOOK}",
    )
    if meta is not None:
        ds.attrs.update(period=meta["period"], day_night=meta["day_night"])
    return ds


def _description(attrs, where: str) -> str:
    return str(attr_value(attrs, "Data_description", where)) if "Data_description" in attrs else ""


def _is_daily(info: dict) -> bool:
    return info["meta"] is None or info["meta"]["period"] == "01D"


def _nominal_time(info: dict) -> np.datetime64:
    if _is_daily(info):
        return np.datetime64(info["start"] + (info["end"] - info["start"]) / 2, "ns")
    return np.datetime64(info["meta"]["date"], "ns")


# --- registry ----------------------------------------------------------------------------------


def _sniff(path: Path) -> bool:
    """HDF5 with /Global_attributes (Tile_number) and /Image_data; ReaderError saying what is
    missing otherwise."""
    path = Path(path)
    require(path, "hdf5", "HDF5", "GCOM-C SGLI products are HDF5")
    with open_h5(path) as h5:
        glob_attrs = h5.get("Global_attributes")
        if not isinstance(glob_attrs, h5py.Group):
            raise ReaderError(f"{path}: has no /Global_attributes group, not an SGLI product")
        if "Tile_number" not in glob_attrs.attrs:
            raise ReaderError(
                f"{path}: /Global_attributes has no Tile_number, not an SGLI L2 tile product"
            )
        if not isinstance(h5.get("Image_data"), h5py.Group):
            raise ReaderError(f"{path}: has no /Image_data group (SGLI L2 tiles hold the layers)")
    return True


def valid_counts(path: str | Path, rows: int = 1024) -> dict[str, int]:
    """Valid DNs (not Error_DN, inside [Minimum_valid_DN, Maximum_valid_DN]) of each 2-D
    dataset of /Image_data that is not a QA layer, read in blocks of ``rows`` lines."""
    path = Path(path)
    counts: dict[str, int] = {}
    with open_h5(path) as h5:
        image = h5.get("Image_data")
        if not isinstance(image, h5py.Group):
            return counts
        for name, ds in image.items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 2 or "QA" in name.upper():
                continue
            attrs, where = ds.attrs, f"{path}: /Image_data/{name}"
            total = 0
            try:
                for i in range(0, ds.shape[0], rows):
                    dn = ds[i : i + rows]
                    ok = np.ones(dn.shape, dtype=bool)
                    if "Error_DN" in attrs:
                        ok &= dn != attr_number(attrs, "Error_DN", where)
                    if "Minimum_valid_DN" in attrs:
                        ok &= dn >= attr_number(attrs, "Minimum_valid_DN", where)
                    if "Maximum_valid_DN" in attrs:
                        ok &= dn <= attr_number(attrs, "Maximum_valid_DN", where)
                    if dn.dtype.kind == "f":
                        ok &= np.isfinite(dn)
                    total += int(ok.sum())
            except OSError as exc:
                raise ReaderError(f"{where}: cannot read ({exc})") from exc
            counts[name] = total
    return counts


def no_data_warnings(counts: dict[str, int]) -> list[str]:
    """One warning when every counted layer has no valid value."""
    if counts and not any(counts.values()):
        return [f"no valid data: every value of {', '.join(counts)} is fill or out of range"]
    return []


def _summarize(path: Path) -> FileSummary:
    """Header summary; ``details["valid_values"]`` counts valid DNs of each layer."""
    info = granule_info(path)
    counts = valid_counts(path)
    warnings = no_data_warnings(counts)
    return FileSummary(
        path=str(path),
        reader="sgli_l2",
        variables=info["variables"],
        bbox=[round(v, 6) for v in info["bbox"]],
        time=[info["start"].isoformat(), info["end"].isoformat()],
        details={
            "product": info["product"],
            "tile": info["tile"],
            "shape": [info["n"], info["n"]],
            "period": info["period"],
            "grid": "SGLI EQA",
            "valid_values": counts,
        }
        | ({"warnings": warnings} if warnings else {}),
    )


# --- source: VGI tiles onto a target tile ------------------------------------------------------


def _granule_info(path: str | Path) -> Granule:
    """An L2 tile as a granule: overpass time, tile envelope, the tile id as the grid key;
    ``ndvi``/``evi`` for VGI tiles (other L2 products give no layer the pipeline reads)."""
    info = granule_info(path)
    layers = frozenset({"ndvi", "evi"}) if info["product"] == "VGI" else frozenset()
    return Granule(
        str(path),
        info["start"],
        tuple(info["bbox"]),
        (info["vtile"], info["htile"], info["n"]),
        (str(path),),
        layers=layers,
        product=info["product"],
    )


def _prepare(granule: Granule, tile, options: dict):
    from fluxscape.readers.ontile import tile_lonlat

    vtile, htile, n = granule.key
    lon, lat = tile_lonlat(tile)
    rows, cols, valid = tile_pixel_index(lon, lat, vtile, htile, n)
    if not valid.any():
        return None
    r0, r1 = int(rows[valid].min()), int(rows[valid].max()) + 1
    c0, c1 = int(cols[valid].min()), int(cols[valid].max()) + 1
    rr, cc = np.where(valid, rows - r0, 0), np.where(valid, cols - c0, 0)
    return (slice(r0, r1), slice(c0, c1)), rr, cc, valid


def _read(granule: Granule, tile, layers, options: dict, context) -> dict:
    """NDVI/EVI of one VGI tile on the target pixels (exact EQA inverse) with the QA_flag
    cloud mask: reliability 3 where cloudy, 0 clear, -1 off the tile."""
    from fluxscape.readers.ontile import day_of_year

    roi, rr, cc, valid = context
    ds = open_sgli_l2(granule.path, ["NDVI", "EVI", "QA_flag"], roi=roi)
    ndvi = np.where(valid, ds["NDVI"].values[rr, cc], np.nan)
    evi = np.where(valid, ds["EVI"].values[rr, cc], np.nan)
    cloudy = np.where(valid, cloud_mask(ds["QA_flag"].values[rr, cc]), True)
    observed = valid & np.isfinite(ndvi)
    return {
        "ndvi": ndvi.astype("float32"),
        "evi": evi.astype("float32"),
        "reliability": np.where(observed, np.where(cloudy, 3, 0), -1),
        "usable": observed & ~cloudy,
        "doy": np.full(ndvi.shape, day_of_year(granule.start), "float32"),
        "files": [granule.path],
    }


SPEC = register(
    ReaderSpec(
        name="sgli_l2",
        patterns=(L2_NAME_PATTERN,),
        sniff=_sniff,
        open=open_sgli_l2,
        summarize=_summarize,
        description="GCOM-C SGLI L2 land tiles (VGI, LST, LAI, RSRF; EQA grid; h5py)",
        capabilities=frozenset({"ndvi", "evi"}),
        granule_info=_granule_info,
        prepare=_prepare,
        read=_read,
        name_bbox=name_bbox,
        quality="QA_flag cloud bits",
    )
)
