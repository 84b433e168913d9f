"""Publish a finished product store into a STAC catalog (DESIGN section 6).

One STAC Collection per (run, product) with the Zarr store as a ``data`` asset
(``application/vnd+zarr``, with the xarray-assets extension's ``xarray:open_kwargs``), the
datacube extension describing its dimensions and variables, spatial/temporal extents, and the
store's provenance; and one STAC Item per step of its time axis (:mod:`fluxscape.catalog.items`:
per-variable GDAL assets with projection and raster metadata), written to
``CATALOG/<id>/items/`` and indexed in ``CATALOG/items.parquet``
(:mod:`fluxscape.catalog.itemindex`). Everything here is read from the store itself, except
what only the run knows (its run id and the product's access level).

Licence: the store's ``license`` attribute when it is an SPDX identifier, else ``other`` with a
``license`` link to ``CATALOG/LICENSE.txt`` (written once, for the publisher to edit).

Several runs may publish into one catalog folder at once: each publication holds the catalog's
file lock (``CATALOG/.lock``) while it writes. Every file is written to a temporary name and
renamed over the old one (``os.replace`` is atomic), in the order Item files (a new folder
renamed over the old one), collection.json, the item index, the search index
(:mod:`fluxscape.catalog.index`), then the root ``catalog.json``, so a reader sees the old
entry or the new one, never half of one (a reader listing the Item folder at the instant of the
swap may find it missing), and a re-run of a workflow replaces its own entries without touching
other runs'.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pystac
import xarray as xr
from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
from pystac.extensions.xarray_assets import XarrayAssetsExtension

from fluxscape.access import check_level
from fluxscape.catalog import index, itemindex, items, times
from fluxscape.catalog.index import catalog_lock
from fluxscape.pipeline.remote import is_url

ZARR_MEDIA_TYPE = items.ZARR_MEDIA_TYPE
CATALOG_ID = "fluxscape"
LICENSE_FILE = "LICENSE.txt"
LICENSE_TEXT = """Terms of use of the products in this catalog

The products are derived from the input data named in each collection's provenance
(fluxscape:inputs, fluxscape:models) and inherit the terms of those inputs. This file was
written by fluxscape when the catalog was first published: replace it with the publisher's
terms, or give the products an SPDX identifier (workflow key `output.license`, the stores'
`license` attribute).
"""
#: An SPDX licence identifier (or expression of them), as STAC's ``license`` field takes it.
_SPDX = re.compile(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*")


def collection_id(run: str, product: str) -> str:
    """The catalog id of a run's product, e.g. ``demo.vi``."""
    return f"{run}.{product}"


def quicklook_dir(store: Path, product: str) -> Path:
    """Where a run writes the quicklook PNGs of ``product`` whose store is ``store``
    (``OUT/products/NAME.zarr``, or its version ``OUT/products/.versions/NAME/RUN.zarr``, ->
    ``OUT/quicklooks/NAME``)."""
    if is_url(store):  # a version on object storage: the run's local work folder has them
        from fluxscape.pipeline.outstore import Outputs

        out = str(store).split("/products/", 1)[0]
        return Outputs.of(out).out_dir / "quicklooks" / product
    store = Path(store)
    versions = store.parent.parent  # pipeline.store.VERSIONS_DIR for a store version
    products = versions.parent if versions.name == ".versions" else store.parent
    return products.parent / "quicklooks" / product


def _store_dataset(store: Path) -> xr.Dataset:
    return xr.open_zarr(store, consolidated=True, decode_times=True)


def build_collection(
    store: Path,
    run: str,
    product: str,
    href_base: Path,
    access: str | None = None,
    run_id: str | None = None,
) -> pystac.Collection:
    """A STAC Collection describing ``store`` (asset href relative to ``href_base``); ``run``
    is the workflow name, ``access`` and ``run_id`` default to the store's attributes."""
    return _build_collection(_store_dataset(store), store, run, product, href_base, access, run_id)


def _build_collection(
    ds: xr.Dataset,
    store: Path,
    run: str,
    product: str,
    href_base: Path,
    access: str | None,
    run_id: str | None,
) -> pystac.Collection:
    attrs = ds.attrs
    access = check_level(access or attrs.get("access") or "public", f"{store}: access")
    run_id = run_id or attrs.get("run_id") or f"{run}-{attrs.get('date_created', '')}"
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
        license=_license(attrs),
        extra_fields={
            "fluxscape:product": product,
            "fluxscape:run": run,
            "fluxscape:workflow": run,
            "fluxscape:run_id": run_id,
            "fluxscape:access": access,
            "fluxscape:variables": variables,
            "fluxscape:version": attrs.get("fluxscape_version"),
            "fluxscape:workflow_hash": attrs.get("workflow_hash"),
            "fluxscape:models": attrs.get("models", []),
            "fluxscape:inputs": len(attrs.get("inputs", [])),
            "fluxscape:skipped_inputs": attrs.get("skipped_inputs", []),
            "fluxscape:partial": bool(attrs.get("partial", False)),
            "created": attrs.get("date_created"),
            # fluxscape update: each update's time, inputs added and periods changed
            **(
                {"fluxscape:update_history": list(attrs["update_history"])[-20:]}
                if attrs.get("update_history")
                else {}
            ),
        },
    )
    rel = str(store) if is_url(store) else os.path.relpath(store, href_base)
    collection.add_asset(
        "zarr",
        pystac.Asset(
            href=rel,
            media_type=ZARR_MEDIA_TYPE,
            roles=["data"],
            title=f"{product} Zarr store",
        ),
    )
    zarr_asset = collection.assets["zarr"]
    XarrayAssetsExtension.ext(zarr_asset, add_if_missing=True).open_kwargs = dict(items.OPEN_KWARGS)
    for png in sorted(quicklook_dir(store, product).glob("*.png")):
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


def _license(attrs: dict) -> str:
    """The store's ``license`` attribute if it is an SPDX identifier, else ``other``."""
    text = str(attrs.get("license") or "").strip()
    return text if text and text.lower() != "other" and _SPDX.fullmatch(text) else "other"


def _temporal(ds: xr.Dataset) -> tuple:
    """Start, end (datetimes, :func:`fluxscape.catalog.times.extent`) and datacube dimensions
    of a store's time axis: ``time`` (period starts) or ``year`` (whole calendar years), plus
    ``season`` when present."""
    t0, t1 = times.extent(ds)
    if "time" in ds.dims:
        stamps = ds["time"].values.astype("datetime64[s]")
        sub_daily = bool((stamps != stamps.astype("datetime64[D]")).any())
        # dates, or for scenes within a day (fire alerts) the instants: "2023-09-15T04:00:00Z"
        values = [f"{t}Z" if sub_daily else str(t)[:10] for t in stamps]
        dims = {
            "time": Dimension.from_dict(
                {"type": "temporal", "values": values, "extent": [t0.isoformat(), t1.isoformat()]}
            )
        }
        return t0, t1, dims
    years = [int(y) for y in ds["year"].values]
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
    """Rewrite ``catalog.json`` linking every collection of the index."""
    root = catalog_dir / "catalog.json"
    links = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
        {"rel": "self", "href": "./catalog.json", "type": "application/json"},
    ]
    for row in index.read_rows(catalog_dir):
        links.append(
            {
                "rel": "child",
                "href": "./" + Path(row["href"]).as_posix(),
                "type": "application/json",
                "title": row["title"],
            }
        )
    if (catalog_dir / "alerts" / "collection.json").is_file():  # catalog/alerts.py
        links.append(
            {
                "rel": "child",
                "href": "./alerts/collection.json",
                "type": "application/json",
                "title": "Rapid alerts",
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


def _store_key(store, base: Path | None = None) -> str:
    """A store's identity for comparison: its URL, or its resolved path (``store`` relative to
    ``base`` when given)."""
    if is_url(store):
        return str(store).rstrip("/")
    path = Path(store) if base is None else Path(base) / store
    return str(path.resolve())


def publication_problem(
    store: Path, catalog_dir: Path, run: str, product: str, access: str | None = None
) -> str | None:
    """What keeps the catalog from finding ``store`` as the product ``run.product`` (None when
    nothing): the collection.json, the search index row and the root catalog's link must all
    exist and name this store (its current version) and ``access``."""
    catalog_dir = Path(catalog_dir).resolve()
    cid = collection_id(run, product)
    coll_path = catalog_dir / cid / "collection.json"
    try:
        coll = json.loads(coll_path.read_text())
        href = coll["assets"]["zarr"]["href"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{coll_path} is missing or unreadable"
    if _store_key(href, coll_path.parent) != _store_key(store):
        return f"{coll_path} names another store ({href})"
    if access is not None and coll.get("fluxscape:access") != access:
        return f"{coll_path} has access {coll.get('fluxscape:access')!r}, not {access!r}"
    try:
        rows = {r["id"]: r for r in index.read_rows(catalog_dir)}
        root = json.loads((catalog_dir / "catalog.json").read_text())
    except (OSError, ValueError):
        return "the catalog's index or catalog.json is missing or unreadable"
    row = rows.get(cid)
    if row is None or _store_key(row["store"], catalog_dir) != _store_key(store):
        return f"the index of {catalog_dir} does not list {cid} with this store"
    if cid not in itemindex.collections(catalog_dir):
        return f"the item index of {catalog_dir} lists no item of {cid}"
    children = {link.get("href") for link in root.get("links", []) if link.get("rel") == "child"}
    if "./" + Path(row["href"]).as_posix() not in children:
        return f"{catalog_dir / 'catalog.json'} does not link {cid}"
    return None


def publish_store(
    store: Path,
    catalog_dir: Path,
    run: str,
    product: str,
    only_if_missing: bool = False,
    access: str | None = None,
    run_id: str | None = None,
) -> Path:
    """Write the Collection and Items for a finished store, index them and link the
    collection from the root catalog (replacing this run's earlier entry of the product);
    returns the collection.json path. ``only_if_missing`` keeps the entry when the collection,
    indexes and root catalog already agree on this store and access level
    (:func:`publication_problem`), and repairs them otherwise (e.g. after a publication cut
    short by a full disk)."""
    catalog_dir = Path(catalog_dir).resolve()
    coll_dir = catalog_dir / collection_id(run, product)
    coll_path = coll_dir / "collection.json"
    if only_if_missing and publication_problem(store, catalog_dir, run, product, access) is None:
        return coll_path
    store = str(store).rstrip("/") if is_url(store) else Path(store).resolve()
    ds = _store_dataset(store)
    collection = _build_collection(ds, store, run, product, coll_dir, access, run_id)
    item_dicts = _item_dicts(ds, store, collection, coll_dir / itemindex.ITEMS_DIR)
    payload = _collection_dict(collection, item_dicts)
    with catalog_lock(catalog_dir):
        _write_license(catalog_dir)
        item_rows = _write_items(coll_dir, item_dicts, catalog_dir)
        _atomic_write_json(coll_path, payload)
        itemindex.replace_collection(catalog_dir, collection.id, item_rows)
        if (catalog_dir / index.INDEX_NAME).exists():
            index.upsert(catalog_dir, index.row_from_collection(payload, coll_path, catalog_dir))
        else:
            index.rebuild(catalog_dir)
        _write_root(catalog_dir)
    return coll_path


def _item_dicts(
    ds: xr.Dataset, store: Path, collection: pystac.Collection, item_dir: Path
) -> list[dict]:
    """The JSON of the collection's Items (see :mod:`fluxscape.catalog.items`): footprint
    and provenance properties taken from the collection."""
    bbox = collection.extent.spatial.bboxes[0]
    w, s, e, n = bbox
    geometry = {"type": "Polygon", "coordinates": [[[e, s], [e, n], [w, n], [w, s], [e, s]]]}
    extra = collection.extra_fields
    properties = {
        key: extra[key]
        for key in (
            "fluxscape:product",
            "fluxscape:workflow",
            "fluxscape:run_id",
            "fluxscape:access",
            "fluxscape:variables",
        )
    }
    built = items.build_items(ds, store, collection, geometry, list(bbox), properties, item_dir)
    return [items.item_dict(item) for item in built]


def _collection_dict(collection: pystac.Collection, item_dicts: list[dict]) -> dict:
    """collection.json: links to the root catalog, the licence (``other``) and its Items."""
    payload = collection.to_dict(include_self_link=False, transform_hrefs=False)
    links = [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
    ]
    if payload["license"] == "other":
        links.append(
            {
                "rel": "license",
                "href": f"../{LICENSE_FILE}",
                "type": "text/plain",
                "title": "Terms of use",
            }
        )
    for item in item_dicts:
        href = f"./{itemindex.ITEMS_DIR}/{item['id']}.json"
        links.append({"rel": "item", "href": href, "type": "application/geo+json"})
    payload["links"] = links
    return payload


def _write_license(catalog_dir: Path) -> None:
    """Write the catalog's terms-of-use file if it has none (the publisher may edit it)."""
    path = catalog_dir / LICENSE_FILE
    if not path.exists():
        tmp = path.with_name(f".{LICENSE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(LICENSE_TEXT)
        os.replace(tmp, path)


def _write_items(coll_dir: Path, item_dicts: list[dict], catalog_dir: Path) -> list[dict]:
    """Write the Item JSON files into a new folder renamed over ``coll_dir/items`` (the old
    one removed after); returns their item index rows."""
    final = coll_dir / itemindex.ITEMS_DIR
    tmp = coll_dir / f".{itemindex.ITEMS_DIR}-{os.getpid()}.tmp"
    old = coll_dir / f".{itemindex.ITEMS_DIR}-{os.getpid()}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = []
    for item in item_dicts:
        (tmp / f"{item['id']}.json").write_text(json.dumps(item, indent=1))
        rows.append(itemindex.row_from_item(item, final / f"{item['id']}.json", catalog_dir))
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return rows


def reindex(catalog_dir: Path) -> int:
    """Rebuild the search indexes and the root catalog from the collection.json files (after
    editing them by hand or moving the catalog; a catalog without an index gets one when it is
    opened), writing every collection's Items anew from its store when the store is there;
    returns the number of products indexed."""
    catalog_dir = Path(catalog_dir).resolve()
    with catalog_lock(catalog_dir):
        _write_license(catalog_dir)
        for coll_path in sorted(catalog_dir.glob("*/collection.json")):
            _rewrite_items(coll_path, catalog_dir)
        index.rebuild(catalog_dir)
        itemindex.write_rows(catalog_dir, itemindex.rows_from_json(catalog_dir))
        _write_root(catalog_dir)
    return len(index.read_rows(catalog_dir))


def _rewrite_items(coll_path: Path, catalog_dir: Path) -> None:
    """Write the Items of a published collection from its store (and the collection's item
    links); nothing when the store is gone."""
    payload = json.loads(coll_path.read_text())
    if "fluxscape:product" not in payload:
        return
    store = (coll_path.parent / payload["assets"]["zarr"]["href"]).resolve()
    if not store.exists():
        return
    coll_dir = coll_path.parent
    ds = _store_dataset(store)
    run = payload.get("fluxscape:workflow") or payload.get("fluxscape:run")
    access, run_id = payload.get("fluxscape:access"), payload.get("fluxscape:run_id")
    product = payload["fluxscape:product"]
    collection = _build_collection(ds, store, run, product, coll_dir, access, run_id)
    collection.id = payload["id"]
    item_dicts = _item_dicts(ds, store, collection, coll_dir / itemindex.ITEMS_DIR)
    _write_items(coll_dir, item_dicts, catalog_dir)
    _atomic_write_json(coll_path, _collection_dict(collection, item_dicts))


def unpublish(catalog_dir: Path, run: str, product: str) -> None:
    """Remove a product's Collection and Items from the catalog (before a fresh rebuild)."""
    catalog_dir = Path(catalog_dir)
    cid = collection_id(run, product)
    coll = catalog_dir / cid / "collection.json"
    if not coll.exists():
        return
    with catalog_lock(catalog_dir):
        itemindex.replace_collection(catalog_dir, cid, [])
        index.upsert(catalog_dir, remove=cid)
        coll.unlink(missing_ok=True)
        shutil.rmtree(catalog_dir / cid / itemindex.ITEMS_DIR, ignore_errors=True)
        _write_root(catalog_dir)
