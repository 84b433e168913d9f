"""Publish a finished product store into a STAC catalog (DESIGN section 6).

One STAC Collection per (run, product) with the Zarr store as a ``data`` asset
(``application/vnd+zarr``), the datacube extension describing its dimensions and variables,
spatial/temporal extents, and the store's provenance. Everything here is read from the store
itself, except what only the run knows (its run id and the product's access level).

Several runs may publish into one catalog folder at once: each publication holds the catalog's
file lock (``CATALOG/.lock``) while it writes. Every file is written to a temporary name and
renamed over the old one (``os.replace`` is atomic), in the order collection.json, then the
search index (:mod:`fluxscape.catalog.index`), then the root ``catalog.json``, so a reader
sees the old entry or the new one, never half of one, and a re-run of a workflow replaces its
own entries without touching other runs'.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pystac
import xarray as xr
from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable

from fluxscape.access import check_level
from fluxscape.catalog import index, times
from fluxscape.catalog.index import catalog_lock

ZARR_MEDIA_TYPE = "application/vnd+zarr"
CATALOG_ID = "fluxscape"


def collection_id(run: str, product: str) -> str:
    """The catalog id of a run's product, e.g. ``demo.vi``."""
    return f"{run}.{product}"


def quicklook_dir(store: Path, product: str) -> Path:
    """Where a run writes the quicklook PNGs of ``product`` whose store is ``store``
    (``OUT/products/NAME.zarr``, or its version ``OUT/products/.versions/NAME/RUN.zarr``, ->
    ``OUT/quicklooks/NAME``)."""
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
    ds = _store_dataset(store)
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
        license="proprietary",
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


def _temporal(ds: xr.Dataset) -> tuple:
    """Start, end (datetimes, :func:`fluxscape.catalog.times.extent`) and datacube dimensions
    of a store's time axis: ``time`` (period starts) or ``year`` (whole calendar years), plus
    ``season`` when present."""
    t0, t1 = times.extent(ds)
    if "time" in ds.dims:
        values = [str(t)[:10] for t in ds["time"].values]
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
    payload = {
        "type": "Catalog",
        "stac_version": pystac.get_stac_version(),
        "id": CATALOG_ID,
        "description": "fluxscape products",
        "links": links,
    }
    _atomic_write_json(root, payload)
    return root


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
    if (coll_path.parent / href).resolve() != Path(store).resolve():
        return f"{coll_path} names another store ({href})"
    if access is not None and coll.get("fluxscape:access") != access:
        return f"{coll_path} has access {coll.get('fluxscape:access')!r}, not {access!r}"
    try:
        rows = {r["id"]: r for r in index.read_rows(catalog_dir)}
        root = json.loads((catalog_dir / "catalog.json").read_text())
    except (OSError, ValueError):
        return "the catalog's index or catalog.json is missing or unreadable"
    row = rows.get(cid)
    if row is None or (catalog_dir / row["store"]).resolve() != Path(store).resolve():
        return f"the index of {catalog_dir} does not list {cid} with this store"
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
    """Write the Collection for a finished store, index it and link it from the root catalog
    (replacing this run's earlier entry of the product); returns the collection.json path.
    ``only_if_missing`` keeps the entry when the collection, index and root catalog already
    agree on this store and access level (:func:`publication_problem`), and repairs them
    otherwise (e.g. after a publication cut short by a full disk)."""
    catalog_dir = Path(catalog_dir).resolve()
    coll_dir = catalog_dir / collection_id(run, product)
    coll_path = coll_dir / "collection.json"
    if only_if_missing and publication_problem(store, catalog_dir, run, product, access) is None:
        return coll_path
    collection = build_collection(Path(store).resolve(), run, product, coll_dir, access, run_id)
    payload = collection.to_dict(include_self_link=False, transform_hrefs=False)
    payload["links"] = [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
    ]
    with catalog_lock(catalog_dir):
        _atomic_write_json(coll_path, payload)
        if (catalog_dir / index.INDEX_NAME).exists():
            index.upsert(catalog_dir, index.row_from_collection(payload, coll_path, catalog_dir))
        else:
            index.rebuild(catalog_dir)
        _write_root(catalog_dir)
    return coll_path


def reindex(catalog_dir: Path) -> int:
    """Rebuild the search index and the root catalog from the collection.json files (after
    editing them by hand; a catalog without an index gets one when it is opened); returns the
    number of products indexed."""
    catalog_dir = Path(catalog_dir).resolve()
    with catalog_lock(catalog_dir):
        index.rebuild(catalog_dir)
        _write_root(catalog_dir)
    return len(index.read_rows(catalog_dir))


def unpublish(catalog_dir: Path, run: str, product: str) -> None:
    """Remove a product's Collection from the catalog (before a fresh rebuild)."""
    catalog_dir = Path(catalog_dir)
    cid = collection_id(run, product)
    coll = catalog_dir / cid / "collection.json"
    if not coll.exists():
        return
    with catalog_lock(catalog_dir):
        index.upsert(catalog_dir, remove=cid)
        coll.unlink(missing_ok=True)
        _write_root(catalog_dir)
