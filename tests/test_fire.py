"""Fire alerts (issue #15): the contextual 3.9/11 um test on the ``nrt`` sample world.

Array level (fast): every scene of the preset (96 hourly scenes of 110 x 128 native 2 km
pixels) generated in memory and tested: detection rate of clear-view fire-scenes, false
alarms per clear land pixel-scene, the sun-glint trap, the first alert of each fire.
Pipeline level (one module fixture): a few scenes written as HSD files, a ``fire_alerts``
run, the GeoJSON, the alerts parquet, the STAC Items and the server's alerts routes with
access levels.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from conftest import served_app

from fluxscape.products import fire as F
from fluxscape.radiometry import brightness_temperature, glint_angle, planck_radiance
from fluxscape.sample.ahi_writer import target_area_for
from fluxscape.sample.fire_writer import (
    LAKE,
    fires,
    scene_times,
    scene_truth,
    write_fire_scenes,
)
from fluxscape.sample.world import PRESETS, World

SCENE_INTERVAL = timedelta(hours=1)


# --- pure functions ------------------------------------------------------------------------


def test_planck_round_trip_and_frp_coefficient():
    t = np.array([250.0, 300.0, 800.0])
    assert np.allclose(brightness_temperature(planck_radiance(t, 3.9), 3.9), t)
    # Wooster et al. (2003) quote a = 3.0e-9 for MODIS 3.96 um; the fit gives the same
    assert 2.8e-9 < F.frp_coefficient(3.96) < 3.1e-9
    assert 2.9e-9 < F.frp_coefficient(F.AHI_B07_UM) < 3.2e-9


def test_glint_angle_is_zero_at_the_specular_geometry():
    assert glint_angle(30.0, 0.0, 30.0, 180.0) == pytest.approx(0.0, abs=1e-6)
    assert glint_angle(30.0, 180.0, 30.0, 180.0) == pytest.approx(60.0)


def test_one_fire_pixel_in_a_uniform_background_is_found_with_its_frp():
    rng = np.random.default_rng(0)
    t11 = 300 + rng.normal(0, 0.3, (41, 41))
    t4 = t11 + 3 + rng.normal(0, 0.3, (41, 41))
    p, tf = 0.01, 800.0
    l4 = (1 - p) * planck_radiance(t4[20, 20], 3.8853) + p * planck_radiance(tf, 3.8853)
    t4[20, 20] = brightness_temperature(l4, 3.8853)
    res = F.detect_fires(t4, t11, 40.0, 60.0, 4e6)
    assert np.argwhere(res.fire).tolist() == [[20, 20]]
    true_frp = 5.670374419e-8 * p * 4e6 * (tf**4 - t11[20, 20] ** 4) / 1e6
    assert res.frp[20, 20] == pytest.approx(true_frp, rel=0.15)
    # the same pixel inside the glint disc is rejected, not a fire
    glinted = F.detect_fires(t4, t11, 40.0, 5.0, 4e6)
    assert not glinted.fire.any() and glinted.mask[20, 20] == F.MASK["glint"]


# --- the nrt world, array level --------------------------------------------------------------


@pytest.fixture(scope="module")
def world_run():
    """Every scene of the nrt preset tested: per scene the truth and the detection."""
    world = World(PRESETS["nrt"])
    area = target_area_for(world.preset.bbox)
    rng = np.random.default_rng(5)
    out = []
    for t in scene_times():
        sc = scene_truth(world, area, t, rng)
        res = F.detect_fires(sc["bt07"], sc["bt14"], sc["sza"], sc["glint"], 4e6)
        unscreened = (
            F.detect_fires(sc["bt07"], sc["bt14"], sc["sza"], sc["glint"], 4e6, glint_max_deg=0)
            if sc["lake"][sc["glint"] < 15].any()
            else None
        )
        out.append((t, sc, res, unscreened))
    return world, out


def _near(mask: np.ndarray, r: int, c: int) -> bool:
    return bool(mask[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any())


def test_detection_rate_of_clear_view_fire_scenes(world_run):
    _, scenes = world_run
    seen = found = 0
    for _, sc, res, _ in scenes:
        for r, c in sc["fire_pixels"].values():
            if sc["cloud"][r, c] == 0 and sc["glint"][r, c] >= F.GLINT_MAX_DEG:
                seen += 1
                found += _near(res.fire, r, c)
    assert seen > 150
    assert found / seen >= 0.9, f"{found} of {seen} clear-view fire-scenes"


def test_false_alarms_per_clear_land_pixel_scene(world_run):
    _, scenes = world_run
    clear = false = 0
    for _, sc, res, _ in scenes:
        near_fire = np.zeros(res.mask.shape, bool)
        for r, c in sc["fire_pixels"].values():
            near_fire[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2] = True
        land = (sc["cloud"] == 0) & ~sc["lake"] & ~near_fire
        clear += int(land.sum())
        false += int((res.fire & ~near_fire).sum())
    # about 1.07 million clear land pixel-scenes: <= 1 per 10^6 means at most one
    assert clear > 1_000_000
    assert false <= clear / 1e6, f"{false} false alarms in {clear} clear land pixel-scenes"


def test_frp_of_the_world_fires_is_close_to_the_truth(world_run):
    """FRP of each detected clear-view fire pixel against the truth: sigma p A (Tf^4 - Tb^4)
    (A = 4 km2, the area the test is given; Tb the pixel's 11 um background)."""
    world, scenes = world_run
    truth = {f.id: f for f in fires(world)}
    ratios = []
    for _, sc, res, _ in scenes:
        for fid, (r, c) in sc["fire_pixels"].items():
            if sc["cloud"][r, c] > 0 or not res.fire[r, c]:
                continue
            f = truth[fid]
            true = 5.670374419e-8 * f.fraction * 4e6 * (f.temperature_k**4 - 300.0**4) / 1e6
            ratios.append(res.frp[r, c] / true)
    assert len(ratios) > 100
    assert 0.8 < np.median(ratios) < 1.25
    assert np.percentile(ratios, 90) < 1.6


def test_sun_glint_trap_fires_without_screening_and_is_screened(world_run):
    _, scenes = world_run
    trapped = 0
    for _, sc, res, unscreened in scenes:
        assert not (res.fire & sc["lake"]).any()
        if unscreened is not None:
            trapped += int((unscreened.fire & sc["lake"]).any())
    # the trap is real: without the glint screen the lake is a "fire" near 06 UTC
    assert trapped >= 2


def test_first_alert_of_each_fire_within_one_scene_interval(world_run):
    world, scenes = world_run
    checked = 0
    for f in fires(world):
        first_scene = next(
            ((t, sc, res) for t, sc, res, _ in scenes if f.id in sc["fire_pixels"]), None
        )
        assert first_scene is not None
        t, sc, res = first_scene
        r, c = sc["fire_pixels"][f.id]
        if sc["cloud"][r, c] > 0 or sc["glint"][r, c] < F.GLINT_MAX_DEG:
            continue  # no clear view of the fire's first scene
        assert _near(res.fire, r, c), f"{f.id} missed at {t}"
        assert t - f.start <= SCENE_INTERVAL
        checked += 1
    assert checked >= 8


# --- the pipeline ------------------------------------------------------------------------------

SUBSET_TIMES = ("04:00", "06:00", "07:00", "20:00")


@pytest.fixture(scope="module")
def fire_run(tmp_path_factory):
    """Four scenes of 2023-09-15 (04, 06, 07 and 20 UTC: the glint trap at 06, F04 starting at
    06:52, night fires at 20)
    written as HSD files and run through the nrt-alerts recipe."""
    from conftest import REPO

    from fluxscape.pipeline.run import run_workflow

    root = tmp_path_factory.mktemp("nrt")
    world = World(PRESETS["nrt"])
    rng = np.random.default_rng(3)
    write_fire_scenes(
        world, root / "sample" / "ahi_fire", rng, days=("2023-09-15",), times=SUBSET_TIMES
    )
    wf = yaml.safe_load((REPO / "workflows" / "nrt-alerts.yaml").read_text())
    wf["data_dir"] = str(root / "sample")
    wf["output"]["dir"] = str(root / "out")
    wf["period"] = {"start": "2023-09-15", "end": "2023-09-15", "step": "1D"}
    path = root / "wf.yaml"
    path.write_text(yaml.safe_dump(wf))
    run_workflow(path, workers=1)
    return root


def test_run_writes_geojson_parquet_and_stac_items(fire_run):
    out = fire_run / "out"
    geojsons = list((out / "alerts" / "fires").glob("*.geojson"))
    assert len(geojsons) == 1
    fc = json.loads(geojsons[0].read_text())
    assert fc["type"] == "FeatureCollection" and fc["features"]
    props = pd.DataFrame([f["properties"] for f in fc["features"]])
    for key in ("time", "lon", "lat", "bt07", "bt14", "dT", "frp", "confidence", "latency_s"):
        assert key in props
    assert (props["dT"] > 10).all() and (props["frp"] > 0).all()
    assert (props["fluxscape:access"] == "public").all()
    # latency: nominal scene time -> catalog, and file arrival -> catalog (seconds)
    assert (props["latency_s"] > 0).all() and (props["processing_s"] >= 0).all()
    assert (props["processing_s"] < props["latency_s"]).all()
    table = pd.read_parquet(out / "alerts" / "fires" / "alerts.parquet")
    assert len(table) == len(props)
    items = list((out / "catalog" / "alerts" / "items" / "fires").glob("*.json"))
    assert len(items) == len(props)
    coll = json.loads((out / "catalog" / "alerts" / "collection.json").read_text())
    assert coll["id"] == "alerts" and coll["fluxscape:items"] == len(props)
    root = json.loads((out / "catalog" / "catalog.json").read_text())
    assert "./alerts/collection.json" in [link["href"] for link in root["links"]]


def test_run_finds_the_burning_fires_and_not_the_lake(fire_run):
    truth = pd.read_csv(fire_run / "sample" / "ahi_fire" / "truth" / "fire_scenes.csv")
    fc = json.loads(next((fire_run / "out" / "alerts" / "fires").glob("*.geojson")).read_text())
    alerts = pd.DataFrame([f["properties"] for f in fc["features"]])
    alerts["scene"] = pd.to_datetime(alerts["time"]).dt.tz_localize(None)
    truth["scene"] = pd.to_datetime(truth["scene"])
    clear = truth[(truth.cloud == 0) & (truth.glint_deg >= F.GLINT_MAX_DEG)]
    assert len(clear) >= 5  # by day and by night (20 UTC is 03:40 local)
    for _, row in clear.iterrows():
        same = alerts[alerts.scene == row.scene]
        assert (np.hypot(same.lon - row.lon, same.lat - row.lat) < 0.035).any(), row.to_dict()
    for _, a in alerts.iterrows():  # every alert is a burning fire
        same = truth[truth.scene == a.scene]
        assert (np.hypot(same.lon - a.lon, same.lat - a.lat) < 0.035).any(), a.to_dict()
    lake = np.hypot(alerts.lon - LAKE[0], alerts.lat - LAKE[1]) < 0.1
    assert not lake.any()
    ds = xr.open_zarr(fire_run / "out" / "products" / "fires.zarr")
    assert ds.sizes["time"] == len(SUBSET_TIMES)
    assert int((ds["fire_mask"] == F.MASK["glint"]).sum()) > 0  # the trap was screened


def test_alerts_are_served_with_access_levels(fire_run, tmp_path):
    from fluxscape.catalog.alerts import publish_alerts
    from fluxscape.catalog.serve import create_app, hash_token

    # the run's alerts again, as a partners-only product's, in a catalog of their own
    fc = json.loads(next((fire_run / "out" / "alerts" / "fires").glob("*.geojson")).read_text())
    features = fc["features"]
    for f in features:
        f["properties"]["fluxscape:access"] = "partners"
    catalog = tmp_path / "catalog"
    shutil.copytree(fire_run / "out" / "catalog", catalog)
    shutil.rmtree(catalog / "alerts")
    publish_alerts(features, tmp_path, catalog, "fires", "b1")
    token = "s3cret-partner"
    app = create_app(catalog, {hash_token(token): "partners"})
    with served_app(app) as url:
        anon = httpx.get(f"{url}/collections/alerts/items").json()
        assert anon["features"] == []  # the alerts are partners-only
        auth = {"Authorization": f"Bearer {token}"}
        got = httpx.get(f"{url}/collections/alerts/items", headers=auth).json()
        assert len(got["features"]) == len(features)
        assert all(f["collection"] == "alerts" for f in got["features"])
        first = got["features"][0]
        one = httpx.get(f"{url}/collections/alerts/items/{first['id']}", headers=auth)
        assert one.status_code == 200 and one.json()["id"] == first["id"]
        assert httpx.get(f"{url}/collections/alerts/items/{first['id']}").status_code == 404
        when = first["properties"]["datetime"]
        hits = httpx.get(
            f"{url}/collections/alerts/items", params={"datetime": when}, headers=auth
        ).json()["features"]
        assert hits and all(h["properties"]["datetime"] == when for h in hits)
        assert len(hits) < len(features)
        coll = httpx.get(f"{url}/collections/alerts", headers=auth).json()
        assert coll["fluxscape:items"] == len(features)
        assert httpx.get(f"{url}/collections/alerts").json()["fluxscape:items"] == 0
        ids = [c["id"] for c in httpx.get(f"{url}/collections", headers=auth).json()["collections"]]
        assert "alerts" in ids


def test_map_page_shows_the_alerts_layer_with_time(fire_run, tmp_path):
    import re

    from conftest import REPO, headless
    from PIL import Image

    from fluxscape.catalog.serve import create_app

    offline = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
    fc = json.loads(next((fire_run / "out" / "alerts" / "fires").glob("*.geojson")).read_text())
    night = "2023-09-15T20:00"
    want = sum(f["properties"]["time"].startswith(night) for f in fc["features"])
    assert want >= 3
    app = create_app(fire_run / "out" / "catalog", {})
    with served_app(app) as url:
        frag = f"product=nrt-alerts.fires&variable=frp&alerts={night}"
        proc = headless(f"{url}/web/#{frag}", tmp_path, offline, "--dump-dom")
        status = re.search(r'<div id="status" ([^>]*)>', proc.stdout).group(1)
        attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', status))
        assert attrs["ready"] == "1" and attrs["errors"] == "0", status + proc.stdout[-3000:]
        assert attrs["foreign"] == "0"
        # the slider's time: the alerts of the 24 h up to 20 UTC (04, 06, 07 and 20 UTC)
        assert int(attrs["alerts"]) == len(fc["features"])
        assert int(attrs["alert-items"]) == len(fc["features"])
        assert "2023-09-15 20:00 UTC" in proc.stdout
        assert proc.stdout.count("leaflet-interactive") >= len(fc["features"])
        early = headless(
            f"{url}/web/#product=nrt-alerts.fires&alerts=2023-09-15T04:00",
            tmp_path,
            offline,
            "--dump-dom",
        )
        first = dict(
            re.findall(
                r'data-([\w-]+)="([^"]*)"',
                re.search(r'<div id="status" ([^>]*)>', early.stdout).group(1),
            )
        )
        n04 = sum(f["properties"]["time"].startswith("2023-09-15T04:00") for f in fc["features"])
        assert int(first["alerts"]) == n04 < len(fc["features"])
        shot = tmp_path / "alerts.png"
        proc = headless(f"{url}/web/#{frag}", tmp_path, offline, f"--screenshot={shot}")
        assert proc.returncode == 0
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    high = np.all(np.abs(rgb - [0xA5, 0x00, 0x26]) <= 6, axis=-1)  # high-confidence fires
    assert high.sum() > 20
    if os.environ.get("FLUXSCAPE_DOCS_IMAGES") == "1":  # the docs' image, as test_map_page
        shutil.copy(shot, REPO / "docs" / "images" / "alerts.png")


# --- heat waves ----------------------------------------------------------------------------------


def test_heat_wave_onset_and_extent_from_the_world_truth():
    """Daily LST of the disturbance preset (heat wave 2022-07-30..08-10, +6 K in a disc of
    0.12 degree), with 1 K noise and 30 % of days cloudy, against a 2019-2021 baseline."""
    from fluxscape.products import heatwave as H

    world = World(PRESETS["disturbance"])
    hw = world._coef["heat"]
    x = np.arange(138.61, 139.0, 0.02)
    y = np.arange(35.39, 35.0, -0.02)
    lon, lat = np.meshgrid(x, y)
    days = pd.date_range("2019-07-01", "2022-09-30", freq="D")
    days = days[(days.month >= 7) & (days.month <= 9)]
    lst = np.moveaxis(world.land_surface_temperature(lon, lat, days), -1, 0)
    rng = np.random.default_rng(1)
    lst = lst + rng.normal(0, 1.0, lst.shape)
    lst[rng.random(lst.shape) < 0.3] = np.nan
    d = days.values.astype("datetime64[D]")
    base = d < np.datetime64("2022-01-01")
    mean, _ = H.doy_baseline(lst, d, base, 7)
    onset, last, peak = H.onsets(lst - mean, ~base, 4.0, 3)
    events = H.events(onset, last, peak, x, y, d)
    assert len(events) == 1
    ev = events[0]
    truth_onset = pd.Timestamp(hw["first"])
    assert abs((pd.Timestamp(ev["onset"]) - truth_onset).days) <= 1
    assert abs((pd.Timestamp(ev["last"]) - pd.Timestamp(hw["last"])).days) <= 1
    km = 111.32 * hw["radius"]
    true_area = np.pi * km * km * np.cos(np.radians(hw["lat"]))
    assert ev["extent_km2"] == pytest.approx(true_area, rel=0.15)
    assert ev["peak_anomaly_k"] > hw["lst_anomaly_k"]
    assert ev["geometry"]["type"] in ("Polygon", "MultiPolygon")


@pytest.fixture(scope="module")
def heat_run(tmp_path_factory):
    """P-Tree scenes (02:30 UTC, daily) of 15 Jul - 15 Aug 2020-2022 over the disturbance
    preset and a heatwave_alerts run with a 2020-2021 baseline."""
    from fluxscape.pipeline.run import run_workflow
    from fluxscape.sample.ahi_writer import _ptree_truth, ptree_grid, write_ptree_observation

    root = tmp_path_factory.mktemp("heat")
    world = World(PRESETS["disturbance"])
    grid = ptree_grid(world.preset.bbox)
    rng = np.random.default_rng(9)
    for year in (2020, 2021, 2022):
        days = [d.date() for d in pd.date_range(f"{year}-07-15", f"{year}-08-15")]
        truth = _ptree_truth(world, grid, days)
        for day in days:
            nominal = datetime(day.year, day.month, day.day, 2, 30)
            write_ptree_observation(world, grid, nominal, truth[day], root / "ptree", rng)
    wf = {
        "name": "heat",
        "region": {"bbox": list(world.preset.bbox), "crs": "EPSG:4326", "resolution": 0.02},
        "tile_size": 20,
        "period": {"start": "2020-07-01", "end": "2022-08-31", "step": "1D"},
        "data_dir": str(root),
        "inputs": {"ahi": {"reader": "ahi_ptree", "paths": ["ptree/*/*/*/NC_H0?_*.nc"]}},
        "products": {
            "heat": {
                "kind": "heatwave_alerts",
                "input": "ahi",
                "baseline": ["2020-07-01", "2021-12-31"],
            }
        },
        "output": {"dir": str(root / "out")},
    }
    path = root / "heat.yaml"
    path.write_text(yaml.safe_dump(wf))
    run_workflow(path, workers=1)
    return root, world._coef["heat"]


def test_heat_wave_alert_onset_within_one_day(heat_run):
    root, hw = heat_run
    fc = json.loads(next((root / "out" / "alerts" / "heat").glob("*.geojson")).read_text())
    waves = [f for f in fc["features"] if f["properties"]["kind"] == "heatwave"]
    assert len(waves) == 1
    p = waves[0]["properties"]
    assert abs((pd.Timestamp(p["onset"]) - pd.Timestamp(hw["first"])).days) <= 1
    assert np.hypot(p["lon"] - hw["lon"], p["lat"] - hw["lat"]) < 0.05
    km = 111.32 * hw["radius"]
    assert p["extent_km2"] == pytest.approx(
        np.pi * km * km * np.cos(np.radians(hw["lat"])), rel=0.3
    )
    items = list((root / "out" / "catalog" / "alerts" / "items" / "heat").glob("*.json"))
    assert len(items) == 1
    item = json.loads(items[0].read_text())
    assert item["geometry"]["type"] in ("Polygon", "MultiPolygon") and item["bbox"][0] < hw["lon"]
    ds = xr.open_zarr(root / "out" / "products" / "heat.zarr")
    assert int((ds["hot"] == 1).sel(time="2022-08-05").sum()) > 20


def test_alert_features_after_a_time_give_only_newer_scenes(fire_run):
    """What an incremental update asks for: the alerts of the scenes after the last batch."""
    from fluxscape.pipeline.steps.fire import alert_features

    store = fire_run / "out" / "products" / "fires.zarr"
    every = alert_features(store, "fires", 0.0, {})
    newer = alert_features(store, "fires", 0.0, {}, after=np.datetime64("2023-09-15T06:30"))
    assert 0 < len(newer) < len(every)
    assert all(f["properties"]["time"] >= "2023-09-15T07:00" for f in newer)
