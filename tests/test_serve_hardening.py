"""`fluxscape serve` under malformed and hostile requests (issue #19): every malformed
parameter is a 400 with a JSON error naming it, never a 500, SQL or a path; image sizes are
capped; idle and slow connections are closed; assets and Zarr files behind symlinks that leave
the catalog are not served; tiles are rate-limited per client; a republished index is seen."""

from __future__ import annotations

import http.client
import io
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from conftest import served
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxscape.catalog import index, open_catalog
from fluxscape.catalog.guard import ServeLimits, TokenBuckets
from fluxscape.catalog.publish import publish_store
from fluxscape.catalog.serve import create_app, server_config
from fluxscape.errors import FluxscapeError

TILES = "/tiler/tiles/WebMercatorQuad"
LAYER = "collection=demo.vi&variable=ndvi&sel=time=2021-07-12"
BBOX = "/tiler/bbox/138.0,35.5,139.0,36.5"
SECRET = "outside-the-catalog-secret"
#: What no response body may contain: SQL, Python internals, file system paths.
LEAKS = ("SELECT", "duckdb", "Traceback", 'File "', "/tmp/", "/work/", "site-packages", SECRET)


@pytest.fixture(scope="module")
def out(demo_out, tmp_path_factory) -> Path:
    """A workflow output of our own (stores and quicklooks may be changed): vi and gosat_l3
    published into OUT/catalog, and a file outside the catalog."""
    out = tmp_path_factory.mktemp("hardening")
    for name in ("vi", "gosat_l3"):
        shutil.copytree(demo_out / "products" / f"{name}.zarr", out / "products" / f"{name}.zarr")
        shutil.copytree(demo_out / "quicklooks" / name, out / "quicklooks" / name)
        publish_store(out / "products" / f"{name}.zarr", out / "catalog", "demo", name)
    (out / "secret.txt").write_text(SECRET)
    return out


@pytest.fixture(scope="module")
def client(out) -> TestClient:
    """The app in this process (no tile rate limit: the probes send many tile requests)."""
    app = create_app(out / "catalog", limits=ServeLimits(tile_rate=0))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def assert_json_error(r, status: int, name: str | None = None) -> dict:
    """``r`` is ``status`` with a short JSON {code, description} naming ``name``."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"code", "description"} and len(r.content) < 600
    if name:
        assert body["description"].startswith(f"{name}:"), body
    for leak in LEAKS:
        assert leak not in r.text
    return body


MALFORMED_GET = [
    ("/search?datetime=June", "datetime"),
    ("/search?datetime=2021-13-45", "datetime"),
    ("/search?datetime=2021-06-01/2021-01-01", "datetime"),
    ("/search?datetime=2021-01-01/2021-02-01/2021-03-01", "datetime"),
    ("/search?datetime=" + "2" * 300, "datetime"),
    ("/search?intersects=notjson", "intersects"),
    ('/search?intersects={"type":"Polygon"}', "intersects"),
    ('/search?intersects={"type":"Point","coordinates":[1]}', "intersects"),
    ('/search?intersects={"type":"Point","coordinates":[1e400,0]}', "intersects"),
    ('/search?intersects={"type":"Point","coordinates":[500,0]}', "intersects"),
    ("/search?intersects=[1,2]", "intersects"),
    ("/search?intersects=" + "[" * 3000, "intersects"),
    ('/search?bbox=1,2,3,4&intersects={"type":"Point","coordinates":[1,2]}', "intersects"),
    ("/search?bbox=a,b,c,d", "bbox"),
    ("/search?bbox=1,2,3", "bbox"),
    ("/search?bbox=nan,0,1,1", "bbox"),
    ("/search?bbox=0,0,1,inf", "bbox"),
    ("/search?bbox=200,0,210,1", "bbox"),
    ("/search?bbox=0,1,1,0", "bbox"),
    ("/search?page=0", "page"),
    ("/search?page=-1", "page"),
    ("/search?page=abc", "page"),
    ("/search?page=1.5", "page"),
    ("/search?page=--5", "page"),
    ("/search?page=%EF%BC%91", "page"),  # a full-width digit
    ("/search?page=99999999999999999999999", "page"),
    ("/search?token=abc", "page"),
    ("/search?limit=0", "limit"),
    ("/search?limit=-5", "limit"),
    ("/search?limit=abc", "limit"),
    ("/search?limit=1e3", "limit"),
    ("/search?collections=" + "a" * 300, "collections"),
    ("/search?ids=" + ",".join(["a"] * 1001), "ids"),
    ("/timeseries/demo.vi?variable=ndvi&lon=abc&lat=36", "lon"),
    ("/timeseries/demo.vi?variable=ndvi&lon=nan&lat=36", "lon"),
    (f"{TILES}/99/0/0.png?{LAYER}", "z"),
    (f"{TILES}/-1/0/0.png?{LAYER}", "z"),
    (f"{TILES}/99999999999999999999/0/0.png?{LAYER}", "z"),
    (f"{TILES}/9/99999/201.png?{LAYER}", "x"),
    (f"{TILES}/9/452/-3.png?{LAYER}", "x"),
    (f"{TILES}/a/b/c.png?{LAYER}", "z"),
    (f"{TILES}/9/452.5/201.png?{LAYER}", "x"),
    (f"/tiler/tiles/NoSuchMatrix/9/452/201.png?{LAYER}", "tileMatrixSetId"),
    (f"{TILES}/9/452/201.png?{LAYER}&tilesize=0", "tilesize"),
    (f"{TILES}/9/452/201.png?{LAYER}&tilesize=1.5", "tilesize"),
    (f"{TILES}/9/452/201.png?collection=demo.vi&variable=nope", "variable"),
    (f"{TILES}/9/452/201.png?collection=demo.vi&variable=ndvi&sel=time=abc", "sel"),
    (f"{TILES}/9/452/201.png?collection=demo.vi&variable=ndvi&sel=time=2021-07-13", "sel"),
    (f"{TILES}/9/452/201.png?collection=demo.vi&variable=ndvi", "sel"),  # 46 layers
    (f"{TILES}/9/452/201.png?{LAYER}&bidx=99", "bidx"),
    (f"{TILES}/9/452/201.png?{LAYER}&rescale=abc", "rescale"),
    (f"/tiler/bbox/nan,0,1,1/100x100.png?{LAYER}", "bbox"),
    (f"/tiler/bbox/1,1,0,0.png?{LAYER}", "bbox"),
    (f"/tiler/point/1e400,36?{LAYER}", "lon"),
    (f"/tiler/point/abc,36?{LAYER}", "lon"),
]


@pytest.mark.parametrize(("path", "name"), MALFORMED_GET)
def test_malformed_parameter_is_400_naming_it(client, path, name):
    assert_json_error(client.get(path), 400, name)


MALFORMED_POST = [
    (b"not json", "body"),
    (b"[1, 2]", "body"),
    (b'"text"', "body"),
    (b"[" * 100_000, "body"),
    (b'{"limit": "10"}', "limit"),
    (b'{"limit": true}', "limit"),
    (b'{"limit": 1.5}', "limit"),
    (b'{"limit": 0}', "limit"),
    (b'{"page": 0}', "page"),
    (b'{"page": 100000000000000000000000000000}', "page"),
    (b'{"token": "next"}', "page"),
    (b'{"bbox": "1,2,3,4"}', "bbox"),
    (b'{"bbox": [1, 2, 3, "x"]}', "bbox"),
    (b'{"bbox": [1, 2, 3, true]}', "bbox"),
    (b'{"bbox": [1, 2, 3, 4, 5]}', "bbox"),
    (b'{"datetime": 5}', "datetime"),
    (b'{"datetime": ["2021-01-01"]}', "datetime"),
    (b'{"collections": "demo.vi"}', "collections"),
    (b'{"collections": [1]}', "collections"),
    (b'{"ids": {"a": 1}}', "ids"),
    (b'{"intersects": "POINT (1 2)"}', "intersects"),
    (b'{"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}', "intersects"),
    (b'{"intersects": {"type": "Feature", "geometry": null}}', "intersects"),
]


def test_malformed_tiler_body_is_400(client):
    for body in (b"nope", b'{"type": "Polygon"}', b"[1]"):
        r = client.post(
            f"/tiler/statistics?{LAYER}", content=body, headers={"content-type": "application/json"}
        )
        assert_json_error(r, 400)


@pytest.mark.parametrize(("body", "name"), MALFORMED_POST)
def test_malformed_search_body_is_400_naming_it(client, body, name):
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert_json_error(r, 400, name)


def test_huge_search_body_is_413(client):
    body = b'{"ids": ["' + b"a" * 2_000_000 + b'"]}'
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert_json_error(r, 413)


@pytest.mark.parametrize(
    "path",
    [
        "/search?datetime=2021%00",
        "/search?collections=demo.vi%00x",
        "/collections/demo.vi%00",
        "/collections/demo.vi/items/demo%00.vi",
        "/zarr/demo.vi/.zmetadata%00",
        "/zarr/demo.vi/%00.zmetadata",
        "/assets/demo.vi/quicklook%00",
        f"{TILES}/9/452/201.png?{LAYER}%00",
        "/timeseries/demo.vi?variable=nd%00vi&lon=138.4&lat=36",
    ],
)
def test_nul_byte_anywhere_is_400(client, path):
    assert_json_error(client.get(path), 400)


def test_long_path_is_414_without_echo(client):
    r = client.get("/collections/" + "a" * 8000)
    assert_json_error(r, 414)
    assert "aaaaaaaaaa" not in r.text
    assert_json_error(client.get("/search?ids=" + "b" * 9000), 414)


def test_limit_above_maximum_is_clamped(client):
    for r in (
        client.get("/search?limit=100000"),
        client.post("/search", json={"limit": 100000}),
    ):
        assert r.status_code == 200
        body = r.json()
        assert body["numberReturned"] == body["numberMatched"] > 10  # every Item, one page
    paged = client.post("/search", json={"limit": 100000, "page": 1}).json()
    assert all(link["rel"] != "next" for link in paged["links"])


def test_paging_still_works(client):
    first = client.get("/search?limit=1").json()
    (nxt,) = [link for link in first["links"] if link["rel"] == "next"]
    second = client.get(nxt["href"]).json()
    assert first["features"][0]["id"] != second["features"][0]["id"]
    assert client.get("/search?token=2&limit=1").json()["features"] == second["features"]


@pytest.mark.parametrize(
    "path",
    [
        f"{BBOX}/8000x8000.png?{LAYER}",
        f"{BBOX}/100x8000.png?{LAYER}",
        f"{BBOX}.png?{LAYER}&width=8000",
        f"{BBOX}.png?{LAYER}&max_size=100000",
        f"{TILES}/9/452/201.png?{LAYER}&tilesize=8000",
    ],
)
def test_oversized_image_is_400(client, path):
    body = assert_json_error(client.get(path), 400)
    assert "2048" in body["description"]


def test_coverage_scale_is_capped(client):
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[138.1, 35.6], [138.9, 35.6], [138.9, 36.4], [138.1, 35.6]]],
        },
    }
    stats = f"/tiler/statistics?{LAYER}&cover_scale="
    assert client.post(stats + "4", json=feature).status_code == 200
    assert_json_error(client.post(stats + "1000", json=feature), 400, "cover_scale")


def test_bbox_image_without_size_is_read_at_most_max_image(out):
    app = create_app(out / "catalog", limits=ServeLimits(tile_rate=0, max_image=64))
    with TestClient(app) as c:
        r = c.get(f"{BBOX}.png?{LAYER}")
        assert r.status_code == 200
        assert max(Image.open(io.BytesIO(r.content)).size) <= 64
        assert c.get(f"{BBOX}/64x64.png?{LAYER}").status_code == 200
        assert_json_error(c.get(f"{BBOX}/65x64.png?{LAYER}"), 400)


def test_tile_rate_limit_per_client(out):
    app = create_app(out / "catalog", limits=ServeLimits(tile_rate=0.01, tile_burst=3))
    tile = f"{TILES}/9/452/201.png?{LAYER}"
    with TestClient(app) as c:
        assert [c.get(tile).status_code for _ in range(3)] == [200, 200, 200]
        r = c.get(tile)
        assert_json_error(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/search").status_code == 200  # only tiles are rate-limited
    with TestClient(app, client=("192.0.2.7", 5000)) as other:
        assert other.get(tile).status_code == 200  # another client has its own bucket


def test_token_buckets_refill_and_forget_idle_clients():
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0])
    assert buckets.take("a") == 0 and buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert buckets.take("a") == 0
    buckets.PRUNE_AT = 3
    for name in "bcde":
        buckets.take(name)
    now[0] += 10
    buckets.take("f")
    assert len(buckets._buckets) <= 2


def test_limits_from_options():
    limits = ServeLimits.parse(["max_image=4096", "tile-rate=0.5", "timeout_header=3"])
    assert (limits.max_image, limits.tile_rate, limits.timeout_header) == (4096, 0.5, 3.0)
    assert ServeLimits.parse([]) == ServeLimits()
    for bad in ("nope=1", "max_image", "max_image=big", "max_image=-1", "max_image=1.5"):
        with pytest.raises(FluxscapeError):
            ServeLimits.parse([bad])


def test_static_files_keep_validators_ranges_and_head(client, out):
    whole = (out / "products" / "vi.zarr" / ".zmetadata").read_bytes()
    r = client.get("/zarr/demo.vi/.zmetadata")
    assert r.content == whole and r.headers["etag"] and r.headers["last-modified"]
    part = client.get("/zarr/demo.vi/.zmetadata", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == whole[:10]
    head = client.head("/zarr/demo.vi/.zmetadata")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(whole)


def test_unexpected_error_is_a_generic_500(out, caplog):
    app = create_app(out / "catalog", limits=ServeLimits(tile_rate=0))

    @app.get("/boom")
    def boom():
        raise RuntimeError("SELECT secret FROM '/work/x/index.parquet'")

    with TestClient(app, raise_server_exceptions=False) as c:
        body = assert_json_error(c.get("/boom"), 500)
    assert "secret" not in body["description"]
    assert "SELECT secret" in caplog.text  # the traceback stays in the server's log


def test_symlinked_asset_leaving_the_catalog_is_not_served(client, out):
    quicklooks = out / "quicklooks" / "vi"
    assert client.get("/assets/demo.vi/quicklook_ndvi_2022").status_code == 200
    target = quicklooks / "ndvi_2021.png"
    target.unlink()
    target.symlink_to(out / "secret.txt")
    r = client.get("/assets/demo.vi/quicklook_ndvi_2021")
    assert_json_error(r, 404)
    (quicklooks / "evi_2021.png").unlink()
    (quicklooks / "evi_2021.png").symlink_to("/etc/passwd")
    assert_json_error(client.get("/assets/demo.vi/quicklook_evi_2021"), 404)
    (quicklooks / "nbr_2021.png").unlink()
    (quicklooks / "nbr_2021.png").symlink_to(out / "products" / "vi.zarr" / ".zmetadata")
    assert_json_error(client.get("/assets/demo.vi/quicklook_nbr_2021"), 404)
    inside = quicklooks / "evi2_2021.png"
    inside.unlink()
    inside.symlink_to(quicklooks / "evi2_2022.png")  # a link within the folder is fine
    assert client.get("/assets/demo.vi/quicklook_evi2_2021").status_code == 200


def test_symlinked_zarr_file_leaving_the_store_is_not_served(client, out):
    store = out / "products" / "vi.zarr"
    assert client.get("/zarr/demo.vi/qa/0.0.0").status_code == 200
    chunk = store / "qa" / "0.0.0"  # qa: a layer no other test reads
    chunk.unlink()
    chunk.symlink_to(out / "secret.txt")
    assert_json_error(client.get("/zarr/demo.vi/qa/0.0.0"), 404)
    (store / "qa" / "link").symlink_to(store / "qa" / "0.1.0")
    assert client.get("/zarr/demo.vi/qa/link").status_code == 200
    loop = store / "qa" / "loop"
    loop.symlink_to(loop)
    assert_json_error(client.get("/zarr/demo.vi/qa/loop"), 404)
    assert_json_error(client.get("/zarr/demo.vi/" + "x" * 300), 404)


def test_index_is_cached_until_republished(out, demo_out):
    cat = open_catalog(out / "catalog")
    assert cat.index_table() is cat.index_table()
    app = create_app(out / "catalog", limits=ServeLimits(tile_rate=0))
    with TestClient(app) as c:
        assert c.get("/collections/later.vi").status_code == 404
        old = cat.index_table()
        publish_store(out / "products" / "vi.zarr", out / "catalog", "later", "vi")
        assert c.get("/collections/later.vi").status_code == 200
        assert cat.index_table() is not old
        found = c.get("/search?collections=later.vi&limit=1").json()
        assert found["numberMatched"] > 0 and found["features"][0]["collection"] == "later.vi"


def test_reader_never_sees_half_an_index(tmp_path):
    small = [{"id": "a"}, {"id": "b"}]
    big = [{"id": f"p{i:04d}"} for i in range(3000)]
    rows = {n: [_row(r["id"]) for r in rs] for n, rs in (("small", small), ("big", big))}
    index.write_rows(tmp_path, rows["small"])
    (tmp_path / "catalog.json").write_text("{}")
    cat = open_catalog(tmp_path)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            for rs in rows.values():
                index.write_rows(tmp_path, rs)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen = {cat.count() for _ in range(300)}
    finally:
        stop.set()
        thread.join()
    assert seen <= {2, 3000}


def _row(pid: str) -> dict:
    import datetime as dt

    import shapely

    return {
        "id": pid,
        "product": "vi",
        "workflow": "w",
        "run_id": "r",
        "access": "public",
        "title": pid,
        "variables": ["ndvi"],
        "models": [],
        "xmin": 0.0,
        "ymin": 0.0,
        "xmax": 1.0,
        "ymax": 1.0,
        "start_datetime": dt.datetime(2021, 1, 1),
        "end_datetime": dt.datetime(2021, 12, 31),
        "created": "",
        "href": f"{pid}/collection.json",
        "store": f"{pid}.zarr",
        "geometry": shapely.to_wkb(shapely.box(0, 0, 1, 1)),
    }


# --- a real server: connections --------------------------------------------------------------


@pytest.fixture(scope="module")
def server(out):
    """uvicorn configured as ``fluxscape serve`` (short timeouts) on a free loopback port."""

    limits = ServeLimits(timeout_header=1.0, timeout_keep_alive=1.0, tile_rate=0)
    app = create_app(out / "catalog", limits=limits)
    with served(
        lambda port: server_config(app, "127.0.0.1", port, limits, log_level="warning")
    ) as port:
        yield port


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (reading what it sends)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def test_idle_connections_are_closed(server):
    socks = [socket.create_connection(("127.0.0.1", server)) for _ in range(200)]
    try:
        time.sleep(2.5)
        assert sum(closed_by_server(s, 0.05) for s in socks) == len(socks)
    finally:
        for s in socks:
            s.close()


def test_slow_request_head_is_cut_off(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        for i in range(20):  # one header line every 0.2 s: never a complete head
            try:
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except OSError:
                break
            if closed_by_server(sock, 0.2):
                break
        assert time.monotonic() - start < 2.5


def test_keep_alive_connection_closed_after_idle_time(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    for _ in range(2):  # the connection stays open between requests
        conn.request("GET", "/conformance")
        assert conn.getresponse().read().startswith(b'{"conformsTo"')
    assert closed_by_server(conn.sock, 3.0)
    conn.close()


def test_long_raw_path_is_414_without_echo(server):
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"GET /zarr/demo.vi/" + b"z" * 8000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 414") and b"zzzzzzzz" not in head


# --- fuzzing ---------------------------------------------------------------------------------

NAMES = (
    "bbox",
    "datetime",
    "intersects",
    "limit",
    "page",
    "token",
    "collections",
    "ids",
    "filter",
    "filter-lang",
    "sortby",
    "fields",
    "query",
)
texts = st.text(max_size=40) | st.sampled_from(
    ["1", "0", "-1", "--5", "+3", " 7 ", "10", "1e9", "nan", "inf", "..", "/", "2021", "{}"]
    + ["2021-06-01/..", "2021-06-01T00:00:00+09:00", "2021-02-30", ",", "1,2,3,4", "0,0,0,0"]
    + ["product = 'vi'", "step > 'a'", "datetime > 5", "a_contains(variables, 1)", "cql2-json"]
    + ["-datetime", "variables", "id,-properties", "T_AFTER(datetime, DATE('x'))", "id LIKE 5"]
    + ['{"op":"=","args":[{"property":"id"},{"property":"step"}]}', "cql2-text", "+step"]
)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**30), 10**30)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
geometries = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Point", "Polygon", "LineString", "MultiPoint", "Nope"]),
        "coordinates": json_values,
    }
)
FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def assert_no_server_error(r) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert_json_error(r, r.status_code)


@FUZZ
@given(st.dictionaries(st.sampled_from(NAMES), texts | json_values.map(json.dumps), max_size=5))
def test_fuzz_search_query(client, params):
    assert_no_server_error(client.get("/search", params=params))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(NAMES), json_values | geometries | st.lists(numbers, max_size=7)
    )
    | json_values
)
def test_fuzz_search_body(client, body):
    text = json.dumps(body, allow_nan=True)  # NaN and Infinity too, which Python's JSON reads
    r = client.post("/search", content=text, headers={"content-type": "application/json"})
    assert_no_server_error(r)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    st.one_of(st.integers(-5, 30), st.text(max_size=6)),
    st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=6)),
    st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=6)),
    st.dictionaries(
        st.sampled_from(["tilesize", "rescale", "sel", "bidx", "variable", "colormap_name"]),
        texts,
        max_size=2,
    ),
)
def test_fuzz_tile_request(client, z, x, y, extra):
    from urllib.parse import quote

    params = {"collection": "demo.vi", "variable": "ndvi", "sel": "time=2021-07-12"} | extra
    path = f"{TILES}/{quote(str(z), safe='')}/{quote(str(x), safe='')}/{quote(str(y), safe='')}"
    assert_no_server_error(client.get(path + ".png", params=params))


ROUTES = (
    "/collections/{a}",
    "/collections/{a}/items/{b}",
    "/collections/demo.vi/items?filter={a}&sortby={b}",
    "/collections/{a}/queryables",
    "/zarr/{a}/{b}",
    "/zarr/demo.vi/{b}",
    "/assets/{a}/{b}",
    "/assets/demo.vi/{b}",
    "/timeseries/demo.vi?variable={a}&lon={b}&lat=36",
    "/stats/{a}?variable={b}",
    "/tiler/point/{a},{b}?" + LAYER,
    "/tiler/bbox/{a},35.5,139,{b}.png?" + LAYER,
    "/web/{a}",
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.sampled_from(ROUTES), texts, texts)
def test_fuzz_paths(client, route, a, b):
    from urllib.parse import quote

    path = route.format(a=quote(a, safe=""), b=quote(b, safe="/"))
    assert_no_server_error(client.get(path))


@pytest.mark.parametrize(
    "text", ['{"": Infinity}', '{"limit": NaN}', '{"bbox": [-Infinity, 0, 1, 1]}']
)
def test_search_body_with_nan_or_infinity_is_a_400(client, text):
    """Python's parser reads NaN and Infinity, JSON has neither (and a response echoing the
    body could not be written): refused as not JSON, never a 500."""
    r = client.post("/search", content=text, headers={"content-type": "application/json"})
    assert_json_error(r, 400, "body")
