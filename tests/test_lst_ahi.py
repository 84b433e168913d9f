"""Heat stress from Himawari AHI LST (issue 4): the `disturbance` preset's P-Tree scenes (02:30
UTC, every 2nd day of 2017-2022), the split-window adapter and the recipe's ``lst_ahi``
product, against the world's LST and heat-wave truth and against the MODIS ``lst`` product.

The pipeline run is the session's ``disturbance_run`` (workflows/disturbance-fire.yaml). The
AHI truth is the world's skin temperature at the scene: its daytime LST minus the sample
writer's sun-angle term ``4 (1 - cos SZA)`` (:func:`~fluxscape.sample.ahi_writer.
clear_sky_split_window`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import run_cli
from pyorbital.astronomy import cos_zen

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.config import parse_workflow
from fluxscape.pipeline.grid import target_grid
from fluxscape.pipeline.inputs import TileInputs, index_input, read_onto_tile
from fluxscape.pipeline.schema import Region
from fluxscape.readers import split_window
from fluxscape.readers.ahi_ptree import lst_quality, open_ptree
from fluxscape.readers.ontile import tile_lonlat
from fluxscape.readers.registry import get_reader
from fluxscape.sample.ahi_writer import ptree_scan_offset_minutes
from fluxscape.sample.generate import PTREE_DAY_STEP
from fluxscape.sample.world import PRESETS, World

EDGE = 0.015  # degrees, as tests/test_lst.py
SCENE_MINUTES = float(ptree_scan_offset_minutes(35.2))  # scan reaches the region ~5 min late


@pytest.fixture(scope="module")
def world() -> World:
    return World(PRESETS["disturbance"], seed=42)


def _ptree_files(run: Path, pattern: str = "*") -> list[Path]:
    return sorted((run / "sample" / "ahi" / "ptree").glob(f"{pattern}/*/02/NC_H0*.nc"))


def _skin(world: World, lon, lat, days: pd.DatetimeIndex) -> np.ndarray:
    """The world's skin temperature (K) at the 02:30 UTC scenes of ``days``, (y, x, day)."""
    lst = world.land_surface_temperature(lon, lat, days)
    mu = np.stack(
        [
            np.asarray(cos_zen(d + timedelta(hours=2, minutes=30 + SCENE_MINUTES), lon, lat))
            for d in days
        ],
        axis=-1,
    )
    return lst - 4.0 * (1.0 - np.clip(mu, 0, 1))


@pytest.fixture(scope="module")
def ahi_truth(disturbance_run: Path, world: World):
    """The lst_ahi and (MODIS) lst stores, the period means of the world's skin temperature
    on the scene days, each period's share of heat-wave days, and (y, x) masks."""
    out = disturbance_run / "out" / "products"
    ds = xr.open_zarr(out / "lst_ahi.zarr").load()
    modis = xr.open_zarr(out / "lst.zarr").load()
    lon, lat = np.meshgrid(ds.x.values, ds.y.values)
    times = pd.DatetimeIndex(ds.time.values)
    days = pd.date_range(times[0], f"{times[-1].year}-12-31", freq="D")
    period = np.searchsorted(times.values, days.values, side="right") - 1
    scene = np.arange(len(days)) % PTREE_DAY_STEP == 0
    skin = _skin(world, lon, lat, days[scene])
    heat = world.heat_wave(lon, lat, days) > 0
    truth = np.stack([skin[..., period[scene] == t].mean(-1) for t in range(len(times))])
    share = np.stack([heat[..., period == t].mean(-1) for t in range(len(times))])
    hw = world.events()["heat_wave"]
    from_disc = np.hypot(lon - hw["lon"], lat - hw["lat"]) - hw["radius"]
    dist = world.disturbance(lon, lat)
    return {
        "ds": ds,
        "modis": modis,
        "truth": truth,
        "share": share,
        "interior": from_disc < -EDGE,
        "near_heat": from_disc < EDGE,
        "near_patch": dist["disturbed"] | (dist["edge_distance"] < EDGE),
    }


# --- the sample world's P-Tree record --------------------------------------------------------


def test_disturbance_preset_writes_a_0230_ptree_scene_every_2nd_day(disturbance_run):
    info = json.loads((disturbance_run / "sample" / "truth" / "world.json").read_text())
    files = _ptree_files(disturbance_run)
    days = pd.date_range("2017-01-01", "2022-12-31", freq="D")[::PTREE_DAY_STEP]
    assert info["ahi_ptree_files"] == len(files) == len(days) == 1096
    assert {f.name.split("_")[3] for f in files} == {"0230"}
    assert files[0].name.startswith("NC_H08_20170101_0230_R21_FLDK.")
    assert info["ahi_files"] == 0  # no HSD, no 3-a-day P-Tree
    assert "ahi_ptree" not in PRESETS["demo"].sources  # the demo stays as it was


def test_ptree_b15_is_colder_than_b13_by_more_in_the_humid_summer(disturbance_run):
    """The writer's water-vapour term: clear-sky B13 - B15 = 0.3 + 0.55 W K, with W (cm) from
    the world's vapour pressure: about 0.6 cm on clear January days, 2 cm in August."""
    diffs = {}
    for month in ("202201", "202208"):
        d = []
        for path in _ptree_files(disturbance_run, month):
            ds = open_ptree(path, variables=["tbb_13", "tbb_15"])
            clear = (ds.tbb_13.values > 270) & (ds.reflectance_03.values < 0.2)
            d.append((ds.tbb_13.values - ds.tbb_15.values)[clear])
        diffs[month] = float(np.median(np.concatenate(d)))
    assert 0.4 < diffs["202201"] < 1.0 and diffs["202201"] + 0.5 < diffs["202208"] < 3.0, diffs


# --- the adapter: split window per scene -------------------------------------------------------


def test_split_window_scene_lst_within_1_k_of_the_worlds_skin_temperature(disturbance_run, world):
    """Every 2022 scene of May-September on one 40 x 40 tile: clear pixels (reliability 0)
    against the truth; pixels next to clouds (reliability 1) run cold, which is why
    ``max_qa: 0`` leaves them out; cloudy pixels are never usable."""
    tile = target_grid(Region(bbox=PRESETS["disturbance"].bbox), 40).tiles[0].geobox
    files = [str(f) for m in range(5, 10) for f in _ptree_files(disturbance_run, f"2022{m:02d}")]
    index = index_input("ahi", "ahi_ptree", files)
    granules = index.granules
    assert not index.skipped and len(granules) == len(files) >= 70
    assert all("lst" in g.layers for g in granules)
    lon, lat = tile_lonlat(tile)
    err = {0: [], 1: []}
    record = TileInputs()
    for granule, layers in read_onto_tile(
        "ahi_ptree", granules, tile, {"lst"}, {"max_qa": 0}, record
    ):
        day = pd.DatetimeIndex([pd.Timestamp(granule.start.date())])
        skin = _skin(world, lon, lat, day)[..., 0]
        rel = layers["reliability"]
        np.testing.assert_array_equal(layers["usable"], rel == 0)
        assert set(np.unique(rel)) <= {0, 1, 2}
        for q in (0, 1):
            err[q].append((layers["lst"] - skin)[rel == q])
        assert np.all((layers["view_time"] > 11) & (layers["view_time"] < 12.5))
    good, near = np.concatenate(err[0]), np.concatenate(err[1])
    rmse, bias = float(np.sqrt(np.mean(good**2))), float(np.mean(good))
    assert good.size > 20_000
    assert rmse <= 1.0 and abs(bias) <= 0.3, (rmse, bias)
    # cloud edges: a cold tail (partly cloudy pixels the brightness tests miss)
    assert np.mean(near) < bias - 0.5 and np.percentile(near, 5) < np.percentile(good, 5) - 2


def test_split_window_recovers_a_known_surface():
    """Ulivieri et al. (1994) on hand values: a grass surface (NDVI 0.7: full-cover
    emissivities) seen through 1 and 4 cm of water vapour gives the same LST."""
    e13, e15 = split_window.ndvi_emissivity(np.array([0.7, 0.1, np.nan]))
    np.testing.assert_allclose(e13[:2], [0.982, 0.966])
    assert np.isnan(e13[2])
    lst, deficit = 300.0, 48 * (1 - 0.9835) - 75 * (0.982 - 0.985)
    for d in (0.85, 2.5):  # B13 - B15 (K)
        t13 = lst - deficit - 1.8 * d
        got = split_window.split_window_lst(t13, t13 - d, e13[0], e15[0])
        assert got == pytest.approx(lst, abs=1e-9)


def test_lst_quality_marks_clouds_their_2_pixel_edges_and_missing_lst():
    red, bt, lst = np.full((7, 7), 0.05), np.full((7, 7), 290.0), np.full((7, 7), 300.0)
    red[3, 3] = 0.5  # bright cloud
    bt[0, 6] = 250.0  # cold cloud top
    lst[6, 0] = np.nan  # no LST (fill)
    q = lst_quality(red, bt, lst)
    assert q[3, 3] == 2 and q[0, 6] == 2 and q[6, 0] == 3
    assert q[1, 3] == 1 and q[5, 5] == 1 and q[2, 4] == 1 and q[2, 6] == 1  # <= 2 pixels
    assert q[0, 3] == 0 and q[6, 6] == 0 and q[3, 0] == 0  # 3 pixels away


# --- the lst_ahi store -------------------------------------------------------------------------


def test_lst_ahi_store_follows_the_lst_contract(ahi_truth):
    ds = ahi_truth["ds"]
    assert set(ds.data_vars) == {"lst", "lst_count", "lst_zscore", "heat_stress"}
    assert ds.sizes["time"] == 6 * 46 and ds.attrs["skipped_inputs"] == []
    assert ds.lst.attrs["units"] == "K"
    assert "Ulivieri et al. 1994 split window on B13/B15" in ds.attrs["summary"]


def test_lst_ahi_period_mean_within_1_k_of_the_worlds_skin_temperature(ahi_truth):
    """8-day means of the clear scenes (about 4 scenes, half of them clear) against the mean
    skin temperature of the period's scene days: noise, emissivity-model error and the
    clear-scene sampling."""
    ds, truth = ahi_truth["ds"], ahi_truth["truth"]
    ok = np.isfinite(ds.lst.values)
    assert ok.mean() >= 0.85  # periods with no clear scene at a pixel are NaN
    err = ds.lst.values[ok] - truth[ok]
    rmse, bias = float(np.sqrt(np.mean(err**2))), float(np.mean(err))
    assert rmse <= 1.0 and abs(bias) <= 0.4, (rmse, bias)


def test_lst_ahi_detects_the_heat_wave_with_few_false_alarms(ahi_truth):
    ds = ahi_truth["ds"]
    flag = ds.heat_stress.values
    on = (ahi_truth["share"] >= 0.5) & ahi_truth["interior"][None] & np.isfinite(flag)
    assert on.sum() >= 400
    hit = float(np.mean(flag[on] == 1))
    assert hit >= 0.9, hit
    assert np.nanmedian(ds.lst_zscore.values[on]) >= 3
    quiet = (ahi_truth["share"] == 0) & ~ahi_truth["near_heat"][None]
    quiet &= ~ahi_truth["near_patch"][None] & np.isfinite(flag)
    year = pd.DatetimeIndex(ds.time.values).year.values[:, None, None]
    for which in (year == 2022, year < 2022):
        rate = float(np.mean(flag[quiet & which] == 1))
        assert rate <= 0.02, rate


def test_lst_ahi_heat_stress_agrees_with_modis(ahi_truth):
    """Two sensors, one world: where both products have a flag they agree on >= 97 % of the
    pixel-periods (2022: >= 93 %, the heat wave and the warmer patches), and on the heat
    wave's pixel-periods both flag >= 90 %."""
    a, m = ahi_truth["ds"].heat_stress.values, ahi_truth["modis"].heat_stress.values
    both = np.isfinite(a) & np.isfinite(m)
    assert both.mean() >= 0.75
    assert np.mean(a[both] == m[both]) >= 0.97
    year = pd.DatetimeIndex(ahi_truth["ds"].time.values).year.values[:, None, None]
    in22 = both & (year == 2022)
    assert np.mean(a[in22] == m[in22]) >= 0.93
    on = both & (ahi_truth["share"] >= 0.5) & ahi_truth["interior"][None]
    assert np.mean((a[on] == 1) & (m[on] == 1)) >= 0.9


# --- bad input -------------------------------------------------------------------------------

AHI_LST = """\
name: lst-ahi-small
region: {{bbox: [138.75, 35.2, 138.85, 35.3], crs: EPSG:4326, resolution: 0.01}}
tile_size: 20
period: {{start: 2021-01-01, end: 2022-12-31, step: 16D}}
data_dir: {data}
inputs:
  ahi: {{reader: ahi_ptree, paths: ["ptree/*.nc"]}}
products:
  lst_ahi: {{kind: lst, input: ahi, step: 8D, baseline: [2021, 2021], min_baseline: 2}}
output: {{dir: out}}
dask: {{workers: 1}}
"""


def test_corrupt_ptree_file_is_skipped_and_recorded(disturbance_run, tmp_path):
    folder = tmp_path / "data" / "ptree"
    folder.mkdir(parents=True)
    files = [f for y in ("2021", "2022") for f in _ptree_files(disturbance_run, f"{y}*")]
    for f in files:
        (folder / f.name).symlink_to(f)
    victim = folder / files[-1].name
    data = files[-1].read_bytes()
    victim.unlink()
    victim.write_bytes(data[: len(data) // 3])  # truncated download
    wf = tmp_path / "lst.yaml"
    wf.write_text(AHI_LST.format(data=tmp_path / "data"))
    proc = run_cli("run", wf, "--out", tmp_path / "out")
    assert "skipped input" in proc.stderr and victim.name in proc.stderr
    ds = xr.open_zarr(tmp_path / "out" / "products" / "lst_ahi.zarr")
    skipped = {Path(s["file"]).name: s["reason"] for s in ds.attrs["skipped_inputs"]}
    assert list(skipped) == [victim.name]
    assert "truncated or corrupt" in skipped[victim.name]
    assert ds.sizes["time"] == 2 * 46
    assert np.isfinite(ds.lst.values).mean() >= 0.8


def test_lst_from_a_reader_without_lst_names_the_readers_that_have_it(tmp_path):
    assert get_reader("ahi_ptree").gives("lst")
    assert not get_reader("ahi_hsd").gives("lst")  # HSD sample files carry B13 only
    assert not get_reader("sgli_l2").gives("lst")
    (tmp_path / "x.h5").write_bytes(b"")
    text = f"""
name: lst_x
region: {{bbox: [138.0, 35.5, 138.5, 36.0]}}
period: {{start: 2022-01-01, end: 2022-12-31, step: 8D}}
data_dir: {tmp_path}
inputs:
  sgli: {{reader: sgli_l2, paths: ["*.h5"]}}
products:
  lst_x: {{kind: lst, input: sgli, baseline: [2022, 2022]}}
"""
    with pytest.raises(FluxscapeError, match=r"products\.lst_x\.input: .*gives no lst.*ahi_ptree"):
        parse_workflow(text)
