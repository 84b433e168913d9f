"""The lst and disturbance products on a projected grid (issue #20): the disturbance-fire
recipe's products on UTM zone 54N at 1 km, scored against the sample world's truth at each
pixel's lon/lat with the floors the lon/lat run meets (tests/test_lst.py, test_recipes.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from conftest import REPO, assert_detection_floors, on_sample, run_cli
from pyproj import Transformer

from fluxscape.sample.world import PRESETS, World

UTM = "EPSG:32654"


@pytest.fixture(scope="module")
def utm_run(disturbance_run, tmp_path_factory):
    """vi, lst and disturbance of workflows/disturbance-fire.yaml (without the AHI lst and
    the MCD64A1 reference) on EPSG:32654 at 1000 m over the same lon/lat box."""
    folder = tmp_path_factory.mktemp("utm")
    path = on_sample(
        REPO / "workflows" / "disturbance-fire.yaml", disturbance_run / "sample", folder
    )
    doc = yaml.safe_load(path.read_text())
    doc["region"].update(crs=UTM, resolution=1000.0)
    doc["tile_size"] = 25
    del doc["products"]["lst_ahi"], doc["inputs"]["ahi_ptree"], doc["inputs"]["burned_area"]
    del doc["products"]["disturbance"]["reference"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    run_cli("run", path)
    return folder / "out" / "products"


def _lonlat(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(ds.x.values, ds.y.values)
    return Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(x, y)


def test_lst_on_utm_recovers_the_worlds_period_mean_lst_within_1_k(utm_run):
    ds = xr.open_zarr(utm_run / "lst.zarr").sel(time=slice("2022-01-01", "2022-12-31")).load()
    assert "UTM zone 54N" in ds.spatial_ref.attrs["crs_wkt"]
    lon, lat = _lonlat(ds)
    world = World(PRESETS["disturbance"], seed=42)
    bnds = ds.time_bnds.values
    truth = np.stack(
        [
            world.land_surface_temperature(lon, lat, pd.date_range(s, e, inclusive="left")).mean(-1)
            for s, e in bnds
        ]
    )
    ok = np.isfinite(ds.lst.values)
    assert ok.mean() >= 0.9
    err = ds.lst.values[ok] - truth[ok]
    assert np.sqrt(np.mean(err**2)) <= 1.0 and abs(np.mean(err)) <= 0.3


def test_disturbance_on_utm_detects_the_worlds_clearings_and_fires(utm_run):
    """The lon/lat run's floors (F1 >= 0.85, median onset error <= 16 days, false alarms
    <= 2 %) on the UTM grid, every pixel scored at its centre's lon/lat."""
    ds = xr.open_zarr(utm_run / "disturbance.zarr").sel(year=2022).load()
    lon, lat = _lonlat(ds)
    truth = World(PRESETS["disturbance"], seed=42).disturbance(lon, lat)
    assert truth["disturbed"].sum() > 150
    assert_detection_floors(ds, truth)
    assert np.isfinite(ds.heat_stress_days.values).mean() > 0.9  # the lst product, on UTM too
