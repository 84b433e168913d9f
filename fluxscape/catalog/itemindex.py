"""The item index kept beside the STAC JSON: one Parquet row per published Item.

``CATALOG/items.parquet`` is the item-level twin of ``index.parquet``
(:mod:`fluxscape.catalog.index`, one row per product, which the Python ``Catalog`` API
searches): the columns a STAC item search filters and sorts on (id, collection, product,
workflow, run id, access level, variables, step, lon/lat bbox, datetime, start and end
datetime, a WKB footprint) and the Item's JSON as written to ``CATALOG/<collection>/items/``,
so that ``fluxscape serve`` answers a search from one file read once per version.

Why not stac-geoparquet: the server filters with numpy columns and DuckDB SQL over columns
named as its queryables, and hides rows per client by access level; the few columns it needs
plus the JSON are simpler to keep in step with the collection index than a flattened
stac-geoparquet table (whose writers, rustac or stac-geoparquet, are not dependencies, and
whose DuckDB readers need extensions that cannot be downloaded offline).

Written like the collection index: a temporary file renamed over the old one, under the
catalog's lock; a catalog without the file gets it from its Item JSON files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from fluxscape.catalog import index

ITEMS_NAME = "items.parquet"
#: Folder of a collection's Item JSON files, inside its collection folder.
ITEMS_DIR = "items"

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("collection", pa.string()),
        ("product", pa.string()),
        ("workflow", pa.string()),
        ("run_id", pa.string()),
        ("access", pa.string()),
        ("variables", pa.list_(pa.string())),
        ("step", pa.int32()),
        ("xmin", pa.float64()),
        ("ymin", pa.float64()),
        ("xmax", pa.float64()),
        ("ymax", pa.float64()),
        ("datetime", pa.timestamp("us")),  # UTC
        ("start_datetime", pa.timestamp("us")),  # UTC
        ("end_datetime", pa.timestamp("us")),  # UTC
        ("href", pa.string()),  # the Item's JSON, relative to the catalog folder
        ("geometry", pa.binary()),  # WKB lon/lat footprint (EPSG:4326)
        ("item", pa.string()),  # the Item's JSON text
    ]
)


def row_from_item(item: dict, item_path: Path, catalog_dir: Path) -> dict:
    """The index row of an Item (dict) stored at ``item_path``."""
    props = item["properties"]
    bbox = [float(v) for v in item["bbox"]]
    start = props.get("start_datetime") or props["datetime"]
    end = props.get("end_datetime") or props["datetime"]
    return {
        "id": item["id"],
        "collection": item["collection"],
        "product": props.get("fluxscape:product", ""),
        "workflow": props.get("fluxscape:workflow", ""),
        "run_id": props.get("fluxscape:run_id", ""),
        "access": props.get("fluxscape:access", "public"),
        "variables": list(props.get("fluxscape:variables", [])),
        "step": int(props.get("fluxscape:step", 0)),
        "xmin": bbox[0],
        "ymin": bbox[1],
        "xmax": bbox[2],
        "ymax": bbox[3],
        "datetime": index._utc_naive(props["datetime"] or start),
        "start_datetime": index._utc_naive(start),
        "end_datetime": index._utc_naive(end),
        "href": os.path.relpath(item_path, catalog_dir),
        "geometry": shapely.to_wkb(shapely.geometry.shape(item["geometry"])),
        "item": json.dumps(item),
    }


def to_table(rows: list[dict]) -> pa.Table:
    """Item rows as the item index's Arrow table (sorted by id)."""
    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["id"]), schema=SCHEMA)


def read_rows(catalog_dir: Path) -> list[dict]:
    """Every row of the item index (empty list when there is none)."""
    table = _read(catalog_dir)
    return [] if table is None else table.to_pylist()


def collections(catalog_dir: Path) -> set[str]:
    """The collections that have Items in the item index."""
    table = _read(catalog_dir, ["collection"])
    return set() if table is None else set(table.column("collection").to_pylist())


def _read(catalog_dir: Path, columns: list[str] | None = None) -> pa.Table | None:
    """The item index (None without one), read through one open file: a writer renaming a
    new file over it meanwhile cannot mix two versions."""
    try:
        with open(Path(catalog_dir) / ITEMS_NAME, "rb") as f:
            return pq.read_table(pa.BufferReader(f.read()), columns=columns)
    except FileNotFoundError:
        return None


def write_rows(catalog_dir: Path, rows: list[dict]) -> Path:
    """Replace the item index with ``rows`` atomically (call under the catalog's lock)."""
    path = Path(catalog_dir) / ITEMS_NAME
    tmp = path.with_name(f".items-{os.getpid()}.tmp.parquet")
    try:
        pq.write_table(to_table(rows), tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def replace_collection(catalog_dir: Path, collection: str, rows: list[dict]) -> Path:
    """Replace the rows of ``collection`` by ``rows`` (none: remove the collection's items)."""
    kept = [r for r in read_rows(catalog_dir) if r["collection"] != collection]
    return write_rows(catalog_dir, kept + rows)


def rows_from_json(catalog_dir: Path, collections: list[str] | None = None) -> list[dict]:
    """The rows of every Item JSON file of the catalog folder (of ``collections`` only when
    given)."""
    catalog_dir = Path(catalog_dir).resolve()
    rows = []
    for path in sorted(catalog_dir.glob(f"*/{ITEMS_DIR}/*.json")):
        if collections is not None and path.parent.parent.name not in collections:
            continue
        rows.append(row_from_item(json.loads(path.read_text()), path, catalog_dir))
    return rows


def build_missing(catalog_dir: Path) -> pa.Table | None:
    """Give a catalog without ``items.parquet`` its item index from its Item JSON files, as
    :func:`fluxscape.catalog.index.build_missing` does for the collection index (the table in
    memory when the folder cannot be written, else None)."""
    catalog_dir = Path(catalog_dir).resolve()
    path = catalog_dir / ITEMS_NAME
    if path.exists():
        return None
    try:
        with index.catalog_lock(catalog_dir):
            if not path.exists():
                write_rows(catalog_dir, rows_from_json(catalog_dir))
        return None
    except OSError as exc:
        if exc.errno not in index._READ_ONLY:
            raise
        return to_table(rows_from_json(catalog_dir))


def snapshot_if_changed(
    catalog_dir: Path, known: index.Version | None
) -> tuple[index.Version, pa.Table | None]:
    """The item index file's version and, unless it is ``known``, its table (see
    :func:`fluxscape.catalog.index.snapshot_if_changed`)."""
    path = Path(catalog_dir) / ITEMS_NAME
    if known is not None and index._version(os.stat(path)) == known:
        return known, None
    with open(path, "rb") as f:
        return index._version(os.fstat(f.fileno())), pq.read_table(pa.BufferReader(f.read()))
