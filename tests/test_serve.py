"""`fluxscape serve` with real clients on 127.0.0.1: pystac-client, xarray over HTTP (fsspec),
tiles, the data policy (anonymous / partner token / wrong token) and path traversal."""

from __future__ import annotations

import http.client
import io
import json
import re
import subprocess
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import free_port, headless, served
from PIL import Image

from fluxscape.catalog import times
from fluxscape.catalog.publish import publish_store
from fluxscape.catalog.serve import create_app, hash_token, load_tokens

PARTNER_TOKEN = "partner-secret-token-0123456789"
TILE = "/tiler/tiles/WebMercatorQuad/9/452/201.png"  # over the demo region (138-139 E)


@pytest.fixture(scope="module")
def served_catalog(demo_out, tmp_path_factory):
    """A shared catalog: the demo's products (public) and a partners-only product."""
    cat = tmp_path_factory.mktemp("served") / "catalog"
    products = demo_out / "products"
    for name in ("vi", "phenology", "gosat_l3"):
        publish_store(products / f"{name}.zarr", cat, "demo", name, access="public")
    publish_store(products / "vi.zarr", cat, "towers", "vi", access="partners", run_id="towers-1")
    tokens = cat.parent / "tokens.json"
    tokens.write_text(
        json.dumps(
            {"tokens": [{"name": "p", "sha256": hash_token(PARTNER_TOKEN), "access": "partners"}]}
        )
    )
    return cat, tokens


@pytest.fixture(scope="module")
def server(served_catalog):
    """uvicorn serving the catalog on a free loopback port, in a thread of this process."""
    import uvicorn

    cat, tokens = served_catalog
    app = create_app(cat, load_tokens(tokens))
    with served(
        lambda port: uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    ) as port:
        yield f"http://127.0.0.1:{port}"


PARTNER = {"Authorization": f"Bearer {PARTNER_TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}


def test_pystac_client_finds_demo_products_by_bbox_and_time(server, demo_out):
    from pystac_client import Client

    client = Client.open(server)
    assert client.conforms_to("ITEM_SEARCH")
    found = list(
        client.search(bbox=[138.2, 35.8, 138.4, 36.0], datetime="2021-04-01/2021-10-31").items()
    )
    assert sorted({i.collection_id for i in found}) == [
        "demo.gosat_l3",
        "demo.phenology",
        "demo.vi",
    ]
    # one Item per step: the steps whose periods overlap April to October 2021
    starts = sorted(i.datetime.date() for i in found if i.collection_id == "demo.vi")
    wanted = times.select_steps(
        xr.open_zarr(demo_out / "products" / "vi.zarr"), "2021-04-01/2021-10-31"
    )
    assert starts == [pd.Timestamp(t).date() for t in wanted.time.values]
    assert 10 < len(starts) < 20
    none = client.search(bbox=[100.0, 10.0, 101.0, 11.0], datetime="2021-04-01/2021-10-31")
    assert list(none.items()) == []
    late = client.search(bbox=[138.2, 35.8, 138.4, 36.0], datetime="2030-01-01/2030-12-31")
    assert list(late.items()) == []
    paged = client.search(bbox=[138.2, 35.8, 138.4, 36.0], limit=1, max_items=3)
    assert len({i.id for i in paged.items()}) == 3
    item = client.get_collection("demo.vi").get_item("demo.vi.2021-07-12")
    assert item.properties["fluxscape:access"] == "public"
    assert item.assets["zarr"].href == f"{server}/zarr/demo.vi"
    assert item.assets["ndvi"].href == f'ZARR:"/vsicurl/{server}/zarr/demo.vi":/ndvi:12'


def test_zarr_over_http_equals_disk(server, demo_out):
    item = httpx.get(f"{server}/collections/demo.vi/items/demo.vi.2021-07-12").json()
    remote = xr.open_zarr(item["assets"]["zarr"]["href"], consolidated=True)
    local = xr.open_zarr(demo_out / "products" / "vi.zarr", consolidated=True)
    assert {"ndvi", "evi"} <= set(remote.data_vars)  # an empty Dataset would fail silently
    sel = {"time": slice("2021-06-01", "2021-08-31"), "x": slice(138.3, 138.5)}
    np.testing.assert_array_equal(remote.ndvi.sel(sel).values, local.ndvi.sel(sel).values)
    assert np.isfinite(remote.ndvi.sel(sel).values).sum() > 1000


def test_every_served_stac_document_validates(server):
    from stac_pydantic import Catalog, Collection, Item, ItemCollection

    landing = httpx.get(server).json()
    Catalog.model_validate(landing)
    colls = httpx.get(f"{server}/collections").json()["collections"]
    assert len(colls) == 3
    for coll in colls:
        Collection.model_validate(coll)
        items = httpx.get(f"{server}/collections/{coll['id']}/items").json()
        ItemCollection.model_validate(items)
        for feat in items["features"]:
            Item.model_validate(feat)
    ItemCollection.model_validate(httpx.get(f"{server}/search").json())


def test_tile_is_a_rendered_png(server):
    params = {"collection": "demo.vi", "variable": "ndvi", "sel": "time=2021-07-12"}
    r = httpx.get(server + TILE, params=params | {"rescale": "0,1"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    rgba = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA"))
    assert (rgba[..., 3] > 0).mean() > 0.3  # the tile holds ~0.7 degrees of the region
    assert len(np.unique(rgba[..., :3].reshape(-1, 3), axis=0)) > 20  # a field, not a flat fill


@pytest.mark.parametrize(
    "path",
    [
        "/collections/towers.vi",
        "/collections/towers.vi/items",
        "/collections/towers.vi/items/towers.vi.2021-07-12",
        "/collections/towers.vi/queryables",
        "/zarr/towers.vi/.zmetadata",
        "/zarr/towers.vi/ndvi/0.0.0",
        f"{TILE}?collection=towers.vi&variable=ndvi&sel=time=2021-07-12&rescale=0,1",
        "/timeseries/towers.vi?variable=ndvi&lon=138.4&lat=35.9",
    ],
)
def test_partners_product_hidden_from_anonymous_and_wrong_token(server, path):
    assert httpx.get(server + path).status_code == 404
    assert httpx.get(server + path, headers=WRONG).status_code == 401
    assert httpx.get(server + path, headers=PARTNER).status_code == 200


def test_search_shows_partners_product_only_to_the_partner_token(server):
    from pystac_client import Client

    anon = {f["collection"] for f in httpx.get(f"{server}/search?limit=200").json()["features"]}
    partner = httpx.post(f"{server}/search", json={"limit": 200}, headers=PARTNER).json()
    assert "towers.vi" not in anon and "demo.vi" in anon
    assert {f["collection"] for f in partner["features"]} == anon | {"towers.vi"}
    assert httpx.post(f"{server}/search", json={}, headers=WRONG).status_code == 401
    assert "towers.vi" not in {
        c["id"] for c in httpx.get(f"{server}/collections").json()["collections"]
    }
    client = Client.open(server, headers=PARTNER)
    assert {i.collection_id for i in client.search(collections=["towers.vi"]).items()} == {
        "towers.vi"
    }


def test_partner_token_reads_partner_zarr_over_http(server, demo_out):
    remote = xr.open_zarr(
        f"{server}/zarr/towers.vi",
        consolidated=True,
        storage_options={"client_kwargs": {"headers": PARTNER}},
    )
    local = xr.open_zarr(demo_out / "products" / "vi.zarr")
    np.testing.assert_array_equal(remote.ndvi.isel(time=10).values, local.ndvi.isel(time=10).values)


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalisation of ../)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.status, resp.read()


@pytest.mark.parametrize(
    "path",
    [
        "/zarr/demo.vi/../../../../etc/passwd",
        "/zarr/demo.vi/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/zarr/demo.vi/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/zarr/demo.vi/..%252f..%252fetc%252fpasswd",
        "/zarr/..%2fproducts%2fvi.zarr/.zmetadata",
        "/zarr/demo.vi/%2fetc%2fpasswd",
        "/zarr/demo.vi//etc/passwd",
        "/zarr/demo.vi/../../towers.vi/collection.json",
        "/web/../../../../etc/passwd",
        "/web/..%2f..%2f..%2fserve.py",
        "/assets/demo.vi/..%2f..%2fcatalog.json",
        "/zarr/demo.vi/../phenology.zarr/.zmetadata",
    ],
)
def test_path_traversal_is_refused(server, path):
    status, body = raw_get(server, path)
    assert status in (400, 404)
    assert b"root:" not in body and b"import" not in body and b"zarr_consolidated" not in body


def test_read_only_no_write_methods(server):
    for method in ("PUT", "DELETE", "PATCH"):
        r = httpx.request(method, f"{server}/zarr/demo.vi/.zmetadata")
        assert r.status_code == 405
    assert httpx.post(f"{server}/collections", json={}).status_code == 405


def test_timeseries_endpoint_matches_store(server, demo_out):
    r = httpx.get(f"{server}/timeseries/demo.vi?variable=ndvi&lon=138.4392&lat=35.9628").json()
    local = xr.open_zarr(demo_out / "products" / "vi.zarr").ndvi
    px = local.sel(x=138.4392, y=35.9628, method="nearest")
    assert r["x"] == pytest.approx(138.435) and r["y"] == pytest.approx(35.965)
    got = np.array([np.nan if v is None else v for v in r["values"]])
    np.testing.assert_allclose(got, px.values.astype(float), equal_nan=True)


def test_map_page_renders_product_tiles_without_console_errors(server, tmp_path):
    url = f"{server}/web/#point=138.4392,35.9628"
    proc = headless(url, tmp_path, "--dump-dom")
    # Chromium logs every console message (and failed resource loads) as ...:CONSOLE...
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    status = re.search(r'<div id="status" ([^>]*)>', proc.stdout).group(1)
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', status))
    assert attrs["ready"] == "1" and attrs["errors"] == "0"
    assert int(attrs["tiles"]) >= 1  # non-empty PNG tiles of the vi product arrived
    assert "towers.vi" not in proc.stdout and "demo.vi (public)" in proc.stdout
    series = re.search(r'class="where" data-values="(\d+)"', proc.stdout)
    assert series and int(series.group(1)) > 25  # the clicked pixel's ndvi series is drawn
    shot = tmp_path / "map.png"
    proc = headless(url, tmp_path, f"--screenshot={shot}")
    assert proc.returncode == 0
    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50  # a coloured map, not a blank page


def test_cli_token_and_serve_on_loopback(served_catalog, tmp_path):
    from conftest import FLUXSCAPE, run_cli

    cat, _ = served_catalog
    tokens = tmp_path / "tokens.json"
    token = run_cli("catalog", "token", tokens, "--name", "tohoku", "--access", "partners")
    secret = token.stdout.strip()
    doc = json.loads(tokens.read_text())
    assert doc["tokens"][0]["sha256"] == hash_token(secret) and secret not in tokens.read_text()
    assert tokens.stat().st_mode & 0o777 == 0o600
    port = free_port()
    proc = subprocess.Popen(
        [*FLUXSCAPE, "serve", str(cat), "--port", str(port), "--tokens", str(tokens)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(base, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        auth = {"Authorization": f"Bearer {secret}"}
        assert httpx.get(f"{base}/collections/towers.vi").status_code == 404
        assert httpx.get(f"{base}/collections/towers.vi", headers=auth).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert f"127.0.0.1:{port}" in err  # bound to loopback by default
    assert secret not in err  # the token is never logged


def test_stac_search_datetime_and_intersects_agree_with_catalog_search(server, served_catalog):
    from fluxscape.catalog import open_catalog

    cat = open_catalog(served_catalog[0])
    last = cat.open("demo.vi").time.values[-1]
    day = str(last)[:10]
    after = str(last + np.timedelta64(1, "D"))[:10]
    found = {}
    for datetime in (day, f"{day}/..", f"{after}/..", f"../{day}T00:00:00Z", "2021/2021"):
        got = httpx.get(f"{server}/search", params={"datetime": datetime, "limit": 200}).json()
        found[datetime] = sorted({f["collection"] for f in got["features"]})
        time = tuple(datetime.split("/")) if "/" in datetime else (datetime, datetime)
        assert found[datetime] == [e.id for e in cat.search(time=time, access=["public"])]
    assert "demo.vi" in found[day] and "demo.vi" in found[f"{day}/.."]
    assert "demo.vi" not in found[f"{after}/.."]
    inside = {
        "type": "Polygon",
        "coordinates": [[[138.3, 35.9], [138.4, 35.9], [138.3, 36.0], [138.3, 35.9]]],
    }
    far = {"type": "Point", "coordinates": [100.0, 10.0]}
    body = {"intersects": inside, "limit": 1}
    first = httpx.post(f"{server}/search", json=body).json()
    steps = sum(
        cat.open(e.id).sizes.get("time", cat.open(e.id).sizes.get("year"))
        for e in cat.search(access=["public"])
    )
    assert first["numberMatched"] == steps and first["numberReturned"] == 1
    assert httpx.post(f"{server}/search", json={"intersects": far}).json()["numberMatched"] == 0
    assert httpx.get(f"{server}/search", params={"datetime": "June"}).status_code == 400
