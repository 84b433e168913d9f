"""CQL2 filters of the STAC API's item search, and the queryables they may name.

A filter (``filter`` with ``filter-lang`` ``cql2-text`` or ``cql2-json``, or the older
``query`` object, turned into CQL2 here) is parsed by the ``cql2`` package, checked (every
property must be a queryable, every operator one of :data:`OPERATORS`), rewritten to name the
item index's columns, and turned into SQL with ``cql2``'s ``to_sql``; DuckDB evaluates that SQL
over the columns of :func:`query_table` (:mod:`fluxscape.catalog.itemsearch`). Anything that
cannot be used is a :class:`~fluxscape.catalog.stacquery.BadParameter` (the server's 400),
never a server error. Spatial operators are refused: ``bbox`` and ``intersects`` filter by
footprint.
"""

from __future__ import annotations

import json
import re
from typing import Any

import cql2
import pyarrow as pa
import pyarrow.compute as pc

from fluxscape.catalog.stacquery import BadParameter

#: Queryable name -> (item index column, JSON schema). ``fluxscape:`` names are the Items'
#: property names; the short names are aliases.
_TEXT = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
QUERYABLES: dict[str, tuple[str, dict]] = {
    "id": ("id", {**_TEXT, "title": "Item id"}),
    "collection": ("collection", {**_TEXT, "title": "Collection id (workflow.product)"}),
    "fluxscape:product": ("product", {**_TEXT, "title": "Product name"}),
    "fluxscape:workflow": ("workflow", {**_TEXT, "title": "Workflow (run) name"}),
    "fluxscape:run_id": ("run_id", {**_TEXT, "title": "Run id"}),
    "fluxscape:access": ("access", {**_TEXT, "title": "Access level"}),
    "fluxscape:variables": (
        "variables",
        {"type": "array", "items": _TEXT, "title": "Variables (a_contains to test one)"},
    ),
    "fluxscape:step": ("step", {"type": "integer", "title": "Index of the step in the store"}),
    "datetime": ("datetime", {**_TIME, "title": "Start of the step's period"}),
    "start_datetime": ("start_datetime", {**_TIME, "title": "Start of the step's period"}),
    "end_datetime": ("end_datetime", {**_TIME, "title": "End of the step's period"}),
}
#: Short names accepted for the ``fluxscape:`` queryables.
ALIASES = {
    "product": "fluxscape:product",
    "workflow": "fluxscape:workflow",
    "run": "fluxscape:workflow",
    "run_id": "fluxscape:run_id",
    "access": "fluxscape:access",
    "variables": "fluxscape:variables",
    "variable": "fluxscape:variables",
    "step": "fluxscape:step",
}
#: Queryables a search may sort on (the scalar ones).
SORTABLE = [name for name, (_, schema) in QUERYABLES.items() if schema["type"] != "array"]
#: CQL2 operators (cql2-json ``op``) a filter may use.
OPERATORS = {
    "and",
    "or",
    "not",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "like",
    "between",
    "in",
    "isNull",
    "casei",
    "accenti",
    "a_equals",
    "a_contains",
    "a_containedBy",
    "t_after",
    "t_before",
    "t_contains",
    "t_disjoint",
    "t_during",
    "t_equals",
    "t_intersects",
    "t_overlaps",
}
#: Conformance classes of the filter extension this module answers.
CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
]
#: Characters of a filter (text or JSON) and nesting depth of its expression.
MAX_FILTER = 8192
MAX_DEPTH = 64
#: CRSs a filter's coordinates may be in (there are none to convert: no spatial operators).
FILTER_CRS = {
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4326",
}


def queryables_document(url: str, title: str = "fluxscape items") -> dict:
    """The JSON Schema of the queryables (``/queryables``), ``url`` its own address."""
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "properties": {name: schema for name, (_, schema) in QUERYABLES.items()},
        "additionalProperties": False,
    }


def column_of(name: str, parameter: str) -> str:
    """The item index column of a queryable (``properties.`` prefix and aliases allowed)."""
    key = name.removeprefix("properties.")
    key = ALIASES.get(key, key)
    if key not in QUERYABLES:
        known = ", ".join(QUERYABLES)
        raise BadParameter(parameter, f"unknown property {key[:80]!r} (queryables: {known})")
    return QUERYABLES[key][0]


def sort_column(name: str) -> str:
    """The item index column of a queryable a search may sort on (a scalar one)."""
    column = column_of(name, "sortby")
    if column not in {QUERYABLES[n][0] for n in SORTABLE}:
        raise BadParameter("sortby", f"cannot sort on {name[:80]!r} (sortable: {SORTABLE})")
    return column


def parse(value: Any, lang: str | None) -> dict:
    """A filter as checked CQL2-JSON naming item index columns. ``value`` is cql2-text (a
    string) or cql2-json (a dict, or a string with ``lang`` ``cql2-json``); ``lang`` None
    means the form of ``value``."""
    if lang not in (None, "cql2-text", "cql2-json"):
        raise BadParameter("filter-lang", "expected cql2-text or cql2-json")
    try:
        if isinstance(value, dict):
            if lang == "cql2-text":
                raise BadParameter("filter", "cql2-text must be a string")
            text = json.dumps(value)
            _check_size(text)
            expr = cql2.parse_json(text)
        elif isinstance(value, str):
            _check_size(value)
            if lang == "cql2-json":
                expr = cql2.parse_json(value)
            else:
                _check_nesting(value)
                expr = cql2.parse_text(value)
        else:
            raise BadParameter("filter", "expected cql2-text (a string) or cql2-json (an object)")
        tree = expr.to_json()
    except BadParameter:
        raise
    except (ValueError, TypeError, RecursionError) as exc:  # cql2's ParseError is a ValueError
        raise BadParameter("filter", f"not valid CQL2 ({_first_line(exc)})") from exc
    except Exception as exc:  # noqa: BLE001 - cql2 raises its own classes for malformed input
        raise BadParameter("filter", f"not valid CQL2 ({_first_line(exc)})") from exc
    return _rewrite(tree, 0)


def from_query(query: Any) -> dict | None:
    """The STAC query extension's object (``{"property": {"eq": value, ...}}``) as checked
    CQL2-JSON (None for an empty one)."""
    if query is None:
        return None
    if not isinstance(query, dict):
        raise BadParameter("query", "expected a JSON object")
    ops = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
    args = []
    for name, tests in query.items():
        if not isinstance(tests, dict):
            raise BadParameter("query", f"{str(name)[:80]}: expected an object of operators")
        prop = {"property": column_of(str(name), "query")}
        for op, value in tests.items():
            if op in ops:
                args.append({"op": ops[op], "args": [prop, value]})
            elif op == "in" and isinstance(value, list):
                args.append({"op": "in", "args": [prop, value]})
            elif op in ("startsWith", "endsWith", "contains") and isinstance(value, str):
                pattern = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}[op]
                escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                args.append({"op": "like", "args": [prop, pattern.format(escaped)]})
            else:
                raise BadParameter("query", f"{str(name)[:80]}: unsupported operator {op!r}")
    if not args:
        return None
    return parse({"op": "and", "args": args} if len(args) > 1 else args[0], "cql2-json")


def combine(*trees: dict | None) -> dict | None:
    """The conjunction of checked filters (None when there are none)."""
    given = [t for t in trees if t is not None]
    if not given:
        return None
    return given[0] if len(given) == 1 else {"op": "and", "args": given}


def to_sql(tree: dict) -> str:
    """SQL (DuckDB) of a checked filter over the columns of :func:`query_table`."""
    try:
        return cql2.parse_json(json.dumps(tree)).to_sql()
    except Exception as exc:  # noqa: BLE001 - an operator cql2 cannot write as SQL
        raise BadParameter("filter", f"not supported ({_first_line(exc)})") from exc


def query_table(items: pa.Table) -> pa.Table:
    """The item index columns a filter names, times as UTC timestamps, plus ``_row`` (the
    row's position)."""
    columns = {}
    for _, (column, schema) in QUERYABLES.items():
        values = items.column(column)
        if schema.get("format") == "date-time":
            values = pc.assume_timezone(values, "UTC")
        columns[column] = values
    columns["_row"] = pa.array(range(items.num_rows), pa.int64())
    return pa.table(columns)


def _rewrite(node: Any, depth: int) -> Any:
    """A cql2-json node with properties renamed to columns; 400 for an unknown property or
    operator."""
    if depth > MAX_DEPTH:
        raise BadParameter("filter", f"nested deeper than {MAX_DEPTH}")
    if isinstance(node, list):
        return [_rewrite(v, depth + 1) for v in node]
    if not isinstance(node, dict):
        return node
    if "property" in node:
        return {"property": column_of(str(node["property"]), "filter")}
    if "op" in node:
        op = node["op"]
        if op not in OPERATORS:
            shown = str(op)[:40]
            hint = " (use bbox or intersects)" if str(op).startswith("s_") else ""
            raise BadParameter("filter", f"unsupported operator {shown!r}{hint}")
        return {"op": op, "args": _rewrite(node.get("args", []), depth + 1)}
    if {"type", "coordinates"} & node.keys() or "bbox" in node:
        raise BadParameter("filter", "geometries are not supported (use bbox or intersects)")
    return {k: _rewrite(v, depth + 1) for k, v in node.items()}


def _check_size(text: str) -> None:
    if len(text) > MAX_FILTER:
        raise BadParameter("filter", f"longer than {MAX_FILTER} characters")


#: cql2-text outside its string literals (single-quoted, '' inside them).
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NOT = re.compile(r"\bnot\b", re.IGNORECASE)


def _check_nesting(text: str) -> None:
    """Refuse cql2-text nested deeper than :data:`MAX_DEPTH` (parentheses, ``NOT`` or signs):
    the parser recurses on the native stack, and a few thousand levels crash the process."""
    code = _LITERAL.sub("''", text)
    depth = deepest = 0
    for char in code:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if (
        deepest > MAX_DEPTH
        or len(_NOT.findall(code)) > MAX_DEPTH
        or code.count("-") > 4 * MAX_DEPTH
    ):
        raise BadParameter("filter", f"nested deeper than {MAX_DEPTH}")


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines)[:200] or type(exc).__name__
