"""The demo's ``flux`` product against the sample world's light-use-efficiency truth.

The towers' FULLSET fluxes carry measurement and partitioning noise; the predictors are the
MODIS composites (with their own noise, clouds and observation dates) and ERA5-like
meteorology on a 0.1 degree grid. The truth is the world's daily GPP, averaged over each
16-day period at every pixel centre.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from fluxscape.ml.persist import load_model
from fluxscape.ml.timesteps import period_bounds
from fluxscape.sample.world import LAND_COVER, LC_NAMES, PRESETS, World


@pytest.fixture(scope="module")
def flux(demo_out: Path) -> xr.Dataset:
    return xr.open_zarr(demo_out / "products" / "flux.zarr")


def _true_period_means(flux: xr.Dataset, stride: int = 3) -> tuple[xr.DataArray, dict]:
    world = World(PRESETS["demo"])
    ds = flux.isel(y=slice(1, None, stride), x=slice(1, None, stride))
    lon, lat = np.meshgrid(ds.x.values, ds.y.values)
    times = pd.DatetimeIndex(ds.time.values)
    ends = period_bounds(times)[1]
    days = pd.date_range(times[0], ends[-1] - pd.Timedelta(days=1))
    daily = world.fluxes(lon, lat, days)
    label = np.searchsorted(times.values, days.values, side="right") - 1
    truth = {}
    for name in ("GPP", "NEE", "RECO"):
        per = np.stack([daily[name][..., label == i].mean(-1) for i in range(len(times))])
        truth[name.lower()] = per
    return ds, truth


def _r2(obs: np.ndarray, pred: np.ndarray) -> float:
    ok = np.isfinite(obs) & np.isfinite(pred)
    obs, pred = obs[ok], pred[ok]
    return 1 - np.sum((obs - pred) ** 2) / np.sum((obs - obs.mean()) ** 2)


def test_loso_gpp_skill_at_product_step(demo_out: Path, flux: xr.Dataset):
    skill = json.loads(flux.attrs["cv_skill"])
    gpp = skill["gpp"]["step"]
    assert gpp["r2"] >= 0.8, gpp
    assert set(skill) == {"gpp", "nee", "reco"}  # NEE and RECO validated and reported too
    for target in ("nee", "reco"):
        assert np.isfinite(skill[target]["step"]["r2"])
    report = demo_out / "reports" / "flux"
    assert (report / "report.md").is_file() and (report / "scatter_gpp.png").is_file()
    assert json.loads((report / "skill.json").read_text())["cv"] == "loso"


def test_gridded_gpp_recovers_the_true_field(flux: xr.Dataset):
    ds, truth = _true_period_means(flux)
    pred = ds["gpp"].values
    assert np.isfinite(pred).mean() > 0.95
    r2 = _r2(truth["gpp"], pred)
    ok = np.isfinite(pred)
    bias = (pred[ok].mean() - truth["gpp"][ok].mean()) / truth["gpp"][ok].mean()
    assert r2 >= 0.8, r2
    assert abs(bias) <= 0.10, bias
    # RECO is well constrained by temperature; NEE is the small difference of two large fluxes
    assert _r2(truth["reco"], ds["reco"].values) >= 0.7
    assert _r2(truth["nee"], ds["nee"].values) >= 0.3


def test_store_carries_units_spread_and_model_cards(demo_out: Path, flux: xr.Dataset):
    for name in ("gpp", "nee", "reco"):
        assert flux[name].attrs["units"] == "g m-2 d-1"
        assert flux[f"{name}_sd"].attrs["units"] == "g m-2 d-1"
    sd = flux["gpp_sd"].isel(time=slice(10, 14)).values
    assert np.nanmean(sd) > 0  # ensemble members disagree somewhat
    card = json.loads(flux.attrs["model_card"])
    assert flux.attrs["models"] == [card["card_id"]]
    assert all(flux[t].attrs["model_card"] == card["card_id"] for t in ("gpp", "nee", "reco"))
    assert len(card["sites"]) == 12 and card["features"][:3] == ["ndvi", "evi", "nbr"]
    assert not any(f.lower().startswith(("gpp", "nee", "reco")) for f in card["features"])
    assert {"scikit-learn", "lightgbm"} <= set(card["library_versions"])
    model, loaded_card = load_model(demo_out / "models" / "flux" / "flux_model.skops")
    assert loaded_card["card_id"] == card["card_id"] and list(model.targets) == [
        "gpp",
        "nee",
        "reco",
    ]
    # the demo's method_params reach the card and the fitted forests
    wanted = yaml.safe_load((demo_out / "workflow.yaml").read_text())["products"]["flux"]
    rf = wanted["method_params"]["rf"]
    assert {k: card["method_params"]["rf"][k] for k in rf} == rf
    assert card["method_params"]["lgbm"]["num_leaves"] == 31  # a default, recorded too
    forests = [
        m for e in model.ensembles_.values() for m in e.members_ if hasattr(m, "estimators_")
    ]
    assert forests and all(len(f.estimators_) == rf["n_estimators"] for f in forests)
    assert all(f.min_samples_leaf == rf["min_samples_leaf"] for f in forests)
    # provenance: the tower and meteorology files the driver trained on, the land cover the
    # tiles read
    used = sorted(Path(i["path"]).name for i in flux.attrs["inputs"])
    assert sum(n.startswith("FLX_") for n in used) == 12
    assert any(n.startswith("era5_daily_") for n in used)
    assert any(n.startswith("MCD12Q1.") for n in used)


def test_regional_totals_match_the_store(demo_out: Path, flux: xr.Dataset):
    """The West/East prefectures split the region: their annual GPP adds up to the whole
    grid's (area-weighted, days per period), in TgC."""
    totals = pd.read_csv(demo_out / "reports" / "flux" / "regional_totals.csv")
    year = totals[
        (totals.variable == "gpp") & (totals.period_type == "year") & (totals.period == "2021")
    ].set_index("region")
    gpp = flux["gpp"].sel(time=slice("2021-01-01", "2021-12-31"))
    times = pd.DatetimeIndex(gpp.time.values)
    days = np.diff(np.append(times.values, np.datetime64("2022-01-01"))).astype("timedelta64[D]")
    lat = np.deg2rad(flux.y.values)
    r = 6371007.2
    area = (
        r**2
        * np.deg2rad(0.01)
        * np.abs(np.sin(lat + np.deg2rad(0.005)) - np.sin(lat - np.deg2rad(0.005)))
    )
    grid_total = (
        float(
            (gpp * xr.DataArray(days.astype(float), dims="time"))
            .sum("time")
            .dot(xr.DataArray(area, dims="y"))
            .sum()
        )
        / 1e12
    )
    both = year.loc["West", "total_TgC"] + year.loc["East", "total_TgC"]
    assert both == pytest.approx(grid_total, rel=0.01)
    assert year.loc["Lakeside", "total_TgC"] < year.loc["East", "total_TgC"]  # inside East
    assert (year["sd_TgC"] > 0).all()


def test_land_cover_classes_at_the_towers_become_one_hot_features(demo_out: Path, flux):
    """The card lists one lc_<IGBP code> per class found at the towers (the world's classes),
    sites.csv each tower's class, and the one-hot columns sum to 1 at every tower."""
    card = json.loads(flux.attrs["model_card"])
    sites = pd.read_csv(demo_out / "reports" / "flux" / "sites.csv")
    world = World(PRESETS["demo"])
    codes = np.array([LAND_COVER[n]["code"] for n in LC_NAMES])
    truth = codes[world.land_cover(sites["lon"].values, sites["lat"].values)]
    assert sites["land_cover"].tolist() == truth.tolist()
    assert card["land_cover"]["layer"] == "LC_Type1"
    assert card["land_cover"]["classes"] == sorted(set(truth.tolist()))
    lc = [f"lc_{c}" for c in card["land_cover"]["classes"]]
    assert card["features"][-len(lc) :] == lc
    table = pd.read_csv(demo_out / "reports" / "flux" / "training_table.csv")
    assert np.array_equal(table[lc].sum(axis=1).to_numpy(), np.ones(len(table)))
    per_site = table.groupby("site")[lc].first().idxmax(axis=1).str[3:].astype(int)
    assert per_site.to_dict() == dict(zip(sites["site"], truth.tolist(), strict=True))
