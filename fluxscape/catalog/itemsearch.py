"""Item search over one version of the item index (``fluxscape serve``'s ``/search``).

:class:`ItemTable` answers a checked :class:`~fluxscape.catalog.stacquery.SearchQuery` for
a client allowed some access levels: the footprint, time, id and access filters on numpy
columns (:class:`fluxscape.catalog.index.Columns`, microseconds), ``collections`` likewise,
the CQL2 filter as SQL in DuckDB over the queryable columns (:mod:`fluxscape.catalog.cql`),
then ``sortby`` (ties and the default order: by id) and the page. :func:`select_fields`
applies ``fields`` to an Item.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fluxscape.catalog import cql, index
from fluxscape.catalog.stacquery import BadParameter, SearchQuery

#: What an Item keeps when ``fields`` has an ``include`` list (besides that list).
DEFAULT_FIELDS = (
    "type",
    "stac_version",
    "stac_extensions",
    "id",
    "collection",
    "geometry",
    "bbox",
    "links",
    "assets",
    "properties.datetime",
)


class ItemTable:
    """One version of the item index (:mod:`fluxscape.catalog.itemindex`), ordered by id."""

    def __init__(self, table: pa.Table):
        self.source = table
        self.table = table.sort_by("id")
        self.columns = index.Columns(self.table)
        self.collection = self.table.column("collection").to_numpy(zero_copy_only=False)
        self.by_id = {item_id: i for i, item_id in enumerate(self.columns.id)}
        self._json = self.table.column("item").to_pylist()
        self._query_table: pa.Table | None = None

    def item(self, position: int) -> dict:
        """The stored JSON of the Item at ``position`` (a fresh dict)."""
        return json.loads(self._json[position])

    def positions(self, collection: str, levels: list[str]) -> np.ndarray:
        """Positions of a collection's Items (ordered by id) if the client may read them."""
        keep = (self.collection == collection) & np.isin(self.columns.access, levels)
        return np.flatnonzero(keep)

    def search(self, query: SearchQuery, levels: list[str]) -> tuple[np.ndarray, int]:
        """Positions of one page of the Items matching ``query`` that the client (allowed
        ``levels``) may read, in the order asked for, and how many match in all."""
        found = self.columns.matching(
            bbox=query.bbox,
            time=query.time,
            ids=query.ids,
            access=levels,
            intersects=query.intersects,
        )
        if query.collections is not None:
            found = found[np.isin(self.collection[found], query.collections)]
        if query.filter is not None and len(found):
            found = found[np.isin(found, self._filtered(query.filter))]
        if query.sortby and len(found):
            found = self._sorted(found, query.sortby)
        return found[query.offset : query.offset + query.limit], len(found)

    def _filtered(self, tree: dict) -> np.ndarray:
        """Positions of the rows a checked CQL2 filter keeps."""
        import duckdb

        sql = cql.to_sql(tree)
        if self._query_table is None:
            self._query_table = cql.query_table(self.table)
        with _connection().cursor() as con:
            con.register("q", self._query_table)
            try:
                rows = con.sql(f"SELECT _row FROM q WHERE {sql}").fetchnumpy()["_row"]
            except duckdb.Error as exc:
                message = str(exc).splitlines()[0][:200]
                raise BadParameter("filter", f"cannot be evaluated ({message})") from exc
        return np.asarray(rows, dtype=np.int64)

    def _sorted(self, found: np.ndarray, sortby: tuple[tuple[str, bool], ...]) -> np.ndarray:
        """``found`` ordered by the ``sortby`` columns, then by id."""
        keys = [(column, "descending" if desc else "ascending") for column, desc in sortby]
        keys.append(("id", "ascending"))
        names = list(dict.fromkeys(column for column, _ in keys))
        order = pc.sort_indices(self.table.select(names).take(found), sort_keys=keys)
        return found[order.to_numpy()]


def select_fields(item: dict, fields: tuple[tuple[str, ...], tuple[str, ...]] | None) -> dict:
    """An Item with the STAC fields extension applied: ``exclude`` only removes those paths
    from the whole Item; an ``include`` list keeps it and :data:`DEFAULT_FIELDS`, less what
    ``exclude`` names and ``include`` does not."""
    if fields is None:
        return item
    include, exclude = fields
    if include:
        out: dict = {}
        for path in (*DEFAULT_FIELDS, *include):
            _copy_path(item, out, path.split("."))
        item = out
    for path in exclude:
        if path not in include:
            _drop_path(item, path.split("."))
    return item


def _copy_path(source: dict, target: dict, keys: list[str]) -> None:
    key = keys[0]
    if key not in source:
        return
    if len(keys) == 1:
        target[key] = source[key]
        return
    if isinstance(source[key], dict):
        branch = target.setdefault(key, {})
        if isinstance(branch, dict):
            _copy_path(source[key], branch, keys[1:])


def _drop_path(item: dict, keys: list[str]) -> None:
    for key in keys[:-1]:
        item = item.get(key)
        if not isinstance(item, dict):
            return
    item.pop(keys[-1], None)


_CONNECTION = None


def _connection():
    """The process's DuckDB for filters: no access to files or the network, UTC."""
    global _CONNECTION
    import duckdb

    if _CONNECTION is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        _CONNECTION = con
    return _CONNECTION
