"""Alerts in the catalog: one GeoJSON FeatureCollection per batch (a run, later an update)
and STAC Items (one per alert: a point for a fire, a polygon for a heat wave) in the
catalog's ``alerts`` collection.

Layout::

    OUT/alerts/<product>/<batch>.geojson          FeatureCollection of the batch
    OUT/alerts/<product>/alerts.parquet           every alert of the product (all batches)
    CATALOG/alerts/collection.json                the ``alerts`` STAC collection
    CATALOG/alerts/items/<product>/<id>.json      one STAC Item per alert

Each alert keeps ``fluxscape:access`` (the product's level), so a server hides it from clients
who may not read the product. Written under the catalog lock, each file renamed into place.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from fluxscape.catalog.index import catalog_lock

COLLECTION = "alerts"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def feature_collection(features: list[dict], batch: str, product: str) -> dict:
    """A GeoJSON FeatureCollection of alert features (lon/lat: points for fires, polygons
    for heat waves)."""
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {"batch": batch, "product": product},
    }


def _bbox(geometry: dict) -> list[float]:
    from shapely.geometry import shape

    return [round(v, 6) for v in shape(geometry).bounds]


def _item(feature: dict, geojson_href: str) -> dict:
    p = feature["properties"]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": p["id"],
        "collection": COLLECTION,
        "geometry": feature["geometry"],
        "bbox": _bbox(feature["geometry"]),
        "properties": {"datetime": p["time"], **{k: v for k, v in p.items() if k != "id"}},
        "links": [{"rel": "collection", "href": "../../collection.json"}],
        "assets": {
            "alerts": {
                "href": geojson_href,
                "type": "application/geo+json",
                "roles": ["data"],
                "title": "the batch's FeatureCollection",
            }
        },
    }


def _collection(catalog_dir: Path) -> dict:
    """The alerts collection document, with the extent of every Item on disk."""
    items = sorted((catalog_dir / COLLECTION / "items").glob("*/*.json"))
    lons, lats, times, kinds = [], [], [], set()
    for path in items:
        item = json.loads(path.read_text())
        w, s, e, n = item["bbox"]
        lons += [w, e]
        lats += [s, n]
        times.append(item["properties"]["datetime"])
        kinds.add(item["properties"].get("kind", "fire"))
    bbox = [min(lons), min(lats), max(lons), max(lats)] if lons else [-180, -90, 180, 90]
    interval = [min(times), max(times)] if times else [None, None]
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": COLLECTION,
        "title": "Rapid alerts",
        "description": "Active fires (Himawari AHI contextual test) and heat waves as points, "
        "one Item per alert; the batch's GeoJSON is each Item's asset.",
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "links": [{"rel": "root", "href": "../catalog.json"}],
        "summaries": {"fluxscape:alert_kind": sorted(kinds)},
        "fluxscape:items": len(items),
    }


def publish_alerts(
    features: list[dict], out_dir: Path, catalog_dir: Path, product: str, batch: str
) -> dict:
    """Write the batch's GeoJSON (``OUT/alerts/<product>/<batch>.geojson``), append to the
    product's ``alerts.parquet`` and publish one STAC Item per feature into
    ``CATALOG/alerts/``. Each feature's ``alert_time`` (UTC, ISO) is the moment its Item was
    written and ``latency_s`` the seconds from its scene's nominal ``time`` to then. Returns
    {"geojson": path, "items": n, "latency_s": [...]}."""
    folder = out_dir / "alerts" / product
    geojson = folder / f"{batch}.geojson"
    with catalog_lock(catalog_dir):
        now = datetime.now(UTC)
        stamp = now.isoformat().replace("+00:00", "Z")
        for f in features:
            p = f["properties"]
            p["alert_time"] = stamp
            scene = datetime.fromisoformat(p["time"].replace("Z", "+00:00"))
            p["latency_s"] = round((now - scene).total_seconds(), 1)
            if p.get("file_time"):
                arrived = datetime.fromisoformat(p["file_time"].replace("Z", "+00:00"))
                p["processing_s"] = round((now - arrived).total_seconds(), 1)
        _atomic_write(geojson, json.dumps(feature_collection(features, batch, product)))
        rel = os.path.relpath(geojson, catalog_dir / COLLECTION / "items" / product)
        item_dir = catalog_dir / COLLECTION / "items" / product
        for f in features:
            item = _item(f, rel)
            _atomic_write(item_dir / f"{item['id']}.json", json.dumps(item))
        _atomic_write(
            catalog_dir / COLLECTION / "collection.json", json.dumps(_collection(catalog_dir))
        )
    table = pd.DataFrame(
        [{**f["properties"], "geometry": json.dumps(f["geometry"])} for f in features]
    )
    parquet = folder / "alerts.parquet"
    if parquet.exists() and len(table):
        old = pd.read_parquet(parquet)
        table = pd.concat([old[~old["id"].isin(table["id"])], table], ignore_index=True)
    if len(table) or not parquet.exists():
        tmp = parquet.with_name(parquet.name + ".tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, parquet)
    return {
        "geojson": geojson,
        "items": len(features),
        "latency_s": [f["properties"]["latency_s"] for f in features],
    }


def read_alerts(catalog_dir: Path, levels: set[str] | None = None) -> list[dict]:
    """Every alert Item of the catalog (``levels``: the access levels a client may read;
    None: all), newest first."""
    out = []
    for path in (Path(catalog_dir) / COLLECTION / "items").glob("*/*.json"):
        item = json.loads(path.read_text())
        if levels is None or item["properties"].get("fluxscape:access", "public") in levels:
            out.append(item)
    return sorted(out, key=lambda i: i["properties"]["datetime"], reverse=True)
