"""``fluxscape serve``: a read-only HTTP service over one catalog folder.

One FastAPI app (run by uvicorn) serves:

- a STAC API (core, collections, features, item search; GET and POST ``/search``) built from
  the catalog's Parquet index: each product is a Collection holding one Item (the whole cube)
  whose ``zarr`` asset points at the store served below;
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
Nothing writes: the only POST is ``/search``. Every file served is resolved and must lie
inside the store (or be the asset file) that the catalog names for an id the client may read.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import pystac
import shapely
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from fluxscape.access import LEVELS, check_level, readable_levels
from fluxscape.catalog import geo
from fluxscape.catalog.api import Catalog, open_catalog, parse_time_range
from fluxscape.errors import FluxscapeError

WEB_DIR = Path(__file__).resolve().parent / "web"
TOKENS_ENV = "FLUXSCAPE_TOKENS_FILE"
GEOJSON = "application/geo+json"
CONFORMS_TO = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]
MAX_LIMIT = 10_000


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


def granted(request: Request) -> list[str]:
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


def create_app(catalog_dir: str | Path, tokens: dict[str, str] | None = None) -> FastAPI:
    """The read-only ASGI app serving the catalog at ``catalog_dir``; ``tokens`` maps
    SHA-256 hex digests of bearer tokens to access levels (see :func:`load_tokens`)."""
    cat = open_catalog(catalog_dir)  # builds the index if the catalog has none
    app = FastAPI(
        title="fluxscape catalog",
        description="STAC API, Zarr stores, tiles and a map of fluxscape products (read-only)",
        docs_url=None,
        redoc_url=None,
    )
    app.state.tokens = dict(tokens or {})

    def row_or_404(cid: str, levels: list[str]) -> dict:
        rows = cat.rows(ids=[cid], access=levels)
        if not rows:
            raise HTTPException(404, f"no collection {cid!r}")
        return rows[0]

    @app.get("/")
    def landing(request: Request, levels: Levels) -> dict:
        base = str(request.base_url)
        links = [
            _link("self", base, "application/json"),
            _link("root", base, "application/json"),
            _link("conformance", base + "conformance", "application/json"),
            _link("data", base + "collections", "application/json"),
            {**_link("search", base + "search", GEOJSON), "method": "GET"},
            {**_link("search", base + "search", GEOJSON), "method": "POST"},
            _link("alternate", base + "web/", "text/html", "Map of the products"),
        ]
        for row in cat.rows(access=levels):
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
    def conformance() -> dict:
        return {"conformsTo": CONFORMS_TO}

    @app.get("/map", include_in_schema=False)
    def map_page() -> RedirectResponse:
        return RedirectResponse("/web/")

    @app.get("/collections")
    def collections(request: Request, levels: Levels) -> dict:
        base = str(request.base_url)
        colls = [_collection(cat, row, base) for row in cat.rows(access=levels)]
        return {
            "collections": colls,
            "links": [
                _link("self", base + "collections", "application/json"),
                _link("root", base, "application/json"),
            ],
        }

    @app.get("/collections/{cid}")
    def collection(cid: str, request: Request, levels: Levels) -> dict:
        return _collection(cat, row_or_404(cid, levels), str(request.base_url))

    @app.get("/collections/{cid}/items")
    def items(cid: str, request: Request, levels: Levels) -> JSONResponse:
        base = str(request.base_url)
        feats = [_item(row_or_404(cid, levels), base)]
        body = {
            "type": "FeatureCollection",
            "features": feats,
            "numberReturned": len(feats),
            "numberMatched": len(feats),
            "links": [
                _link("self", f"{base}collections/{cid}/items", GEOJSON),
                _link("root", base, "application/json"),
                _link("collection", f"{base}collections/{cid}", "application/json"),
            ],
        }
        return JSONResponse(body, media_type=GEOJSON)

    @app.get("/collections/{cid}/items/{iid}")
    def item(cid: str, iid: str, request: Request, levels: Levels) -> JSONResponse:
        row = row_or_404(cid, levels)
        if iid != row["id"]:
            raise HTTPException(404, f"no item {iid!r} in {cid!r}")
        return JSONResponse(_item(row, str(request.base_url)), media_type=GEOJSON)

    @app.get("/search")
    def search_get(
        request: Request,
        levels: Levels,
        bbox: str | None = None,
        datetime: str | None = None,
        collections: str | None = None,
        ids: str | None = None,
        intersects: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
        page: Annotated[int, Query(ge=1)] = 1,
    ) -> JSONResponse:
        params = {
            "bbox": _floats(bbox) if bbox else None,
            "datetime": datetime,
            "collections": collections.split(",") if collections else None,
            "ids": ids.split(",") if ids else None,
            "intersects": _json(intersects) if intersects else None,
            "limit": limit,
            "page": page,
        }
        return _search(cat, request, levels, params, method="GET")

    @app.post("/search")
    def search_post(
        request: Request, levels: Levels, body: Annotated[dict[str, Any] | None, Body()] = None
    ) -> JSONResponse:
        body = dict(body or {})
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise HTTPException(400, f"limit must be an integer in 1..{MAX_LIMIT}")
        return _search(cat, request, levels, body, method="POST")

    @app.api_route("/zarr/{cid}/{path:path}", methods=["GET", "HEAD"])
    def zarr_file(cid: str, path: str, levels: Levels) -> FileResponse:
        store = (cat.directory / row_or_404(cid, levels)["store"]).resolve()
        return FileResponse(_inside(store, path))

    @app.get("/assets/{cid}/{key}")
    def asset(cid: str, key: str, levels: Levels) -> FileResponse:
        row = row_or_404(cid, levels)
        href = (cat.directory / row["href"]).resolve()
        assets = json.loads(href.read_text()).get("assets", {})
        if key not in assets or key == "zarr":
            raise HTTPException(404, f"no asset {key!r}")
        target = (href.parent / assets[key]["href"]).resolve()
        if not target.is_file():
            raise HTTPException(404, f"no asset {key!r}")
        return FileResponse(target, media_type=assets[key].get("type"))

    @app.get("/timeseries/{cid}")
    def timeseries(
        cid: str, variable: str, lon: float, lat: float, levels: Levels
    ) -> dict[str, Any]:
        row_or_404(cid, levels)
        if not cat.count(ids=[cid], variable=variable):
            raise HTTPException(404, f"{cid} has no variable {variable!r}")
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
        }

    @app.get("/stats/{cid}")
    def stats(cid: str, variable: str, levels: Levels) -> dict[str, Any]:
        row = row_or_404(cid, levels)
        if variable not in row["variables"]:
            raise HTTPException(404, f"{cid} has no variable {variable!r}")
        lo, hi, units = _value_range(cat, cid, variable, row["run_id"])
        return {"collection": cid, "variable": variable, "min": lo, "max": hi, "units": units}

    _add_tiler(app, cat, row_or_404)
    app.mount("/web", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


def _add_tiler(app: FastAPI, cat: Catalog, row_or_404) -> None:
    """titiler-xarray's tile routes under /tiler; the store is chosen by ``collection``."""
    from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
    from titiler.xarray.factory import TilerFactory

    def product_store(
        request: Request, collection: Annotated[str, Query(description="Collection id")]
    ) -> str:
        row = row_or_404(collection, granted(request))
        return str((cat.directory / row["store"]).resolve())

    tiler = TilerFactory(router_prefix="/tiler", path_dependency=product_store)
    app.include_router(tiler.router, prefix="/tiler")
    add_exception_handlers(app, DEFAULT_STATUS_CODES)


@functools.lru_cache(maxsize=256)
def _value_range(cat: Catalog, cid: str, variable: str, run_id: str) -> tuple[float, float, str]:
    """2nd and 98th percentiles of a variable (colour scale of the map), from at most about
    a million values sampled on a regular stride; cached per run."""
    import numpy as np

    da = cat.open(cid, dask=False)[variable]
    stride = max(1, int((da.size / 1e6) ** (1 / max(1, da.ndim))) + 1)
    values = da.isel({d: slice(None, None, stride) for d in da.dims}).values.astype(float)
    if not np.isfinite(values).any():
        return 0.0, 1.0, da.attrs.get("units", "")
    lo, hi = np.nanpercentile(values, [2, 98])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi), str(da.attrs.get("units", ""))


# --- documents -------------------------------------------------------------------------------


def _link(rel: str, href: str, media_type: str, title: str | None = None) -> dict:
    out = {"rel": rel, "href": href, "type": media_type}
    if title:
        out["title"] = title
    return out


def _collection(cat: Catalog, row: dict, base: str) -> dict:
    """The stored collection.json with API links, and asset hrefs served by this app."""
    coll = json.loads((cat.directory / row["href"]).read_text())
    cid = coll["id"]
    for key, asset in coll.get("assets", {}).items():
        asset["href"] = f"{base}zarr/{cid}" if key == "zarr" else f"{base}assets/{cid}/{key}"
    coll["links"] = [
        _link("self", f"{base}collections/{cid}", "application/json"),
        _link("root", base, "application/json"),
        _link("parent", base, "application/json"),
        _link("items", f"{base}collections/{cid}/items", GEOJSON),
    ]
    return coll


def _item(row: dict, base: str) -> dict:
    """The one Item of a product's collection: the whole cube, footprint = its bbox."""
    cid = row["id"]
    bbox = [row["xmin"], row["ymin"], row["xmax"], row["ymax"]]
    return {
        "type": "Feature",
        "stac_version": pystac.get_stac_version(),
        "stac_extensions": [],
        "id": cid,
        "collection": cid,
        "geometry": shapely.geometry.mapping(shapely.box(*bbox)),
        "bbox": bbox,
        "properties": {
            "title": row["title"],
            "datetime": None,
            "start_datetime": _iso(row["start_datetime"]),
            "end_datetime": _iso(row["end_datetime"]),
            "fluxscape:product": row["product"],
            "fluxscape:workflow": row["workflow"],
            "fluxscape:run_id": row["run_id"],
            "fluxscape:access": row["access"],
            "fluxscape:variables": list(row["variables"]),
            "fluxscape:models": list(row["models"]),
        },
        "assets": {
            "zarr": {
                "href": f"{base}zarr/{cid}",
                "type": "application/vnd+zarr",
                "roles": ["data"],
                "title": f"{row['product']} Zarr store",
            }
        },
        "links": [
            _link("self", f"{base}collections/{cid}/items/{cid}", GEOJSON),
            _link("collection", f"{base}collections/{cid}", "application/json"),
            _link("parent", f"{base}collections/{cid}", "application/json"),
            _link("root", base, "application/json"),
        ],
    }


def _search(cat: Catalog, request: Request, levels: list[str], params: dict, method: str):
    base = str(request.base_url)
    limit = int(params.get("limit") or 10)
    page = int(params.get("page") or 1)
    filters = {"access": levels}
    try:
        filters["time"] = _datetime_range(params.get("datetime"))
        if params.get("intersects"):
            filters["intersects"] = shapely.geometry.shape(params["intersects"])
        elif params.get("bbox") is not None:
            bbox = [float(v) for v in params["bbox"]]
            if len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            if len(bbox) != 4:
                raise ValueError("bbox needs 4 numbers W,S,E,N")
            filters["bbox"] = bbox
    except (ValueError, TypeError, AttributeError, FluxscapeError) as exc:
        raise HTTPException(400, f"bad search parameter: {exc}") from exc
    for key in ("ids", "collections"):  # one item per collection, with the collection's id
        if params.get(key) is not None:
            wanted = set(params[key])
            filters["ids"] = [i for i in filters.get("ids", params[key]) if i in wanted]
    matched = cat.count(**filters)
    chunk = cat.rows(**filters, limit=limit, offset=(page - 1) * limit)
    links = [_link("root", base, "application/json")]
    if page * limit < matched:
        if method == "GET":
            query = dict(request.query_params) | {"page": str(page + 1)}
            links.append(_link("next", f"{base}search?{urlencode(query)}", GEOJSON))
        else:
            body = {k: v for k, v in params.items() if v is not None} | {"page": page + 1}
            links.append(
                {**_link("next", base + "search", GEOJSON), "method": "POST", "body": body}
            )
    return JSONResponse(
        {
            "type": "FeatureCollection",
            "features": [_item(r, base) for r in chunk],
            "numberMatched": matched,
            "numberReturned": len(chunk),
            "links": links,
        },
        media_type=GEOJSON,
    )


def _datetime_range(text: str | None):
    """A STAC ``datetime`` (one instant or date, or an interval) as a checked time range."""
    if not text:
        return None
    return parse_time_range(text if "/" in text else f"{text}/{text}")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise HTTPException(400, f"bbox {text!r}: expected numbers W,S,E,N") from exc


def _json(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPException(400, f"intersects: not GeoJSON ({exc})") from exc


def _iso(value) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _inside(root: Path, relative: str) -> Path:
    """``root/relative`` if it resolves to a file inside ``root`` (symlinks followed);
    404 otherwise, so nothing outside the store is reachable."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, "not found")
    return target


def serve(catalog_dir: str | Path, host: str, port: int, tokens_file: str | Path | None) -> None:
    """Run the app with uvicorn until interrupted (loopback by default)."""
    import uvicorn

    app = create_app(catalog_dir, load_tokens(tokens_file))
    uvicorn.run(app, host=host, port=port, log_level="info")


__all__ = ["create_app", "serve", "load_tokens", "add_token", "hash_token", "LEVELS"]
