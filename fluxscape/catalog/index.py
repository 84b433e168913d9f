"""The search index kept beside the STAC JSON: one Parquet row per published product.

``CATALOG/index.parquet`` holds what search needs (id, product, workflow, run id, access level,
variables, model ids, lon/lat bbox, time span, a WKB footprint, the collection's JSON path and
the store's path relative to the catalog folder). Searches are SQL over that table with DuckDB,
so they stay fast as the catalog grows instead of parsing every collection.json. The file is
rewritten to a temporary name and renamed (readers see the old index or the new one), always
under the catalog's lock (see :mod:`fluxscape.catalog.publish`).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import shapely

INDEX_NAME = "index.parquet"

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("product", pa.string()),
        ("workflow", pa.string()),
        ("run_id", pa.string()),
        ("access", pa.string()),
        ("title", pa.string()),
        ("variables", pa.list_(pa.string())),
        ("models", pa.list_(pa.string())),
        ("xmin", pa.float64()),
        ("ymin", pa.float64()),
        ("xmax", pa.float64()),
        ("ymax", pa.float64()),
        ("start_datetime", pa.timestamp("us")),  # UTC
        ("end_datetime", pa.timestamp("us")),  # UTC
        ("created", pa.string()),
        ("href", pa.string()),  # collection.json, relative to the catalog folder
        ("store", pa.string()),  # Zarr store, relative to the catalog folder
        ("geometry", pa.binary()),  # WKB lon/lat footprint (EPSG:4326)
    ]
)


def _utc_naive(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _model_ids(models) -> list[str]:
    out = []
    for m in models or []:
        out.append(str(m.get("id") or m.get("name") or m) if isinstance(m, dict) else str(m))
    return out


def row_from_collection(coll: dict, coll_path: Path, catalog_dir: Path) -> dict:
    """The index row of a fluxscape Collection (dict) stored at ``coll_path``."""
    bbox = [float(v) for v in coll["extent"]["spatial"]["bbox"][0]]
    start, end = coll["extent"]["temporal"]["interval"][0]
    store = (coll_path.parent / coll["assets"]["zarr"]["href"]).resolve()
    return {
        "id": coll["id"],
        "product": coll.get("fluxscape:product", coll["id"]),
        "workflow": coll.get("fluxscape:workflow") or coll.get("fluxscape:run", ""),
        "run_id": coll.get("fluxscape:run_id") or "",
        "access": coll.get("fluxscape:access", "public"),
        "title": coll.get("title", coll["id"]),
        "variables": list(coll.get("fluxscape:variables", [])),
        "models": _model_ids(coll.get("fluxscape:models")),
        "xmin": bbox[0],
        "ymin": bbox[1],
        "xmax": bbox[2],
        "ymax": bbox[3],
        "start_datetime": _utc_naive(start),
        "end_datetime": _utc_naive(end),
        "created": coll.get("created") or "",
        "href": os.path.relpath(coll_path, catalog_dir),
        "store": os.path.relpath(store, catalog_dir),
        "geometry": shapely.to_wkb(shapely.box(*bbox)),
    }


def read_rows(catalog_dir: Path) -> list[dict]:
    """Every row of the index (empty list when there is none yet)."""
    path = Path(catalog_dir) / INDEX_NAME
    if not path.exists():
        return []
    return pq.read_table(path).to_pylist()


def write_rows(catalog_dir: Path, rows: list[dict]) -> Path:
    """Replace the index with ``rows`` (sorted by id) atomically; returns its path."""
    path = Path(catalog_dir) / INDEX_NAME
    rows = sorted(rows, key=lambda r: r["id"])
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    tmp = path.with_name(f".index-{os.getpid()}.tmp.parquet")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return path


def upsert(catalog_dir: Path, row: dict | None = None, remove: str | None = None) -> Path:
    """Replace the row with ``row['id']`` (or add it) and/or drop the row ``remove``."""
    drop = {remove} | ({row["id"]} if row else set())
    rows = [r for r in read_rows(catalog_dir) if r["id"] not in drop]
    if row:
        rows.append(row)
    return write_rows(catalog_dir, rows)


def rebuild(catalog_dir: Path) -> Path:
    """Rebuild the index from every ``*/collection.json`` of the catalog folder."""
    catalog_dir = Path(catalog_dir).resolve()
    rows = []
    for coll_path in sorted(catalog_dir.glob("*/collection.json")):
        coll = json.loads(coll_path.read_text())
        if "fluxscape:product" in coll:
            rows.append(row_from_collection(coll, coll_path, catalog_dir))
    return write_rows(catalog_dir, rows)


def _where(
    product: str | None = None,
    variable: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    time: tuple[str | None, str | None] | None = None,
    run: str | None = None,
    ids: list[str] | None = None,
    access: list[str] | None = None,
) -> tuple[str, list]:
    where, params = [], []
    if product:
        where.append("(product = ? OR id = ?)")
        params += [product, product]
    if variable:
        where.append("list_contains(variables, ?)")
        params.append(variable)
    if bbox is not None:
        where.append("xmin <= ? AND xmax >= ? AND ymin <= ? AND ymax >= ?")
        params += [bbox[2], bbox[0], bbox[3], bbox[1]]
    if time is not None:
        start, end = time
        if start:
            where.append("end_datetime >= CAST(? AS TIMESTAMP)")
            params.append(_utc_naive(_iso(start)))
        if end:
            where.append("start_datetime <= CAST(? AS TIMESTAMP)")
            params.append(_utc_naive(_iso(end, end_of_day=True)))
    if run:
        where.append("(workflow = ? OR run_id = ?)")
        params += [run, run]
    if ids is not None:
        where.append("list_contains(?, id)")
        params.append(list(ids))
    if access is not None:
        where.append("list_contains(?, access)")
        params.append(list(access))
    return (" WHERE " + " AND ".join(where) if where else ""), params


def select(
    catalog_dir: Path,
    columns: str = "*",
    limit: int | None = None,
    offset: int = 0,
    order: bool = True,
    **filters,
) -> pa.Table:
    """Index rows matching every filter (see :func:`query`) as an Arrow table, ordered by id;
    ``columns`` is a DuckDB select list."""
    table = _snapshot(Path(catalog_dir) / INDEX_NAME)
    where, params = _where(**filters)
    sql = f"SELECT {columns} FROM idx{where}" + (" ORDER BY id" if order else "")
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    with _connection().cursor() as con:
        con.register("idx", table)
        rel = con.sql(sql, params=params)
        to_arrow = getattr(rel, "to_arrow_table", None) or rel.arrow
        return to_arrow()


def count(catalog_dir: Path, **filters) -> int:
    """How many index rows match every filter (see :func:`query`)."""
    return select(catalog_dir, "count(*) AS n", order=False, **filters).column("n")[0].as_py()


def query(
    catalog_dir: Path,
    product: str | None = None,
    variable: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    time: tuple[str | None, str | None] | None = None,
    run: str | None = None,
    ids: list[str] | None = None,
    access: list[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    columns: str = "*",
) -> list[dict]:
    """Rows (dicts) matching every given filter, ordered by id: product name or id, variable,
    a lon/lat bbox that intersects, a (start, end) time range that overlaps (None = open), a
    run (the workflow name or a run id), a list of ids, and the access levels allowed."""
    filters = dict(
        product=product, variable=variable, bbox=bbox, time=time, run=run, ids=ids, access=access
    )
    return select(catalog_dir, columns, limit, offset, **filters).to_pylist()


_CONNECTION = None


def _connection():
    """One in-memory DuckDB per process (opening one costs ~25 ms); each query uses its own
    cursor, which is safe across threads."""
    global _CONNECTION
    import duckdb

    if _CONNECTION is None:
        _CONNECTION = duckdb.connect()
    return _CONNECTION


def _snapshot(path: Path) -> pa.Table:
    """The index as one consistent Arrow table: read through a single open file, so a writer
    replacing the file meanwhile cannot mix two versions (DuckDB reading the path directly
    may reopen it between footer and row groups)."""
    with open(path, "rb") as f:
        return pq.read_table(pa.BufferReader(f.read()))


def _iso(value: str, end_of_day: bool = False) -> str:
    """A date or datetime string as ISO datetime; a bare date ends at 23:59:59 if asked."""
    text = str(value)
    if len(text) == 10 and end_of_day:
        return text + "T23:59:59"
    return text
