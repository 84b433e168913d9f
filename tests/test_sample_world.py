"""The sample world: deterministic, in the real formats, consistent with its truth."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd

from fluxscape.readers.fluxnet import good_quality, read_fluxnet, read_site_list
from fluxscape.sample.world import PRESETS, World


def test_world_is_deterministic_for_a_seed():
    a, b = World(PRESETS["demo"], seed=3), World(PRESETS["demo"], seed=3)
    lon, lat = np.array([138.3, 138.7]), np.array([35.7, 36.2])
    np.testing.assert_array_equal(
        a.ndvi(lon, lat, ["2021-06-01"]), b.ndvi(lon, lat, ["2021-06-01"])
    )
    pd.testing.assert_frame_equal(a.towers(), b.towers())
    assert not World(PRESETS["demo"], seed=4).towers().equals(a.towers())


def test_sample_has_two_years_of_16_day_tiles_and_six_or_more_towers(sample_dir):
    assert len(list((sample_dir / "modis").glob("MOD13A2.A202[12]*.h29v05.061.*.hdf"))) == 46
    sites = read_site_list(sample_dir / "towers" / "SitesList.csv")
    assert len(sites) >= 6
    w, s, e, n = PRESETS["demo"].bbox
    assert sites["lon"].between(w, e).all() and sites["lat"].between(s, n).all()
    info = json.loads((sample_dir / "truth" / "world.json").read_text())
    assert info["years"] == [2021, 2022]
    # one MCD12Q1 land-cover tile per year (the demo region lies in h29v05)
    lc = sorted(p.name[:16] for p in (sample_dir / "landcover").glob("MCD12Q1.A*.h29v05.061.*.hdf"))
    assert lc == ["MCD12Q1.A2021001", "MCD12Q1.A2022001"] and info["landcover_files"] == 2


def test_tower_files_carry_the_true_gpp_within_noise(sample_dir):
    truth = pd.read_csv(sample_dir / "truth" / "tower_daily.csv", parse_dates=["date"])
    for site in truth["site_id"].unique()[:3]:
        path = next((sample_dir / "towers").glob(f"FLX_{site}_FLUXNET2015_FULLSET_DD_*.csv"))
        ds = read_fluxnet(path)
        ok = good_quality(ds, "GPP_NT_VUT_REF").values
        true = truth[truth.site_id == site].set_index("date")["GPP"]
        obs = ds["GPP_NT_VUT_REF"].to_series()
        diff = (obs[ok] - true.reindex(obs.index)[ok]).to_numpy()
        assert np.sqrt(np.mean(diff**2)) < 0.5  # gC m-2 d-1, against a 0-12 season
        assert true.max() > 5 and true.min() < 1.5  # a real seasonal cycle


def test_double_cropped_pixels_have_two_seasons_and_a_valley_between():
    world = World(PRESETS["demo"])
    lon, lat = np.meshgrid(np.arange(138.005, 139, 0.01), np.arange(36.495, 35.5, -0.01))
    two = world.double_crop(lon, lat)
    assert 0.03 < two.mean() < 0.1
    p = world.phenology(lon[two], lat[two], 2021)
    assert (p["seasons"] == 2).all() and (p["eos"] < p["sos2"] - 40).all()
    curve = world.ndvi(lon[two][:50], lat[two][:50], pd.date_range("2021-01-01", periods=365))
    days = np.arange(1, 366)
    for i in range(50):
        valley = curve[i, int(p["eos"][i]) : int(p["sos2"][i])].min()
        assert curve[i, days < 170].max() - valley > 0.3  # wheat
        assert curve[i, days > 170].max() - valley > 0.4  # rice
    single = world.phenology(lon[~two], lat[~two], 2021)
    assert np.isnan(single["sos2"]).all() and (single["seasons"] == 1).all()


def test_disturbances_drop_ndvi_by_their_magnitude_on_their_day_away_from_towers():
    world = World(PRESETS["demo"])
    lon, lat = np.meshgrid(np.arange(138.005, 139, 0.01), np.arange(36.495, 35.5, -0.01))
    truth = world.disturbance(lon, lat)
    hit = truth["disturbed"]
    assert hit.sum() > 100 and set(np.unique(truth["kind"][hit])) == {1, 2}
    calm = World(replace(PRESETS["demo"], n_disturbances=0))
    for doy in np.unique(truth["date"][hit]):
        at = hit & (truth["date"] == doy)
        day = pd.Timestamp("2022-01-01") + pd.Timedelta(days=int(doy) - 1)
        days = [day - pd.Timedelta(days=1), day, day + pd.Timedelta(days=365)]
        change = world.ndvi(lon[at], lat[at], days) - calm.ndvi(lon[at], lat[at], days)
        assert np.abs(change[:, 0]).max() == 0  # nothing before the onset
        np.testing.assert_allclose(change[:, 1], truth["magnitude"][at], atol=1e-9)
        tau = truth["recovery_years"][at]
        np.testing.assert_allclose(
            change[:, 2], truth["magnitude"][at] * np.exp(-365 / 365.25 / tau), atol=0.02
        )
    towers = world.towers()
    assert not world.disturbance(towers.lon.values, towers.lat.values)["disturbed"].any()
    assert not world.double_crop(towers.lon.values, towers.lat.values).any()
    # Fires also char the surface: a larger NBR drop than a clearing of the same NDVI drop.
    fire, clearing = hit & (truth["kind"] == 2), hit & (truth["kind"] == 1)
    per_drop = truth["dnbr"] / -truth["magnitude"]
    assert np.median(per_drop[fire]) > 1.3 * np.median(per_drop[clearing])


def test_heat_wave_raises_lst_only_in_its_region_and_days():
    world = World(PRESETS["demo"])
    hw = world.events()["heat_wave"]
    days = pd.date_range("2022-07-01", "2022-08-31")
    lon = np.array([hw["lon"], hw["lon"] + 2 * hw["radius"]])
    lat = np.array([hw["lat"], hw["lat"]])
    calm = World(replace(PRESETS["demo"], heat_wave=False))
    excess = world.land_surface_temperature(lon, lat, days) - calm.land_surface_temperature(
        lon, lat, days
    )
    inside = (days >= hw["first"]) & (days <= hw["last"])
    assert inside.sum() == 12
    np.testing.assert_allclose(excess[0, inside], hw["lst_anomaly_k"])
    assert np.abs(excess[0, ~inside]).max() == 0 and np.abs(excess[1]).max() == 0
    np.testing.assert_array_equal(world.heat_wave(lon, lat, days), excess)
    np.testing.assert_array_equal(
        world.air_temperature(lon, lat, days), calm.air_temperature(lon, lat, days)
    )


def test_sources_written_side_by_side_give_the_same_files_as_one_after_the_other(
    tmp_path, monkeypatch
):
    """``write_sample_world`` writes independent sources in processes: the files (bytes) and
    the summary equal a one-process run. Cheap sources of the demo (the top-down file needs
    the regions the meteorology writes, in the same process), one year."""
    from fluxscape.sample import generate

    sources = ("towers", "meteo", "topdown")
    small = replace(PRESETS["demo"], name="side-by-side", sources=sources, years=(2021,))
    monkeypatch.setitem(PRESETS, "side-by-side", small)
    assert generate._source_tasks(small.sources) == [("towers",), ("meteo", "topdown")]
    one = generate.write_sample_world(tmp_path / "one", preset="side-by-side", workers=1)
    two = generate.write_sample_world(tmp_path / "two", preset="side-by-side", workers=2)
    assert one == two and one["tower_files"] > 0 and one["topdown_files"] == 1

    def files(root):
        return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    a, b = files(tmp_path / "one"), files(tmp_path / "two")
    assert sorted(a) == sorted(b) and len(a) > 10
    assert [p for p in a if a[p] != b[p]] == []
