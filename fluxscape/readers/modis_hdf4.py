"""MODIS HDF4-EOS sinusoidal grid tiles (MOD13, MCD43, MOD11, MCD15, MOD09, MCD64, MCD12, ...).

Format: HDF-EOS2 grid in an HDF4 file (https://hdfeos.org/software/library.php; the LP DAAC
user guides give each product's science data sets). The grid (name, size, corner coordinates in
metres, projection) is described by the ODL text in the global attribute ``StructMetadata.0``;
each science data set (SDS) is an HDF4 array read with pyhdf. The rasterio wheels carry no HDF4
driver, so pyhdf is the only pip-installable reader; nobody maintains a StructMetadata parser
outside of GDAL and satpy's heavy file-handler classes, so the small ODL parser is written here.

Decoding follows the products' user guides, not the attributes blindly:

* the MODIS land convention is ``value = scale_factor * (DN - add_offset)``;
* MOD13/MYD13 files carry ``scale_factor = 10000`` meaning *divide* by 10 000 (User's Guide C6);
* MOD11 view angles and emissivities are documented in the file as
  ``DN * scale_factor + add_offset`` (CF; e.g. ``Emis_31``: 0.002, offset 0.49);
  MOD11 LST and view times have no offset (``LST_Day_1km``: DN x 0.02 K, fill 0);
* MOD09A1/MYD09A1 surface reflectance (``sur_refl_b01``..``b07``: int16, scale 0.0001, offset
  0, valid -100..16000, fill -28672) and its angles (scale 0.01, fill 0) follow the MODIS land
  convention (MOD09 User's Guide, Collection 6);
* MCD15A2H/MOD15A2H LAI and FPAR (uint8, scale 0.1 and 0.01, offset 0) are valid 0..100; the
  DNs 249..255 are fill *classes* (water, barren, urban, ...; 248 in the standard deviations:
  backup method), outside ``valid_range``, so they decode to NaN, never to an LAI of 25; FPAR
  is stored as "Percent" but decoded to a fraction, so its units become ``"1"``.

The grid is what ``StructMetadata.0`` says, not the whole tile of the file name: HEG/AppEEARS
spatial subsets keep the tile's h/v in their name but carry their own grid (a name with a
suffix such as ``MOD_Grid_500m_Surface_Reflectance_463``, the subset's size and corners).
MODIS files declare ``PixelRegistration=HDFE_CENTER``, yet their ``UpperLeftPointMtrs`` and
``LowerRightMtrs`` are the outer pixel *edges* (a full tile spans exactly 1111950.52 m), so the
corners are used as edges.

Quality layers (QA/QC bit fields, pixel reliability) are returned undecoded as integers so that
later stages can mask with them.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from pyhdf.error import HDF4Error
from pyhdf.SD import SD, SDC

from fluxscape.errors import ReaderError
from fluxscape.readers import qa
from fluxscape.readers.granule_cache import (
    BLOCKS,
    assemble,
    file_stamp,
    keep_blocks,
    missing_span,
    window_blocks,
)
from fluxscape.readers.magic import require
from fluxscape.readers.ontile import (
    Granule,
    day_of_year,
    gather,
    mode_onto,
    nearest_index,
    reproject_stack,
)
from fluxscape.readers.registry import FileSummary, ReaderSpec, extend_capabilities, register

#: MODIS sinusoidal projection on the authalic sphere used by all MODIS land tiles.
SINUSOIDAL_PROJ = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
EARTH_RADIUS_M = 6371007.181
TILE_SIZE_M = 1111950.5196666666  # 2 * pi * R / 36
GRID_X_MIN_M = -20015109.354
GRID_Y_MAX_M = 10007554.677

FILENAME_RE = re.compile(
    r"(?P<product>M[OYC]D\w+?)\.A(?P<year>\d{4})(?P<doy>\d{3})\.h(?P<h>\d{2})v(?P<v>\d{2})"
    r"\.(?P<collection>\d{3})\.(?P<production>\d{13})\.hdf"
)

_QA_NAME_RE = re.compile(r"(QC|QA|Quality|quality|reliability|state_500m|qc_500m)")


@dataclass(frozen=True)
class ModisGrid:
    """One HDF-EOS grid from ``StructMetadata.0``: name, shape and corners (metres)."""

    name: str
    xdim: int
    ydim: int
    upper_left: tuple[float, float]
    lower_right: tuple[float, float]
    projection: str
    fields: tuple[str, ...]

    @property
    def geobox(self) -> GeoBox:
        """The tile's pixel grid in the MODIS sinusoidal CRS (pixel edges at the corners)."""
        (ulx, uly), (lrx, lry) = self.upper_left, self.lower_right
        return GeoBox.from_bbox(
            (ulx, lry, lrx, uly), crs=SINUSOIDAL_PROJ, shape=(self.ydim, self.xdim), tight=True
        )


def tile_upper_left(h: int, v: int) -> tuple[float, float]:
    """Upper-left corner (x, y) in metres of MODIS sinusoidal tile hHHvVV."""
    return GRID_X_MIN_M + h * TILE_SIZE_M, GRID_Y_MAX_M - v * TILE_SIZE_M


@functools.lru_cache(maxsize=1024)
def tile_lonlat_bbox(h: int, v: int) -> tuple[float, float, float, float]:
    """Lon/lat envelope [W, S, E, N] (degrees) of MODIS sinusoidal tile hHHvVV: latitude is
    ``y / R``; at a latitude the longitude of ``x`` is ``x / (R cos(lat))``, so its extremes
    lie on the tile's latitude edges (or the equator), longitudes clipped to +-180."""
    x0, y1 = tile_upper_left(h, v)
    x1, y0 = x0 + TILE_SIZE_M, y1 - TILE_SIZE_M
    south = max(-90.0, math.degrees(y0 / EARTH_RADIUS_M))
    north = min(90.0, math.degrees(y1 / EARTH_RADIUS_M))
    lats = [south, north] + ([0.0] if south < 0.0 < north else [])
    lons = [
        math.degrees(x / (EARTH_RADIUS_M * max(math.cos(math.radians(lat)), 1e-12)))
        for x in (x0, x1)
        for lat in lats
    ]
    # a tile's corners beyond +-180 hold no data (they are off the sinusoidal globe)
    west = min(180.0, max(-180.0, min(lons)))
    east = min(180.0, max(-180.0, max(lons)))
    return (west, south, east, north)


def name_bbox(name: str) -> tuple[float, float, float, float] | None:
    """The lon/lat envelope of the ``hHHvVV`` tile a MODIS file name gives (HEG subsets of a
    tile lie inside it); None for a name without one."""
    # string splitting, not FILENAME_RE: the index applies this to every name of an archive
    # (10^6 of them), and a regex costs ten times more; the tile token is all it needs
    parts = name.split(".")
    if len(parts) < 4 or not parts[0].startswith("M") or parts[-1] != "hdf":
        return None
    hv = parts[2]
    if len(hv) != 6 or hv[0] != "h" or hv[3] != "v" or not (hv[1:3] + hv[4:]).isdigit():
        return None
    return tile_lonlat_bbox(int(hv[1:3]), int(hv[4:]))


def parse_filename(path: str | Path) -> dict | None:
    """Product, composite start date, tile h/v, collection and production time from a
    MODIS file name such as ``MOD13A2.A2021001.h29v05.061.2021018034215.hdf``; None if it does
    not follow the convention."""
    m = FILENAME_RE.fullmatch(Path(path).name)
    if not m:
        return None
    start = datetime(int(m["year"]), 1, 1) + timedelta(days=int(m["doy"]) - 1)
    return {
        "product": m["product"],
        "start": start,
        "h": int(m["h"]),
        "v": int(m["v"]),
        "collection": m["collection"],
        "production": m["production"],
    }


# --- ODL (StructMetadata.0) --------------------------------------------------------------


def _odl_value(text: str):
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        return tuple(_odl_value(t) for t in text[1:-1].split(","))
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_odl(text: str) -> dict:
    """Parse ODL text (GROUP/OBJECT blocks of KEY=VALUE lines) into nested dicts."""
    root: dict = {}
    stack = [root]
    for raw in text.replace("\x00", "").splitlines():
        line = raw.strip()
        if not line or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key in ("GROUP", "OBJECT"):
            child: dict = {}
            stack[-1][value] = child
            stack.append(child)
        elif key in ("END_GROUP", "END_OBJECT"):
            if len(stack) > 1:
                stack.pop()
        else:
            stack[-1][key] = _odl_value(value)
    return root


def parse_struct_metadata(text: str) -> list[ModisGrid]:
    """The grids described by a ``StructMetadata.0`` text, in file order."""
    odl = parse_odl(text)
    grids = []
    for block in odl.get("GridStructure", {}).values():
        if not isinstance(block, dict) or "GridName" not in block:
            continue
        fields = tuple(
            f["DataFieldName"]
            for f in block.get("DataField", {}).values()
            if isinstance(f, dict) and "DataFieldName" in f
        )
        grids.append(
            ModisGrid(
                name=str(block["GridName"]),
                xdim=int(block["XDim"]),
                ydim=int(block["YDim"]),
                upper_left=tuple(float(v) for v in block["UpperLeftPointMtrs"]),
                lower_right=tuple(float(v) for v in block["LowerRightMtrs"]),
                projection=str(block.get("Projection", "")),
                fields=fields,
            )
        )
    return grids


# --- decoding tables -----------------------------------------------------------------------

#: (product prefix regex, SDS name regex) -> decoding rule. "divide": DN / scale_factor;
#: "modis": scale_factor * (DN - add_offset); "cf": DN * scale_factor + add_offset.
DECODING_RULES: list[tuple[str, str, str]] = [
    (r"M[OY]D13", r".*", "divide"),
    (r"M[OY]D11", r".*view_angl.*", "cf"),
    (r"M[OY]D11", r"Emis_\d+", "cf"),
]


def _rule(product: str, sds_name: str) -> str:
    for prod_re, sds_re, rule in DECODING_RULES:
        if re.match(prod_re, product) and re.fullmatch(sds_re, sds_name):
            return rule
    return "modis"


def is_quality_layer(sds_name: str) -> bool:
    """True for QA/QC bit-field or reliability layers (kept as raw integers)."""
    return bool(_QA_NAME_RE.search(sds_name))


def variable_name(sds_name: str) -> str:
    """Normalised variable name: the MOD13 resolution prefix dropped, spaces to underscores
    (``"1 km 16 days NDVI"`` -> ``"NDVI"``)."""
    name = re.sub(r"^\s*\d+\s*k?m\s+\d+\s+days\s+", "", sds_name)
    return re.sub(r"\s+", "_", name.strip())


def decoded_units(attrs: dict) -> str:
    """Units of a decoded layer: ``"1"`` for unitless indices and reflectances, and for
    percentages stored with a 0.01 scale (MCD15 ``Fpar_500m``: "Percent", decoded 0..1)."""
    units = str(attrs.get("units", "")).strip()
    if units.upper() in ("NDVI", "EVI", "REFLECTANCE"):
        return "1"
    if units.lower() in ("percent", "%") and float(attrs.get("scale_factor", 1.0)) == 0.01:
        return "1"
    return units


def decode_sds(dn: np.ndarray, attrs: dict, product: str, sds_name: str) -> np.ndarray:
    """Physical values (float32, NaN where fill or outside ``valid_range``) from stored DNs."""
    values = dn.astype(np.float32)
    invalid = np.zeros(dn.shape, dtype=bool)
    if "_FillValue" in attrs:
        invalid |= dn == attrs["_FillValue"]
    if "valid_range" in attrs:
        lo, hi = attrs["valid_range"]
        invalid |= (dn < lo) | (dn > hi)
    scale = float(attrs.get("scale_factor", 1.0))
    offset = float(attrs.get("add_offset", 0.0))
    rule = _rule(product, sds_name)
    if rule == "divide":
        values = (values - offset) / np.float32(scale)
    elif rule == "cf":
        values = values * np.float32(scale) + np.float32(offset)
    else:
        values = np.float32(scale) * (values - np.float32(offset))
    values[invalid] = np.nan
    return values


# --- reading -------------------------------------------------------------------------------


def _open_sd(path: Path) -> SD:
    try:
        return SD(str(path), SDC.READ)
    except HDF4Error as exc:
        raise ReaderError(f"{path}: not a readable HDF4 file ({exc})") from exc


def read_grids(path: str | Path) -> list[ModisGrid]:
    """The HDF-EOS grids of a MODIS file (reads only ``StructMetadata.0``). Parsed once per
    process for each version of a file (path, size, modification time): every tile read of
    a granule needs them, and parsing is a third of a small window read."""
    path = Path(path)
    return list(_file_meta(path, _stamp(path), lambda: None)[0])


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        return file_stamp(path)
    except OSError as exc:
        raise ReaderError(f"{path}: not a readable HDF4 file ({exc.strerror})") from exc


#: (path, size, mtime_ns) -> (grids, {SDS name: name of its last dimension}); one parse of
#: the file's metadata per process and version of the file
_META: dict[tuple[str, int, int], tuple[tuple[ModisGrid, ...], dict[str, str]]] = {}
_META_LOCK = threading.Lock()


def _file_meta(path: Path, stamp: tuple[str, int, int], handle: Callable[[], SD | None]):
    """Grids and SDS names of a file version, parsed once per process: through the open
    handle ``handle()`` gives, or a handle of its own when that is None."""
    meta = _META.get(stamp)
    if meta is not None:
        return meta
    sd = handle()
    own = sd is None
    if own:
        sd = _open_sd(path)
    try:
        attrs = sd.attributes()
        dims = {n: info[0][-1] for n, info in sd.datasets().items()}
    except HDF4Error as exc:
        raise ReaderError(f"{path}: cannot read its metadata ({exc})") from exc
    finally:
        if own:
            sd.end()
    text = attrs.get("StructMetadata.0")
    if not text:
        raise ReaderError(f"{path}: no StructMetadata.0 attribute (not an HDF-EOS file)")
    grids = parse_struct_metadata(text)
    if not grids:
        raise ReaderError(f"{path}: StructMetadata.0 describes no grid")
    for g in grids:
        if "SNSOID" not in g.projection:
            raise ReaderError(
                f"{path}: grid {g.name} has projection {g.projection}; "
                "only sinusoidal (GCTP_SNSOID) tiles are supported"
            )
    meta = (tuple(grids), dims)
    with _META_LOCK:
        if len(_META) >= 4096:  # a bound on a long-lived worker's memory
            _META.clear()
        _META[stamp] = meta
    return meta


#: The block cache holds square blocks of this many pixels (it divides the 1200, 2400 and
#: 4800 pixel MODIS tiles): a tile's window is assembled from the blocks it meets, so that
#: neighbouring tiles of a region share blocks instead of each caching its own window.
BLOCK = 240


def _bounds(r: slice, n: int) -> tuple[int, int]:
    return (0 if r.start is None else r.start), (n if r.stop is None else r.stop)


def _read_raw(
    path: Path,
    stamp: tuple,
    sds_name: str,
    roi: tuple[slice, slice] | None,
    shape: tuple[int, int],
    handle: Callable[[], SD],
) -> tuple[np.ndarray, dict]:
    """Stored DNs of one SDS over ``roi`` (None: all of it) and its attributes, through the
    per-process block cache (``granule_cache.BLOCKS``, keyed by the file's path, size and
    modification time, the SDS and the block): blocks not cached are read with one
    hyperslab read (pyhdf reads only that part; a file compressed without chunks is inflated
    up to it) and kept; the window is put together from the blocks."""
    roi = roi or (slice(None), slice(None))
    if any(r.step not in (None, 1) for r in roi) or BLOCKS.max_bytes <= 0:
        try:  # strided windows, or no cache: read as asked
            sds = handle().select(sds_name)
            attrs = sds.attributes()
            dn = np.asarray(sds[roi[0], roi[1]])
            sds.endaccess()
        except HDF4Error as exc:
            raise ReaderError(f"{path}: cannot read {sds_name!r} ({exc})") from exc
        return dn, attrs
    (r0, r1), (c0, c1) = _bounds(roi[0], shape[0]), _bounds(roi[1], shape[1])
    blocks = window_blocks(BLOCKS, (stamp, sds_name), r0, r1, c0, c1, BLOCK)
    attrs = BLOCKS.get((stamp, sds_name, "attrs"))
    missing = [b for b, v in blocks.items() if v is None]
    if missing or attrs is None:
        try:
            sds = handle().select(sds_name)
            attrs = sds.attributes()
            if missing:
                y0, y1, x0, x1 = missing_span(missing, BLOCK, shape[0], shape[1])
                part = np.asarray(sds[y0:y1, x0:x1])
            sds.endaccess()
        except HDF4Error as exc:
            raise ReaderError(f"{path}: cannot read {sds_name!r} ({exc})") from exc
        BLOCKS.put((stamp, sds_name, "attrs"), attrs)
        if missing:
            keep_blocks(BLOCKS, (stamp, sds_name), part, y0, x0, missing, blocks, BLOCK)
    dtype = next(iter(blocks.values())).dtype if blocks else np.int16
    dn = assemble(blocks, r0, r1, c0, c1, BLOCK, dtype)
    return dn, attrs


def _product_of(path: Path) -> str:
    meta = parse_filename(path)
    return meta["product"] if meta else path.name.split(".")[0]


def read_layers(
    path: str | Path,
    variables: list[str] | None = None,
    roi: tuple[slice, slice] | None = None,
    grid: str | None = None,
) -> tuple[str, GeoBox, dict[str, tuple[np.ndarray, dict]]]:
    """The layers of a MODIS file as arrays, without building a Dataset (what a tile read
    needs): the grid's name, the window's GeoBox (MODIS sinusoidal metres) and, by variable
    name, the ``(y, x)`` values (float32 physical values with NaN for fill, QA layers as
    stored integer DNs) and their attributes. Arguments as :func:`open_modis_tile`. The file
    is opened at most once, and not at all when its metadata and the window's blocks are
    cached."""
    path = Path(path)
    stamp = _stamp(path)
    sd: SD | None = None

    def opened() -> SD:  # the file is opened at most once per call, and only on a miss
        nonlocal sd
        if sd is None:
            sd = _open_sd(path)
        return sd

    try:
        grids, dims = _file_meta(path, stamp, opened)
        g = next((x for x in grids if x.name == grid), grids[0]) if grid else grids[0]
        gbox = g.geobox
        if roi is not None:
            # plain ints: pyhdf rejects numpy integers as slice bounds ("non-integer")
            roi = tuple(
                slice(*(None if v is None else int(v) for v in (r.start, r.stop, r.step)))
                for r in roi
            )
            gbox = gbox[roi]
        product = _product_of(path)
        names = [n for n, dim in dims.items() if dim.endswith(g.name)]
        if not names:
            names = list(dims)
        wanted = names
        if variables is not None:
            lookup = {variable_name(n): n for n in names} | {n: n for n in names}
            missing = [v for v in variables if v not in lookup]
            if missing:
                raise ReaderError(
                    f"{path}: no science data set {missing} in grid {g.name}; "
                    f"it has {sorted(variable_name(n) for n in names)}"
                )
            wanted = [lookup[v] for v in variables]
        data_vars = {}
        for sds_name in wanted:
            dn, attrs = _read_raw(path, stamp, sds_name, roi, (g.ydim, g.xdim), opened)
            if dn.shape != gbox.shape.yx:
                raise ReaderError(
                    f"{path}: {sds_name!r} has shape {dn.shape}, grid says {tuple(gbox.shape.yx)}"
                )
            out_attrs = {"sds_name": sds_name, "long_name": attrs.get("long_name", sds_name)}
            if is_quality_layer(sds_name):
                values = dn
                if "_FillValue" in attrs:
                    out_attrs["_FillValue_dn"] = attrs["_FillValue"]
                out_attrs["units"] = str(attrs.get("units", "1")).strip() or "1"
            else:
                values = decode_sds(dn, attrs, product, sds_name)
                out_attrs["units"] = decoded_units(attrs)
            data_vars[variable_name(sds_name)] = (values, out_attrs)
    finally:
        if sd is not None:
            sd.end()
    return g.name, gbox, data_vars


def open_modis_tile(
    path: str | Path,
    variables: list[str] | None = None,
    roi: tuple[slice, slice] | None = None,
    grid: str | None = None,
) -> xr.Dataset:
    """Read a MODIS HDF4-EOS tile into an xarray Dataset.

    ``variables`` are normalised names (see :func:`variable_name`) or SDS names; None reads
    every SDS of the grid. ``roi`` = (row slice, column slice) reads only that window.
    Returns dims ``(y, x)`` with pixel-centre coordinates in metres of the MODIS sinusoidal
    CRS (``spatial_ref`` carries it as a CF grid mapping); data layers are float32 physical
    values with NaN for fill; QA layers keep their integer DNs. A scalar ``time`` coordinate
    holds the composite start date from the file name.
    """
    path = Path(path)
    grid_name, gbox, layers = read_layers(path, variables, roi, grid)
    data_vars = {k: (("y", "x"), v, a) for k, (v, a) in layers.items()}
    ds = xr.Dataset(data_vars, coords=xr_coords(gbox, crs_coord_name="spatial_ref"))
    for v in ds.data_vars:
        ds[v].attrs["grid_mapping"] = "spatial_ref"
    meta = parse_filename(path)
    if meta:
        ds = ds.assign_coords(time=np.datetime64(meta["start"], "ns"))
        ds.attrs.update(
            product=meta["product"],
            tile=f"h{meta['h']:02d}v{meta['v']:02d}",
            collection=meta["collection"],
        )
    ds.attrs.update(source_file=str(path), grid_name=grid_name)
    return ds


def tile_geobox(path: str | Path) -> GeoBox:
    """The first grid's GeoBox of a MODIS file (sinusoidal metres), reading only metadata."""
    return read_grids(path)[0].geobox


# --- registry --------------------------------------------------------------------------------


def _sniff(path: Path) -> bool:
    """An HDF4 file with ``StructMetadata.0``; ReaderError saying what the file is otherwise."""
    require(path, "hdf4", "HDF4", "MODIS HDF-EOS files are HDF4")
    sd = _open_sd(path)
    try:
        if "StructMetadata.0" not in sd.attributes():
            raise ReaderError(
                f"{path}: is an HDF4 file without StructMetadata.0, not a MODIS HDF-EOS grid"
            )
    finally:
        sd.end()
    return True


#: The layers that make a MODIS product, by the product's two digits (MOD13A2 -> "13"):
#: ``inspect`` warns when one of them holds no valid value.
MAIN_LAYERS: dict[str, tuple[str, ...]] = {
    "09": ("sur_refl_b01", "sur_refl_b02"),
    "11": ("LST_Day_1km",),
    "12": ("LC_Type1",),
    "13": ("NDVI", "EVI"),
    "15": ("Lai_500m", "Fpar_500m"),
    "64": ("Burn_Date",),
}


def valid_counts(path: str | Path) -> dict[str, int]:
    """Valid values (not ``_FillValue``, inside ``valid_range``) of every science layer that is
    not a QA layer, by variable name; reads the whole layers."""
    path = Path(path)
    sd = _open_sd(path)
    counts: dict[str, int] = {}
    try:
        for name in sd.datasets():
            if is_quality_layer(name):
                continue
            try:
                sds = sd.select(name)
                attrs = sds.attributes()
                dn = np.asarray(sds.get())
                sds.endaccess()
            except HDF4Error as exc:
                raise ReaderError(f"{path}: cannot read {name!r} ({exc})") from exc
            valid = np.ones(dn.shape, dtype=bool)
            if "_FillValue" in attrs:
                valid &= dn != attrs["_FillValue"]
            if "valid_range" in attrs:
                lo, hi = attrs["valid_range"]
                valid &= (dn >= lo) & (dn <= hi)
            counts[variable_name(name)] = int(valid.sum())
    finally:
        sd.end()
    return counts


def _no_data_warnings(counts: dict[str, int], product: str | None) -> list[str]:
    if counts and not any(counts.values()):
        return [f"no valid data: every value of {', '.join(counts)} is fill or out of range"]
    main = MAIN_LAYERS.get(product[3:5], ()) if product else ()
    return [
        f"no valid data in {name}: every value is fill or out of range"
        for name in main
        if counts.get(name, 1) == 0
    ]


def _summarize(path: Path) -> FileSummary:
    """Reader, variables, bbox, time span; ``details["valid_values"]`` counts the valid values
    of each non-QA layer and ``details["warnings"]`` says when a main layer has none."""
    grids = read_grids(path)
    sd = _open_sd(path)
    try:
        names = list(sd.datasets())
    finally:
        sd.end()
    g = grids[0]
    bbox = list(g.geobox.extent.to_crs("EPSG:4326").boundingbox)
    meta = parse_filename(path)
    time = None
    if meta:
        # MODIS composites: 16-day VI, 8-day LST/LAI/reflectance, monthly burned area.
        days = {"13": 16, "11": 8, "15": 8, "09": 8, "64": 30, "43": 1, "12": 365}
        span = next((d for k, d in days.items() if meta["product"][3:5] == k), 1)
        end = meta["start"] + timedelta(days=span - 1)
        time = [meta["start"].date().isoformat(), end.date().isoformat()]
    counts = valid_counts(path)
    warnings = _no_data_warnings(counts, meta["product"] if meta else None)
    return FileSummary(
        path=str(path),
        reader="modis_hdf4",
        variables=[variable_name(n) for n in names],
        bbox=[round(float(v), 6) for v in bbox],
        time=time,
        details={
            "grid": g.name,
            "shape": [g.ydim, g.xdim],
            "product": meta["product"] if meta else None,
            # the standard layers the pipeline reads from this product (none: not read)
            "layers": sorted(product_family(meta["product"]).layers)
            if meta and product_family(meta["product"])
            else [],
            "valid_values": counts,
        }
        | ({"warnings": warnings} if warnings else {}),
    )


# --- source: MODIS products onto a tile -------------------------------------------------------


@dataclass(frozen=True)
class ModisProduct:
    """What the pipeline reads from one MODIS product family: standard layer -> variable
    (normalised SDS name) for float layers, the integer QA layers, and ``quality(arrays,
    options) -> (reliability, usable)`` on the gathered (y, x) arrays (QA as int32, -1 where
    the tile pixel is off the granule). ``doy``: the variable giving each pixel's day of year
    (else the file's start date). ``integer``: layers that are class codes, gathered as int16
    with -1 for fill. ``options``: extra option name -> variable for layers chosen by an
    option (e.g. MCD12Q1's ``land_cover_layer``)."""

    prefixes: tuple[str, ...]
    layers: dict[str, str]
    qa: tuple[str, ...]
    quality: Callable[[dict, dict], tuple[np.ndarray, np.ndarray]]
    doy: str | None = None
    integer: frozenset[str] = frozenset()
    #: layer -> variable read with any request (e.g. MOD11's view time and QC word)
    extra: dict[str, str] = field(default_factory=dict)
    #: float variables the quality rule looks at besides the QA layers
    checks: tuple[str, ...] = ()


#: MODIS product families the pipeline reads, by file-name prefix (``MOD13``, ``MOD11``, ...);
#: a module for a new MODIS product calls :func:`register_product`.
PRODUCTS: dict[str, ModisProduct] = {}


def register_product(product: ModisProduct) -> ModisProduct:
    """Make a MODIS product family readable onto tiles; its layers join the capabilities of
    the ``modis_hdf4`` source."""
    for prefix in product.prefixes:
        PRODUCTS[prefix] = product
    extend_capabilities("modis_hdf4", product.layers)
    return product


def product_family(name: str) -> ModisProduct | None:
    """The registered family of a product short name (``MOD13A2`` -> the MOD13 entry)."""
    return next((p for k, p in PRODUCTS.items() if name.startswith(k)), None)


def _mod13_quality(a: dict, options: dict) -> tuple[np.ndarray, np.ndarray]:
    rel = a["pixel_reliability"]
    usable = qa.modis_vi_usable(a["VI_Quality"], rel, options.get("max_reliability", 1))
    return np.where(rel >= 0, np.clip(rel, 0, 3), -1), usable


def _mod11_quality(a: dict, options: dict) -> tuple[np.ndarray, np.ndarray]:
    qc = a["QC_Day"]
    reliability = np.where(qc >= 0, qa.bits(np.maximum(qc, 0), 0, 1), -1)
    return reliability, qa.mod11_usable(a["LST_Day_1km"], qc, options.get("max_qa", 0))


def _code_quality(name: str, option: str | None = None):
    """Quality of class-code layers: no observation where the code is -1 (fill, off grid).
    ``option``: the option naming the variable read instead of ``name``."""

    def quality(a: dict, options: dict) -> tuple[np.ndarray, np.ndarray]:
        codes = a[options.get(option) or name] if option else a[name]
        return np.where(codes == -1, -1, 0), codes != -1

    return quality


register_product(
    ModisProduct(
        ("MOD13", "MYD13"),
        {
            "ndvi": "NDVI",
            "evi": "EVI",
            "red": "red_reflectance",
            "nir": "NIR_reflectance",
            "blue": "blue_reflectance",
            "swir22": "MIR_reflectance",
        },
        ("VI_Quality", "pixel_reliability"),
        _mod13_quality,
        doy="composite_day_of_the_year",
    )
)
register_product(
    ModisProduct(
        ("MOD11A", "MYD11A"),  # MOD11B (6 km) names its layers LST_Day_6km
        {"lst": "LST_Day_1km"},
        ("QC_Day",),
        _mod11_quality,
        extra={"view_time": "Day_view_time", "qc": "QC_Day"},
        checks=("LST_Day_1km",),
    )
)
register_product(
    ModisProduct(
        ("MCD64",),
        {"burn_date": "Burn_Date"},
        (),
        _code_quality("Burn_Date"),
        integer=frozenset({"burn_date"}),
    )
)
register_product(
    ModisProduct(
        ("MCD12",),
        {"land_cover": "LC_Type1"},
        (),
        _code_quality("LC_Type1", "land_cover_layer"),
        integer=frozenset({"land_cover"}),
    )
)


def granule_info(path: str | Path) -> Granule:
    """Headers of a MODIS file as a Granule: start date from the name, the grid's GeoBox as
    the native-grid key, its extent as footprint, the layers its product family gives
    (none for a product no module registered)."""
    meta = parse_filename(path)
    if meta is None:
        raise ReaderError(f"{path}: file name does not follow the MODIS convention")
    gbox = tile_geobox(path)
    bb = gbox.extent.to_crs("EPSG:4326").boundingbox
    family = product_family(meta["product"])
    return Granule(
        str(path),
        meta["start"],
        (bb.left, bb.bottom, bb.right, bb.top),
        gbox,
        (str(path),),
        layers=frozenset(family.layers) if family else frozenset(),
        footprint=gbox.extent,
        product=meta["product"],
    )


def _prepare(granule: Granule, tile: GeoBox, options: dict):
    index = nearest_index(granule.key, tile)
    if index.empty:
        return None
    window = index.window
    if options.get("resampling", "nearest") != "nearest":
        from odc.geo.overlap import compute_reproject_roi

        window = compute_reproject_roi(granule.key, tile).roi_src
    return index, window


def _read(granule: Granule, tile: GeoBox, layers, options: dict, context) -> dict:
    """The requested layers of one MODIS granule on the tile (see ReaderSpec.read)."""
    index, window = context
    family = product_family(granule.product)
    if family is None:
        raise ReaderError(f"{granule.path}: {granule.product} is not a product fluxscape reads")
    chosen = dict(family.layers)
    if "land_cover" in chosen and options.get("land_cover_layer"):
        chosen["land_cover"] = options["land_cover_layer"]
    wanted = {std: chosen[std] for std in layers if std in chosen}
    wanted |= family.extra
    names = list(dict.fromkeys([*wanted.values(), *family.qa, *family.checks]))
    if family.doy:
        names.append(family.doy)
    _, _, layers_read = read_layers(granule.path, names, roi=window)
    resampling = options.get("resampling", "nearest")
    integer_vars = {chosen[k] for k in family.integer} | set(family.qa)

    def on_tile(name: str) -> np.ndarray:
        is_int = name in integer_vars
        nodata = -1 if is_int else np.nan
        data = layers_read[name][0]  # QA words up to uint32: int64 keeps every bit and -1 for none
        data = np.nan_to_num(data, nan=-1).astype("int64") if is_int else data.astype("float32")
        if resampling == "nearest":
            return gather(data, index, nodata)
        # Classes and QA words are not averaged or interpolated: for a coarser grid their
        # counterpart of averaging is the most common value (mode).
        if is_int and resampling in ("average", "mode"):
            return mode_onto(data, granule.key[window], tile, nodata)
        how = "nearest" if is_int else resampling
        return reproject_stack(data[None], granule.key[window], tile, how, nodata)[0]

    arrays = {name: on_tile(name) for name in names}
    out = {std: arrays[var] for std, var in wanted.items()}
    for std in family.integer & set(out):
        out[std] = out[std].astype(np.int16)
    out["reliability"], out["usable"] = family.quality(arrays, options)
    if family.doy:
        out["doy"] = arrays[family.doy]
    else:
        out["doy"] = np.full(tile.shape.yx, day_of_year(granule.start), "float32")
    out["files"] = [granule.path]
    return out


register(
    ReaderSpec(
        name="modis_hdf4",
        patterns=(FILENAME_RE.pattern, r"M[OYC]D\w+\..*\.hdf"),
        sniff=_sniff,
        open=open_modis_tile,
        summarize=_summarize,
        description="MODIS HDF4-EOS sinusoidal grid tiles (pyhdf)",
        capabilities=frozenset(layer for p in PRODUCTS.values() for layer in p.layers),
        granule_info=granule_info,
        prepare=_prepare,
        read=_read,
        name_bbox=name_bbox,
        quality="MOD13 pixel reliability and VI Quality; MOD11 QC mandatory QA",
    )
)
