"""Phenology product: dates and metrics recovered from synthetic 16-day MODIS-like cubes whose
truth is known (the sample world's double logistic, and wheat-then-rice double cropping)."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.optimize import brentq, minimize_scalar

from fluxscape.products import kernels
from fluxscape.products import phenology as ph
from fluxscape.products import smoothing as sm
from fluxscape.sample.world import PRESETS, World

YEARS = (2021, 2022)
NOISE = 0.015  # NDVI, as MOD13 over homogeneous land
CLOUDY = 0.25  # fraction of composites with residual cloud (low NDVI, QA 3)
MARGINAL = 0.10  # fraction with QA 1 and extra noise


def _modis_sampling(rng: np.random.Generator, npix: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """16-day period starts (DOY 1, 17, ..., 353 each year) and each pixel's observation day of
    year, uniform inside its period (the last period ends on 31 December)."""
    starts = pd.DatetimeIndex(
        [pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d) for y in YEARS for d in range(0, 365, 16)]
    )
    start_doy = starts.day_of_year.to_numpy()
    span = np.minimum(16, np.where(starts.is_leap_year, 366, 365) - start_doy + 1)
    doy = start_doy + (rng.random((npix, starts.size)) * span).astype(int)
    return starts, doy


def _cube(truth_daily: np.ndarray, seed: int) -> xr.Dataset:
    """A vi-like cube (time, y=1, x=pixel): ``ndvi`` sampled from the daily truth (pixel, day
    since 1 January of the first year) at MODIS-like dates, with noise, cloudy and marginal
    composites; ``qa`` (0 good, 1 marginal, 3 cloudy) and ``doy`` as in the vi store."""
    rng = np.random.default_rng(seed)
    npix = truth_daily.shape[0]
    starts, doy = _modis_sampling(rng, npix)
    day = (starts.year.to_numpy() - YEARS[0]) * 365 + doy - 1  # 2021 and 2022 have 365 days
    ndvi = np.take_along_axis(truth_daily, day, axis=1) + rng.normal(0, NOISE, day.shape)
    roll = rng.random(day.shape)
    cloudy, marginal = roll < CLOUDY, (roll >= CLOUDY) & (roll < CLOUDY + MARGINAL)
    ndvi = np.where(cloudy, rng.uniform(-0.05, 0.25, day.shape), ndvi)
    ndvi = np.where(marginal, ndvi + rng.normal(0, 0.03, day.shape), ndvi)
    qa = np.where(cloudy, 3, np.where(marginal, 1, 0)).astype(np.uint8)
    dims = ("time", "y", "x")
    coords = {"time": starts, "y": [0.0], "x": np.arange(npix, dtype=float)}
    return xr.Dataset(
        {
            "ndvi": (dims, ndvi.T[:, None, :].astype(np.float32)),
            "qa": (dims, qa.T[:, None, :]),
            "doy": (dims, doy.T[:, None, :].astype(np.float32)),
        },
        coords=coords,
    )


def _daily_days() -> pd.DatetimeIndex:
    return pd.date_range(f"{YEARS[0]}-01-01", f"{YEARS[-1]}-12-31", freq="D")


@pytest.fixture(scope="module")
def world_pixels():
    """300 pixels of the demo world: its double-logistic truth per year and a sampled cube.
    The world's double cropping and disturbances are off: these pixels are single-season
    curves (double cropping has its own cube below)."""
    world = World(replace(PRESETS["demo"], double_crop=False, n_disturbances=0))
    rng = np.random.default_rng(11)
    w, s, e, n = world.preset.bbox
    lon, lat = rng.uniform(w, e, 300), rng.uniform(s, n, 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside the world model
        daily = world.ndvi(lon, lat, _daily_days())
    truth = {y: world.phenology(lon, lat, y) for y in YEARS}
    return truth, daily, _cube(daily, seed=12)


def _double_crop_truth(rng: np.random.Generator, npix: int) -> np.ndarray:
    """Daily NDVI (pixel, day) of winter wheat (green-up in March, harvest in June) followed by
    paddy rice (transplanted in June, harvested in October): base + a1 DL1 + a2 DL2, each DL a
    unit double logistic, with the dates shifting by a few days between years."""
    base = rng.uniform(0.15, 0.25, (npix, 1))
    out = []
    for _ in YEARS:
        t = np.arange(1, 366, dtype=float)[None, :]
        wheat = sm.double_logistic(
            t, 0, 1, rng.uniform(70, 90, (npix, 1)), 0.1, rng.uniform(145, 160, (npix, 1)), 0.1
        )
        rice = sm.double_logistic(
            t, 0, 1, rng.uniform(185, 200, (npix, 1)), 0.09, rng.uniform(255, 275, (npix, 1)), 0.07
        )
        out.append(
            base
            + rng.uniform(0.35, 0.5, (npix, 1)) * wheat
            + rng.uniform(0.5, 0.65, (npix, 1)) * rice
        )
    return np.concatenate(out, axis=1)


def _reference_dates(curve: np.ndarray) -> dict[str, np.ndarray]:
    """MCD12Q2 dates (day of year) of the two seasons of each noise-free daily curve of one
    year, by a plain per-pixel reading of the definitions (independent of the product code):
    peaks before/after DOY 170, troughs = minima around them, first / last crossing."""
    npix = curve.shape[0]
    out = {k: np.zeros((npix, 2)) for k in ph.TRANSITIONS}
    out["amplitude"] = np.zeros((npix, 2))
    doy = np.arange(1, 366, dtype=float)
    for i in range(npix):
        z = curve[i]
        p1 = int(np.argmax(z[:170]))
        p2 = 170 + int(np.argmax(z[170:]))
        valley = p1 + int(np.argmin(z[p1:p2]))
        left, right = int(np.argmin(z[:p1])), p2 + int(np.argmin(z[p2:]))
        for s, (lo, pk, hi) in enumerate([(left, p1, valley), (valley, p2, right)]):
            out["amplitude"][i, s] = z[pk] - 0.5 * (z[lo] + z[hi])
            for name, (f, rising) in ph.TRANSITIONS.items():
                if rising:
                    level = z[lo] + f * (z[pk] - z[lo])
                    j = lo + int(np.argmax(z[lo : pk + 1] >= level))
                    out[name][i, s] = doy[j - 1] + (level - z[j - 1]) / (z[j] - z[j - 1])
                else:
                    level = z[hi] + f * (z[pk] - z[hi])
                    j = pk + int(np.flatnonzero(z[pk : hi + 1] >= level)[-1])
                    out[name][i, s] = doy[j] + (z[j] - level) / (z[j] - z[j + 1])
    return out


@pytest.fixture(scope="module")
def double_crop_pixels():
    """120 wheat-rice pixels: daily truth, reference dates per year and a sampled cube."""
    rng = np.random.default_rng(21)
    daily = _double_crop_truth(rng, 120)
    ref = {y: _reference_dates(daily[:, i * 365 : (i + 1) * 365]) for i, y in enumerate(YEARS)}
    return ref, _cube(daily, seed=22)


def _product(cube: xr.Dataset, **kwargs) -> xr.Dataset:
    return ph.phenology(cube["ndvi"], cube["qa"], cube["doy"], **kwargs)


def _rmse(estimate, truth) -> float:
    diff = np.asarray(estimate, float) - np.asarray(truth, float)
    assert np.isfinite(diff).all(), f"{np.isnan(diff).sum()} pixel-years without a date"
    return float(np.sqrt(np.mean(diff**2)))


def _season1(ds: xr.Dataset, name: str) -> np.ndarray:
    """(year, pixel) values of season 1 of the cube's single image row."""
    return ds[name].sel(season=1).isel(y=0).values


def _world_truth(truth: dict, key: str) -> np.ndarray:
    return np.stack([truth[y][key] for y in YEARS])


# --- the default method against the sample world's truth -----------------------------------------


def test_midgreenup_and_midgreendown_within_6_days_rmse_of_world_inflection_dates(world_pixels):
    truth, _, cube = world_pixels
    ds = _product(cube)
    rmse_up = _rmse(_season1(ds, "midgreenup"), _world_truth(truth, "sos"))
    rmse_down = _rmse(_season1(ds, "midgreendown"), _world_truth(truth, "eos"))
    assert rmse_up <= 6.0, rmse_up
    assert rmse_down <= 6.0, rmse_down


def test_default_sos_and_eos_are_midgreenup_and_midgreendown(world_pixels):
    truth, _, cube = world_pixels
    ds = _product(cube)
    np.testing.assert_array_equal(ds["sos"].values, ds["midgreenup"].values)
    np.testing.assert_array_equal(ds["eos"].values, ds["midgreendown"].values)
    assert _rmse(_season1(ds, "sos"), _world_truth(truth, "sos")) <= 6.0
    assert _rmse(_season1(ds, "eos"), _world_truth(truth, "eos")) <= 6.0
    los = _season1(ds, "eos") - _season1(ds, "sos")
    np.testing.assert_allclose(_season1(ds, "los"), los, atol=1e-3)


def test_single_season_pixels_have_nan_second_season(world_pixels):
    _, _, cube = world_pixels
    ds = _product(cube)
    assert np.isfinite(ds["pos"].sel(season=1).values).all()
    for name in ph.VARIABLES:
        assert np.isnan(ds[name].sel(season=2).values).all(), name


def test_peak_ndvi_within_003_and_amplitude_within_004_of_the_true_curve(world_pixels):
    """The amplitude is the difference of two extremes of a noisy smoothed curve (peak and
    winter troughs), each pushed outwards by about one noise s.d. (0.015): hence 0.04."""
    _, daily, cube = world_pixels
    ds = _product(cube)
    true_peak = np.stack([daily[:, i * 365 : (i + 1) * 365].max(axis=1) for i in range(2)])
    true_base = np.stack([daily[:, i * 365 : (i + 1) * 365].min(axis=1) for i in range(2)])
    assert _rmse(_season1(ds, "peak"), true_peak) <= 0.03
    assert _rmse(_season1(ds, "amplitude"), true_peak - true_base) <= 0.04


def test_integral_and_n_obs_are_physical(world_pixels):
    truth, _, cube = world_pixels
    ds = _product(cube)
    integral = _season1(ds, "integral")  # NDVI x day above the base between sos and eos
    los, amp = _season1(ds, "los"), _season1(ds, "amplitude")
    assert (integral > 0.5 * amp * los).all() and (integral < amp * los).all()
    n_obs = _season1(ds, "n_obs")
    season_days = _season1(ds, "dormancy") - _season1(ds, "greenup")
    # One composite per 16 days, 65 % of them usable (good or marginal).
    expected = 0.65 * season_days / 16
    assert np.abs(n_obs - expected).mean() < 2.0
    assert (n_obs <= season_days / 16 + 2).all()


# --- double cropping ---------------------------------------------------------------------------


def test_wheat_then_rice_pixels_get_both_seasons_with_dates_within_8_days_rmse(double_crop_pixels):
    """Tolerance: the valley between harvest and transplanting lasts about 35 days, i.e. two
    16-day composites of which one in four is cloudy, so the smoothed curve partly fills it:
    the 50 % levels of wheat's fall and rice's rise shift by a few days. 8 days RMSE (against
    the 6 of single seasons) covers that; 95 % of the pixel-years must show both seasons."""
    ref, cube = double_crop_pixels
    ds = _product(cube)
    pos = ds["pos"].isel(y=0).values  # (year, season, pixel)
    both = np.isfinite(pos).all(axis=1)
    assert both.mean() >= 0.95, both.mean()
    for s in range(2):
        for name in ("midgreenup", "midgreendown"):
            est = ds[name].isel(y=0, season=s).values
            truth = np.stack([ref[y][name][:, s] for y in YEARS])
            rmse = _rmse(est[both], truth[both])
            assert rmse <= 8.0, (s + 1, name, rmse)
    wheat_peak = pos[:, 0][both]
    rice_peak = pos[:, 1][both]
    assert (wheat_peak < 170).all() and (rice_peak > 170).all()


def test_double_crop_amplitudes_within_005_of_truth(double_crop_pixels):
    ref, cube = double_crop_pixels
    ds = _product(cube)
    amp = ds["amplitude"].isel(y=0).values
    truth = np.stack([ref[y]["amplitude"] for y in YEARS], axis=0)  # (year, pixel, season)
    truth = np.moveaxis(truth, 2, 1)
    ok = np.isfinite(amp)
    assert _rmse(amp[ok], truth[ok]) <= 0.05


def test_one_season_per_year_keeps_the_season_of_larger_amplitude(double_crop_pixels):
    _, cube = double_crop_pixels
    one = _product(cube, seasons=1)
    two = _product(cube)
    assert one.sizes["season"] == 1
    both = np.isfinite(two["pos"].values).all(axis=1)  # (year, y, x)
    larger = two["amplitude"].isel(season=1) > two["amplitude"].isel(season=0)
    assert larger.values[both].mean() > 0.9  # mostly rice, the taller crop
    for name in ("midgreenup", "pos", "midgreendown", "amplitude"):
        expected = xr.where(larger, two[name].isel(season=1), two[name].isel(season=0))
        np.testing.assert_array_equal(
            one[name].isel(season=0).values[both], expected.values[both], err_msg=name
        )


def test_min_peak_separation_merges_two_peaks_closer_than_it(double_crop_pixels):
    _, cube = double_crop_pixels
    ds = _product(cube, min_peak_separation=150.0)  # wheat and rice peaks are ~100 days apart
    assert np.isnan(ds["pos"].sel(season=2).values).all()
    assert np.isfinite(ds["pos"].sel(season=1).values).mean() > 0.95


# --- methods and conventions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "bound_single", "bound_double"),
    [("whittaker", 6.0, 8.0), ("savgol", 7.0, 10.0), ("double_logistic", 6.0, 8.0)],
)
def test_each_method_recovers_midgreenup_and_midgreendown_within_its_bound(
    world_pixels, double_crop_pixels, method, bound_single, bound_double
):
    """Savitzky-Golay gets looser bounds: it filters a linear interpolation of the usable
    observations, which lags the curve on long cloudy gaps."""
    truth, _, cube = world_pixels
    ds = _product(cube, method=method)
    assert ds.attrs["phenology_method"] == method
    assert _rmse(_season1(ds, "midgreenup"), _world_truth(truth, "sos")) <= bound_single
    assert _rmse(_season1(ds, "midgreendown"), _world_truth(truth, "eos")) <= bound_single
    ref, cube2 = double_crop_pixels
    ds2 = _product(cube2, method=method)
    both = np.isfinite(ds2["pos"].isel(y=0).values).all(axis=1)
    assert both.mean() >= 0.85
    for s in range(2):
        est = ds2["midgreenup"].isel(y=0, season=s).values
        ref_s = np.stack([ref[y]["midgreenup"][:, s] for y in YEARS])
        assert _rmse(est[both], ref_s[both]) <= bound_double


def test_method_names_select_different_smoothers(world_pixels):
    _, _, cube = world_pixels
    dates = {m: _season1(_product(cube, method=m), "greenup") for m in ph.METHODS}
    assert not np.allclose(dates["whittaker"], dates["savgol"])
    assert not np.allclose(dates["whittaker"], dates["double_logistic"])
    with pytest.raises(ValueError, match="method"):
        _product(cube, method="spline")


def test_derivative_sos_and_eos_within_8_days_rmse_of_the_inflection_points(world_pixels):
    """The day of the fastest rise or fall is read from the curve's slope, which noise moves
    more than a level crossing, most on the evergreen needleleaf pixels (amplitude 0.27, a flat
    slope maximum): a looser bound than the 6 days of the amplitude convention."""
    truth, _, cube = world_pixels
    ds = _product(cube, sos_method="derivative")
    assert _rmse(_season1(ds, "sos"), _world_truth(truth, "sos")) <= 8.0
    assert _rmse(_season1(ds, "eos"), _world_truth(truth, "eos")) <= 8.0
    assert "rate" in ds.attrs["phenology_conventions"]


def test_sos_fraction_015_gives_the_greenup_and_dormancy_dates(world_pixels):
    _, _, cube = world_pixels
    ds = _product(cube, sos_fraction=0.15, eos_fraction=0.15)
    np.testing.assert_array_equal(ds["sos"].values, ds["greenup"].values)
    np.testing.assert_array_equal(ds["eos"].values, ds["dormancy"].values)


def test_transition_dates_of_a_noise_free_double_logistic_match_its_analytic_roots():
    """Daily noise-free observations of one long season per year, barely smoothed: each
    MCD12Q2 date equals the root of curve = trough + fraction x (peak - trough) found by brentq
    on the analytic curve (peak: bounded maximisation; troughs: the lowest values around the
    season, i.e. 1 January, and 1 January of the next year or the series end on 31 December)."""
    p = (0.2, 0.8, 120.0, 0.08, 280.0, 0.06)
    days = np.arange(0, 730, dtype=float)
    values = sm.double_logistic(days % 365 + 1, *p)
    res = ph.phenology_metrics(values[None], np.ones((1, 730)), days, YEARS, step=1.0, lam=0.01)

    def curve(doy: float) -> float:
        return float(sm.double_logistic(doy, *p))

    peak_doy = minimize_scalar(lambda d: -curve(d), bounds=(150, 250), method="bounded").x
    top = curve(peak_doy)
    for name, (f, rising) in ph.TRANSITIONS.items():
        for y in range(2):
            low = curve(1.0) if rising or y == 0 else curve(365.0)
            level = low + f * (top - low)
            lo, hi = (1.0, peak_doy) if rising else (peak_doy, 365.0)
            root = brentq(lambda d, level=level: curve(d) - level, lo, hi)
            assert res[name][0, y, 0] == pytest.approx(root, abs=0.05), (name, y)
    assert res["pos"][0, 0, 0] == pytest.approx(peak_doy, abs=0.5)
    assert res["peak"][0, 0, 0] == pytest.approx(top, abs=1e-3)


def test_coarse_8_day_grid_moves_sos_and_eos_by_under_half_a_day(world_pixels):
    _, _, cube = world_pixels
    fine = _product(cube, step=1.0)
    coarse = _product(cube)  # default step
    for name in ("sos", "eos"):
        assert _rmse(_season1(coarse, name), _season1(fine, name)) < 0.5, name


# --- robustness, inputs and outputs ------------------------------------------------------------


def test_all_nan_and_all_cloudy_pixels_give_nan_without_warnings(world_pixels):
    _, _, cube = world_pixels
    cube = cube.isel(x=slice(0, 20)).copy(deep=True)
    cube["ndvi"][:, 0, :5] = np.nan
    cube["doy"][:, 0, :5] = np.nan
    cube["qa"][:, 0, :5] = 255
    cube["qa"][:, 0, 5:10] = 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = _product(cube)
    for name in ph.VARIABLES:
        assert np.isnan(ds[name].isel(y=0, x=slice(0, 10)).values).all(), name
    assert np.isfinite(ds["sos"].isel(y=0, x=slice(10, 20), season=0).values).all()


def test_dask_chunked_cube_gives_the_same_product_lazily(world_pixels):
    _, _, cube = world_pixels
    eager = _product(cube.isel(x=slice(0, 60)))
    lazy = _product(cube.isel(x=slice(0, 60)).chunk({"x": 25}))
    assert lazy["sos"].chunks is not None
    xr.testing.assert_allclose(eager, lazy.compute())


def test_product_has_design_variables_dims_and_cf_attributes(world_pixels):
    _, _, cube = world_pixels
    ds = _product(cube.isel(x=slice(0, 10)))
    expected = {"sos", "pos", "eos", "los", "peak", "amplitude", "integral", "n_obs"}
    expected |= {"greenup", "midgreenup", "maturity", "senescence", "midgreendown", "dormancy"}
    expected |= {"qa_overall", "qa_detailed", "sos_sd", "eos_sd"}
    assert set(ds.data_vars) == expected
    for name, var in ds.data_vars.items():
        assert var.dims == ("year", "season", "y", "x"), name
        assert var.attrs["units"] and var.attrs["long_name"], name
    assert ds["sos"].attrs["units"] == "1" and "(day of year)" in ds["sos"].attrs["long_name"]
    assert ds["amplitude"].attrs["units"] == "1"
    assert list(ds["year"].values) == list(YEARS) and list(ds["season"].values) == [1, 2]


def test_observation_days_wrap_a_composite_that_crosses_new_year():
    starts = pd.to_datetime(["2021-12-19", "2022-01-01"])
    time = xr.DataArray(starts, dims="time", coords={"time": starts})
    doy = xr.DataArray([[2.0, 5.0], [360.0, np.nan]], dims=("x", "time"), coords={"time": starts})
    days = ph.observation_days(time, doy, "2021-01-01")
    # DOY 2 in the period starting 19 December 2021 is 2 January 2022 (day 366 since 2021-01-01)
    np.testing.assert_allclose(days.sel(x=0).values, [366.0, 369.0])
    assert days.sel(x=1).values[0] == pytest.approx(359.0)
    assert days.sel(x=1).values[1] == pytest.approx(365.0 + 6.5)  # NaN doy: period middle


def test_qa_weights_follow_modis_pixel_reliability():
    w = sm.qa_weights(np.array([0, 1, 2, 3, 255], dtype=np.uint8))
    np.testing.assert_array_equal(w, [1.0, 0.5, 0.0, 0.0, 0.0])
    assert sm.qa_weights(np.array([np.nan, 1.0]))[0] == 0.0


# --- the smoothers --------------------------------------------------------------------------------


def test_whittaker_banded_solver_equals_the_dense_normal_equations():
    rng = np.random.default_rng(3)
    days = np.sort(rng.uniform(0, 100, (3, 12)), axis=1)
    y, w = rng.random((3, 12)), rng.random((3, 12))
    grid = np.arange(0.0, 101.0, 2.0)
    z = kernels.whittaker(y, w, days, grid, lam=50.0, envelope_iterations=0)
    n = grid.size
    d2 = np.diff(np.eye(n), 2, axis=0)
    for p in range(3):
        b = np.zeros((12, n))  # linear interpolation from the grid to the observation days
        u = days[p] / 2.0
        j = np.floor(u).astype(int)
        b[np.arange(12), j] = 1 - (u - j)
        b[np.arange(12), j + 1] += u - j
        a = b.T @ np.diag(w[p]) @ b + 50.0 / 2.0**3 * d2.T @ d2
        dense = np.linalg.solve(a, b.T @ (w[p] * y[p]))
        first, last = int(np.ceil(u.min())), int(np.floor(u.max()))
        np.testing.assert_allclose(z[p, first : last + 1], dense[first : last + 1], atol=1e-9)


def test_upper_envelope_lifts_the_curve_over_undetected_clouds():
    """Clouds flagged good (weight 1) pull a plain weighted fit down; the envelope iterations
    bring the peak back within 0.03 of the truth."""
    rng = np.random.default_rng(5)
    days = np.arange(0, 365, 8.0)[None, :] + rng.uniform(0, 8, (200, 46))
    truth = sm.double_logistic(days, 0.2, 0.8, 130, 0.09, 270, 0.07)
    values = truth + rng.normal(0, NOISE, days.shape)
    cloud = rng.random(days.shape) < 0.15
    values[cloud] = rng.uniform(0.0, 0.2, cloud.sum())
    grid = np.arange(0, 365, 4.0)
    plain = kernels.whittaker(values, np.ones_like(values), days, grid, envelope_iterations=0)
    upper = kernels.whittaker(values, np.ones_like(values), days, grid)
    true_peak = sm.double_logistic(200.0, 0.2, 0.8, 130, 0.09, 270, 0.07)
    assert np.abs(upper.max(axis=1) - true_peak).mean() < 0.03
    assert (
        np.abs(plain.max(axis=1) - true_peak).mean() > np.abs(upper.max(axis=1) - true_peak).mean()
    )


def test_double_logistic_fit_recovers_the_parameters_of_noisy_series():
    rng = np.random.default_rng(8)
    n = 500
    true = np.column_stack(
        [
            rng.uniform(0.1, 0.3, n),
            rng.uniform(0.6, 0.9, n),
            rng.uniform(100, 150, n),
            rng.uniform(0.06, 0.12, n),
            rng.uniform(250, 290, n),
            rng.uniform(0.05, 0.1, n),
        ]
    )
    days = np.arange(1, 365, 16.0)[None, :] + rng.uniform(0, 15, (n, 23))
    values = sm.double_logistic(days, *(true[:, i : i + 1] for i in range(6)))
    values += rng.normal(0, NOISE, values.shape)
    start = np.column_stack(
        [
            np.full(n, 0.2),
            np.full(n, 0.7),
            np.full(n, 125.0),
            np.full(n, 0.1),
            np.full(n, 270.0),
            np.full(n, 0.1),
        ]
    )
    fit = sm.fit_double_logistic(values, np.ones_like(values), days, start, iterations=30)
    assert np.sqrt(np.mean((fit[:, 2] - true[:, 2]) ** 2)) < 3.0  # sos, days
    assert np.sqrt(np.mean((fit[:, 4] - true[:, 4]) ** 2)) < 3.0  # eos, days
    assert np.abs(fit[:, 1] - true[:, 1]).mean() < 0.02  # vmax, NDVI


# --- per-date quality (MCD12Q2 QA_Detailed / QA_Overall style) ---------------------------------


def test_date_quality_counts_unusable_observations_between_the_bracketing_usable_ones():
    days = np.array([[0.0, 16, 32, 48, 64, 80, 96, 112, 128, 200]])
    weights = np.array([[1.0, 1, 0.5, 0, 1, 0, 0, 1, 0, 0]])  # 48, 80, 96, 128, 200 unusable
    dates = np.array([[8.0, 20.0, 40.0, 70.0, 120.0, 250.0, -5.0, np.nan]])
    q = ph.date_quality(dates, days, weights)
    # 8: 0..16 best; 20: 16..32 best (marginal counts as usable); 40: 32..64 one missing -> good;
    # 70: 64..112 two missing -> fair; 120: nothing usable after -> poor; 250: after the last
    # usable -> poor; -5: before the first -> poor; NaN -> 255
    assert q.tolist() == [[0, 0, 1, 2, 3, 3, 3, 255]]


def test_season_quality_packs_two_bits_per_date_and_overall_is_the_worst(world_pixels):
    _, _, cube = world_pixels
    sub = cube.isel(x=slice(0, 40))
    ds = _product(sub)
    detailed = ds["qa_detailed"].values.astype(np.int64)
    overall = ds["qa_overall"].values
    exists = np.isfinite(ds["sos"].values)
    assert (overall[~exists] == 255).all() and (detailed[~exists] == 65535).all()
    classes = np.stack([(detailed >> (2 * i)) & 3 for i in range(len(ph.QA_DATES))])
    assert (classes.max(axis=0)[exists] == overall[exists]).all()
    # ~24 % cloudy composites: a date has both neighbours clear about (1 - 0.24)^2 = 58 % of
    # the time, and at most one cloudy composite around it most of the time
    per_date = classes[:, exists]
    assert 0.45 < (per_date == 0).mean() < 0.7
    assert (per_date <= 1).mean() > 0.8
    # knocking out every observation in spring makes greenup poor where it falls in the hole
    doy = sub["doy"].values
    hole = (doy >= 60) & (doy <= 150)
    holed = sub.assign(qa=sub["qa"].where(~hole, 3))
    ds2 = _product(holed)
    greenup = ds2["greenup"].sel(season=1).values
    inside = (greenup > 75) & (greenup < 135)
    g_class = ds2["qa_detailed"].sel(season=1).values.astype(np.int64) & 3
    assert inside.sum() > 10 and (g_class[inside] == 3).all()


def test_metrics_of_broadcast_and_transposed_inputs_equal_those_of_full_c_ordered_ones():
    """``phenology_metrics`` copies each input to C-ordered float64 rows at most once: weights
    and days given once for all pixels (broadcast), and float32 values given as a transposed
    (Fortran-ordered) view, give the same metrics as full C-ordered float64 arrays."""
    rng = np.random.default_rng(3)
    days = np.arange(0.0, 730.0, 16.0) + 8.0
    p = (0.2, 0.8, 120.0, 0.08, 280.0, 0.06)
    values = sm.double_logistic(days % 365 + 1, *p)[None] + rng.normal(0, 0.01, (5, days.size))
    weights = np.where(rng.random(days.size) < 0.2, 0.0, 1.0)
    transposed = np.asfortranarray(values.astype(np.float32)).T.T  # (5, time), F-ordered
    assert not transposed.flags.c_contiguous
    odd = ph.phenology_metrics(transposed, weights, days, YEARS, method="whittaker")
    exact = ph.phenology_metrics(
        values.astype(np.float32).astype(float),
        np.tile(weights, (5, 1)),
        np.tile(days, (5, 1)),
        YEARS,
        method="whittaker",
    )
    assert np.isfinite(exact["sos"][..., 0]).all()  # one season a year, every pixel
    for name in ph.VARIABLES:
        np.testing.assert_array_equal(odd[name], exact[name], err_msg=name)
