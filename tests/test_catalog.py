"""Catalog from Python and the command line: list, search, lazy open, extract."""

from __future__ import annotations

import dataclasses
import json

import dask.array
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from conftest import run_cli
from pyproj import Geod

from fluxscape.catalog import open_catalog
from fluxscape.errors import FluxscapeError


@pytest.fixture(scope="session")
def cat(demo_out):
    return open_catalog(demo_out / "catalog")


@pytest.fixture(scope="session")
def store(demo_out):
    return xr.open_zarr(demo_out / "products" / "vi.zarr")


def periods(obj, first: str, last: str):
    """The steps of ``obj`` whose periods (CF bounds: start, exclusive end) overlap the days
    ``first`` to ``last`` (inclusive): what a time range selects (issue #14)."""
    bnds = obj["time_bnds"].values
    after_last = np.datetime64(last) + np.timedelta64(1, "D")
    keep = (bnds[:, 0] < after_last) & (bnds[:, 1] > np.datetime64(first))
    return obj.isel(time=np.flatnonzero(keep))


def test_search_by_variable_bbox_and_time_finds_demo(cat):
    found = cat.search(
        variable="ndvi", bbox=(138.2, 35.8, 138.4, 36.0), time="2021-04-01/2021-10-31"
    )
    assert [e.id for e in found] == ["demo.vi"]


@pytest.mark.parametrize(
    "query",
    [
        {"variable": "fch4"},
        {"product": "disturbance"},
        {"bbox": (100.0, 10.0, 101.0, 11.0)},
        {"time": "2015-01-01/2015-12-31"},
    ],
)
def test_search_excludes_what_does_not_match(cat, query):
    assert cat.search(**query) == []


def test_open_is_lazy_and_subsets(cat):
    ds = cat.open("vi", bbox=(138.2, 35.8, 138.4, 36.0), time="2021-06-01/2021-06-30")
    assert isinstance(ds.ndvi.data, dask.array.Array)
    assert ds.sizes["x"] == 20 and ds.sizes["y"] == 20
    # every 16-day period that overlaps June, the one starting on 25 May included
    assert [str(t)[:10] for t in ds.time.values] == ["2021-05-25", "2021-06-10", "2021-06-26"]


def test_point_extract_equals_nearest_store_pixel(cat, store):
    df = cat.extract("ndvi", point=(138.4392, 35.9628))
    px = store.ndvi.sel(x=138.4392, y=35.9628, method="nearest")
    assert list(df.columns) == ["product", "time", "variable", "value", "x", "y"]
    np.testing.assert_array_equal(df["value"].to_numpy(), px.values.astype(float))
    assert df["x"].iloc[0] == pytest.approx(138.435) and df["y"].iloc[0] == pytest.approx(35.965)


def test_bbox_extract_is_area_weighted_mean_of_pixels_inside(cat, store):
    # the box's edges are pixel edges: the 10 x 10 pixels inside, each weighing its area
    df = cat.extract("evi", bbox=(138.2, 35.8, 138.3, 35.9), time="2021-07-01/2021-07-31")
    sub = periods(store, "2021-07-01", "2021-07-31").evi.sel(
        x=slice(138.2, 138.3), y=slice(35.9, 35.8)
    )
    geod = Geod(ellps="WGS84")
    area = [
        abs(geod.polygon_area_perimeter([0, 0.01, 0.01, 0], [y - 0.005] * 2 + [y + 0.005] * 2)[0])
        for y in sub.y.values
    ]
    weights = xr.DataArray(np.array(area)[:, None] * np.ones(sub.sizes["x"]), dims=("y", "x"))
    expect = sub.weighted(weights.where(np.isfinite(sub), 0.0)).sum(("y", "x")) / weights.where(
        np.isfinite(sub), 0.0
    ).sum(("y", "x"))
    np.testing.assert_allclose(df["value"], expect.values, rtol=1e-6)
    assert (df["n_pixels"] == 100).all()
    assert df["area_km2"].iloc[0] == pytest.approx(sum(area) * 10 / 1e6, rel=1e-6)


def test_extract_outside_coverage_is_a_clear_error(cat):
    with pytest.raises(FluxscapeError, match="ndvi"):
        cat.extract("ndvi", point=(120.0, 30.0))


def test_cli_search_json_and_extract_csv(demo_out, tmp_path):
    proc = run_cli(
        "catalog",
        "search",
        demo_out / "catalog",
        "--variable",
        "ndvi",
        "--bbox",
        "138.2,35.8,138.4,36.0",
        "--time",
        "2021-04-01/2021-10-31",
        "--json",
    )
    items = json.loads(proc.stdout)
    assert items[0]["id"] == "demo.vi" and "ndvi" in items[0]["variables"]
    out = tmp_path / "ts.csv"
    run_cli(
        "catalog",
        "extract",
        demo_out / "catalog",
        "--variable",
        "ndvi",
        "--point",
        "138.4392,35.9628",
        "-o",
        out,
    )
    df = pd.read_csv(out)
    assert len(df) == 46 and df["value"].notna().sum() > 25
    listed = run_cli("catalog", "list", demo_out / "catalog")
    assert "demo.vi" in listed.stdout


def test_cli_extract_bad_bbox_exit_1_one_line(demo_out):
    proc = run_cli(
        "catalog",
        "extract",
        demo_out / "catalog",
        "--variable",
        "ndvi",
        "--bbox",
        "139,36,138,35",
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "W < E" in proc.stderr


def test_open_catalog_on_missing_folder_is_clear(tmp_path):
    with pytest.raises(FluxscapeError, match="catalog.json"):
        open_catalog(tmp_path)


@pytest.mark.parametrize(
    ("product", "variables"),
    [
        ("vi", ["ndvi", "evi", "evi2", "nbr"]),
        ("phenology", ["sos", "eos", "greenup", "dormancy", "amplitude"]),
        ("gosat_l3", ["xco2", "xch4"]),
    ],
)
def test_quicklook_png_per_variable_and_year_is_catalogued(demo_out, product, variables):
    coll = json.loads((demo_out / "catalog" / f"demo.{product}" / "collection.json").read_text())
    for var in variables:
        for year in (2021, 2022):
            asset = coll["assets"][f"quicklook_{var}_{year}"]
            assert asset["type"] == "image/png" and asset["roles"] == ["overview"]
            png = (demo_out / "catalog" / f"demo.{product}" / asset["href"]).resolve()
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert png.stat().st_size > 5000  # a real map, not an empty canvas


# --- sites, polygons, Parquet, export (issue #6) ------------------------------------------------


def test_sites_csv_gives_one_tidy_table_with_pixel_coordinates(cat, store, tmp_path):
    sites = tmp_path / "sites.csv"
    sites.write_text("site,lon,lat\nJP-A,138.4392,35.9628\nJP-B,138.1012,36.3987\nfar,120,30\n")
    df = cat.extract("ndvi", sites=sites, product="vi", time="2021-01-01/2021-12-31")
    assert list(df.columns) == ["product", "site", "time", "variable", "value", "x", "y"]
    assert sorted(df.site.unique()) == ["JP-A", "JP-B"]  # the site outside is left out
    for site, lon, lat in (("JP-A", 138.4392, 35.9628), ("JP-B", 138.1012, 36.3987)):
        part = df[df.site == site]
        px = store.ndvi.sel(x=lon, y=lat, method="nearest").sel(time=slice("2021", "2021"))
        np.testing.assert_array_equal(part.value.to_numpy(), px.values.astype(float))
        assert part.x.iloc[0] == pytest.approx(float(px.x))
        assert part.y.iloc[0] == pytest.approx(float(px.y))
    assert len(df) == 2 * 23


def test_polygon_mean_weighs_edge_pixels_by_the_fraction_inside(cat, store, tmp_path):
    # a triangle over about half of a 0.1 x 0.1 degree box: pixels on its long edge count
    # with the share of their area inside (no pixel-centre test)
    tri = {
        "type": "Polygon",
        "coordinates": [[[138.2, 35.8], [138.3, 35.8], [138.3, 35.905], [138.2, 35.8]]],
    }
    geojson = tmp_path / "tri.geojson"
    geojson.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "properties": {}, "geometry": tri}],
            }
        )
    )
    df = cat.extract("evi", polygon=geojson, time="2021-07-01/2021-07-31")
    sub = periods(store, "2021-07-01", "2021-07-31").evi.sel(
        x=slice(138.2, 138.3), y=slice(35.91, 35.8)
    )
    shape = shapely.geometry.shape(tri)
    frac = np.array(
        [
            [shapely.box(x - 0.005, y - 0.005, x + 0.005, y + 0.005).intersection(shape).area
             for x in sub.x.values]
            for y in sub.y.values
        ]
    ) / 0.01**2  # fmt: skip
    lat_weight = np.cos(np.radians(sub.y.values))[:, None]  # cell area ~ cos(lat) here
    w = xr.DataArray(frac * lat_weight, dims=("y", "x"))
    w = w.where(np.isfinite(sub), 0.0)
    expect = (sub.fillna(0) * w).sum(("y", "x")) / w.sum(("y", "x"))
    np.testing.assert_allclose(df["value"], expect.values, rtol=1e-5)
    assert (df["n_pixels"] == (frac > 0).sum()).all() and 55 <= (frac > 0).sum() <= 70
    assert df["region"].unique().tolist() == ["1"]  # no name or id: the feature's position


def test_bad_sites_and_polygon_are_clear_errors(cat, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x\nA,1\n")
    with pytest.raises(FluxscapeError, match="bad.csv.*lacks a site_id, lat, lon column"):
        cat.extract("ndvi", sites=bad)
    line = tmp_path / "line.geojson"
    line.write_text(json.dumps({"type": "LineString", "coordinates": [[138, 36], [139, 36]]}))
    with pytest.raises(FluxscapeError, match="line.geojson.*Polygon"):
        cat.extract("ndvi", polygon=line)


def test_cli_extract_sites_to_parquet_and_search_table(demo_out, tmp_path):
    sites = tmp_path / "s.csv"
    sites.write_text("site,lon,lat\nA,138.4392,35.9628\n")
    out = tmp_path / "ts.parquet"
    run_cli(
        "catalog",
        "extract",
        demo_out / "catalog",
        "--variable",
        "ndvi",
        "--sites",
        sites,
        "-o",
        out,
    )
    df = pd.read_parquet(out)
    assert list(df.columns) == ["product", "site", "time", "variable", "value", "x", "y"]
    assert len(df) == 46 and df["x"].iloc[0] == pytest.approx(138.435)
    table = run_cli("catalog", "search", demo_out / "catalog", "--run", "demo").stdout
    assert "demo.vi" in table and "public" in table and "access" in table


def test_export_cog_opens_in_gdal_with_crs_and_values(cat, store, tmp_path):
    import rasterio

    out = tmp_path / "ndvi.tif"
    run_cli(
        "catalog",
        "export",
        cat.directory,
        "demo.vi",
        out,
        "--variable",
        "ndvi",
        "--time",
        "2021-06-01/2021-07-31",
        "--bbox",
        "138.2,35.8,138.6,36.1",
    )
    sub = periods(store, "2021-06-01", "2021-07-31").ndvi.sel(
        x=slice(138.2, 138.6), y=slice(36.1, 35.8)
    )
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 4326
        assert src.driver == "GTiff" and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.count == sub.sizes["time"] == 5  # 25 May - 26 July
        assert src.descriptions[0] == str(sub.time.values[0])[:10]
        assert src.bounds.left == pytest.approx(138.2) and src.bounds.top == pytest.approx(36.1)
        np.testing.assert_array_equal(src.read(2), sub.isel(time=1).values)


def test_export_netcdf_is_cf_and_matches_store(cat, store, tmp_path):
    out = cat.export(
        "phenology", tmp_path / "p.nc", variables=["sos", "eos"], bbox=(138.2, 35.8, 138.4, 36.0)
    )
    nc = xr.open_dataset(out, decode_coords="all")
    assert set(nc.data_vars) == {"sos", "eos"} and nc.attrs["Conventions"].startswith("CF")
    assert nc.rio.crs.to_epsg() == 4326 and nc.sos.encoding["grid_mapping"] == "spatial_ref"
    pheno = xr.open_zarr(cat.directory.parent / "products" / "phenology.zarr")
    ref = pheno.sos.sel(x=slice(138.2, 138.4), y=slice(36.0, 35.8))
    np.testing.assert_array_equal(nc.sos.values, ref.values)
    with pytest.raises(FluxscapeError, match="one variable"):
        cat.export("vi", tmp_path / "two.tif", variables=["ndvi", "evi"])


# --- one search path: time ranges, search hits, catalogs without an index (issue #13) ----------


def _span_days(ds) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last instant a product covers as the store holds them (the first
    period's start and the last one's end from the CF time bounds, or the first and last day
    of the first and last year)."""
    if "time" in ds.dims:
        end = pd.Timestamp(ds.time_bnds.values[-1, 1]) - pd.Timedelta(seconds=1)
        return pd.Timestamp(ds.time.values[0]), end
    years = ds.year.values
    return pd.Timestamp(f"{years[0]}-01-01"), pd.Timestamp(f"{years[-1]}-12-31T23:59:59")


def _ranges(first: pd.Timestamp, last: pd.Timestamp) -> list[tuple[str | None, str | None]]:
    """Time ranges around both ends of a product: dates, datetimes (with and without an
    offset), months and years, open on one side or not."""
    day = pd.Timedelta(days=1)
    d = "%Y-%m-%d"
    return [
        (None, (first - day).strftime(d)),  # ends the day before the first step
        (None, first.strftime(d)),  # ends on the first step's day
        ((first - 40 * day).strftime(d), (first - day).strftime(d)),
        (None, (first - pd.Timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        (None, first.strftime("%Y-%m-%dT%H:%M:%S")),
        (None, (first - pd.DateOffset(months=1)).strftime("%Y-%m")),  # the month before
        (None, first.strftime("%Y-%m")),
        (None, str(first.year - 1)),
        (str(first.year - 1), str(first.year)),  # "YYYY/YYYY": whole years
        (last.strftime(d), None),  # starts on the last step's day
        ((last + day).strftime(d), None),  # starts the day after
        (last.strftime("%Y-%m-%dT%H:%M:%S"), None),
        ((last + pd.Timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S"), None),
        ((last + pd.Timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%S+09:00"), None),  # = last
        ((last + pd.Timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M:%S+09:00"), None),
        ((last + 40 * day).strftime(d), (last + 400 * day).strftime(d)),
        (last.strftime("%Y-%m"), None),
        ((last + pd.DateOffset(months=1)).strftime("%Y-%m"), None),
        (str(last.year), str(last.year)),
        (str(last.year + 1), None),
        (first.strftime(d), last.strftime(d)),
    ]


def test_search_and_open_agree_on_time_ranges(cat):
    """A product a search finds with a time range gives at least one step when opened with
    that range (by its search hit); one it does not find gives none, at both ends."""
    checked = found = 0
    for entry in cat.entries():
        first, last = _span_days(cat.open(entry))
        for time in _ranges(first, last):
            hits = cat.search(product=entry.id, time=time)
            ds = cat.open(hits[0] if hits else entry.id, time=time)
            dim = "time" if "time" in ds.dims else "year"
            assert (ds.sizes[dim] > 0) == bool(hits), (entry.id, time, ds.sizes[dim])
            text = "/".join(v or ".." for v in time)  # the same range as text, same answer
            assert [e.id for e in cat.search(product=entry.id, time=text)] == [e.id for e in hits]
            checked += 1
            found += bool(hits)
    assert checked == 21 * len(cat.entries()) and 0 < found < checked


def test_time_range_ends_at_the_end_of_what_it_names():
    from datetime import datetime

    from fluxscape.catalog.times import bounds

    assert bounds("2021/2022") == (datetime(2021, 1, 1), datetime(2022, 12, 31, 23, 59, 59, 999999))
    assert bounds("2021-02/2021-02") == (
        datetime(2021, 2, 1),
        datetime(2021, 2, 28, 23, 59, 59, 999999),
    )
    assert bounds(("2021-06-30", "2021-06-30"))[1] == datetime(2021, 6, 30, 23, 59, 59, 999999)
    assert bounds("2021-06-30T12:00:00Z/2021-06-30T12:00:00+09:00") == (
        datetime(2021, 6, 30, 12),
        datetime(2021, 6, 30, 3),
    )
    assert bounds("../..") == bounds((None, "..")) == bounds(None) == (None, None)
    for bad in (("2021-13-01", None), "June/.."):  # pandas alone would take June of this year
        with pytest.raises(FluxscapeError, match="not a date"):
            bounds(bad)


def test_open_extract_export_take_an_id_a_product_name_or_a_search_hit(cat, store, tmp_path):
    hit = cat.search(variable="ndvi", bbox=(138.2, 35.8, 138.4, 36.0))[0]
    assert hit.id == "demo.vi"
    time = "2021-06-01/2021-07-31"
    sub = periods(store, "2021-06-01", "2021-07-31").ndvi
    for ref in ("demo.vi", "vi", hit):
        ds = cat.open(ref, time=time)
        np.testing.assert_array_equal(ds.ndvi.values, sub.values)
        assert cat.collection(ref)["id"] == "demo.vi"
        df = cat.extract("ndvi", point=(138.4392, 35.9628), time=time, product=ref)
        px = sub.sel(x=138.4392, y=35.9628, method="nearest")
        assert set(df["product"]) == {"demo.vi"}
        np.testing.assert_array_equal(df["value"].to_numpy(), px.values.astype(float))
        out = cat.export(ref, tmp_path / "ndvi.nc", variables=["ndvi"], time=time)
        np.testing.assert_array_equal(xr.open_dataset(out).ndvi.values, sub.values)
    gone = dataclasses.replace(hit, id="demo.gone")
    with pytest.raises(FluxscapeError, match="no product 'demo.gone'"):
        cat.open(gone)
    with pytest.raises(FluxscapeError, match="no product 'demo.gone' .published: .*demo.vi"):
        cat.extract("ndvi", point=(138.4392, 35.9628), product=gone)


def test_catalog_without_index_gets_it_built_on_open(demo_out, tmp_path):
    from fluxscape.catalog import index
    from fluxscape.catalog.publish import publish_store

    folder = tmp_path / "old"
    for name in ("vi", "phenology"):
        publish_store(demo_out / "products" / f"{name}.zarr", folder, "demo", name)
    written = index.read_rows(folder)
    (folder / index.INDEX_NAME).unlink()
    c = open_catalog(folder)
    assert index.read_rows(folder) == written  # built on open, as a publisher writes it
    assert [e.id for e in c.search(variable="sos")] == ["demo.phenology"]
    assert not list(folder.glob(".index-*")) and (folder / ".lock").exists()


def test_read_only_catalog_without_index_is_searched_in_memory(demo_out, tmp_path, monkeypatch):
    import errno
    import os

    from fluxscape.catalog import index
    from fluxscape.catalog.publish import publish_store

    folder = tmp_path / "ro"
    for name in ("vi", "gosat_l3"):
        publish_store(demo_out / "products" / f"{name}.zarr", folder, "demo", name)
    (folder / index.INDEX_NAME).unlink()
    if os.geteuid() == 0:  # root writes through file modes: refuse as a read-only mount would

        def read_only(catalog_dir):
            raise OSError(errno.EROFS, "Read-only file system", str(catalog_dir))

        monkeypatch.setattr(index, "catalog_lock", read_only)
    folder.chmod(0o555)
    try:
        c = open_catalog(folder)
        assert [e.id for e in c.entries()] == ["demo.gosat_l3", "demo.vi"]
        assert [e.id for e in c.search(variable="ndvi", time="2021-06-01/2021-06-30")] == [
            "demo.vi"
        ]
        assert c.open("vi", time="2021-06-01/2021-06-30").sizes["time"] == 3
        assert list(c.table(product="gosat_l3")["id"]) == ["demo.gosat_l3"]
        assert not (folder / index.INDEX_NAME).exists()
    finally:
        folder.chmod(0o755)
