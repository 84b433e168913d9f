"""The cf_meteo reader: ERA5-like daily NetCDF of the sample world -> ta, sw_in, vpd, precip
in FLUXNET units, against the world's true weather; other CF layouts; bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxscape.errors import FluxscapeError, ReaderError
from fluxscape.ml.timesteps import period_bounds
from fluxscape.pipeline.predictors import meteo_at, meteo_periods
from fluxscape.readers.cf_meteo import open_cf_meteo
from fluxscape.readers.registry import detect
from fluxscape.sample.meteo_writer import write_meteo
from fluxscape.sample.world import PRESETS, World


@pytest.fixture(scope="module")
def world() -> World:
    return World(PRESETS["demo"])


@pytest.fixture(scope="module")
def meteo_files(world, tmp_path_factory) -> list[Path]:
    return write_meteo(world, tmp_path_factory.mktemp("meteo"))


def test_detected_and_recovers_truth(world, meteo_files):
    assert detect(meteo_files[0]).name == "cf_meteo"
    ds = open_cf_meteo(meteo_files[0])
    assert ds["lat"].values[0] < ds["lat"].values[-1]  # flipped to south -> north
    assert {v: ds[v].attrs["units"] for v in ds.data_vars} == {
        "ta": "degC",
        "sw_in": "W m-2",
        "vpd": "hPa",
        "precip": "mm d-1",
        "ts": "degC",
        "swc": "m3 m-3",
    }
    assert ds["ts"].attrs["standard_name"] == "soil_temperature"
    assert ds["swc"].attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
    lon, lat = float(ds["lon"][4]), float(ds["lat"][7])
    truth = world.meteo(np.array(lon), np.array(lat), pd.DatetimeIndex(ds["time"].values))
    point = ds.sel(lon=lon, lat=lat)
    assert np.abs(point["ta"] - truth["TA_F"]).max() < 1e-3
    assert np.abs(point["sw_in"] - truth["SW_IN_F"]).max() / truth["SW_IN_F"].max() < 1e-5
    assert np.abs(point["vpd"] - truth["VPD_F"]).max() < 1e-3  # from t2m and d2m
    assert np.abs(point["precip"] - truth["P_F"]).max() < 1e-3
    # the top soil layer: the daily means of the world's chamber soil drivers
    soil = world.soil_state(np.array(lon), np.array(lat), pd.DatetimeIndex(ds["time"].values))
    assert np.abs(point["ts"] - soil["t5"]).max() < 1e-3
    assert np.abs(point["swc"] - soil["sm10"]).max() < 1e-6
    assert float(point["ts"].std()) > 3 and 0.08 <= float(point["swc"].min()) < 0.5


def _soil_file(path: Path, soil: dict) -> Path:
    """A CF file with air temperature and the given soil variables on (time, depth, lat, lon)
    where they have a depth (two levels)."""
    times = pd.date_range("2021-07-01", periods=3, freq="D")
    coords = {"time": times, "lat": [36.0, 36.5], "lon": [138.0, 138.5]}
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), np.full((3, 2, 2), 293.15), {"units": "K"})} | soil,
        coords=coords,
    )
    if "depth" in ds.dims:
        ds = ds.assign_coords(depth=("depth", [0.05, 0.2], {"units": "m", "bounds": "depth_bnds"}))
        ds["depth_bnds"] = (("depth", "nv"), np.array([[0.0, 0.1], [0.1, 0.3]]))
    ds.to_netcdf(path)
    return path


def test_soil_layer_from_cf_standard_names_percent_and_mass(tmp_path):
    """CF soil variables with a depth axis give their top level: soil_temperature (K),
    volume fraction in percent (/100), and mass content (kg m-2) over the top layer's
    thickness from the depth bounds (30 kg m-2 in 0.1 m of soil: 0.3 m3 m-3); a mass content
    without bounds is refused naming the file."""
    dims = ("time", "depth", "lat", "lon")
    levels = np.stack([np.full((3, 2, 2), 285.15), np.full((3, 2, 2), 280.15)], axis=1)
    out = open_cf_meteo(
        _soil_file(
            tmp_path / "percent.nc",
            {
                "tsl": (dims, levels, {"units": "K", "standard_name": "soil_temperature"}),
                "sm": (
                    dims,
                    np.full((3, 2, 2, 2), 25.0),
                    {"units": "%", "standard_name": "volume_fraction_of_condensed_water_in_soil"},
                ),
            },
        )
    )
    assert out["ts"].dims == ("time", "lat", "lon")
    assert float(out["ts"].mean()) == pytest.approx(12.0)  # top level, degC
    assert float(out["swc"].mean()) == pytest.approx(0.25)
    mass = {
        "mrsol": (
            dims,
            np.full((3, 2, 2, 2), 30.0),
            {"units": "kg m-2", "standard_name": "mass_content_of_water_in_soil_layer"},
        )
    }
    out = open_cf_meteo(_soil_file(tmp_path / "mass.nc", mass))
    assert float(out["swc"].mean()) == pytest.approx(0.3)
    flat = {"mrsol": (("time", "lat", "lon"), np.full((3, 2, 2), 30.0), {"units": "kg m-2"})}
    with pytest.raises(ReaderError, match="flat.nc: mrsol is a soil water mass content"):
        open_cf_meteo(_soil_file(tmp_path / "flat.nc", flat))


def test_a_product_asking_for_soil_moisture_the_files_lack_names_the_file(tmp_path):
    path = _soil_file(tmp_path / "air_only.nc", {})
    times = pd.DatetimeIndex(["2021-07-01"])
    with pytest.raises(FluxscapeError, match="air_only.nc: meteorology lacks \\['swc'\\]"):
        meteo_periods([str(path)], times, times + pd.Timedelta(days=3), ["ta", "swc"])


def test_other_cf_layout_hourly_watts(tmp_path):
    """A CF file with W m-2, kg m-2 s-1, degC and a 'time'/'lat'/'lon' naming is converted."""
    times = pd.date_range("2021-07-01", periods=48, freq="h")
    dims = ("time", "lat", "lon")
    shape = (48, 2, 3)
    ds = xr.Dataset(
        {
            "tas": (
                dims,
                np.full(shape, 20.0),
                {"units": "degC", "standard_name": "air_temperature"},
            ),
            "rsds": (dims, np.full(shape, 300.0), {"units": "W m-2"}),
            "pr": (dims, np.full(shape, 1e-4), {"units": "kg m-2 s-1"}),
        },
        coords={"time": times, "lat": [36.0, 36.5], "lon": [138.0, 138.5, 139.0]},
    )
    path = tmp_path / "forcing.nc"
    ds.to_netcdf(path)
    out = open_cf_meteo(path)
    assert float(out["ta"].mean()) == pytest.approx(20.0)
    assert float(out["sw_in"].mean()) == pytest.approx(300.0)
    assert float(out["precip"].mean()) == pytest.approx(8.64, rel=1e-5)
    assert "vpd" not in out  # neither VPD nor dewpoint: absent, not invented


def test_period_means_and_interpolation(world, meteo_files):
    times = pd.DatetimeIndex(["2021-07-12", "2021-07-28"])
    ends = period_bounds(times)[1]
    assert list(ends) == [pd.Timestamp("2021-07-28"), pd.Timestamp("2021-08-13")]
    per = meteo_periods(meteo_files, times, ends, ["ta", "sw_in"])
    lon, lat = float(per["lon"][5]), float(per["lat"][6])
    days = pd.date_range("2021-07-12", "2021-07-27")
    truth = world.meteo(np.array(lon), np.array(lat), days)["TA_F"].mean()
    assert abs(float(meteo_at(per, lon, lat)["ta"][0]) - truth) < 1e-3  # 16-day mean at a node
    # half way between two nodes: the mean of the two (bilinear)
    lon2 = float(per["lon"][6])
    mid = float(meteo_at(per, (lon + lon2) / 2, lat)["ta"][0])
    assert mid == pytest.approx(float(per["ta"][0].sel(lat=lat).isel(lon=[5, 6]).mean()), abs=1e-6)


def test_bad_files_named(tmp_path):
    text = tmp_path / "notes.nc"
    text.write_text("not netcdf")
    with pytest.raises(ReaderError, match="notes.nc"):
        open_cf_meteo(text)
    nocoords = tmp_path / "table.nc"
    xr.Dataset({"t2m": ("n", np.arange(3.0))}).to_netcdf(nocoords)
    with pytest.raises(ReaderError, match="table.nc: no time/latitude/longitude"):
        open_cf_meteo(nocoords)


def test_predictor_gaps_filled_in_time():
    from fluxscape.pipeline.predictors import fill_time_gaps

    a = xr.DataArray(
        np.array([[np.nan, 1, np.nan, 3, np.nan], [np.nan] * 5, [1, 2, 3, 4, 5.0]]),
        dims=("x", "time"),
    )
    np.testing.assert_array_equal(fill_time_gaps(a).values[0], [1, 1, 2, 3, 3])
    assert np.isnan(fill_time_gaps(a).values[1]).all()  # never observed: stays missing
    np.testing.assert_array_equal(fill_time_gaps(a).values[2], a.values[2])


def test_phenology_features_pick_the_current_season():
    from fluxscape.pipeline.predictors import phenology_features

    # 2021: one season from DOY 100; 2022: wheat from DOY 80 and rice from DOY 200
    sos = xr.DataArray(
        [[[100.0], [np.nan]], [[80.0], [200.0]]],
        dims=("year", "season", "x"),
        coords={"year": [2021, 2022], "season": [1, 2]},
    )
    eos = sos + 100
    times = pd.DatetimeIndex(["2021-03-01", "2021-05-01", "2021-08-15", "2022-05-01", "2022-08-15"])
    f = phenology_features(sos, eos, times, times + pd.Timedelta(days=16))
    mid = (times + pd.Timedelta(days=8)).dayofyear.to_numpy()
    expected = mid - np.array([100, 100, 100, 80, 200])
    np.testing.assert_array_equal(f["days_since_sos"].values[:, 0], expected)
    np.testing.assert_allclose(f["season_fraction"].values[:, 0], np.clip(expected / 100.0, 0, 1))


def _xarray_period_means(path, times, ends, variables):
    """The former xarray implementation of the period means (groupby sum / days)."""
    from fluxscape.pipeline.predictors import period_of_days

    ds = open_cf_meteo(path)
    label = period_of_days(pd.DatetimeIndex(ds["time"].values), times, ends)
    keep = label >= 0
    sub = ds[variables].isel(time=np.flatnonzero(keep)).load()
    sub = sub.assign_coords(period=("time", label[keep]))
    sums = sub.groupby("period").sum("time").reindex(period=np.arange(len(times)), fill_value=0)
    counts = np.bincount(label[keep], minlength=len(times)).astype(float)
    days = xr.DataArray(np.where(counts > 0, counts, np.nan), dims="period")
    return (sums / days).rename(period="time")


def _daily_file(path: Path, ta: np.ndarray, days) -> Path:
    lat, lon = [36.0, 36.25, 36.5], [138.0, 138.25]
    xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), ta + 273.15, {"units": "K"})},
        coords={"time": days, "latitude": lat, "longitude": lon},
    ).to_netcdf(path)
    return path


def test_period_means_equal_xarray_groupby_and_count_nan_days(tmp_path):
    """The numpy period sums give xarray's groupby values bit for bit (float32 sums); a
    NaN day adds nothing but counts among the period's days."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2021-07-01", periods=40, freq="D")
    ta = rng.normal(20, 5, (40, 3, 2)).astype("float32")
    ta[3, 0, 0] = np.nan  # one NaN day in the first period at one cell
    path = _daily_file(tmp_path / "met.nc", ta, days)
    times = pd.DatetimeIndex(["2021-07-01", "2021-07-17", "2021-09-01"])
    ends = times + pd.Timedelta(days=16)
    got = meteo_periods([str(path)], times, ends, ["ta"])
    want = _xarray_period_means(path, times, ends, ["ta"])
    np.testing.assert_array_equal(got["ta"].values, want["ta"].values)
    celsius = (ta.astype("float32") + np.float32(273.15)) - np.float32(273.15)
    assert got["ta"].values[0, 0, 0] == pytest.approx(np.nansum(celsius[:16, 0, 0]) / 16, 1e-6)
    assert np.isnan(got["ta"].values[2]).all()  # no day of data in the third period


def test_a_rewritten_meteorology_file_is_read_again(tmp_path):
    """Files are opened once per process and file version: a file rewritten in place (new
    size or modification time) gives its new values."""
    days = pd.date_range("2021-07-01", periods=16, freq="D")
    path = tmp_path / "met.nc"
    times = pd.DatetimeIndex(["2021-07-01"])
    ends = times + pd.Timedelta(days=16)
    _daily_file(path, np.full((16, 3, 2), 10.0, "float32"), days)
    first = meteo_periods([str(path)], times, ends, ["ta"])
    again = meteo_periods([str(path)], times, ends, ["ta"])
    assert float(first["ta"].mean()) == float(again["ta"].mean()) == pytest.approx(10.0)
    path.unlink()
    _daily_file(path, np.full((16, 3, 2), 25.0, "float32"), days)
    os.utime(path, ns=(1, 1))  # another version even within the clock's resolution
    assert float(meteo_periods([str(path)], times, ends, ["ta"])["ta"].mean()) == pytest.approx(
        25.0
    )


def test_gap_filling_equals_xarray_interpolate_na():
    """The numpy gap filling gives xarray's interpolate_na (linear, then the ends by the
    nearest value) bit for bit, along time in any axis position, float32 and float64; a
    pixel with one value keeps its other periods NaN, as xarray leaves it."""
    from fluxscape.pipeline.predictors import fill_time_gaps

    rng = np.random.default_rng(5)
    for dtype in ("float64", "float32"):
        a = rng.normal(0.5, 0.2, (23, 6, 7)).astype(dtype)
        a[rng.random(a.shape) < 0.6] = np.nan
        a[:, 0, 0] = np.nan
        a[:, 0, 1] = np.nan
        a[4, 0, 1] = 0.25
        da = xr.DataArray(a, dims=("time", "y", "x"), attrs={"units": "1"})
        for cube in (da, da.transpose("y", "time", "x")):
            want = cube.interpolate_na(dim="time", method="linear", use_coordinate=False)
            want = want.interpolate_na(
                dim="time", method="nearest", use_coordinate=False, fill_value="extrapolate"
            )
            got = fill_time_gaps(cube)
            xr.testing.assert_identical(got, want)
            assert got.dtype == dtype
        filled = fill_time_gaps(da).values
        assert np.isfinite(filled[:, 1:, :]).all() or np.isnan(a[:, 1:, :]).all(axis=0).any()
        assert np.isnan(filled[:, 0, 1]).sum() == 22 and filled[4, 0, 1] == np.float32(0.25)
