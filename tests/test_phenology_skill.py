"""Issue #16 acceptance: the phenology product's start and end of season against the truth
of an independent MOD13A2-like test world (tests/phenology_skill.py: one season a year,
2021-2023, 16-day composites on their actual days, 20 % cloud, noise s.d. 0.02), measured
in the same run as a naive 50 % threshold on linearly interpolated clear composites, on the
native sinusoidal grid and on EPSG:4326 at 0.01 degrees; and the per-date uncertainty
(``sos_sd``, ``eos_sd``)."""

from __future__ import annotations

import numpy as np
import phenology_skill as skill
import pytest

from fluxscape.pipeline.steps.phenology import PhenologyConfig, store_variables

#: The workflow's default method: what a phenology product is made with.
METHOD = PhenologyConfig.model_fields["method"].default


@pytest.fixture(scope="module")
def world():
    return skill.make_world(30, cloud=0.2, noise=0.02, seed=0)


@pytest.fixture(scope="module")
def measured(world):
    return skill.measure(world, method=METHOD)


def test_workflow_default_is_the_double_logistic_fit():
    assert METHOD == "double_logistic"


def test_store_holds_the_uncertainty_only_for_the_double_logistic_method():
    fitted = store_variables(PhenologyConfig(kind="phenology", source="vi"))
    smoothed = store_variables(PhenologyConfig(kind="phenology", source="vi", method="whittaker"))
    assert {"sos_sd", "eos_sd"} <= set(fitted)
    assert not {"sos_sd", "eos_sd"} & set(smoothed) and "sos" in smoothed


def test_test_world_is_mod13a2_like(world):
    cube = world.cube
    assert cube.sizes["time"] == 3 * 23
    doy = cube["doy"].values
    start = cube["time"].dt.dayofyear.values[:, None, None]
    assert ((doy >= start) & (doy < start + 16)).all()
    assert 0.18 < (cube["qa"].values == 3).mean() < 0.22
    # the EPSG:4326 grid lies over the native grid: every pixel gets a source pixel
    on_target = skill.to_grid(cube, world.geobox, world.target)
    assert np.isfinite(on_target["ndvi"].values).all()


@pytest.mark.parametrize(("grid", "bound"), [("native", 3.0), ("lonlat", 3.5)])
def test_sos_and_eos_rmse_within_bound_and_15_percent_below_naive(measured, grid, bound):
    ours, naive = measured[grid]["ours"], measured[grid]["naive"]
    assert ours["coverage"] > 0.99 and naive["coverage"] > 0.99
    for date in ("sos_rmse", "eos_rmse"):
        assert ours[date] <= bound, (grid, date, ours, naive)
        assert ours[date] <= 0.85 * naive[date], (grid, date, ours, naive)


def test_product_on_the_resampled_cube_is_the_native_product_reprojected(world, measured):
    """Nearest-pixel resampling hands each target pixel one native pixel's whole series, and
    the product is per pixel: computing on the vi grid = computing on the native grid, then
    reprojecting the dates by nearest pixel."""
    native = measured["_products"]["native"][0]
    on_target = measured["_products"]["lonlat"][0]
    for name in ("sos", "eos", "sos_sd", "eos_sd", "amplitude"):
        moved = skill.dates_to_grid(native[name].values, world.geobox, world.target)
        np.testing.assert_allclose(on_target[name].values, moved, rtol=0, atol=1e-4)


def test_naive_baseline_finds_the_inflection_of_a_noise_free_curve():
    world = skill.make_world(6, cloud=0.0, noise=0.0, seed=1)
    truth = skill.truth_on(world.geobox, seed=1)
    dates = skill.naive_dates(world.cube)
    # 16-day sampling of a noise-free curve: linear interpolation errs by a day or two
    assert skill.rmse(dates["sos"], truth["sos"]) < 2.5
    assert skill.rmse(dates["eos"], truth["eos"]) < 2.5


def _z(measured, grid="native"):
    ours, truth, _ = measured["_products"][grid]
    return {
        d: (ours[d].values - truth[d], ours[f"{d}_sd"].values, ours[f"{d}_sd"])
        for d in ("sos", "eos")
    }


def test_uncertainty_variables_are_days_with_cf_attributes(measured):
    for d, (_, sd, var) in _z(measured).items():
        assert var.attrs["units"] == "day" and "standard deviation" in var.attrs["long_name"]
        assert np.isfinite(sd).mean() > 0.99, d
        assert (sd[np.isfinite(sd)] > 0).all(), d


def test_true_date_within_two_sd_about_as_often_as_a_normal_error(measured):
    for grid in ("native", "lonlat"):
        for d, (err, sd, _) in _z(measured, grid).items():
            ok = np.isfinite(err) & np.isfinite(sd)
            within2 = np.mean(np.abs(err[ok]) <= 2 * sd[ok])
            within1 = np.mean(np.abs(err[ok]) <= sd[ok])
            assert 0.88 <= within2 <= 0.99, (grid, d, within2)
            assert 0.55 <= within1 <= 0.80, (grid, d, within1)


def test_larger_sd_means_larger_errors(measured):
    for d, (err, sd, _) in _z(measured).items():
        lo, hi = np.nanpercentile(sd, [33, 67])
        small = np.sqrt(np.nanmean(err[sd <= lo] ** 2))
        large = np.sqrt(np.nanmean(err[sd >= hi] ** 2))
        assert large > 1.5 * small, (d, small, large)


def test_sd_grows_where_observations_are_cloudier():
    sds = {}
    for cloud in (0.1, 0.5):
        world = skill.make_world(8, cloud=cloud, noise=0.02, seed=2)
        ds = skill.product_dates(world.cube, method=METHOD)
        sds[cloud] = [float(np.nanmedian(ds[f"{d}_sd"].values)) for d in ("sos", "eos")]
    assert all(b > 1.2 * a for a, b in zip(sds[0.1], sds[0.5], strict=True)), sds


def test_double_logistic_handles_blocks_without_seasons_and_single_years():
    """A block of flat series (no season: nothing to fit or pool) gives NaN; one year (no
    other years to lend a shape) is fitted without priors and still has its s.d."""
    from fluxscape.products import phenology as ph
    from fluxscape.products import smoothing as sm

    rng = np.random.default_rng(0)
    days = np.arange(0.0, 730.0, 16.0)
    flat = 0.3 + rng.normal(0, 0.001, (5, days.size))
    res = ph.phenology_metrics(flat, np.ones_like(flat), days, [2021, 2022], method=METHOD)
    assert np.isnan(res["sos"]).all() and np.isnan(res["sos_sd"]).all()
    one = days[:23]
    curve = sm.double_logistic(one, 0.2, 0.7, 120.0, 0.09, 270.0, 0.07)
    values = curve + rng.normal(0, 0.02, (4, one.size))
    res = ph.phenology_metrics(values, np.ones_like(values), one, [2021], method=METHOD)
    # day count 120 is day of year 121
    assert np.abs(res["sos"][:, 0, 0] - 121.0).max() < 5
    assert (res["sos_sd"][:, 0, 0] > 0).all() and (res["sos_sd"][:, 0, 0] < 5).all()
