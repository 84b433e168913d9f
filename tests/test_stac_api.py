"""The STAC API of `fluxscape serve` with standard clients (issue #14): one Item per step with
projection and raster metadata that odc-stac loads, CQL2 filter (text and JSON), query, sortby
and fields through pystac-client, queryables, the service-desc link, a clamped limit, CORS."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import served

from fluxscape.catalog import times
from fluxscape.catalog.publish import publish_store
from fluxscape.catalog.serve import create_app, hash_token, load_tokens

PARTNER_TOKEN = "partner-secret-token-stac-0123456789"
PARTNER = {"Authorization": f"Bearer {PARTNER_TOKEN}"}
ORIGIN = "https://browser.example.org"


@pytest.fixture(scope="module")
def catalog(demo_out, tmp_path_factory):
    """The demo's products (public) and a partners-only copy of flux, published by this
    code, and a tokens file granting partners."""
    cat = tmp_path_factory.mktemp("stac") / "catalog"
    products = demo_out / "products"
    for name in ("flux", "vi", "phenology", "gosat_l3"):
        publish_store(products / f"{name}.zarr", cat, "demo", name, access="public")
    publish_store(products / "flux.zarr", cat, "towers", "flux", access="partners")
    tokens = cat.parent / "tokens.json"
    entry = {"name": "p", "sha256": hash_token(PARTNER_TOKEN), "access": "partners"}
    tokens.write_text(json.dumps({"tokens": [entry]}))
    return cat, tokens


@pytest.fixture(scope="module")
def server(catalog):
    """uvicorn serving the catalog on a free loopback port (default CORS: ``*``)."""
    import uvicorn

    cat, tokens = catalog
    app = create_app(cat, load_tokens(tokens))
    with served(
        lambda port: uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    ) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(server):
    from pystac_client import Client

    return Client.open(server)


def steps(demo_out, name: str) -> int:
    ds = xr.open_zarr(demo_out / "products" / f"{name}.zarr")
    return ds.sizes.get("time", ds.sizes.get("year"))


def test_landing_and_conformance_offer_filter_sort_fields_query_and_queryables(server, client):
    for name in ("ITEM_SEARCH", "FILTER", "SORT", "FIELDS", "QUERY"):
        assert client.conforms_to(name), name
    conformance = httpx.get(f"{server}/conformance").json()["conformsTo"]
    for cls in ("cql2-text", "cql2-json", "basic-cql2", "conf/queryables", "conf/filter"):
        assert any(c.endswith(cls) for c in conformance), cls
    links = {lk["rel"]: lk for lk in httpx.get(server).json()["links"]}
    desc = httpx.get(links["service-desc"]["href"])
    assert desc.status_code == 200 and "/search" in desc.json()["paths"]
    assert links["service-desc"]["type"].startswith("application/vnd.oai.openapi+json")
    queryables = httpx.get(links["http://www.opengis.net/def/rel/ogc/1.0/queryables"]["href"])
    props = queryables.json()["properties"]
    for name in ("fluxscape:product", "collection", "datetime", "end_datetime", "fluxscape:access"):
        assert name in props, name
    assert props["datetime"]["format"] == "date-time"
    assert httpx.get(f"{server}/collections/demo.vi/queryables").status_code == 200
    assert httpx.get(f"{server}/collections/towers.flux/queryables").status_code == 404


def test_cql2_text_filter_on_product_returns_only_its_items(client, demo_out):
    everything = client.search(max_items=None, limit=200).matched()
    found = list(client.search(filter="fluxscape:product = 'flux'", limit=100).items())
    assert {i.collection_id for i in found} == {"demo.flux"}
    assert len(found) == steps(demo_out, "flux") < everything
    alias = client.search(filter="product = 'gosat_l3' AND step < 3", limit=100)
    assert sorted(i.id for i in alias.items()) == [
        "demo.gosat_l3.2021-01-01",
        "demo.gosat_l3.2021-02-01",
        "demo.gosat_l3.2021-03-01",
    ]


def test_cql2_json_filter_posted_combines_product_and_time(client, demo_out):
    flt = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "fluxscape:product"}, "flux"]},
            {
                "op": "t_intersects",
                "args": [
                    {"property": "datetime"},
                    {"interval": ["2022-01-01T00:00:00Z", "2022-12-31T23:59:59Z"]},
                ],
            },
        ],
    }
    found = list(client.search(filter=flt, method="POST", limit=100).items())
    flux = xr.open_zarr(demo_out / "products" / "flux.zarr")
    in_2022 = [str(t)[:10] for t in flux.time.values if str(t).startswith("2022")]
    assert sorted(i.id.removeprefix("demo.flux.") for i in found) == in_2022
    vi_with_ndvi = client.search(
        filter="a_contains(fluxscape:variables, ('ndvi')) AND collection = 'demo.vi'",
        max_items=3,
    )
    assert {i.collection_id for i in vi_with_ndvi.items()} == {"demo.vi"}


def test_query_extension_filters_too(client):
    found = client.search(query={"fluxscape:product": {"eq": "phenology"}}, limit=10)
    assert sorted(i.id for i in found.items()) == ["demo.phenology.2021", "demo.phenology.2022"]


def test_sortby_datetime_reverses_the_order(client):
    def ids(sortby):
        search = client.search(collections=["demo.vi"], sortby=sortby, limit=7, max_items=7)
        return [i.id for i in search.items()]

    ascending, descending = ids("+datetime"), ids("-datetime")
    assert ascending[0] == "demo.vi.2021-01-01" and descending[0] > ascending[-1]
    everything = [i.id for i in client.search(collections=["demo.vi"], limit=100).items()]
    assert descending == everything[::-1][:7] and ascending == everything[:7]
    by_product = client.search(sortby=[{"field": "fluxscape:product", "direction": "desc"}])
    first = next(iter(by_product.items()))
    assert first.collection_id == "demo.vi"  # vi > phenology > gosat_l3 > flux


def test_fields_drop_and_keep_properties(client):
    dropped = client.search(
        collections=["demo.vi"], fields=["-properties.fluxscape:variables", "-assets"], max_items=2
    )
    for item in dropped.items_as_dicts():
        assert "assets" not in item and "fluxscape:variables" not in item["properties"]
        assert item["properties"]["fluxscape:product"] == "vi"
    kept = client.search(
        collections=["demo.vi"], fields=["id", "properties.fluxscape:step"], max_items=2
    )
    for item in kept.items_as_dicts():
        assert set(item["properties"]) == {"datetime", "fluxscape:step"}
    full = next(iter(client.search(collections=["demo.vi"], max_items=1).items_as_dicts()))
    assert "fluxscape:variables" in full["properties"] and "ndvi" in full["assets"]


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"filter": "nosuch = 'vi'"}, "unknown property"),
        ({"filter": "product = = 'vi'"}, "not valid CQL2"),
        ({"filter": "product > 5"}, "cannot be evaluated"),
        ({"filter": "S_INTERSECTS(geometry, POINT(138 36))"}, "bbox or intersects"),
        ({"filter": "read_text('/etc/passwd') = 'x'"}, "unsupported operator"),
        ({"filter": '{"op": "=", "args": []}', "filter-lang": "cql2-json"}, "filter"),
        ({"filter": "id = 'x'", "filter-lang": "sql"}, "cql2-text or cql2-json"),
        ({"sortby": "-fluxscape:variables"}, "cannot sort"),
        ({"sortby": "nosuch"}, "unknown property"),
        ({"query": '{"product": {"near": 1}}'}, "unsupported operator"),
    ],
)
def test_bad_filter_sortby_or_query_is_400_json(server, params, word):
    r = httpx.get(f"{server}/search", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"code", "description"} and word in body["description"]


def test_limit_above_maximum_is_clamped_not_refused(server, client):
    total = client.search(limit=1).matched()
    r = httpx.get(f"{server}/search", params={"limit": 100000})
    assert r.status_code == 200
    assert r.json()["numberReturned"] == total > 100
    assert all(link["rel"] != "next" for link in r.json()["links"])


def test_restricted_items_need_the_token_even_through_a_filter(client, server):
    from pystac_client import Client

    flt = "collection = 'towers.flux'"
    assert list(client.search(filter=flt).items()) == []
    partner = Client.open(server, headers=PARTNER)
    found = list(partner.search(filter=flt, limit=100).items())
    assert found and {i.properties["fluxscape:access"] for i in found} == {"partners"}


def test_cors_wildcard_for_anonymous_reads_only(server):
    origin = {"Origin": ORIGIN}
    public = httpx.get(f"{server}/collections/demo.vi/items", headers=origin)
    assert public.headers["access-control-allow-origin"] == "*"
    links = {lk["rel"]: lk["href"] for lk in public.json()["links"]}
    assert links["collection"] == f"{server}/collections/demo.vi" and "next" in links
    chunk = httpx.head(f"{server}/zarr/demo.vi/.zmetadata", headers=origin)
    assert chunk.headers["access-control-allow-origin"] == "*"
    restricted = httpx.get(f"{server}/collections/towers.flux", headers=origin | PARTNER)
    assert restricted.status_code == 200
    assert "access-control-allow-origin" not in restricted.headers
    preflight = httpx.options(
        f"{server}/collections/towers.flux",
        headers=origin
        | {
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    post = httpx.post(f"{server}/search", json={}, headers=origin)
    assert "access-control-allow-origin" not in post.headers  # reads only


def test_cors_named_origin_may_read_with_a_token(catalog):
    from fastapi.testclient import TestClient

    cat, tokens = catalog
    app = create_app(cat, load_tokens(tokens), cors_origins=[ORIGIN])
    with TestClient(app) as c:
        r = c.get("/collections/towers.flux", headers={"Origin": ORIGIN} | PARTNER)
        assert r.headers["access-control-allow-origin"] == ORIGIN
        assert "Origin" in r.headers["vary"]
        other = c.get("/collections/demo.vi", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers  # no '*' configured
        ok = c.options(
            "/search",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert (
            ok.status_code == 204 and "Authorization" in ok.headers["access-control-allow-headers"]
        )
        assert ok.headers["access-control-allow-methods"] == "GET, HEAD"


def test_odc_stac_load_of_served_items_equals_open_zarr(client, demo_out):
    import odc.stac

    search = client.search(
        filter="fluxscape:product = 'flux'", datetime="2021-06-01/2021-08-31", limit=50
    )
    items = list(search.items())
    assert 4 <= len(items) <= 8
    assert items[0].assets["gpp"].href.startswith('ZARR:"/vsicurl/http://127.0.0.1')
    loaded = odc.stac.load(items, bands=["gpp"])
    store = xr.open_zarr(demo_out / "products" / "flux.zarr").gpp
    expected = store.sel(time=loaded.time.values)
    assert loaded.gpp.shape == expected.shape
    np.testing.assert_array_equal(loaded.gpp.values, expected.values)
    assert np.isfinite(loaded.gpp.values).sum() > 1000
    np.testing.assert_allclose(loaded.longitude.values, store.x.values)
    np.testing.assert_allclose(loaded.latitude.values, store.y.values)


def test_odc_stac_load_of_the_items_on_disk_equals_open_zarr(catalog, demo_out):
    import odc.stac
    import pystac

    cat, _ = catalog
    paths = sorted((cat / "demo.vi" / "items").glob("*.json"))[10:13]
    items = [pystac.Item.from_file(p) for p in paths]
    loaded = odc.stac.load(items, bands=["ndvi", "qa"])
    store = xr.open_zarr(demo_out / "products" / "vi.zarr")
    expected = store.sel(time=loaded.time.values)
    np.testing.assert_array_equal(loaded.ndvi.values, expected.ndvi.values)
    raw_qa = xr.open_zarr(demo_out / "products" / "vi.zarr", mask_and_scale=False).qa
    np.testing.assert_array_equal(loaded.qa.values, raw_qa.sel(time=loaded.time.values).values)


def test_items_carry_step_periods_projection_raster_and_declared_extensions(client, demo_out):
    from stac_pydantic import Collection, Item

    item = client.get_collection("demo.flux").get_item("demo.flux.2021-01-17")
    props = item.properties
    ds = xr.open_zarr(demo_out / "products" / "flux.zarr")
    _, starts, ends = times.step_spans(ds)
    assert pd.Timestamp(props["start_datetime"]).tz_localize(None) == starts[1]
    end = pd.Timestamp(props["end_datetime"]).tz_localize(None)
    assert abs(end - pd.Timestamp(ends[1])) < pd.Timedelta("1s")  # the step's period end
    assert props["datetime"] == props["start_datetime"]
    assert props["proj:code"] == "EPSG:4326" and props["proj:shape"] == [100, 100]
    assert props["proj:transform"] == [0.01, 0.0, 138.0, 0.0, -0.01, 36.5]
    band = item.assets["gpp"].extra_fields["raster:bands"][0]
    assert band["data_type"] == "float32" and band["nodata"] == "nan"
    assert band["unit"] == ds.gpp.attrs["units"]
    assert item.assets["gpp"].href.endswith(":/gpp:1")
    doc = item.to_dict()
    for ext in ("projection", "raster", "xarray-assets"):
        assert any(f"/{ext}/" in e for e in doc["stac_extensions"]), ext
    assert doc["assets"]["zarr"]["xarray:open_kwargs"]["consolidated"] is True
    Item.model_validate(doc)
    coll = client.get_collection("demo.flux").to_dict()
    Collection.model_validate(coll)
    assert coll["license"] == "other"
    assert any(lk["rel"] == "license" for lk in coll["links"])
    assert any("/xarray-assets/" in e for e in coll["stac_extensions"])
    pheno = client.get_collection("demo.phenology").get_item("demo.phenology.2022")
    assert pheno.properties["start_datetime"] == "2022-01-01T00:00:00Z"
    assert pheno.properties["end_datetime"].startswith("2022-12-31T23:59:59")
    assert pheno.assets["sos_s2"].href.endswith(":/sos:1:1")  # year 2022, season 2


@pytest.mark.parametrize(
    "text",
    [
        "(" * 3000 + "id = 'x'" + ")" * 3000,
        "NOT " * 1900 + "id = 'x'",
        "step = " + "-" * 4000 + "1",
    ],
)
def test_deeply_nested_cql2_text_is_refused_not_a_crash(server, text):
    # cql2's parser recurses on the native stack: a few thousand levels would kill the server
    r = httpx.post(f"{server}/search", json={"filter": text, "filter-lang": "cql2-text"})
    assert r.status_code == 400 and "nested deeper" in r.json()["description"]
    assert httpx.get(f"{server}/conformance").status_code == 200  # still serving


def test_serve_cors_origin_option_reaches_the_server(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import fluxscape.catalog.serve as serve_module
    from fluxscape.cli import cli

    calls = []
    monkeypatch.setattr(serve_module, "serve", lambda *args: calls.append(args))
    runner = CliRunner()
    assert runner.invoke(cli, ["serve", str(tmp_path)]).exit_code == 0
    assert runner.invoke(cli, ["serve", str(tmp_path), "--cors-origin", ORIGIN]).exit_code == 0
    assert runner.invoke(cli, ["serve", str(tmp_path), "--cors-origin", "none"]).exit_code == 0
    assert [c[-1] for c in calls] == [["*"], [ORIGIN], []]
