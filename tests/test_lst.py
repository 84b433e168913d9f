"""Heat stress from MODIS LST (issue 4): the sample world's MOD11A2 tiles, the ``lst`` product and
the heat variables of the ``disturbance`` product, against the world's LST and heat-wave truth.

The pipeline run is the session's `disturbance` preset run of workflows/disturbance-fire.yaml
(conftest ``disturbance_run``): 8-day LST on a 0.01 degree grid, 2017-2021 baseline, z > 2.
Pixels within :data:`EDGE` of the heat-wave disc or of a disturbed patch are left out where a
test needs a clean inside/outside: nearest-neighbour resampling of 1 km sinusoidal pixels onto
the 0.01 degree grid may take a neighbour's value there.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REPO, run_cli

from fluxscape.errors import WorkflowError
from fluxscape.pipeline.config import parse_workflow, run_order
from fluxscape.pipeline.timeaxis import period_lengths
from fluxscape.products import anomaly
from fluxscape.readers import qa
from fluxscape.readers.modis_hdf4 import open_modis_tile
from fluxscape.sample.world import PRESETS, World

EDGE = 0.015  # degrees (1.5 grid pixels)


@pytest.fixture(scope="module")
def world() -> World:
    return World(PRESETS["disturbance"], seed=42)


@pytest.fixture(scope="module")
def lst_truth(disturbance_run: Path, world: World):
    """The lst store (loaded), the world's period-mean LST on its grid, each period's share of
    heat-wave days at each pixel, and masks (y, x): heat-wave disc interior, heat-wave
    neighbourhood (disc plus EDGE), disturbed patches plus EDGE."""
    ds = xr.open_zarr(disturbance_run / "out" / "products" / "lst.zarr").load()
    lon, lat = np.meshgrid(ds.x.values, ds.y.values)
    times = pd.DatetimeIndex(ds.time.values)
    days = pd.date_range(times[0], f"{times[-1].year}-12-31", freq="D")
    period = np.searchsorted(times.values, days.values, side="right") - 1
    daily = world.land_surface_temperature(lon, lat, days)
    heat = world.heat_wave(lon, lat, days) > 0
    truth = np.stack([daily[..., period == t].mean(-1) for t in range(len(times))])
    share = np.stack([heat[..., period == t].mean(-1) for t in range(len(times))])
    hw = world.events()["heat_wave"]
    from_disc = np.hypot(lon - hw["lon"], lat - hw["lat"]) - hw["radius"]
    dist = world.disturbance(lon, lat)
    near_patch = dist["disturbed"] | (dist["edge_distance"] < EDGE)
    return {
        "ds": ds,
        "truth": truth,
        "share": share,
        "interior": from_disc < -EDGE,
        "near_heat": from_disc < EDGE,
        "near_patch": near_patch,
        "hw": hw,
        "lonlat": (lon, lat),
    }


# --- the sample world's MOD11A2 files --------------------------------------------------------


def _mod11(disturbance_run: Path, when: str = "2022209") -> Path:
    return next((disturbance_run / "sample" / "modis").glob(f"MOD11A2.A{when}.h29v05.*.hdf"))


def test_disturbance_preset_writes_8_day_mod11a2_tiles_for_each_year(disturbance_run):
    info = json.loads((disturbance_run / "sample" / "truth" / "world.json").read_text())
    assert info["modis_lst_files"] == 6 * 46  # DOY 1, 9, ..., 361 of 2017-2022
    assert info["modis_files"] == 6 * 23
    assert "modis_lst" not in PRESETS["demo"].sources  # the demo stays as fast as before


def test_mod11a2_sample_file_decodes_to_kelvin_emissivity_and_view_geometry(disturbance_run, world):
    ds = open_modis_tile(_mod11(disturbance_run))
    assert ds.attrs["grid_name"] == "MODIS_Grid_8Day_1km_LST" and ds.sizes == {"y": 1200, "x": 1200}
    lst = ds.LST_Day_1km.values
    produced = np.isfinite(lst)
    assert 0.001 < produced.mean() < 0.02  # the region's window only; the rest is fill
    assert ds.LST_Day_1km.attrs["units"] == "K" and 285 < np.nanmedian(lst) < 315
    mandatory = qa.bits(ds.QC_Day.values, 0, 1)
    np.testing.assert_array_equal(produced, mandatory <= 1)  # 10/11: LST not produced
    emis = ds.Emis_31.values[produced]
    assert 0.96 < emis.min() and emis.max() < 0.99  # DN * 0.002 + 0.49 (CF order)
    angle = ds.Day_view_angl.values[produced]
    assert -65 <= angle.min() < 0 < angle.max() <= 65  # DN - 65 degrees, both swath sides
    assert np.nanmedian(ds.Day_view_time.values) == pytest.approx(10.5, abs=0.2)  # local hours


def test_mod11a2_sample_attributes_match_a_real_mod11_file(disturbance_run, realdata_dir):
    from pyhdf.SD import SD

    real = SD(str(realdata_dir / "modis_hdf4" / "MOD11B2.A2017001.h14v04.006.2017013155631.hdf"))
    ours = SD(str(_mod11(disturbance_run)))
    keys = ("scale_factor", "add_offset", "_FillValue", "valid_range", "units")
    pairs = {"LST_Day_1km": "LST_Day_6km", "QC_Day": "QC_Day", "Day_view_time": "Day_view_time"}
    pairs |= {n: n for n in ("Day_view_angl", "Emis_31", "Emis_32", "LST_Night_1km")}
    pairs["LST_Night_1km"] = "LST_Night_6km"
    for mine, theirs in pairs.items():
        a, b = ours.select(mine), real.select(theirs)
        assert a.info()[3] == b.info()[3], mine  # HDF data type
        got, want = a.attributes(), b.attributes()
        assert {k: got.get(k) for k in keys} == {k: want.get(k) for k in keys}, mine


# --- the lst store against the truth -----------------------------------------------------------


def test_lst_store_follows_the_product_contract(lst_truth):
    ds = lst_truth["ds"]
    assert set(ds.data_vars) == {"lst", "lst_count", "lst_zscore", "heat_stress"}
    for name in ds.data_vars:
        assert ds[name].dims == ("time", "y", "x")
        assert ds[name].attrs["grid_mapping"] == "spatial_ref" and "long_name" in ds[name].attrs
    assert ds.lst.attrs["units"] == "K" and ds.lst.attrs["standard_name"] == "surface_temperature"
    step = np.diff(pd.DatetimeIndex(ds.time.values).day_of_year)
    assert set(step[step > 0]) == {8} and ds.sizes["time"] == 6 * 46
    assert ds.attrs["baseline_period"] == "2017-01-01/2021-12-31"
    assert ds.attrs["skipped_inputs"] == []


def test_lst_store_has_quicklooks_and_a_catalog_entry(disturbance_run):
    from fluxscape.catalog import open_catalog

    out = disturbance_run / "out"
    for name in ("lst_2022.png", "lst_zscore_2022.png", "heat_stress_2022.png"):
        png = out / "quicklooks" / "lst" / name
        assert png.read_bytes()[:4] == b"\x89PNG", name
    (entry,) = open_catalog(out / "catalog" / "catalog.json").search(product="lst")
    assert {"lst", "lst_count", "lst_zscore", "heat_stress"} <= set(entry.variables)
    # the extent ends with the last 8-day period, at the end of the year
    assert entry.time[0].startswith("2017-01-01") and entry.time[1].startswith("2022-12-31")


def test_lst_recovers_the_worlds_period_mean_lst_within_1_k(lst_truth):
    """Clear-sky MOD11 composites against the mean of the period's true daily LST: retrieval
    noise (0.7 K per day), clear-day sampling (clear days are a little warmer) and the
    contaminated composites that QC 01 marks and max_qa 0 leaves out."""
    ds, truth = lst_truth["ds"], lst_truth["truth"]
    ok = np.isfinite(ds.lst.values)
    assert ok.mean() >= 0.9  # 8 days rarely all cloudy
    err = ds.lst.values[ok] - truth[ok]
    rmse, bias = float(np.sqrt(np.mean(err**2))), float(np.mean(err))
    assert rmse <= 1.0, (rmse, bias)
    assert abs(bias) <= 0.3, (rmse, bias)
    np.testing.assert_array_equal(ok, ds.lst_count.values > 0)


def test_heat_wave_detected_on_at_least_90_percent_of_its_pixel_periods(lst_truth):
    """Periods with at least half of their days in the heat wave (+6 K), disc interior."""
    ds = lst_truth["ds"]
    flag = ds.heat_stress.values
    on = (lst_truth["share"] >= 0.5) & lst_truth["interior"][None] & np.isfinite(flag)
    assert on.sum() >= 500
    hit = float(np.mean(flag[on] == 1))
    assert hit >= 0.9, hit
    assert np.nanmedian(ds.lst_zscore.values[on]) >= 3


def test_heat_stress_false_alarms_at_most_2_percent_outside_heat_wave_and_patches(lst_truth):
    ds = lst_truth["ds"]
    flag = ds.heat_stress.values
    quiet = (lst_truth["share"] == 0) & ~lst_truth["near_heat"][None]
    quiet &= ~lst_truth["near_patch"][None] & np.isfinite(flag)
    year = pd.DatetimeIndex(ds.time.values).year.values[:, None, None]
    for which in (year == 2022, year < 2022):
        rate = float(np.mean(flag[quiet & which] == 1))
        assert rate <= 0.02, rate
    # per pixel: any heat stress in 2022 outside the heat wave and the patches
    per_pixel = ((flag == 1) & quiet & (year == 2022)).any(axis=0)
    away = ~lst_truth["near_heat"] & ~lst_truth["near_patch"]
    assert per_pixel[away].mean() <= 0.05, per_pixel[away].mean()


def test_cleared_and_burnt_forest_runs_warmer_after_the_disturbance(lst_truth, world):
    """Not a false alarm: the world's surface is warmer where NDVI dropped (7 K per unit)."""
    ds = lst_truth["ds"]
    lon, lat = lst_truth["lonlat"]
    dist = world.disturbance(lon, lat)
    inside = dist["disturbed"] & (dist["edge_distance"] > EDGE) & ~lst_truth["near_heat"]
    autumn = pd.DatetimeIndex(ds.time.values)
    sel = (autumn.year == 2022) & (autumn.month >= 9)
    z = ds.lst_zscore.values[sel][:, inside]
    assert np.nanmedian(z) >= 1.0


# --- the disturbance product's heat variables --------------------------------------------------


def test_disturbance_heat_variables_summarise_the_lst_store(disturbance_run, lst_truth):
    dd = xr.open_zarr(disturbance_run / "out" / "products" / "disturbance.zarr")
    dd = dd.sel(year=2022).load()
    ds = lst_truth["ds"]
    times = pd.DatetimeIndex(ds.time.values)
    in_2022 = times.year == 2022
    flag = ds.heat_stress.values[in_2022] == 1
    z = ds.lst_zscore.values[in_2022]
    days = period_lengths(times[in_2022], "8D")
    assert days.tolist() == [8] * 45 + [5]
    np.testing.assert_array_equal(dd.heat_stress_days.values, np.tensordot(days, flag, axes=1))
    np.testing.assert_allclose(dd.lst_zscore_max.values, np.nanmax(z, axis=0), rtol=1e-6)
    first = times[in_2022].day_of_year.values[np.argmax(flag, axis=0)]
    onset = np.where(flag.any(axis=0), first, np.nan)
    np.testing.assert_array_equal(dd.heat_onset.values, onset)
    for name, units in (("heat_stress_days", "days"), ("heat_onset", "1")):  # onset: a DOY
        assert dd[name].attrs["units"] == units


def test_disturbance_heat_onset_and_days_match_the_heat_wave(disturbance_run, lst_truth):
    dd = xr.open_zarr(disturbance_run / "out" / "products" / "disturbance.zarr")
    dd = dd.sel(year=2022).load()
    hw = lst_truth["hw"]
    first, last = pd.Timestamp(hw["first"]).day_of_year, pd.Timestamp(hw["last"]).day_of_year
    inside = lst_truth["interior"] & ~lst_truth["near_patch"]  # cleared forest warms earlier
    onset = dd.heat_onset.values[inside]
    assert np.isfinite(onset).mean() >= 0.95
    # the onset is the start of the 8-day period holding the heat wave's first days (or of
    # the next one where that was cloudy); else a false alarm earlier in the year
    assert np.mean((onset >= first - 7) & (onset <= last)) >= 0.9
    assert abs(np.nanmedian(dd.heat_stress_days.values[inside]) - (last - first + 1)) <= 8
    away = ~lst_truth["near_heat"] & ~lst_truth["near_patch"]
    assert np.mean(dd.heat_stress_days.values[away] == 0) >= 0.95


# --- bad input and bad workflows ---------------------------------------------------------------

LST_ONLY = """\
name: lst-small
region: {{bbox: [138.75, 35.2, 138.85, 35.3], crs: EPSG:4326, resolution: 0.01}}
tile_size: 20
period: {{start: 2020-01-01, end: 2022-12-31, step: 16D}}
data_dir: {data}
inputs:
  lst_in: {{reader: modis_hdf4, paths: ["modis/MOD11A2.A202*.hdf", "modis/MOD13A2.A2022001.*"]}}
products:
  lst: {{kind: lst, input: lst_in, baseline: [2020, 2021], min_baseline: 2}}
output: {{dir: out}}
dask: {{workers: 1}}
"""


def test_corrupt_and_foreign_modis_files_are_skipped_and_recorded(disturbance_run, tmp_path):
    data = tmp_path / "data"
    (data / "modis").mkdir(parents=True)
    for f in (disturbance_run / "sample" / "modis").glob("MOD1[13]A2.A202[0-2]*.hdf"):
        (data / "modis" / f.name).symlink_to(f)
    good = _mod11(disturbance_run, "2022017")
    bad = data / "modis" / "MOD11A2.A2022017.h29v05.061.2022030000000.hdf"
    bad.write_bytes(good.read_bytes()[:5000])  # truncated download
    wf = tmp_path / "lst.yaml"
    wf.write_text(LST_ONLY.format(data=data))
    proc = run_cli("run", wf, "--out", tmp_path / "out")
    assert "skipped input" in proc.stderr and bad.name in proc.stderr
    ds = xr.open_zarr(tmp_path / "out" / "products" / "lst.zarr")
    skipped = {Path(s["file"]).name: s["reason"] for s in ds.attrs["skipped_inputs"]}
    assert list(skipped) == [bad.name]
    # MOD13 tiles of the same folder give no lst: ignored with the reason, not skipped
    ignored = {Path(s["file"]).name: s["reason"] for s in ds.attrs["ignored_inputs"]}
    mod13 = next(n for n in ignored if n.startswith("MOD13"))
    assert "a MOD13A2 file gives" in ignored[mod13] and "ndvi" in ignored[mod13]
    assert ds.sizes["time"] == 3 * 23
    assert np.isfinite(ds.lst.values).mean() >= 0.9  # two 8-day files per 16-day period
    assert int(ds.lst_count.max()) == 2


def _workflow(**changes) -> str:
    text = (REPO / "workflows" / "disturbance-fire.yaml").read_text()
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    lst: lst  ", "    lst: vi  ", "products.disturbance.lst: 'vi' is not an lst product"),
        ("threshold: 2.0", "threshold: -1", "products.lst.threshold: Input should be greater"),
        ("threshold: 2.0", "treshold: 2.0", "products.lst.treshold: unknown key; did you mean"),
        ("baseline: [2017, 2021]", "baseline: [2021, 2017]", "baseline ends (2017-12-31)"),
        ("baseline: [2017, 2021]", "baseline: [2010, 2012]", "products.lst.baseline: ['2010"),
        ("max_qa: 0 ", "max_qa: 2 ", "products.lst.max_qa: Input should be less than or equal"),
        ("step: 8D ", "step: 5D ", "products.lst.step: Input should be"),
    ],
)
def test_lst_workflow_errors_name_the_key(old, new, message):
    with pytest.raises(WorkflowError) as err:
        parse_workflow(_workflow(**{old: new}), "dist.yaml")
    assert message in str(err.value), str(err.value)


def test_lst_baseline_accepts_years_or_dates_and_runs_before_disturbance():
    text = _workflow(**{"baseline: [2017, 2021]": "baseline: [2017-03-01, 2021-06-30]"})
    wf = parse_workflow(text)
    assert [str(d) for d in wf.products["lst"].baseline] == ["2017-03-01", "2021-06-30"]
    wf = parse_workflow(_workflow())
    assert [str(d) for d in wf.products["lst"].baseline] == ["2017-01-01", "2021-12-31"]
    products = dict(reversed(list(wf.products.items())))  # disturbance listed first
    order = run_order(products)
    assert order.index("lst") < order.index("disturbance") and order.index("vi") < order.index(
        "disturbance"
    )


# --- the array maths ---------------------------------------------------------------------------


def test_mod11_usable_keeps_mandatory_qa_up_to_max_qa_and_needs_lst():
    qc = np.array([0, 0b01000000, 0b11010101, 0b10, 0b11, -1])
    lst = np.array([300.0, 300.0, 295.0, np.nan, np.nan, 300.0])
    assert qa.mod11_usable(lst, qc, 0).tolist() == [True, True, False, False, False, False]
    assert qa.mod11_usable(lst, qc, 1).tolist() == [True, True, True, False, False, False]


def test_slots_period_lengths_and_annual_heat_summary_on_a_small_series():
    times = pd.DatetimeIndex(["2021-12-19", "2021-12-27", "2022-01-01", "2022-01-09", "2022-12-27"])
    assert anomaly.slot_in_year(times.values, 8).tolist() == [44, 45, 0, 1, 45]
    assert anomaly.slot_in_year(pd.DatetimeIndex(["2020-03-01", "2021-03-01"]).values).tolist() == [
        2,
        2,
    ]
    lengths = period_lengths(times, "8D")
    assert lengths.tolist() == [8, 5, 8, 8, 5]
    flag = np.array([[1, 0], [0, 0], [0, 0], [1, 0], [1, 0]], bool)
    z = np.array([[3.0, 0.5], [1, 0.2], [0, np.nan], [2.5, 1.9], [2.2, 1.0]])
    out = anomaly.annual_heat_summary(flag, z, times.values, lengths, [2021, 2022, 2023])
    np.testing.assert_array_equal(out["heat_stress_days"], [[8, 0], [13, 0], [np.nan, np.nan]])
    np.testing.assert_array_equal(out["lst_zscore_max"], [[3, 0.5], [2.5, 1.9], [np.nan, np.nan]])
    np.testing.assert_array_equal(out["heat_onset"], [[353, np.nan], [9, np.nan], [np.nan] * 2])


def test_source_read_lst_qc_other_quality_hides_cold_residual_cloud(disturbance_run, world):
    """max_qa 1 adds the composites QC marks 'other quality': in the sample world those carry
    undetected cloud, 2-6 K too cold."""
    from fluxscape.pipeline.grid import target_grid
    from fluxscape.pipeline.inputs import TileInputs, index_input, read_onto_tile
    from fluxscape.pipeline.schema import Region
    from fluxscape.readers.ontile import tile_lonlat

    tile = target_grid(Region(bbox=PRESETS["disturbance"].bbox), 40).tiles[0].geobox
    path = str(_mod11(disturbance_run, "2022105"))
    index = index_input("lst", "modis_hdf4", [path])
    assert not index.skipped and index.granules[0].layers == {"lst"}

    def read(max_qa):
        got = read_onto_tile(
            "modis_hdf4", index.granules, tile, {"lst"}, {"max_qa": max_qa}, TileInputs()
        )
        return next(got)[1]

    strict, loose = read(0), read(1)
    extra = loose["usable"] & ~strict["usable"]
    assert extra.mean() > 0.01 and (loose["reliability"][extra] == 1).all()
    lon, lat = tile_lonlat(tile)
    days = pd.date_range("2022-04-15", periods=8)
    truth = world.land_surface_temperature(lon, lat, days).mean(-1)
    cold = loose["lst"][extra] - truth[extra]
    good = strict["lst"][strict["usable"]] - truth[strict["usable"]]
    assert np.median(cold) < -1.5 < np.median(good)
