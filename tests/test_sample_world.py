"""The sample world: deterministic, in the real formats, consistent with its truth."""

from __future__ import annotations

import json

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
