"""The demo run: vi product recovers the sample truth, is CF/GDAL-readable and catalogued;
resume rewrites nothing; bad inputs are skipped and recorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
import xarray as xr
from conftest import copy_sample_inputs, run_cli, small_workflow

from fluxscape.sample.world import PRESETS, World

DEMO_BBOX = PRESETS["demo"].bbox


@pytest.fixture(scope="session")
def vi(demo_out: Path) -> xr.Dataset:
    return xr.open_zarr(demo_out / "products" / "vi.zarr").load()


@pytest.fixture(scope="session")
def towers(sample_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sample_dir / "truth" / "towers.csv")


def _observation_dates(px: xr.Dataset) -> pd.DatetimeIndex:
    years = pd.DatetimeIndex(px.time.values).year
    return pd.to_datetime([f"{y}-01-01" for y in years]) + pd.to_timedelta(
        px.doy.values - 1, unit="D"
    )


def test_demo_prints_summary_and_query_commands(demo_out):
    text = (demo_out / "demo_stdout.txt").read_text()
    assert "demo finished" in text
    assert "fluxscape catalog extract" in text and "fluxscape catalog list" in text
    assert (demo_out / "workflow.yaml").exists()


def test_ndvi_at_tower_pixels_matches_truth_within_noise(vi, towers, sample_dir):
    world = World(
        PRESETS["demo"], seed=json.loads((sample_dir / "truth" / "world.json").read_text())["seed"]
    )
    for t in towers.itertuples():
        px = vi.sel(x=t.lon, y=t.lat, method="nearest")
        good = (px.qa.values == 0) & np.isfinite(px.ndvi.values)
        assert good.sum() >= 25, t.site_id
        dates = _observation_dates(px)[good]
        truth = world.ndvi(np.array(float(px.x)), np.array(float(px.y)), dates)
        residual = px.ndvi.values[good] - truth
        # reflectance noise of 0.004 gives ~0.015 NDVI noise; the season spans ~0.3-0.6
        assert np.sqrt(np.mean(residual**2)) < 0.025, t.site_id
        assert abs(residual.mean()) < 0.01, t.site_id
        assert np.corrcoef(px.ndvi.values[good], truth)[0, 1] > 0.97, t.site_id


def test_cloudy_and_snow_observations_are_masked(vi):
    cloudy = vi.qa.values >= 2
    assert cloudy.sum() > 1000  # the sample world has clouds
    assert np.isnan(vi.ndvi.values[cloudy]).all()
    assert np.isnan(vi.evi.values[cloudy]).all()
    good = vi.qa.values == 0
    assert np.isfinite(vi.ndvi.values[good]).all()


def test_evi2_and_nbr_follow_their_formulas_from_ndvi_season(vi):
    ndvi, evi2 = vi.ndvi.values, vi.evi2.values
    ok = np.isfinite(ndvi) & np.isfinite(evi2)
    assert np.corrcoef(ndvi[ok], evi2[ok])[0, 1] > 0.9
    assert np.nanmax(evi2) < 1.0 and np.nanmin(vi.nbr.values) > -1.0


def test_store_follows_cf_and_design_contract(demo_out, vi):
    assert vi.ndvi.dims == ("time", "y", "x")
    assert vi.sizes["time"] == 46 and vi.sizes["x"] == 100 and vi.sizes["y"] == 100
    for name in ("ndvi", "evi", "evi2", "nbr", "qa", "doy"):
        attrs = vi[name].attrs
        assert attrs["units"] and attrs["long_name"], name
        assert vi[name].encoding.get("grid_mapping", attrs.get("grid_mapping")) == "spatial_ref"
    assert vi.ndvi.attrs["standard_name"] == "normalized_difference_vegetation_index"
    assert "WGS 84" in vi.spatial_ref.attrs["crs_wkt"]
    for key in (
        "title",
        "summary",
        "source",
        "history",
        "fluxscape_version",
        "workflow",
        "inputs",
        "skipped_inputs",
        "models",
        "date_created",
    ):
        assert key in vi.attrs, key
    assert len(vi.attrs["inputs"]) == 46
    # provenance from the listing (size, modification time); a demo output made before the
    # index read listings holds SHA-256 digests instead
    assert all(
        (i["size"] > 0 and i["modified"].endswith("Z")) if "size" in i else len(i["sha256"]) == 64
        for i in vi.attrs["inputs"]
    )
    assert vi.attrs["skipped_inputs"] == []
    assert "name: demo" in vi.attrs["workflow"]
    zarr_json = demo_out / "products" / "vi.zarr" / ".zmetadata"
    assert zarr_json.exists()


def test_gdal_opens_ndvi_with_crs_and_bounds(demo_out):
    store = demo_out / "products" / "vi.zarr"
    with rasterio.open(f'ZARR:"{store}":/ndvi') as src:
        assert src.crs.to_epsg() == 4326
        w, s, e, n = DEMO_BBOX
        assert src.bounds.left == pytest.approx(w, abs=1e-9)
        assert src.bounds.right == pytest.approx(e, abs=1e-9)
        assert src.bounds.bottom == pytest.approx(s, abs=1e-9)
        assert src.bounds.top == pytest.approx(n, abs=1e-9)
        assert src.count == 46
        band = src.read(20)
    expected = xr.open_zarr(store).ndvi.isel(time=19).values
    np.testing.assert_array_equal(band, expected)


def test_catalog_collection_describes_store(demo_out):
    coll = pystac.Collection.from_file(str(demo_out / "catalog" / "demo.vi" / "collection.json"))
    asset = coll.assets["zarr"]
    assert asset.media_type == "application/vnd+zarr" and asset.roles == ["data"]
    store = (demo_out / "catalog" / "demo.vi" / asset.href).resolve()
    assert store == (demo_out / "products" / "vi.zarr").resolve()
    assert coll.extent.spatial.bboxes[0] == pytest.approx(list(DEMO_BBOX))
    assert coll.extent.temporal.intervals[0][0].year == 2021
    cube = coll.to_dict()
    assert set(cube["cube:dimensions"]) == {"x", "y", "time"}
    assert cube["cube:variables"]["ndvi"]["unit"] == "1"
    assert cube["fluxscape:product"] == "vi" and cube["fluxscape:inputs"] == 46
    root = json.loads((demo_out / "catalog" / "catalog.json").read_text())
    assert any(link["href"] == "./demo.vi/collection.json" for link in root["links"])


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_resume_of_finished_run_rewrites_nothing(demo_out):
    before = _tree_digest(demo_out / "products")
    mtimes = {p: p.stat().st_mtime_ns for p in (demo_out / "products").rglob("*")}
    proc = run_cli("run", demo_out / "workflow.yaml", "--resume")
    assert "0 of 16 tiles run" in proc.stdout
    assert _tree_digest(demo_out / "products") == before
    assert {p: p.stat().st_mtime_ns for p in (demo_out / "products").rglob("*")} == mtimes


def test_rerun_without_resume_refuses_to_overwrite(demo_out):
    proc = run_cli("run", demo_out / "workflow.yaml", check=False)
    assert proc.returncode == 1
    assert "--resume" in proc.stderr and "Traceback" not in proc.stderr


def test_unreadable_input_is_reported_skipped_and_recorded(tmp_path, sample_dir, small_reference):
    data = copy_sample_inputs(sample_dir, tmp_path / "data")
    bad = data / "modis" / "MOD13A2.A2021017.h29v05.061.2099001000000.hdf"
    bad.write_bytes(b"\x0e\x03\x13\x01" + bytes(range(256)) * 4)
    wf = small_workflow(tmp_path, data)
    proc = run_cli("run", wf, "--out", tmp_path / "out")
    assert bad.name in proc.stderr and "skipped" in proc.stderr
    ds = xr.open_zarr(tmp_path / "out" / "products" / "vi.zarr")
    skipped = ds.attrs["skipped_inputs"]
    assert [Path(s["file"]).name for s in skipped] == [bad.name]
    assert skipped[0]["reason"]
    ref = xr.open_zarr(small_reference / "products" / "vi.zarr")
    np.testing.assert_array_equal(ds.ndvi.values, ref.ndvi.values)
    coll = json.loads((tmp_path / "out" / "catalog" / "small.vi" / "collection.json").read_text())
    assert coll["fluxscape:skipped_inputs"][0]["file"].endswith(bad.name)
