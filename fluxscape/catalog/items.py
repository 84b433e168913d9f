"""STAC Items of a product store: one per step of its time axis (DESIGN section 6).

A product with a ``time`` axis gets one Item per time step, and one with a ``year`` axis
(phenology, disturbance) one per year: a step is the unit a client asks for (a date range finds
the steps it overlaps) and the unit GDAL opens as a 2D raster, which is what odc-stac, STAC
Browser and desktop GIS expect of an Item. An Item holds:

- ``datetime`` (the step's period start), ``start_datetime`` and ``end_datetime`` from
  :func:`fluxscape.catalog.times.step_spans` (never computed here);
- the product footprint in lon/lat as its geometry, and the grid as projection metadata
  (``proj:code`` or ``proj:wkt2``, ``proj:shape``, ``proj:transform``);
- one asset per variable (``ndvi``; ``sos_s1``, ``sos_s2``... for a variable with a ``season``
  axis), a GDAL Zarr subdataset of that step, ``ZARR:"/abs/store.zarr":/ndvi:5`` (GDAL >= 3.4
  opens it; rasterio and odc-stac through it), with ``raster:bands`` giving the stored data
  type, nodata, unit, scale and offset (what GDAL reads is the stored value);
- the whole store as the ``zarr`` asset (relative href, ``xarray:open_kwargs``).

GDAL's subdataset syntax cannot name a path relative to the Item's JSON, so the per-variable
hrefs hold the absolute path of the store version (immutable, see
:mod:`fluxscape.pipeline.store`); ``fluxscape serve`` rewrites them to ``/vsicurl/`` URLs of
its ``/zarr/`` route (:func:`served_href`), and ``fluxscape catalog reindex`` writes them anew
after a catalog is moved.
"""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import xarray as xr
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.extensions.xarray_assets import XarrayAssetsExtension

from fluxscape.catalog import times

ZARR_MEDIA_TYPE = "application/vnd+zarr"
#: The whole-store asset's ``xarray:open_kwargs``.
OPEN_KWARGS = {"engine": "zarr", "consolidated": True}
#: ``ZARR:"PATH":REST``, GDAL's Zarr subdataset name (PATH has no double quote).
_GDAL_ZARR = re.compile(r'^ZARR:"([^"]*)":(.*)$')


def step_labels(dim: str, starts: np.ndarray) -> list[str]:
    """Item id suffixes of the steps: the year, the date, or (for several steps a day) the
    compact UTC date-time ``YYYYMMDDTHHMMSS``."""
    if dim == "year":
        return [str(pd.Timestamp(s).year) for s in starts]
    dates = [str(s)[:10] for s in starts]
    if len(set(dates)) == len(dates):
        return dates
    return [pd.Timestamp(s).strftime("%Y%m%dT%H%M%S") for s in starts]


def gdal_href(store: Path, variable: str, indices: list[int]) -> str:
    """GDAL's name of one 2D slice of a Zarr array: ``ZARR:"store":/variable:i:j``."""
    text = str(store)
    if text.startswith("s3://"):  # GDAL's name of an object on S3
        text = "/vsis3/" + text.removeprefix("s3://")
    return f'ZARR:"{text}":/{variable}' + "".join(f":{i}" for i in indices)


def served_href(href: str, store_url: str) -> str:
    """A per-variable asset href pointing at the store served at ``store_url`` (through GDAL's
    ``/vsicurl/``); other hrefs unchanged."""
    found = _GDAL_ZARR.match(href)
    if not found:
        return href
    return f'ZARR:"/vsicurl/{store_url}":{found[2]}'


def grid(ds: xr.Dataset) -> dict:
    """The store's grid as projection-extension fields: ``code`` (``EPSG:n``) or ``wkt2``,
    ``shape`` [rows, columns] and ``transform`` (the 6 affine coefficients a, b, c, d, e, f of
    the array as stored: row 0 is the first ``y`` value)."""
    from pyproj import CRS

    x, y = ds["x"].values.astype(float), ds["y"].values.astype(float)
    # the mean step over the axis, rounded: float noise of one step would shift far pixels
    dx = round(float(x[-1] - x[0]) / (len(x) - 1), 12) if len(x) > 1 else 1.0
    dy = round(float(y[-1] - y[0]) / (len(y) - 1), 12) if len(y) > 1 else -1.0
    wkt = ds["spatial_ref"].attrs.get("crs_wkt", "") if "spatial_ref" in ds else ""
    crs = CRS.from_wkt(wkt) if wkt else CRS.from_epsg(4326)
    epsg = crs.to_epsg()
    return {
        "code": f"EPSG:{epsg}" if epsg else None,
        "wkt2": None if epsg else crs.to_wkt(),
        "shape": [len(y), len(x)],
        "transform": [dx, 0.0, round(x[0] - dx / 2, 12), 0.0, dy, round(y[0] - dy / 2, 12)],
    }


def raster_band(da: xr.DataArray) -> RasterBand:
    """The ``raster:bands`` entry of a variable as GDAL reads it: stored data type, nodata
    (``"nan"`` for NaN), unit, and the scale and offset that give physical values."""
    enc = da.encoding
    dtype = np.dtype(enc.get("dtype", da.dtype))
    fill = enc.get("_FillValue", enc.get("missing_value"))
    nodata: float | int | str | None = None
    if fill is not None:
        value = np.asarray(fill).item()
        nodata = "nan" if isinstance(value, float) and math.isnan(value) else value
    band = RasterBand.create(
        nodata=nodata,
        data_type=_data_type(dtype),
        unit=str(da.attrs.get("units")) if da.attrs.get("units") is not None else None,
        scale=float(enc["scale_factor"]) if "scale_factor" in enc else None,
        offset=float(enc["add_offset"]) if "add_offset" in enc else None,
    )
    band.description = str(da.attrs.get("long_name", da.name))
    return band


def _data_type(dtype: np.dtype) -> DataType | None:
    try:
        return DataType(dtype.name)
    except ValueError:
        return None


def _utc(value: np.datetime64) -> datetime:
    return pd.Timestamp(value).to_pydatetime().replace(tzinfo=UTC)


def _variable_assets(ds: xr.Dataset, store: Path, dim: str, step: int) -> dict:
    """(asset key, href, title, band) per 2D slice of every variable at ``step``: one per
    variable, or one per index of an extra axis (``sos_s1`` = season 1)."""
    out = {}
    for name in ds.data_vars:
        da = ds[name]
        if name == "spatial_ref" or dim not in da.dims or da.dims[-2:] != ("y", "x"):
            continue
        extra = [d for d in da.dims[:-2] if d != dim]
        lead = list(da.dims[:-2])
        if len(extra) > 1:
            continue  # more than one extra axis: left to the whole-store asset
        title = str(da.attrs.get("long_name", name))
        combos = [None] if not extra else list(range(ds.sizes[extra[0]]))
        for k in combos:
            indices = [step if d == dim else k for d in lead]
            key = str(name)
            label = title
            if k is not None:
                value = ds[extra[0]].values[k] if extra[0] in ds.coords else k
                key = f"{name}_{extra[0][0]}{value}"
                label = f"{title}, {extra[0]} {value}"
            out[key] = (gdal_href(store, str(name), indices), label, raster_band(da))
    return out


def build_items(
    ds: xr.Dataset,
    store: Path,
    collection: pystac.Collection,
    geometry: dict,
    bbox: list[float],
    properties: dict,
    item_dir: Path,
) -> list[pystac.Item]:
    """The Items of the opened store ``ds`` (absolute path ``store``) in ``collection``:
    ``geometry``/``bbox`` the lon/lat footprint, ``properties`` added to every Item's, the
    ``zarr`` asset's href relative to ``item_dir`` (where the Item JSON files go)."""
    spans = times.step_spans(ds)
    if spans is None:
        return []
    dim, starts, ends = spans
    proj = grid(ds)
    zarr_href = os.path.relpath(store, item_dir)
    items = []
    for step, label in enumerate(step_labels(dim, starts)):
        start, end = _utc(starts[step]), _utc(ends[step])
        item = pystac.Item(
            id=f"{collection.id}.{label}",
            geometry=geometry,
            bbox=bbox,
            datetime=start,
            start_datetime=start,
            end_datetime=end,
            properties={
                "title": f"{collection.title} {label}",
                **properties,
                "fluxscape:dimension": dim,
                "fluxscape:step": step,
            },
            collection=collection.id,
        )
        ext = ProjectionExtension.ext(item, add_if_missing=True)
        ext.apply(
            code=proj["code"], wkt2=proj["wkt2"], shape=proj["shape"], transform=proj["transform"]
        )
        RasterExtension.add_to(item)
        for key, (href, title, band) in _variable_assets(ds, store, dim, step).items():
            asset = pystac.Asset(href=href, title=title, roles=["data"])
            item.add_asset(key, asset)
            RasterExtension.ext(asset).bands = [band]
        zarr = pystac.Asset(
            href=zarr_href,
            media_type=ZARR_MEDIA_TYPE,
            roles=["data"],
            title=f"{collection.title}: the whole Zarr store",
        )
        item.add_asset("zarr", zarr)
        XarrayAssetsExtension.ext(zarr, add_if_missing=True).open_kwargs = dict(OPEN_KWARGS)
        items.append(item)
    return items


def item_dict(item: pystac.Item) -> dict:
    """An Item as the JSON written to the catalog folder (links to the catalog, the
    collection and itself, relative), with no NaN in it."""
    payload = item.to_dict(include_self_link=False, transform_hrefs=False)
    payload["links"] = [
        {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../collection.json", "type": "application/json"},
        {"rel": "collection", "href": "../collection.json", "type": "application/json"},
    ]
    return payload
