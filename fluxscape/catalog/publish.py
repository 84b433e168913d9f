"""Publish a finished product store into a STAC catalog (DESIGN section 6).

One STAC Collection per (run, product) with the Zarr store as a ``data`` asset
(``application/vnd+zarr``), the datacube extension describing its dimensions and variables,
spatial/temporal extents, and the store's provenance. Everything here is read from the store
itself. Files are written to a temporary name and renamed, and the root ``catalog.json`` is
rewritten last, so readers see either the old catalog or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pystac
import xarray as xr
from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable

ZARR_MEDIA_TYPE = "application/vnd+zarr"
CATALOG_ID = "fluxscape"


def collection_id(run: str, product: str) -> str:
    """The catalog id of a run's product, e.g. ``demo.vi``."""
    return f"{run}.{product}"


def _store_dataset(store: Path) -> xr.Dataset:
    return xr.open_zarr(store, consolidated=True, decode_times=True)


def build_collection(store: Path, run: str, product: str, href_base: Path) -> pystac.Collection:
    """A STAC Collection describing ``store`` (asset href relative to ``href_base``)."""
    ds = _store_dataset(store)
    attrs = ds.attrs
    x, y = ds["x"].values, ds["y"].values
    dx = float(abs(x[1] - x[0])) if len(x) > 1 else 0.0
    dy = float(abs(y[1] - y[0])) if len(y) > 1 else 0.0
    west, east = float(x.min() - dx / 2), float(x.max() + dx / 2)
    south, north = float(y.min() - dy / 2), float(y.max() + dy / 2)
    crs_wkt = ds["spatial_ref"].attrs.get("crs_wkt", "")
    bbox_ll = _lonlat_bbox(crs_wkt, (west, south, east, north))
    t0, t1, time_dims = _temporal(ds)
    variables = [v for v in ds.data_vars if v != "spatial_ref"]
    collection = pystac.Collection(
        id=collection_id(run, product),
        title=attrs.get("title", product),
        description=attrs.get("summary", product),
        extent=pystac.Extent(pystac.SpatialExtent([bbox_ll]), pystac.TemporalExtent([[t0, t1]])),
        license="proprietary",
        extra_fields={
            "fluxscape:product": product,
            "fluxscape:run": run,
            "fluxscape:variables": variables,
            "fluxscape:version": attrs.get("fluxscape_version"),
            "fluxscape:workflow_hash": attrs.get("workflow_hash"),
            "fluxscape:models": attrs.get("models", []),
            "fluxscape:inputs": len(attrs.get("inputs", [])),
            "fluxscape:skipped_inputs": attrs.get("skipped_inputs", []),
            "created": attrs.get("date_created"),
        },
    )
    rel = os.path.relpath(store, href_base)
    collection.add_asset(
        "zarr",
        pystac.Asset(
            href=rel,
            media_type=ZARR_MEDIA_TYPE,
            roles=["data"],
            title=f"{product} Zarr store",
            extra_fields={"xarray:open_kwargs": {"engine": "zarr", "consolidated": True}},
        ),
    )
    quicklooks = store.parent.parent / "quicklooks" / product
    for png in sorted(quicklooks.glob("*.png")):
        collection.add_asset(
            f"quicklook_{png.stem}",
            pystac.Asset(
                href=os.path.relpath(png, href_base),
                media_type=pystac.MediaType.PNG,
                roles=["overview"],
                title=f"{png.stem.replace('_', ' ')} quicklook map",
            ),
        )
    cube = DatacubeExtension.ext(collection, add_if_missing=True)
    epsg = _epsg(crs_wkt)
    cube.dimensions = {
        "x": Dimension.from_dict(
            {
                "type": "spatial",
                "axis": "x",
                "extent": [west, east],
                "step": dx,
                "reference_system": epsg or crs_wkt,
            }
        ),
        "y": Dimension.from_dict(
            {
                "type": "spatial",
                "axis": "y",
                "extent": [south, north],
                "step": -dy,
                "reference_system": epsg or crs_wkt,
            }
        ),
        **time_dims,
    }
    cube.variables = {
        v: Variable.from_dict(
            {
                "type": "data",
                "dimensions": list(ds[v].dims),
                "unit": ds[v].attrs.get("units", ""),
                "description": ds[v].attrs.get("long_name", v),
            }
        )
        for v in variables
    }
    return collection


def _temporal(ds: xr.Dataset) -> tuple:
    """Start, end (datetimes) and datacube dimensions of a store's time axis: ``time``
    (period starts) or ``year`` (whole calendar years), plus ``season`` when present."""
    import datetime as dt

    if "time" in ds.dims:
        t0 = pystac.utils.str_to_datetime(str(ds["time"].values[0])[:19] + "Z")
        t1 = pystac.utils.str_to_datetime(str(ds["time"].values[-1])[:19] + "Z")
        values = [str(t)[:10] for t in ds["time"].values]
        dims = {
            "time": Dimension.from_dict(
                {"type": "temporal", "values": values, "extent": [t0.isoformat(), t1.isoformat()]}
            )
        }
        return t0, t1, dims
    years = [int(y) for y in ds["year"].values]
    t0 = dt.datetime(years[0], 1, 1, tzinfo=dt.UTC)
    t1 = dt.datetime(years[-1], 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    dims = {
        "year": Dimension.from_dict(
            {
                "type": "temporal",
                "values": [str(y) for y in years],
                "extent": [t0.isoformat(), t1.isoformat()],
                "step": "P1Y",
            }
        )
    }
    if "season" in ds.dims:
        dims["season"] = Dimension.from_dict(
            {
                "type": "other",
                "values": [int(v) for v in ds["season"].values],
                "description": "season within the year",
            }
        )
    return t0, t1, dims


def _epsg(crs_wkt: str) -> int | None:
    from pyproj import CRS

    try:
        return CRS.from_wkt(crs_wkt).to_epsg() if crs_wkt else None
    except Exception:
        return None


def _lonlat_bbox(crs_wkt: str, bbox: tuple[float, float, float, float]) -> list[float]:
    from pyproj import CRS, Transformer

    if not crs_wkt or CRS.from_wkt(crs_wkt).is_geographic:
        return [round(v, 8) for v in bbox]
    tr = Transformer.from_crs(CRS.from_wkt(crs_wkt), "EPSG:4326", always_xy=True)
    return [round(v, 8) for v in tr.transform_bounds(*bbox, densify_pts=21)]


def _atomic_write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def _write_root(catalog_dir: Path) -> Path:
    """Rewrite ``catalog.json`` linking every published collection folder."""
    root = catalog_dir / "catalog.json"
    links = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
        {"rel": "self", "href": "./catalog.json", "type": "application/json"},
    ]
    for coll in sorted(catalog_dir.glob("*/collection.json")):
        title = json.loads(coll.read_text()).get("title", coll.parent.name)
        links.append(
            {
                "rel": "child",
                "href": f"./{coll.parent.name}/collection.json",
                "type": "application/json",
                "title": title,
            }
        )
    payload = {
        "type": "Catalog",
        "stac_version": pystac.get_stac_version(),
        "id": CATALOG_ID,
        "description": "fluxscape products",
        "links": links,
    }
    _atomic_write_json(root, payload)
    return root


def publish_store(
    store: Path, catalog_dir: Path, run: str, product: str, only_if_missing: bool = False
) -> Path:
    """Write the Collection for a finished store and link it from the root catalog;
    returns the collection.json path."""
    catalog_dir = Path(catalog_dir).resolve()
    coll_dir = catalog_dir / collection_id(run, product)
    coll_path = coll_dir / "collection.json"
    if only_if_missing and coll_path.exists():
        return coll_path
    collection = build_collection(Path(store).resolve(), run, product, coll_dir)
    payload = collection.to_dict(include_self_link=False, transform_hrefs=False)
    payload["links"] = [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
    ]
    _atomic_write_json(coll_path, payload)
    _write_root(catalog_dir)
    return coll_path


def unpublish(catalog_dir: Path, run: str, product: str) -> None:
    """Remove a product's Collection from the catalog (before a fresh rebuild)."""
    coll = Path(catalog_dir) / collection_id(run, product) / "collection.json"
    if coll.exists():
        coll.unlink()
        _write_root(Path(catalog_dir))
