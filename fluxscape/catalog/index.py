"""The search index kept beside the STAC JSON: one Parquet row per published product.

``CATALOG/index.parquet`` holds what search needs (id, product, workflow, run id, access level,
variables, model ids, lon/lat bbox, time span, a WKB footprint, the collection's JSON path and
the store's path relative to the catalog folder). A search is SQL over that table with
DuckDB (:func:`select`), so it stays fast as the catalog grows instead of parsing every
collection.json; a process answering many searches over one version of the index (the
server) filters numpy copies of its columns instead (:class:`Columns`, the same filters
without a query's fixed cost of milliseconds). The file is rewritten to a temporary name and
renamed (readers see the old index or the new one), always under the catalog's lock
(:func:`catalog_lock`). A catalog without the file (written before the index existed, or
whose index write failed) gets it built from its collection.json files when it is opened
(:func:`build_missing`); a folder that cannot be written gets the same table in memory.
"""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from filelock import FileLock

from fluxscape.catalog import times
from fluxscape.pipeline.remote import is_url

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
    href = coll["assets"]["zarr"]["href"]
    # a store on object storage keeps its URL; a local one is named relative to the catalog
    store = href if is_url(href) else (coll_path.parent / href).resolve()
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
        "store": store if is_url(store) else os.path.relpath(store, catalog_dir),
        "geometry": shapely.to_wkb(shapely.box(*bbox)),
    }


def catalog_lock(catalog_dir: Path) -> FileLock:
    """The inter-process lock that serialises writers of one catalog folder."""
    catalog_dir = Path(catalog_dir)
    catalog_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(catalog_dir / ".lock"), timeout=300)


def read_rows(catalog_dir: Path) -> list[dict]:
    """Every row of the index (empty list when there is none yet)."""
    path = Path(catalog_dir) / INDEX_NAME
    if not path.exists():
        return []
    return pq.read_table(path).to_pylist()


def write_rows(catalog_dir: Path, rows: list[dict]) -> Path:
    """Replace the index with ``rows`` (sorted by id) atomically; returns its path."""
    path = Path(catalog_dir) / INDEX_NAME
    tmp = path.with_name(f".index-{os.getpid()}.tmp.parquet")
    try:
        pq.write_table(to_table(rows), tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def to_table(rows: list[dict]) -> pa.Table:
    """Index rows as the index's Arrow table (sorted by id)."""
    return pa.Table.from_pylist(sorted(rows, key=lambda r: r["id"]), schema=SCHEMA)


def upsert(catalog_dir: Path, row: dict | None = None, remove: str | None = None) -> Path:
    """Replace the row with ``row['id']`` (or add it) and/or drop the row ``remove``."""
    drop = {remove} | ({row["id"]} if row else set())
    rows = [r for r in read_rows(catalog_dir) if r["id"] not in drop]
    if row:
        rows.append(row)
    return write_rows(catalog_dir, rows)


def rows_from_json(catalog_dir: Path) -> list[dict]:
    """The index rows of every ``*/collection.json`` of the catalog folder."""
    catalog_dir = Path(catalog_dir).resolve()
    rows = []
    for coll_path in sorted(catalog_dir.glob("*/collection.json")):
        coll = json.loads(coll_path.read_text())
        if "fluxscape:product" in coll:
            rows.append(row_from_collection(coll, coll_path, catalog_dir))
    return rows


def rebuild(catalog_dir: Path) -> Path:
    """Rebuild the index from every ``*/collection.json`` of the catalog folder."""
    return write_rows(catalog_dir, rows_from_json(catalog_dir))


#: errno values meaning "this folder cannot be written" (the index is then kept in memory).
_READ_ONLY = {errno.EACCES, errno.EPERM, errno.EROFS}


def build_missing(catalog_dir: Path) -> pa.Table | None:
    """Give a catalog without ``index.parquet`` its index, built from its collection.json files
    and written as a publisher writes it (under :func:`catalog_lock`, to a temporary file then
    ``os.replace``). Returns None when the file is there (now or already), or the index table
    built in memory when the folder cannot be written."""
    catalog_dir = Path(catalog_dir).resolve()
    path = catalog_dir / INDEX_NAME
    if path.exists():
        return None
    try:
        with catalog_lock(catalog_dir):
            if not path.exists():  # another process may have written it meanwhile
                rebuild(catalog_dir)
        return None
    except OSError as exc:
        if exc.errno not in _READ_ONLY:
            raise
        return to_table(rows_from_json(catalog_dir))


def snapshot(catalog_dir: Path) -> pa.Table:
    """The index file as one consistent Arrow table: read through a single open file, so a
    writer replacing the file meanwhile cannot mix two versions (DuckDB reading the path
    directly may reopen it between footer and row groups). FileNotFoundError without one."""
    return snapshot_if_changed(catalog_dir, None)[1]


#: What identifies one version of the index file: device, inode, size, modification time.
Version = tuple[int, int, int, int]


def snapshot_if_changed(
    catalog_dir: Path, known: Version | None
) -> tuple[Version, pa.Table | None]:
    """The index file's version and, unless it is ``known``, its table (as :func:`snapshot`).
    A table and its version come from the same open file; a writer replaces the file by
    renaming a new one over it (a new inode), so one version always has the same content."""
    path = Path(catalog_dir) / INDEX_NAME
    if known is not None and _version(os.stat(path)) == known:
        return known, None
    with open(path, "rb") as f:
        return _version(os.fstat(f.fileno())), pq.read_table(pa.BufferReader(f.read()))


def _version(st: os.stat_result) -> Version:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _where(
    product: str | None = None,
    variable: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    time: times.TimeRange | str | None = None,
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
        clauses, values = times.overlap_sql("start_datetime", "end_datetime", times.bounds(time))
        where += clauses
        params += values
    if run:
        where.append("(workflow = ? OR run_id = ?)")
        params += [run, run]
    if ids is not None and not ids:
        where.append("FALSE")
    elif ids is not None:
        where.append("list_contains(?, id)")
        params.append(list(ids))
    if access is not None:
        where.append("list_contains(?, access)")
        params.append(list(access))
    return (" WHERE " + " AND ".join(where) if where else ""), params


def select(
    table: pa.Table,
    columns: str = "*",
    limit: int | None = None,
    offset: int = 0,
    order: bool = True,
    intersects: shapely.Geometry | None = None,
    **filters,
) -> pa.Table:
    """Rows of the index ``table`` matching every filter, ordered by id, as an Arrow table;
    ``columns`` is a DuckDB select list. Filters (all optional): ``product`` (name or id),
    ``variable``, ``bbox`` (lon/lat, intersecting), ``time`` (a range overlapping the
    product's extent, see :mod:`fluxscape.catalog.times`), ``run`` (workflow name or run id),
    ``ids``, ``access`` (levels allowed), and ``intersects``: a lon/lat shapely geometry the
    footprint must intersect (its bounds filter in SQL, then the exact test in shapely)."""
    if intersects is not None:
        return _select_intersecting(table, columns, limit, offset, order, intersects, **filters)
    where, params = _where(**filters)
    sql = f"SELECT {columns} FROM idx{where}" + (" ORDER BY id" if order else "")
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    with _connection().cursor() as con:
        con.register("idx", table)
        rel = con.sql(sql, params=params)
        to_arrow = getattr(rel, "to_arrow_table", None) or rel.arrow
        return to_arrow()


def _select_intersecting(table, columns, limit, offset, order, shape, bbox=None, **filters):
    if bbox is not None:
        raise ValueError("give bbox or intersects, not both")
    found = select(
        table, f"{columns}, geometry AS _footprint", order=order, bbox=shape.bounds, **filters
    )
    footprints = shapely.from_wkb(found.column("_footprint").to_numpy(zero_copy_only=False))
    found = found.filter(pa.array(shapely.intersects(footprints, shape)))
    found = found.drop_columns(["_footprint"])
    return found if limit is None else found.slice(int(offset), int(limit))


class Columns:
    """The columns of an index table that STAC searches filter on, as numpy arrays, for a
    process that queries one index version many times (``fluxscape serve``): the in-memory
    twin of :func:`select` for the filters ``bbox``, ``time``, ``ids``, ``access`` and
    ``intersects``, answering in microseconds where a DuckDB query costs milliseconds. The
    table must be ordered by id (as :func:`to_table` writes it)."""

    def __init__(self, table: pa.Table):
        def column(name: str) -> np.ndarray:
            return table.column(name).to_numpy(zero_copy_only=False)

        self.id, self.access = column("id"), column("access")
        self.xmin, self.ymin = column("xmin"), column("ymin")
        self.xmax, self.ymax = column("xmax"), column("ymax")
        self.start = column("start_datetime").astype("datetime64[us]")
        self.end = column("end_datetime").astype("datetime64[us]")
        self._table = table
        self._footprints: np.ndarray | None = None

    def page(
        self,
        limit: int,
        offset: int = 0,
        bbox: tuple[float, float, float, float] | None = None,
        time: times.Bounds | None = None,
        ids: list[str] | None = None,
        access: list[str] | None = None,
        intersects: shapely.Geometry | None = None,
    ) -> tuple[np.ndarray, int]:
        """Row positions (ordered by id) of one page of the matching rows, and how many rows
        match in all; the filters mean what they mean to :func:`select`, except ``time``: the
        first and last instant of the range (:func:`fluxscape.catalog.times.bounds`)."""
        found = self.matching(bbox, time, ids, access, intersects)
        return found[offset : offset + limit], len(found)

    def matching(
        self,
        bbox: tuple[float, float, float, float] | None = None,
        time: times.Bounds | None = None,
        ids: list[str] | None = None,
        access: list[str] | None = None,
        intersects: shapely.Geometry | None = None,
    ) -> np.ndarray:
        """Row positions (ordered by id) of every row matching the filters of :meth:`page`."""
        keep = np.ones(len(self.id), dtype=bool)
        if access is not None:
            keep &= np.isin(self.access, list(access))
        if ids is not None:
            keep &= np.isin(self.id, list(ids))
        if intersects is not None:
            bbox = intersects.bounds
        if bbox is not None:
            w, s, e, n = bbox
            keep &= (self.xmin <= e) & (self.xmax >= w) & (self.ymin <= n) & (self.ymax >= s)
        if time is not None:
            keep &= times.overlaps(self.start, self.end, time)
        found = np.flatnonzero(keep)
        if intersects is not None and len(found):
            found = found[shapely.intersects(self.footprints()[found], intersects)]
        return found

    def footprints(self) -> np.ndarray:
        """The rows' footprints as shapely geometries (decoded at the first use)."""
        if self._footprints is None:
            wkb = self._table.column("geometry").to_numpy(zero_copy_only=False)
            self._footprints = shapely.from_wkb(wkb)
        return self._footprints


def count(table: pa.Table, **filters) -> int:
    """How many rows of the index ``table`` match every filter (see :func:`select`)."""
    if filters.get("intersects") is not None:
        return select(table, "id", order=False, **filters).num_rows
    return select(table, "count(*) AS n", order=False, **filters).column("n")[0].as_py()


_CONNECTION = None


def _connection():
    """One in-memory DuckDB per process (opening one costs ~25 ms); each query uses its own
    cursor, which is safe across threads."""
    global _CONNECTION
    import duckdb

    if _CONNECTION is None:
        _CONNECTION = duckdb.connect()
    return _CONNECTION
