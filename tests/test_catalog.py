"""Catalog from Python and the command line: list, search, lazy open, extract."""

from __future__ import annotations

import json

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import run_cli

from fluxscape.catalog import open_catalog
from fluxscape.errors import FluxscapeError


@pytest.fixture(scope="session")
def cat(demo_out):
    return open_catalog(demo_out / "catalog")


@pytest.fixture(scope="session")
def store(demo_out):
    return xr.open_zarr(demo_out / "products" / "vi.zarr")


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
    assert pd.DatetimeIndex(ds.time.values).month.tolist() == [6, 6]


def test_point_extract_equals_nearest_store_pixel(cat, store):
    df = cat.extract("ndvi", point=(138.4392, 35.9628))
    px = store.ndvi.sel(x=138.4392, y=35.9628, method="nearest")
    assert list(df.columns) == ["product", "time", "variable", "value", "x", "y"]
    np.testing.assert_array_equal(df["value"].to_numpy(), px.values.astype(float))
    assert df["x"].iloc[0] == pytest.approx(138.435) and df["y"].iloc[0] == pytest.approx(35.965)


def test_bbox_extract_is_mean_of_pixels_inside(cat, store):
    df = cat.extract("evi", bbox=(138.2, 35.8, 138.3, 35.9), time="2021-07-01/2021-07-31")
    sub = store.evi.sel(
        x=slice(138.2, 138.3), y=slice(35.9, 35.8), time=slice("2021-07-01", "2021-07-31")
    )
    np.testing.assert_allclose(df["value"], sub.mean(("y", "x")).values, rtol=1e-6)
    assert (df["n_pixels"] == 100).all()


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


def test_polygon_mean_uses_pixels_inside_only(cat, store, tmp_path):
    # a triangle over about half of a 0.1 x 0.1 degree box; no pixel centre on its edges
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
    sub = store.evi.sel(
        x=slice(138.2, 138.3), y=slice(35.9, 35.8), time=slice("2021-07-01", "2021-07-31")
    )
    xx, yy = np.meshgrid(sub.x.values, sub.y.values)
    inside = (yy - 35.8) < 1.05 * (xx - 138.2)  # under the long edge
    expect = sub.where(xr.DataArray(inside, dims=("y", "x"))).mean(("y", "x")).values
    np.testing.assert_allclose(df["value"], expect, rtol=1e-6)
    assert (df["n_pixels"] == inside.sum()).all() and 45 <= inside.sum() <= 55


def test_bad_sites_and_polygon_are_clear_errors(cat, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x\nA,1\n")
    with pytest.raises(FluxscapeError, match="bad.csv.*site, lon, lat"):
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
    sub = store.ndvi.sel(
        time=slice("2021-06-01", "2021-07-31"), x=slice(138.2, 138.6), y=slice(36.1, 35.8)
    )
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 4326
        assert src.driver == "GTiff" and src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.count == sub.sizes["time"] == 4
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
