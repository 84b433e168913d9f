"""``fluxscape serve``: a read-only HTTP service over one catalog folder.

One FastAPI app (run by uvicorn) serves:

- a STAC API (core, collections, features, item search; GET and POST ``/search``, with the
  filter (CQL2 text and JSON), query, sort and fields extensions, and ``/queryables``) built
  from the catalog's Parquet indexes: each product is a Collection whose Items are its time
  steps (:mod:`fluxscape.catalog.items`); an Item's per-variable assets are GDAL
  subdatasets of the store served below, reached through ``/vsicurl/``
  (``ZARR:"/vsicurl/http://HOST/zarr/ID":/gpp:5``, so ``odc.stac.load`` and rasterio read
  them over HTTP), its ``zarr`` asset the whole store;
- ``/zarr/{collection}/...``: the files of that product's Zarr store (consolidated metadata, so
  ``xarray.open_zarr("http://HOST/zarr/ID")`` works through fsspec);
- ``/tiler/...``: PNG map tiles, info and tilejson from titiler-xarray, the dataset chosen by
  ``collection=ID`` (never by a path or URL);
- ``/timeseries/{collection}``: one pixel's series as JSON (the map page's click);
- ``/web/``: the map page (Leaflet, vendored; no CDN).

Why not stac-fastapi-geoparquet: it needs pinned, already-outdated stac-fastapi and FastAPI
releases and DuckDB extensions matched to rustac's bundled DuckDB, and it has no hook to hide
items per client, which the data policy needs. The STAC API here is a few routes over the
same kind of index (Parquet queried with DuckDB), validated in the tests with stac-pydantic
and exercised with pystac-client.

Data policy: every product has an access level (:mod:`fluxscape.access`). Anonymous clients
see only ``public`` products; a bearer token (``Authorization: Bearer TOKEN``) grants the level
configured for it, and levels below. Tokens are configured hashed (SHA-256 hex) in a JSON file
(see :func:`load_tokens`); an unknown token gets 401, a product the client may not read is
404 everywhere (search, collection, item, Zarr file, tile, time series), as if it did not
exist. Tokens are never logged (uvicorn logs paths, and tokens are only read from headers).
Nothing writes: the only POST is ``/search``. Every file served is resolved (symlinks followed)
and must lie inside the store that the catalog names for an id the client may read, or, for
an asset, inside the catalog folder or the product's quicklook folder.

Browsers: GET and HEAD responses carry CORS headers (:mod:`fluxscape.catalog.cors`):
``Access-Control-Allow-Origin: *`` for anonymous requests (public products only) by default,
and only named origins (``--cors-origin``) for requests with a token.

Hostile and malformed requests: the limits of :class:`~fluxscape.catalog.guard.ServeLimits`
are applied before routing (:mod:`fluxscape.catalog.guard`), search parameters are checked by
:mod:`fluxscape.catalog.stacquery`, and every error is a JSON ``{"code", "description"}``: 400
naming the parameter for malformed input, a generic 500 (the traceback only in the server's
log) for anything unexpected. The index is read again only when its file changes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import math
import mimetypes
import os
import re
import secrets
from dataclasses import dataclass, replace
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from stat import S_ISREG
from typing import Annotated, Any
from urllib.parse import urlencode

import pystac
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fluxscape.access import LEVELS, check_level, readable_levels
from fluxscape.catalog import cql, geo, items, stacquery
from fluxscape.catalog.api import Catalog, open_catalog
from fluxscape.catalog.cors import Cors
from fluxscape.catalog.guard import Guard, ServeLimits, protocol_class
from fluxscape.catalog.itemsearch import ItemTable, select_fields
from fluxscape.catalog.publish import LICENSE_FILE, quicklook_dir
from fluxscape.catalog.stacquery import BadParameter
from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.remote import is_url

WEB_DIR = Path(__file__).resolve().parent / "web"
TOKENS_ENV = "FLUXSCAPE_TOKENS_FILE"
GEOJSON = "application/geo+json"
CONFORMS_TO = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#fields",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    *cql.CONFORMANCE,
]
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
MAX_LIMIT = stacquery.MAX_LIMIT
#: Search pages up to this many items are built on the event loop (see create_app).
SMALL_PAGE = 100


# --- tokens ----------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a bearer token, as stored in the tokens file."""
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens(path: str | Path | None) -> dict[str, str]:
    """Read a tokens file -> {sha256 hex: access level}.

    Format (JSON)::

        {"tokens": [{"name": "tohoku-partners", "sha256": "<hex>", "access": "partners"}]}

    ``sha256`` is :func:`hash_token` of the secret; the secret itself is never stored.
    ``path`` None reads ``$FLUXSCAPE_TOKENS_FILE`` if set, else no tokens (public only)."""
    path = path or os.environ.get(TOKENS_ENV)
    if not path:
        return {}
    try:
        doc = json.loads(Path(path).read_text())
        out = {}
        for i, t in enumerate(doc["tokens"]):
            digest = str(t["sha256"]).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"tokens[{i}].sha256 is not a SHA-256 hex digest")
            out[digest] = check_level(t["access"], f"tokens[{i}].access")
        return out
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise FluxscapeError(f"{path}: not a valid tokens file ({exc})") from exc


def add_token(path: str | Path, name: str, access: str) -> str:
    """Create a random token for ``access``, store its hash under ``name`` in the tokens file
    (created with mode 0600) and return the secret (shown once, never stored)."""
    check_level(access)
    path = Path(path)
    doc = json.loads(path.read_text()) if path.exists() else {"tokens": []}
    token = secrets.token_urlsafe(32)
    doc["tokens"] = [t for t in doc["tokens"] if t.get("name") != name]
    doc["tokens"].append({"name": name, "sha256": hash_token(token), "access": access})
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)
    return token


# --- the app ---------------------------------------------------------------------------------

log = logging.getLogger("fluxscape.serve")


async def granted(request: Request) -> list[str]:
    """Access levels the request may read: public without a token, the token's level (and
    below) with a known bearer token; 401 for any other Authorization header."""
    header = request.headers.get("authorization")
    if not header:
        return readable_levels("public")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        digest = hash_token(token.strip())
        for known, level in request.app.state.tokens.items():
            if hmac.compare_digest(known, digest):
                return readable_levels(level)
    raise HTTPException(401, "invalid bearer token", {"WWW-Authenticate": "Bearer"})


Levels = Annotated[list[str], Depends(granted)]


class Products:
    """The catalog's index rows by id, with each product's resolved store path and collection
    document, kept until the index changes (then rebuilt from the new one): a lookup by id is
    a dict access, not a read of the index; searches go to the item index (:meth:`items`)."""

    def __init__(self, cat: Catalog):
        self.cat = cat
        self._view: _View | None = None
        self._items: ItemTable | None = None

    def _current(self) -> _View:
        table = self.cat.index_table()
        view = self._view
        if view is None or view.source is not table:
            view = _View(table)
            self._view = view  # one assignment: other threads see the old view or the new one
        return view

    def get(self, cid: str, levels: list[str]) -> dict:
        """The row of product ``cid`` if the client may read it; 404 otherwise."""
        row = self._current().by_id.get(cid)
        if row is None or row["access"] not in levels:
            raise HTTPException(404, f"no collection {_short(cid)!r}")
        return row

    def readable(self, levels: list[str]) -> list[dict]:
        """The rows the client may read, ordered by id."""
        return [r for r in self._current().rows if r["access"] in levels]

    def items(self) -> ItemTable:
        """The current version of the item index, ready for searches."""
        table = self.cat.item_table()
        view = self._items
        if view is None or view.source is not table:
            view = ItemTable(table)
            self._items = view
        return view

    def store(self, row: dict) -> Path | str:
        """The resolved path of a product's Zarr store (its URL on object storage)."""
        cache = self._current().files
        key = ("store", row["id"], row["store"])
        if key not in cache:
            store = row["store"]
            cache[key] = store if is_url(store) else (self.cat.directory / store).resolve()
        return cache[key]

    def document(self, row: dict) -> dict:
        """A product's collection.json (a fresh dict each call: callers change it)."""
        cache = self._current().files
        key = ("doc", row["id"], row["href"])
        if key not in cache:
            cache[key] = (self.cat.directory / row["href"]).read_text()
        return json.loads(cache[key])


class _View:
    """One version of the index: its rows (ordered by id), by id, and the
    files read for it."""

    def __init__(self, table):
        self.source = table
        table = table.sort_by("id")
        self.rows: list[dict] = table.to_pylist()
        self.by_id = {r["id"]: r for r in self.rows}
        self.files: dict[tuple, Any] = {}


def _has_alerts(catalog_dir) -> bool:
    from fluxscape.catalog.alerts import COLLECTION

    return (Path(catalog_dir) / COLLECTION / "collection.json").is_file()


def _alert_items(catalog_dir, levels, when: str | None, bbox: str | None) -> list[dict]:
    """The alert Items the client may read (``fluxscape:access`` in ``levels``), newest
    first, within a STAC ``datetime`` range and a ``bbox`` (W,S,E,N) when given."""
    from fluxscape.catalog.alerts import read_alerts

    items = read_alerts(Path(catalog_dir), set(levels))
    if when:
        from fluxscape.catalog import times

        text = when if "/" in when else f"{when}/{when}"
        try:
            start, end = times.bounds(text)
        except FluxscapeError as exc:
            raise HTTPException(400, f"datetime: {exc}") from None

        def instant(item):
            return times._timestamp(item["properties"]["datetime"], text).to_pydatetime()

        items = [
            i
            for i in items
            if (start is None or instant(i) >= start) and (end is None or instant(i) <= end)
        ]
    if bbox:
        try:
            w, s, e, n = (float(v) for v in bbox.split(","))
        except ValueError:
            raise HTTPException(400, "bbox: four numbers W,S,E,N") from None
        items = [
            i
            for i in items
            if i["bbox"][0] <= e and i["bbox"][2] >= w and i["bbox"][1] <= n and i["bbox"][3] >= s
        ]
    return items


def _alerts_collection(catalog_dir, levels, base: str) -> dict:
    """The ``alerts`` collection document (404 when the catalog has none)."""
    from fluxscape.catalog.alerts import COLLECTION

    path = Path(catalog_dir) / COLLECTION / "collection.json"
    if not path.is_file():
        raise HTTPException(404, "no alerts in this catalog")
    doc = json.loads(path.read_text())
    doc["fluxscape:items"] = len(_alert_items(catalog_dir, levels, None, None))
    doc["links"] = [
        _link("self", f"{base}collections/{COLLECTION}", "application/json"),
        _link("root", base, "application/json"),
        _link("items", f"{base}collections/{COLLECTION}/items", GEOJSON),
    ]
    return doc


def create_app(
    catalog_dir: str | Path,
    tokens: dict[str, str] | None = None,
    limits: ServeLimits | None = None,
    cors_origins: tuple[str, ...] | list[str] = ("*",),
) -> FastAPI:
    """The read-only ASGI app serving the catalog at ``catalog_dir``; ``tokens`` maps
    SHA-256 hex digests of bearer tokens to access levels (see :func:`load_tokens`),
    ``limits`` are the request limits (:class:`~fluxscape.catalog.guard.ServeLimits`),
    ``cors_origins`` the web origins allowed to read it (:mod:`fluxscape.catalog.cors`)."""
    cat = open_catalog(catalog_dir)  # builds the index if the catalog has none
    limits = limits or ServeLimits()
    products = Products(cat)
    app = FastAPI(
        title="fluxscape catalog",
        description="STAC API, Zarr stores, tiles and a map of fluxscape products (read-only)",
        docs_url=None,
        redoc_url=None,
    )
    app.state.tokens = dict(tokens or {})
    app.state.limits = limits
    app.add_middleware(Guard, limits=limits)
    app.add_middleware(Cors, origins=tuple(cors_origins))  # outermost: errors shared too
    _add_error_handlers(app)

    @app.get("/")
    async def landing(request: Request, levels: Levels) -> dict:
        base = str(request.base_url)
        links = [
            _link("self", base, "application/json"),
            _link("root", base, "application/json"),
            _link("conformance", base + "conformance", "application/json"),
            _link("data", base + "collections", "application/json"),
            _link("service-desc", base + "openapi.json", OPENAPI, "OpenAPI definition"),
            _link(QUERYABLES_REL, base + "queryables", "application/schema+json"),
            {**_link("search", base + "search", GEOJSON), "method": "GET"},
            {**_link("search", base + "search", GEOJSON), "method": "POST"},
            _link("alternate", base + "web/", "text/html", "Map of the products"),
        ]
        for row in products.readable(levels):
            links.append(
                _link("child", f"{base}collections/{row['id']}", "application/json", row["title"])
            )
        return {
            "type": "Catalog",
            "stac_version": pystac.get_stac_version(),
            "id": "fluxscape",
            "title": "fluxscape catalog",
            "description": "Gridded products of fluxscape workflows",
            "conformsTo": CONFORMS_TO,
            "links": links,
        }

    @app.get("/conformance")
    async def conformance() -> dict:
        return {"conformsTo": CONFORMS_TO}

    @app.get("/map", include_in_schema=False)
    async def map_page() -> RedirectResponse:
        return RedirectResponse("/web/")

    @app.get("/collections")
    async def collections(request: Request, levels: Levels) -> dict:
        base = str(request.base_url)
        rows = products.readable(levels)
        extra = [_alerts_collection(catalog_dir, levels, base)] if _has_alerts(catalog_dir) else []
        return {
            "collections": [_collection(products.document(r), base) for r in rows] + extra,
            "links": [
                _link("self", base + "collections", "application/json"),
                _link("root", base, "application/json"),
            ],
        }

    @app.get("/collections/alerts")
    async def alerts_collection(request: Request, levels: Levels) -> dict:
        return _alerts_collection(catalog_dir, levels, str(request.base_url))

    @app.get("/collections/alerts/items")
    async def alerts_items(
        request: Request,
        levels: Levels,
        datetime: str | None = None,
        bbox: str | None = None,
        limit: int = 1000,
    ) -> JSONResponse:
        feats = _alert_items(catalog_dir, levels, datetime, bbox)[: max(1, min(limit, 10000))]
        doc = {
            "type": "FeatureCollection",
            "features": feats,
            "numberReturned": len(feats),
            "links": [_link("self", str(request.url), GEOJSON)],
        }
        return JSONResponse(doc, media_type=GEOJSON)

    @app.get("/collections/alerts/items/{iid}")
    async def alert_item(iid: str, levels: Levels) -> JSONResponse:
        for item in _alert_items(catalog_dir, levels, None, None):
            if item["id"] == iid:
                return JSONResponse(item, media_type=GEOJSON)
        raise HTTPException(404, f"no alert {iid}")

    @app.get("/collections/{cid}")
    async def collection(cid: str, request: Request, levels: Levels) -> dict:
        row = products.get(cid, levels)
        return _collection(products.document(row), str(request.base_url))

    @app.get("/queryables")
    async def queryables(request: Request) -> JSONResponse:
        doc = cql.queryables_document(str(request.url.replace(query="")))
        return JSONResponse(doc, media_type="application/schema+json")

    @app.get("/collections/{cid}/queryables")
    async def collection_queryables(cid: str, request: Request, levels: Levels) -> JSONResponse:
        products.get(cid, levels)
        doc = cql.queryables_document(str(request.url.replace(query="")), f"{cid} items")
        return JSONResponse(doc, media_type="application/schema+json")

    @app.get("/license", include_in_schema=False)
    def license_text(request: Request) -> Response:
        target, stat = _inside(cat.directory, LICENSE_FILE)
        return _file_response(request, target, stat, "text/plain; charset=utf-8")

    @app.get("/collections/{cid}/items")
    async def items_page(cid: str, request: Request, levels: Levels) -> JSONResponse:
        products.get(cid, levels)
        params = dict(request.query_params)
        query = stacquery.from_query(params)
        query = replace(query, collections=[cid])
        return await search(request, levels, query, params, "GET", f"collections/{cid}/items")

    @app.get("/collections/{cid}/items/{iid}")
    async def item(cid: str, iid: str, request: Request, levels: Levels) -> JSONResponse:
        products.get(cid, levels)
        table = products.items()
        position = table.by_id.get(iid)
        if position is None or table.collection[position] != cid:
            raise HTTPException(404, f"no item {_short(iid)!r} in {_short(cid)!r}")
        body = _item(table.item(position), str(request.base_url))
        return JSONResponse(body, media_type=GEOJSON)

    async def search(request, levels, query, params, method, path="search") -> JSONResponse:
        # A page of up to SMALL_PAGE items takes about a millisecond: less than a hop to a
        # worker thread, which larger pages take so that they do not hold up other requests.
        params.pop("token", None)
        args = (products, request, levels, query, params, method, path)
        if query.limit <= SMALL_PAGE and query.filter is None:
            return _search(*args)
        return await run_in_threadpool(_search, *args)

    @app.get("/search")
    async def search_get(request: Request, levels: Levels) -> JSONResponse:
        query = stacquery.from_query(request.query_params)
        return await search(request, levels, query, dict(request.query_params), "GET")

    @app.post("/search")
    async def search_post(request: Request, levels: Levels) -> JSONResponse:
        body = _json_body(await request.body())
        query = stacquery.from_body(body)
        params = dict(body or {}) | {"limit": query.limit}
        return await search(request, levels, query, params, "POST")

    @app.head("/zarr/{cid}/{path:path}")
    @app.get("/zarr/{cid}/{path:path}")
    async def zarr_file(cid: str, path: str, request: Request, levels: Levels) -> Response:
        store = products.store(products.get(cid, levels))
        if is_url(store):  # a store on object storage: the object, read through fsspec
            return await run_in_threadpool(_object_response, request, store, path)
        # A few lstat calls on cached inodes: cheaper here than a hop to a worker thread.
        target, stat = _inside(store, path)
        return _file_response(request, target, stat)

    @app.get("/assets/{cid}/{key}")
    def asset(cid: str, key: str, request: Request, levels: Levels) -> Response:
        row = products.get(cid, levels)
        spec = products.document(row).get("assets", {}).get(key)
        if key == "zarr" or not isinstance(spec, dict) or not isinstance(spec.get("href"), str):
            raise HTTPException(404, f"no asset {_short(key)!r}")
        target, stat = _asset_path(cat, row, products.store(row), spec["href"])
        return _file_response(request, target, stat, spec.get("type"))

    @app.get("/timeseries/{cid}")
    def timeseries(
        cid: str, variable: str, lon: float, lat: float, levels: Levels
    ) -> dict[str, Any]:
        products.get(cid, levels)
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise BadParameter("lon" if not math.isfinite(lon) else "lat", "not a finite number")
        if not cat.count(ids=[cid], variable=variable):
            raise HTTPException(404, f"{cid} has no variable {_short(variable)!r}")
        if not cat.count(ids=[cid], bbox=(lon, lat, lon, lat)):
            raise HTTPException(404, f"({lon}, {lat}) is outside {cid}")
        frame = geo.at_point(cat.open(cid, dask=False)[variable], lon, lat)
        labels = [c for c in frame.columns if c not in ("value", "x", "y")]
        return {
            "collection": cid,
            "variable": variable,
            "x": float(frame["x"].iloc[0]),
            "y": float(frame["y"].iloc[0]),
            "labels": [
                " ".join(str(v)[:10] for v in r) for r in frame[labels].itertuples(index=False)
            ],
            "values": [None if v != v else float(v) for v in frame["value"]],
            # each row's coordinate per non-spatial dimension (time as ISO dates), for charts
            "coords": {c: [str(v)[:10] for v in frame[c]] for c in labels},
        }

    @app.get("/stats/{cid}")
    def stats(cid: str, variable: str, levels: Levels) -> dict[str, Any]:
        row = products.get(cid, levels)
        if variable not in row["variables"]:
            raise HTTPException(404, f"{cid} has no variable {_short(variable)!r}")
        scale = _colour_scale(cat, cid, variable, row["run_id"])
        return {"collection": cid, "variable": variable, **scale}

    _add_tiler(app, products, limits)
    app.mount("/web", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


# --- errors ----------------------------------------------------------------------------------

#: The ``code`` of an error body, by HTTP status.
ERROR_CODES = {
    400: "InvalidParameterValue",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    413: "PayloadTooLarge",
    414: "URITooLong",
    429: "TooManyRequests",
    500: "ServerError",
    503: "ServiceUnavailable",
}
#: Something that looks like a file system path (two or more segments), removed from error
#: descriptions that come from libraries.
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[\w.~+@-]+){2,}/?")


def _error(status: int, description: str, headers: dict | None = None) -> JSONResponse:
    """The JSON error response ``{"code": ..., "description": ...}``."""
    code = ERROR_CODES.get(status, "Error")
    body = {"code": code, "description": _scrub(description)}
    return JSONResponse(body, status_code=status, headers=headers)


def _scrub(text: str) -> str:
    """An error description without file paths, at most 300 characters."""
    text = _PATH.sub("<path>", str(text))
    return text if len(text) <= 300 else text[:297] + "..."


def _short(text: str) -> str:
    """A client's value echoed in an error: at most 80 characters."""
    return text if len(text) <= 80 else text[:77] + "..."


def _add_error_handlers(app: FastAPI) -> None:
    """JSON errors for refused requests (400 naming the parameter), HTTP errors, the tiler's
    errors, and a last resort for anything else: logged here, a generic 500 for the client."""
    from titiler.core.errors import DEFAULT_STATUS_CODES

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        if first.get("type") == "json_invalid":
            return _error(400, "body: not JSON")
        where = [str(p) for p in first.get("loc", ())]
        if where and where[0] in ("query", "path", "header", "cookie"):
            where = where[1:]  # the parameter's own name
        return _error(400, f"{'.'.join(where) or 'request'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> JSONResponse:
        return _error(400, str(exc))

    from rio_tiler.errors import PointOutsideBounds

    for exc_class, status in (DEFAULT_STATUS_CODES | {PointOutsideBounds: 404}).items():
        if exc_class is not Exception:
            app.add_exception_handler(exc_class, _library_error(status))
    app.add_exception_handler(Exception, _server_error)


def _library_error(status: int):
    """A handler answering ``status`` for a library's exception (500s: see _server_error)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if status >= 500:
            return await _server_error(request, exc)
        return _error(status, str(exc))

    return handler


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error (logged by the server)")


def _json_body(raw: bytes) -> Any:
    """A POST body parsed as JSON (None when empty). ``NaN`` and ``Infinity``, which Python's
    parser reads but JSON does not allow (nor could the response echo them), are refused."""
    if not raw.strip():
        return None

    def refuse(token: str):
        raise ValueError(f"{token} is not a JSON number")

    try:
        return json.loads(raw, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:
        raise BadParameter("body", "not JSON") from exc


# --- tiles -----------------------------------------------------------------------------------


def _add_tiler(app: FastAPI, products: Products, limits: ServeLimits) -> None:
    """titiler-xarray's tile routes under /tiler; the store is chosen by ``collection``, tile
    indices and bbox corners are checked, and an image without a size is read at most
    ``limits.max_image`` pixels a side (larger sizes are refused by the Guard)."""
    from titiler.core.dependencies import PartFeatureParams
    from titiler.xarray.factory import TilerFactory
    from titiler.xarray.io import Reader

    async def product_store(
        request: Request, collection: Annotated[str, Query(description="Collection id")]
    ) -> str:
        _check_tile_path(request.path_params)
        row = products.get(collection, await granted(request))
        variable = request.query_params.get("variable")
        if variable is not None and variable not in row["variables"]:
            raise BadParameter("variable", f"{collection} has no variable {_short(variable)!r}")
        return str(products.store(row))

    class SelectingReader(Reader):
        """titiler-xarray's reader, with a selection (``variable``, ``sel``, ``bidx``) that
        does not pick a 2D layer or at most ``limits.max_bands`` of them answered as a bad
        parameter (400)."""

        def __attrs_post_init__(self):
            try:
                super().__attrs_post_init__()
            except (KeyError, ValueError, TypeError, IndexError, AssertionError) as exc:
                if getattr(self, "ds", None) is None:  # the store did not open: not the client
                    raise
                self.ds.close()
                raise BadParameter("sel", "does not select a 2D or 3D layer") from exc
            if self.input.ndim == 3 and self.input.shape[0] > limits.max_bands:
                self.ds.close()
                bands = self.input.shape[0]
                raise BadParameter("sel", f"selects {bands} layers, at most {limits.max_bands}")

        def _sel_indexes(self, *args, **kwargs):
            try:
                return super()._sel_indexes(*args, **kwargs)
            except ValueError as exc:
                raise BadParameter("bidx", "no such band in the selection") from exc

    @dataclass
    class BoundedPart(PartFeatureParams):
        def __post_init__(self):
            if not (self.width or self.height):
                self.max_size = min(self.max_size or limits.max_image, limits.max_image)
            super().__post_init__()

    tiler = TilerFactory(
        reader=SelectingReader,
        router_prefix="/tiler",
        path_dependency=product_store,
        img_part_dependency=BoundedPart,
    )
    app.include_router(tiler.router, prefix="/tiler")


def _check_tile_path(params: dict) -> None:
    """400 for a tile index outside its tile matrix set, or a degenerate bbox."""
    if {"z", "x", "y"} <= params.keys():
        import morecantile

        name = params.get("tileMatrixSetId", "WebMercatorQuad")
        if name not in morecantile.tms.list():
            raise BadParameter("tileMatrixSetId", "unknown tile matrix set")
        tms = morecantile.tms.get(name)
        z, x, y = (_path_number(params, k, int) for k in ("z", "x", "y"))
        if not tms.minzoom <= z <= tms.maxzoom:
            raise BadParameter("z", f"must be in {tms.minzoom}..{tms.maxzoom}")
        matrix = tms.matrix(z)
        if not (0 <= x < matrix.matrixWidth and 0 <= y < matrix.matrixHeight):
            raise BadParameter("x", f"x/y must be in 0..{matrix.matrixWidth - 1} at zoom {z}")
    for name in ("lon", "lat"):
        if name in params and not math.isfinite(_path_number(params, name, float)):
            raise BadParameter(name, "expected a finite number")
    if set(_CORNERS) <= params.keys():
        minx, miny, maxx, maxy = (_path_number(params, k, float) for k in _CORNERS)
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
            raise BadParameter("bbox", "expected finite numbers")
        if not (minx < maxx and miny < maxy):
            raise BadParameter("bbox", "expected minx < maxx and miny < maxy")


_CORNERS = ("minx", "miny", "maxx", "maxy")


def _path_number(params: dict, name: str, kind: type) -> int | float:
    try:
        return kind(params[name])
    except (TypeError, ValueError) as exc:
        raise BadParameter(name, f"expected {'an integer' if kind is int else 'a number'}") from exc


# --- documents -------------------------------------------------------------------------------


def _link(rel: str, href: str, media_type: str, title: str | None = None) -> dict:
    out = {"rel": rel, "href": href, "type": media_type}
    if title:
        out["title"] = title
    return out


def _collection(coll: dict, base: str) -> dict:
    """A stored collection.json (dict, changed) with API links, and asset hrefs served by
    this app."""
    cid = coll["id"]
    for key, asset in coll.get("assets", {}).items():
        asset["href"] = f"{base}zarr/{cid}" if key == "zarr" else f"{base}assets/{cid}/{key}"
    links = [
        _link("self", f"{base}collections/{cid}", "application/json"),
        _link("root", base, "application/json"),
        _link("parent", base, "application/json"),
        _link("items", f"{base}collections/{cid}/items", GEOJSON),
        _link(QUERYABLES_REL, f"{base}collections/{cid}/queryables", "application/schema+json"),
    ]
    if any(link.get("rel") == "license" for link in coll.get("links", [])):
        links.append(_link("license", f"{base}license", "text/plain", "Terms of use"))
    coll["links"] = links
    return coll


def _item(item: dict, base: str) -> dict:
    """A stored Item (dict, changed) with API links and asset hrefs served by this app: the
    per-variable GDAL hrefs through ``/vsicurl/`` to ``/zarr/{collection}``."""
    cid, iid = item["collection"], item["id"]
    store_url = f"{base}zarr/{cid}"
    for key, asset in item.get("assets", {}).items():
        asset["href"] = store_url if key == "zarr" else items.served_href(asset["href"], store_url)
    item["links"] = [
        _link("self", f"{base}collections/{cid}/items/{iid}", GEOJSON),
        _link("collection", f"{base}collections/{cid}", "application/json"),
        _link("parent", f"{base}collections/{cid}", "application/json"),
        _link("root", base, "application/json"),
    ]
    return item


def _search(
    products: Products,
    request: Request,
    levels: list[str],
    query: stacquery.SearchQuery,
    params: dict,
    method: str,
    path: str = "search",
) -> JSONResponse:
    """One page of search results; ``params`` are the request's own (for the next link),
    ``path`` the route (``search`` or ``collections/ID/items``)."""
    base = str(request.base_url)
    table = products.items()
    found, matched = table.search(query, levels)
    features = [select_fields(_item(table.item(int(i)), base), query.fields) for i in found]
    links = [_link("root", base, "application/json")]
    if path != "search":  # collections/ID/items
        links.append(_link("collection", base + path.removesuffix("/items"), "application/json"))
    if method == "GET":
        links.append(_link("self", f"{base}{path}?{urlencode(params)}", GEOJSON))
    if query.page * query.limit < matched:
        following = params | {"page": query.page + 1}
        if method == "GET":
            href = f"{base}{path}?{urlencode(following)}"
            links.append(_link("next", href, GEOJSON))
        else:
            links.append(
                {**_link("next", base + path, GEOJSON), "method": "POST", "body": following}
            )
    return JSONResponse(
        {
            "type": "FeatureCollection",
            "features": features,
            "numberMatched": matched,
            "numberReturned": len(features),
            "links": links,
        },
        media_type=GEOJSON,
    )


def _object_response(request: Request, store: str, relative: str) -> Response:
    """One object of a Zarr store on object storage (``relative`` inside ``store``), or 404;
    the key is checked like a local path (no ``..``, no absolute name)."""
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or ".." in parts:
        return _error(404, f"no such file in the store: {relative}")
    from fluxscape.pipeline import remote

    fs, base = remote._fs(store)
    try:
        data = fs.cat_file(f"{base}/{'/'.join(parts)}")
    except FileNotFoundError:
        return _error(404, f"no such file in the store: {relative}")
    if request.method == "HEAD":
        return Response(headers={"content-length": str(len(data))})
    kind = "application/json" if parts[-1].startswith(".z") else "application/octet-stream"
    return Response(data, media_type=kind)


def _inside(root: Path, relative: str) -> tuple[Path, os.stat_result]:
    """``root/relative`` (and its stat) if it resolves to a file inside ``root`` (symlinks
    followed); 404 otherwise, so nothing outside the folder is reachable."""
    try:
        target = (root / relative).resolve()
        stat = target.stat() if target.is_relative_to(root) else None
    except (OSError, RuntimeError, ValueError):  # too long, a symlink loop, a NUL byte
        stat = None
    if stat is None or not S_ISREG(stat.st_mode):
        raise HTTPException(404, "not found")
    return target, stat


#: Files up to this size are read whole and sent at once (most Zarr chunks of the pipeline's
#: stores); larger ones, and requests for a byte range, are streamed by FileResponse.
SMALL_FILE = 1 << 20


def _file_response(
    request: Request, path: Path, stat: os.stat_result, media_type: str | None = None
) -> Response:
    """A static file's response, with the validators a FileResponse gives it. A small file is
    read here in one call: a streamed FileResponse costs several hops to worker threads, which
    dominate the time of serving a chunk."""
    if stat.st_size > SMALL_FILE or "range" in request.headers:
        return FileResponse(path, stat_result=stat, media_type=media_type)
    with open(path, "rb") as f:
        data = f.read()
    tag = hashlib.md5(f"{stat.st_mtime}-{stat.st_size}".encode(), usedforsecurity=False)
    headers = {
        "last-modified": formatdate(stat.st_mtime, usegmt=True),
        "etag": f'"{tag.hexdigest()}"',
        "accept-ranges": "bytes",
    }
    kind = media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(data, media_type=kind, headers=headers)


def _asset_path(cat: Catalog, row: dict, store: Path, href: str) -> tuple[Path, os.stat_result]:
    """The file of a product's asset (``href`` relative to its collection.json), if it resolves
    inside the catalog folder or the product's quicklook folder (where the publisher puts
    them); 404 otherwise, whatever a symlink on the way points to."""
    given = cat.directory / Path(row["href"]).parent / href
    for root in (cat.directory, quicklook_dir(store, row["product"]).resolve()):
        try:
            return _inside(root, os.path.relpath(given, root))
        except HTTPException:
            continue
    raise HTTPException(404, "not found")


def serve(
    catalog_dir: str | Path,
    host: str,
    port: int,
    tokens_file: str | Path | None,
    limits: ServeLimits | None = None,
    cors_origins: tuple[str, ...] | list[str] = ("*",),
) -> None:
    """Run the app with uvicorn until interrupted (loopback by default), with the keep-alive,
    request head and concurrency limits of ``limits`` and the CORS origins ``cors_origins``."""
    import uvicorn

    limits = limits or ServeLimits()
    app = create_app(catalog_dir, load_tokens(tokens_file), limits, cors_origins)
    uvicorn.Server(server_config(app, host, port, limits)).run()


def server_config(app, host: str, port: int, limits: ServeLimits, log_level: str = "info"):
    """The uvicorn configuration of ``fluxscape serve``: keep-alive and request head timeouts,
    request head size and concurrency from ``limits``."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol_class(limits.timeout_header),
        timeout_keep_alive=limits.timeout_keep_alive,
        limit_concurrency=limits.limit_concurrency or None,
        h11_max_incomplete_event_size=limits.max_header,
    )


@functools.lru_cache(maxsize=256)
def _colour_scale(cat: Catalog, cid: str, variable: str, run_id: str) -> dict[str, Any]:
    """The map style of a variable (:func:`fluxscape.catalog.mapstyle.colour_scale`: range
    from the 2nd and 98th percentiles, diverging and centred on 0 when signed, legend
    colours, units, long name), from at most about a million values sampled on a regular
    stride; cached per run."""
    from fluxscape.catalog.mapstyle import colour_scale

    da = cat.open(cid, dask=False)[variable]
    stride = max(1, int((da.size / 1e6) ** (1 / max(1, da.ndim))) + 1)
    values = da.isel({d: slice(None, None, stride) for d in da.dims}).values.astype(float)
    return colour_scale(dict(da.attrs), values)


__all__ = [
    "create_app",
    "serve",
    "load_tokens",
    "add_token",
    "hash_token",
    "LEVELS",
    "ServeLimits",
]
