"""Disturbance alerts: break patches of a disturbance store as GeoJSON features and STAC
Items of the catalog's ``alerts`` collection (issue #15)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import CRS
from shapely.geometry import shape

from fluxscape.catalog.alerts import publish_alerts, read_alerts
from fluxscape.pipeline.steps.disturbance_alerts import disturbance_features


def _store(path, x, y, crs: str):
    """A two-year disturbance store with a 3x2 patch (onsets 100..104, one early outlier at
    40), a single isolated pixel, and nothing in the second year."""
    shape = (2, y.size, x.size)
    disturbed = np.zeros(shape, "uint8")
    date = np.full(shape, np.nan, "float32")
    magnitude = np.full(shape, np.nan, "float32")
    disturbed[0, 2:4, 3:6] = 1
    date[0, 2:4, 3:6] = [[100, 101, 102], [103, 104, 40]]
    magnitude[0, 2:4, 3:6] = -0.3
    disturbed[0, 8, 8] = 1
    date[0, 8, 8] = 200
    ds = xr.Dataset(
        {
            "disturbed": (("year", "y", "x"), disturbed),
            "date": (("year", "y", "x"), date),
            "magnitude": (("year", "y", "x"), magnitude),
            "spatial_ref": ((), 0, {"crs_wkt": CRS.from_user_input(crs).to_wkt()}),
        },
        coords={"year": [2022, 2023], "y": y, "x": x},
    )
    ds.to_zarr(path, consolidated=False)
    return path


def test_patches_on_a_lonlat_grid(tmp_path):
    x = 138.0 + 0.01 * np.arange(10) + 0.005
    y = 36.0 - 0.01 * np.arange(10) - 0.005
    store = _store(tmp_path / "d.zarr", x, y, "EPSG:4326")
    features = disturbance_features(store, "dist", "partners", min_pixels=2)
    assert len(features) == 1  # the single pixel is below min_pixels
    p = features[0]["properties"]
    assert p["kind"] == "disturbance" and p["pixels"] == 6 and p["year"] == 2022
    # the median onset (day 101 or 102), not the outlier's day 40
    assert p["onset"] in ("2022-04-11", "2022-04-12") and p["time"].startswith(p["onset"])
    assert p["magnitude"] == pytest.approx(-0.3)
    assert p["fluxscape:access"] == "partners"
    # six 0.01-degree cells near 36 N: about 6 x 1.11 x 0.90 km2
    assert p["area_km2"] == pytest.approx(6 * 1.1132 * 0.9006, rel=0.01)
    assert p["lon"] == pytest.approx(138.045, abs=0.003)
    w, s_, e, n = shape(features[0]["geometry"]).bounds
    assert (w, e) == pytest.approx((138.03, 138.06)) and (s_, n) == pytest.approx((35.96, 35.98))
    # ids are stable across calls (an update republishes the same break in place)
    again = disturbance_features(store, "dist", "partners", min_pixels=2)
    assert again[0]["properties"]["id"] == p["id"]
    assert len(disturbance_features(store, "dist", "public", min_pixels=1)) == 2


def test_patches_on_a_projected_grid_are_given_in_lonlat(tmp_path):
    x = 500_000.0 + 1000 * np.arange(10) + 500
    y = 4_000_000.0 - 1000 * np.arange(10) - 500
    store = _store(tmp_path / "u.zarr", x, y, "EPSG:32654")
    (f,) = disturbance_features(store, "dist", "public", min_pixels=2)
    p = f["properties"]
    assert p["area_km2"] == pytest.approx(6.0)
    assert 140.9 < p["lon"] < 141.1 and 36.0 < p["lat"] < 36.2  # UTM 54N, 4000 km north
    ring = np.array(f["geometry"]["coordinates"][0])
    assert (ring[:, 0] > 140).all() and (ring[:, 1] < 90).all()


def test_published_as_items_of_the_alerts_collection(tmp_path):
    x = 138.0 + 0.01 * np.arange(10) + 0.005
    y = 36.0 - 0.01 * np.arange(10) - 0.005
    store = _store(tmp_path / "d.zarr", x, y, "EPSG:4326")
    features = disturbance_features(store, "dist", "partners", min_pixels=1)
    catalog = tmp_path / "catalog"
    publish_alerts(features, tmp_path, catalog, "dist", "b1")
    publish_alerts(
        disturbance_features(store, "dist", "partners", 1), tmp_path, catalog, "dist", "b2"
    )
    items = read_alerts(catalog)
    assert len(items) == 2  # republished in place, not duplicated
    assert {i["properties"]["kind"] for i in items} == {"disturbance"}
    assert read_alerts(catalog, {"public"}) == []  # partners-only
    collection = json.loads((catalog / "alerts" / "collection.json").read_text())
    assert "disturbance" in collection["summaries"]["fluxscape:alert_kind"]
    fc = json.loads((tmp_path / "alerts" / "dist" / "b2.geojson").read_text())
    assert len(fc["features"]) == 2
    assert pd.Timestamp(items[0]["properties"]["datetime"]).year == 2022
