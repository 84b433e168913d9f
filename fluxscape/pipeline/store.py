"""Product stores (DESIGN section 5): Zarr template, tile-region writes, manifest, finalise.

Life of a store:

1. :func:`create_store` writes the metadata, coordinates and CF grid mapping, with data
   variables chunked one tile per chunk and not yet written (fill value NaN / _FillValue).
2. Each tile task writes its own chunks with :func:`write_tile` (region writes never overlap).
3. The driver appends each finished tile to the run's manifest (:class:`Manifest`), so
   ``--resume`` skips it; a tile that was running when the process died is not in the
   manifest and is simply written again (its chunks are rewritten whole).
4. :func:`finalize_store` writes the provenance attributes and consolidated metadata; only
   then is the product published to the catalog.

Zarr format 2 is used: GDAL 3.10 (the rasterio wheels) cannot read the Zarr v3 ``bytes``
codec, and DESIGN asks that GDAL and rioxarray georeference the stores without help.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

ZARR_FORMAT = 2
#: long_name of the non-spatial dimensions other than time (CF recommends one on every variable).
_DIM_NAMES = {"year": "calendar year", "season": "growing season of the year (1 = first)"}


@dataclass(frozen=True)
class VariableSpec:
    """A product variable: name, dtype, CF attributes and fill value for integers."""

    name: str
    dtype: str
    attrs: dict
    fill: int | None = None


def create_store(
    path: Path | str,
    geobox: GeoBox,
    dims: dict[str, np.ndarray],
    variables: list[VariableSpec],
    tile_size: int,
    attrs: dict,
    time_bounds: np.ndarray | None = None,
    time_chunk: int | None = None,
    extra_coords: dict | None = None,
) -> None:
    """Write an empty store (a folder, or an object-store URL written in place): the
    non-spatial coordinates ``dims`` (in order, e.g. ``time`` or ``year, season``) then
    ``y, x``, ``spatial_ref`` (CF grid mapping with ``crs_wkt``), and
    data variables ``(*dims, y, x)`` chunked (whole non-spatial dims, tile, tile).

    A ``time`` dimension needs ``time_bounds`` (``(n, 2)`` datetime64: each period's start and
    exclusive end), written as the CF bounds coordinate ``time_bnds (time, bnds)``. Each data
    variable also carries GDAL's ``_CRS`` attribute (:func:`gdal_crs`), which GDAL before 3.9
    needs to georeference a Zarr array (later versions also read ``grid_mapping``).

    ``time_chunk``: time steps per chunk (default: the whole axis in one chunk; the stores of
    ``fluxscape update`` use 1, so that a new or changed period is new chunk files and every
    other chunk can be shared with the previous version). ``extra_coords``: extra non-index
    coordinates along the leading dims, ``{name: (dims, values, attrs)}`` (e.g. the
    ``period_status`` flag of an updated store)."""
    if ("time" in dims) != (time_bounds is not None):
        raise ValueError("create_store: time_bounds go with (and only with) a time dimension")
    coords = grid_coords(geobox)
    lead = {name: np.asarray(values) for name, values in dims.items()}
    shape = (*(len(v) for v in lead.values()), *geobox.shape.yx)
    chunks = tuple(
        time_chunk if name == "time" and time_chunk else len(v) for name, v in lead.items()
    ) + (tile_size, tile_size)
    names = (*lead, "y", "x")
    data_vars, encoding = {}, {}
    crs_attr = {"_CRS": gdal_crs(geobox)}
    for var in variables:
        fill = np.nan if var.fill is None else var.fill
        arr = da.full(shape, fill, dtype=var.dtype, chunks=chunks)
        data_vars[var.name] = (names, arr, {**var.attrs, "grid_mapping": "spatial_ref", **crs_attr})
        encoding[var.name] = {"chunks": chunks, "_FillValue": fill}
    for name, values in lead.items():
        if np.issubdtype(values.dtype, np.datetime64):
            lead[name] = values.astype("datetime64[ns]")
            encoding[name] = {
                "units": "days since 1970-01-01",
                "calendar": "proleptic_gregorian",
                "dtype": "int32",
            }
    ds = xr.Dataset(data_vars, coords={**coords, **lead})
    ds["x"].attrs.update(_axis_attrs(geobox, "x"))
    ds["y"].attrs.update(_axis_attrs(geobox, "y"))
    for name in ("x", "y"):
        encoding[name] = {"_FillValue": None}  # CF: coordinates hold no missing values
    for name in lead:
        if name != "time":
            ds[name].attrs.setdefault("long_name", _DIM_NAMES.get(name, name))
            ds[name].attrs.setdefault("units", "1")
    ds["spatial_ref"].attrs.setdefault("long_name", "coordinate reference system")
    if "time" in ds.coords:
        ds["time"].attrs.update(
            standard_name="time",
            long_name="start of compositing period",
            axis="T",
            bounds="time_bnds",
        )
        ds = ds.assign_coords(
            time_bnds=(("time", "bnds"), np.asarray(time_bounds, dtype="datetime64[ns]"))
        )
        encoding["time_bnds"] = {**encoding["time"], "_FillValue": None}
    for name, (cdims, values, cattrs) in (extra_coords or {}).items():
        ds = ds.assign_coords({name: (cdims, np.asarray(values))})
        ds[name].attrs.update(cattrs)
        encoding[name] = {"_FillValue": None}
    ds.attrs.update(attrs)
    if isinstance(path, str):  # an object-store URL: no rename there; nobody reads it yet
        ds.to_zarr(
            path,
            mode="w",
            compute=False,
            zarr_format=ZARR_FORMAT,
            consolidated=False,
            encoding=encoding,
        )
        return
    tmp = path.with_name(path.name + ".creating")
    _rmtree(tmp)
    ds.to_zarr(
        tmp, mode="w", compute=False, zarr_format=ZARR_FORMAT, consolidated=False, encoding=encoding
    )
    os.replace(tmp, path)


def gdal_crs(geobox: GeoBox) -> dict:
    """GDAL's Zarr CRS attribute: ``{"wkt": WKT2, "url": OGC EPSG URL}`` (the URL only for a
    CRS with an EPSG code)."""
    crs = {"wkt": geobox.crs.to_wkt()}
    if geobox.crs.epsg is not None:
        crs["url"] = f"http://www.opengis.net/def/crs/EPSG/0/{geobox.crs.epsg}"
    return crs


def grid_coords(geobox: GeoBox) -> dict:
    """Pixel-centre coordinates named ``y``/``x`` (degrees or metres) plus ``spatial_ref``,
    the CF grid mapping with ``crs_wkt`` (odc-geo names geographic axes latitude/longitude;
    DESIGN fixes ``y``/``x`` for every store)."""
    coords = xr_coords(geobox, crs_coord_name="spatial_ref")
    rename = {"latitude": "y", "longitude": "x"}
    return {
        rename.get(k, k): (v.rename({v.dims[0]: rename.get(v.dims[0], v.dims[0])}) if v.dims else v)
        for k, v in coords.items()
    }


def _axis_attrs(geobox: GeoBox, axis: str) -> dict:
    if geobox.crs.geographic:
        if axis == "x":
            return {
                "standard_name": "longitude",
                "long_name": "longitude",
                "units": "degrees_east",
                "axis": "X",
            }
        return {
            "standard_name": "latitude",
            "long_name": "latitude",
            "units": "degrees_north",
            "axis": "Y",
        }
    name = "projection_x_coordinate" if axis == "x" else "projection_y_coordinate"
    return {
        "standard_name": name,
        "long_name": f"{axis} coordinate of projection",
        "units": "m",
        "axis": axis.upper(),
    }


def write_tile(
    path: Path | str, tile_ds: xr.Dataset, rows: slice, cols: slice, time: slice | None = None
) -> None:
    """Write one tile's data variables ``(*dims, y, x)`` into their region of the store;
    ``time``: the steps of the store's time axis the data holds (default: all)."""
    region = {d: slice(None) for d in tile_ds.dims if d not in ("y", "x")}
    if time is not None:
        region["time"] = time
    region |= {"y": rows, "x": cols}
    out = tile_ds.drop_vars(list(tile_ds.coords), errors="ignore")
    for name in out.data_vars:
        out[name].attrs = {}
        out[name].encoding = {}
    out.to_zarr(path, region=region, zarr_format=ZARR_FORMAT, consolidated=False)


def finalize_store(path: Path | str, attrs: dict) -> None:
    """Set the provenance attributes and write consolidated metadata (``.zmetadata``)."""
    group = zarr.open_group(str(path), mode="r+", zarr_format=ZARR_FORMAT)
    group.attrs.update(attrs)
    zarr.consolidate_metadata(str(path), zarr_format=ZARR_FORMAT)


#: Folder (beside the published stores) holding each product's store versions.
VERSIONS_DIR = ".versions"


def publish_version(staging: Path, store: Path, version: str) -> Path:
    """Make the finished store at ``staging`` the one readers find at ``store``.

    The store becomes the immutable version ``<store's folder>/.versions/<name>/<version>.zarr``
    and ``store`` a symbolic link to it, replaced in one atomic rename: a reader opening
    ``store`` gets the old complete version or the new one, never a half-built store or none.
    The version replaced is kept (a reader that opened it before the swap reads on), older
    ones are removed. A store left as a plain folder by an earlier fluxscape is moved into
    the versions folder first. Returns the new version's path."""
    name = store.name.removesuffix(".zarr")
    versions = store.parent / VERSIONS_DIR / name
    versions.mkdir(parents=True, exist_ok=True)
    target = versions / f"{version}.zarr"
    os.replace(staging, target)
    keep = {target.resolve()}
    if store.is_symlink():
        keep.add(store.resolve())
    elif store.exists():
        legacy = versions / f"legacy-{os.getpid()}.zarr"
        os.replace(store, legacy)
        keep.add(legacy.resolve())
    link = store.with_name(f".{store.name}.{os.getpid()}.link")
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(target, store.parent))
    os.replace(link, store)
    for old in versions.iterdir():
        if old.resolve() not in keep:
            _rmtree(old)
    return target


def _rmtree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)


class Manifest:
    """Append-only JSON-lines record of a product's finished tiles and its digest.

    Line 1: ``{"workflow_hash": ...}`` (the product's digest,
    :func:`~fluxscape.pipeline.config.product_hash`; the key keeps its old name); then one
    ``{"tile": id, "skipped": [...]}`` per finished tile, and ``{"complete": true}`` once the
    store is finalised. Each line is flushed and fsynced, so a killed run loses at most the
    tile in flight.
    """

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict:
        """{"workflow_hash": str | None, "tiles": {id: entry}, "complete": bool}."""
        state = {"workflow_hash": None, "tiles": {}, "complete": False}
        if not self.path.exists():
            return state
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if "workflow_hash" in entry:
                state["workflow_hash"] = entry["workflow_hash"]
            elif "tile" in entry:
                state["tiles"][entry["tile"]] = entry
            elif entry.get("complete"):
                state["complete"] = True
        return state

    def start(self, workflow_hash: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        self.append({"workflow_hash": workflow_hash})

    def unlink(self, missing_ok: bool = True) -> None:
        """Remove the record."""
        self.path.unlink(missing_ok=missing_ok)

    def append(self, entry: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
