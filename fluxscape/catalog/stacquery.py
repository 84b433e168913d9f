"""The item-search parameters of the STAC API, checked before any query runs.

A GET query string (:func:`from_query`) and a POST body (:func:`from_body`) give the same
:class:`SearchQuery`, or raise :class:`BadParameter` naming the parameter (the server's 400).
``limit`` above :data:`MAX_LIMIT` is clamped to it, as STAC APIs do; every other value out of
its range is refused. Besides the core parameters: ``filter``/``filter-lang`` and ``query``
(checked CQL2, :mod:`fluxscape.catalog.cql`), ``sortby`` (queryables, ``-`` for descending)
and ``fields`` (``include``/``exclude`` lists of dotted paths).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely

from fluxscape.catalog import times
from fluxscape.errors import FluxscapeError

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 10
#: Pages past this are refused (the offset must stay a small integer).
MAX_PAGE = 1_000_000
#: Ids in ``ids`` or ``collections``, and characters in one.
MAX_IDS = 1_000
MAX_ID_LENGTH = 256
#: Characters in a ``datetime`` (an interval of two RFC 3339 instants is about 60).
MAX_DATETIME = 100
#: One side of a ``datetime`` interval: open (empty or ``..``), a year, month, date or an
#: RFC 3339 date-time.
_INSTANT = re.compile(
    r"|\.\.|\d{4}(-\d{2}(-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?)?)?)?"
)
#: A GET integer parameter (large enough for any page or limit, small enough to parse fast).
_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")
GEOMETRY_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}


class BadParameter(ValueError):
    """A search parameter that cannot be used; ``name`` is the parameter."""

    def __init__(self, name: str, message: str):
        self.name = name
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True)
class SearchQuery:
    """Checked search parameters: index filters and paging."""

    limit: int = DEFAULT_LIMIT
    page: int = 1
    bbox: tuple[float, float, float, float] | None = None
    time: tuple[datetime | None, datetime | None] | None = None
    intersects: shapely.Geometry | None = None
    ids: list[str] | None = None
    collections: list[str] | None = None
    #: Checked CQL2-JSON naming item index columns (``filter`` and ``query`` combined).
    filter: dict | None = None
    #: (column, descending) pairs, most significant first.
    sortby: tuple[tuple[str, bool], ...] = ()
    #: (include, exclude) dotted paths, or None for whole Items.
    fields: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def filters(self) -> dict[str, Any]:
        """Keyword filters of :meth:`fluxscape.catalog.api.Catalog.rows`."""
        out: dict[str, Any] = {}
        if self.bbox is not None:
            out["bbox"] = self.bbox
        if self.time is not None:
            out["time"] = self.time
        if self.intersects is not None:
            out["intersects"] = self.intersects
        if self.ids is not None:
            out["ids"] = self.ids
        if self.collections is not None:
            out["collections"] = self.collections
        return out


def from_query(params: Mapping[str, str]) -> SearchQuery:
    """A GET ``/search`` query string (its parameters as strings)."""
    bbox = params.get("bbox")
    intersects = params.get("intersects")
    return _query(
        limit=_int_text("limit", params.get("limit")),
        page=_int_text("page", params.get("page") or params.get("token")),
        bbox=None if bbox is None else _numbers_text(bbox),
        datetime=params.get("datetime"),
        intersects=None if intersects is None else _json_text("intersects", intersects),
        collections=_list_text("collections", params.get("collections")),
        ids=_list_text("ids", params.get("ids")),
        filter=params.get("filter"),
        filter_lang=params.get("filter-lang") or ("cql2-text" if "filter" in params else None),
        filter_crs=params.get("filter-crs"),
        query=None if params.get("query") is None else _json_text("query", params["query"]),
        sortby=None if params.get("sortby") is None else _sortby_text(params["sortby"]),
        fields=None if params.get("fields") is None else _fields_text(params["fields"]),
    )


def from_body(body: Any) -> SearchQuery:
    """A POST ``/search`` body (parsed JSON; None or empty for no filter)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadParameter("body", "expected a JSON object")
    return _query(
        limit=_int_value("limit", body.get("limit")),
        page=_int_value("page", body.get("page", body.get("token"))),
        bbox=body.get("bbox"),
        datetime=body.get("datetime"),
        intersects=body.get("intersects"),
        collections=_list_value("collections", body.get("collections")),
        ids=_list_value("ids", body.get("ids")),
        filter=body.get("filter"),
        filter_lang=body.get("filter-lang") or body.get("filter_lang"),
        filter_crs=body.get("filter-crs"),
        query=body.get("query"),
        sortby=_sortby_value(body.get("sortby")),
        fields=_fields_value(body.get("fields")),
    )


def _query(
    limit,
    page,
    bbox,
    datetime,
    intersects,
    collections,
    ids,
    filter=None,
    filter_lang=None,
    filter_crs=None,
    query=None,
    sortby=None,
    fields=None,
) -> SearchQuery:
    from fluxscape.catalog import cql

    if bbox is not None and intersects is not None:
        raise BadParameter("intersects", "give bbox or intersects, not both")
    limit = DEFAULT_LIMIT if limit is None else limit
    if limit < 1:
        raise BadParameter("limit", "must be at least 1")
    page = 1 if page is None else page
    if not 1 <= page <= MAX_PAGE:
        raise BadParameter("page", f"must be in 1..{MAX_PAGE}")
    return SearchQuery(
        limit=min(limit, MAX_LIMIT),
        page=page,
        bbox=None if bbox is None else check_bbox(bbox),
        time=None if datetime is None else check_datetime(datetime),
        intersects=None if intersects is None else check_geometry(intersects),
        ids=ids,
        collections=collections,
        filter=cql.combine(_filter(filter, filter_lang, filter_crs), cql.from_query(query)),
        sortby=tuple((cql.sort_column(name), desc) for name, desc in sortby or []),
        fields=fields,
    )


def _filter(value: Any, lang: Any, crs: Any) -> dict | None:
    """A checked ``filter`` (None when absent)."""
    from fluxscape.catalog import cql

    if crs is not None and crs not in cql.FILTER_CRS:
        raise BadParameter("filter-crs", "only CRS84 (EPSG:4326 lon/lat) is supported")
    if value is None:
        return None
    if lang is not None and not isinstance(lang, str):
        raise BadParameter("filter-lang", "expected cql2-text or cql2-json")
    return cql.parse(value, lang)


#: Entries of ``sortby`` and of each ``fields`` list.
MAX_FIELDS = 100


def _sortby_text(text: str) -> list[tuple[str, bool]]:
    """``-datetime,+id`` (``+`` may arrive as a space) -> [(name, descending)]."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > MAX_FIELDS:
        raise BadParameter("sortby", f"at most {MAX_FIELDS} fields")
    return [(p[1:].strip(), True) if p[0] == "-" else (p.lstrip("+").strip(), False) for p in parts]


def _sortby_value(value: Any) -> list[tuple[str, bool]] | None:
    """POST ``sortby``: [{"field": name, "direction": "asc"|"desc"}] (or the GET string)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _sortby_text(value)
    if not isinstance(value, list) or len(value) > MAX_FIELDS:
        raise BadParameter("sortby", "expected a list of {field, direction} objects")
    out = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
            raise BadParameter("sortby", "expected a list of {field, direction} objects")
        direction = entry.get("direction", "asc")
        if direction not in ("asc", "desc"):
            raise BadParameter("sortby", "direction must be asc or desc")
        out.append((entry["field"], direction == "desc"))
    return out


def _fields_text(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``id,-properties.title`` (``+`` may arrive as a space) -> (include, exclude)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    include = [p.lstrip("+").strip() for p in parts if not p.startswith("-")]
    exclude = [p[1:].strip() for p in parts if p.startswith("-")]
    return _fields(include, exclude)


def _fields_value(value: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """POST ``fields``: {"include": [...], "exclude": [...]} (or the GET string)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _fields_text(value)
    if not isinstance(value, dict) or not set(value) <= {"include", "exclude"}:
        raise BadParameter("fields", "expected {include: [...], exclude: [...]}")
    include, exclude = value.get("include") or [], value.get("exclude") or []
    for name in (include, exclude):
        if not isinstance(name, list) or not all(isinstance(v, str) for v in name):
            raise BadParameter("fields", "include and exclude must be lists of strings")
    return _fields(include, exclude)


def _fields(include: list[str], exclude: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if len(include) > MAX_FIELDS or len(exclude) > MAX_FIELDS:
        raise BadParameter("fields", f"at most {MAX_FIELDS} fields in each list")
    if any(not v or len(v) > MAX_ID_LENGTH for v in [*include, *exclude]):
        raise BadParameter("fields", f"fields are 1 to {MAX_ID_LENGTH} characters")
    return tuple(include), tuple(exclude)


# --- values ----------------------------------------------------------------------------------


def check_bbox(values: Any) -> tuple[float, float, float, float]:
    """A lon/lat bbox (4 numbers W,S,E,N, or 6 with heights) in range, W <= E, S <= N."""
    if not isinstance(values, list | tuple) or len(values) not in (4, 6):
        raise BadParameter("bbox", "expected 4 numbers W,S,E,N (or 6 with heights)")
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
        raise BadParameter("bbox", "expected numbers")
    numbers = [float(v) for v in values]
    w, s, e, n = numbers if len(numbers) == 4 else numbers[:2] + numbers[3:5]
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise BadParameter("bbox", "expected finite numbers")
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise BadParameter("bbox", "longitudes must be in -180..180, latitudes in -90..90")
    if s > n:
        raise BadParameter("bbox", "south must not be above north")
    if w > e:
        raise BadParameter("bbox", "west above east (crossing the antimeridian) is not supported")
    return (w, s, e, n)


def check_datetime(text: Any) -> tuple[datetime | None, datetime | None]:
    """A STAC ``datetime``: an instant, a date, or an interval ``START/END`` (``..`` or empty
    for an open end) -> its first and last instant (naive UTC; None for open)."""
    if not isinstance(text, str):
        raise BadParameter("datetime", "expected a string")
    if len(text) > MAX_DATETIME:
        raise BadParameter("datetime", f"longer than {MAX_DATETIME} characters")
    sides = text.split("/") if "/" in text else [text, text]
    if len(sides) != 2 or not all(_INSTANT.fullmatch(v.strip()) for v in sides):
        raise BadParameter("datetime", "expected RFC 3339 instants or dates, START/END")
    interval = "/".join(sides)
    try:
        lo, hi = times.bounds(times.parse_range(interval))
    except (FluxscapeError, ValueError, OverflowError) as exc:
        raise BadParameter("datetime", "expected RFC 3339 instants or dates, START/END") from exc
    if lo is not None and hi is not None and lo > hi:
        raise BadParameter("datetime", "the start is after the end")
    return (lo, hi)


def check_geometry(value: Any) -> shapely.Geometry:
    """A GeoJSON geometry (lon/lat) as a valid shapely geometry."""
    if not isinstance(value, dict) or value.get("type") not in GEOMETRY_TYPES:
        raise BadParameter("intersects", "expected a GeoJSON geometry object")
    try:
        shape = shapely.geometry.shape(value)
        coords = shapely.get_coordinates(shape)
    except Exception as exc:  # noqa: BLE001 - any failure to parse means malformed GeoJSON
        raise BadParameter("intersects", "not a valid GeoJSON geometry") from exc
    if shape.is_empty:
        raise BadParameter("intersects", "the geometry is empty")
    if not np.isfinite(coords).all():
        raise BadParameter("intersects", "coordinates must be finite numbers")
    lon, lat = coords[:, 0], coords[:, 1]
    if (np.abs(lon) > 180).any() or (np.abs(lat) > 90).any():
        raise BadParameter("intersects", "longitudes must be in -180..180, latitudes in -90..90")
    return shape if shape.is_valid else shapely.make_valid(shape)


# --- GET strings and POST values -------------------------------------------------------------


def _int_text(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not _INTEGER.fullmatch(text.strip()):
        raise BadParameter(name, "expected an integer")
    return int(text)


def _int_value(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameter(name, "expected an integer")
    return value


def _numbers_text(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise BadParameter("bbox", "expected numbers W,S,E,N") from exc


def _json_text(name: str, text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadParameter(name, "not JSON") from exc


def _list_text(name: str, text: str | None) -> list[str] | None:
    if text is None:
        return None
    return _check_ids(name, [v.strip() for v in text.split(",") if v.strip()])


def _list_value(name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(name, "expected a list of strings")
    return _check_ids(name, value)


def _check_ids(name: str, values: list[str]) -> list[str]:
    if len(values) > MAX_IDS:
        raise BadParameter(name, f"at most {MAX_IDS} ids")
    if any(len(v) > MAX_ID_LENGTH for v in values):
        raise BadParameter(name, f"ids are at most {MAX_ID_LENGTH} characters")
    return values
