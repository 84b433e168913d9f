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
        {"variable": "gpp"},
        {"product": "flux"},
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
