"""The cf_elevation reader (a DEM in CF NetCDF -> the ``elevation`` layer) and the elevation
feature: the sample world's 30 arc-second DEM against the world's elevation, GDAL's NetCDF
layout in other units and longitudes, bad files in one line naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from fluxscape.errors import ReaderError
from fluxscape.pipeline.predictors import static_at
from fluxscape.readers.cf_elevation import open_elevation
from fluxscape.readers.registry import detect, get_reader
from fluxscape.sample.dem_writer import write_dem
from fluxscape.sample.meteo_writer import write_meteo
from fluxscape.sample.world import PRESETS, World


@pytest.fixture(scope="module")
def world() -> World:
    return World(PRESETS["soil"])


@pytest.fixture(scope="module")
def dem(world, tmp_path_factory) -> Path:
    return write_dem(world, tmp_path_factory.mktemp("dem"))[0]


def test_sample_dem_is_detected_and_gives_the_worlds_elevation(world, dem):
    assert detect(dem).name == "cf_elevation"
    assert get_reader("cf_elevation").gives("elevation")
    ds = open_elevation(dem)
    assert ds["elevation"].dims == ("lat", "lon") and ds["elevation"].attrs["units"] == "m"
    assert (np.diff(ds["lat"].values) > 0).all()  # written north to south, read south up
    w, s, e, n = PRESETS["soil"].bbox
    assert ds["lon"].min() < w and ds["lon"].max() > e and ds["lat"].min() < s
    lon, lat = np.meshgrid(ds["lon"].values, ds["lat"].values)
    assert np.abs(ds["elevation"].values - world.elevation(lon, lat)).max() <= 0.5  # int16 m


def test_elevation_at_pixel_centres_is_bilinear_and_close_to_the_truth(world, dem):
    """static_at: between four cells the bilinear mean; at random points a median error of
    under 2 m against the smooth truth (30 arc-second cells; the world clips its field to
    0-2500 m, and next to those kinks the bilinear value is off by up to ~20 m)."""
    ds = open_elevation(dem)
    lat0, lon0 = ds["lat"].values[10:12], ds["lon"].values[20:22]
    mid = static_at([str(dem)], "cf_elevation", "elevation", lon0.mean(), lat0.mean())
    corners = ds["elevation"].sel(lat=lat0, lon=lon0).values.mean()
    assert float(mid) == pytest.approx(float(corners), abs=1e-3)
    rng = np.random.default_rng(0)
    lon = rng.uniform(138.0, 139.0, (20, 30))
    lat = rng.uniform(35.5, 36.5, (20, 30))
    got = static_at([str(dem)], "cf_elevation", "elevation", lon, lat)
    assert got.shape == lon.shape and np.isfinite(got).all()
    error = np.abs(got - world.elevation(lon, lat))
    assert np.median(error) < 2.0 and error.max() < 25.0  # the field's clipped kinks: ~20 m
    off = static_at([str(dem)], "cf_elevation", "elevation", np.array([150.0]), np.array([0.0]))
    assert np.isnan(off).all()  # beyond the DEM: no value


def test_gdal_band1_in_km_with_0_360_longitudes(tmp_path):
    ds = xr.Dataset(
        {"Band1": (("lat", "lon"), np.array([[1.0, 2.0], [3.0, 4.0]]), {"units": "km"})},
        coords={"lat": [36.5, 36.0], "lon": [179.5, 180.5]},
    )
    path = tmp_path / "gmted.nc"
    ds.to_netcdf(path)
    out = open_elevation(path)
    assert list(out["lon"].values) == [-179.5, 179.5]
    assert list(out["lat"].values) == [36.0, 36.5]
    np.testing.assert_array_equal(out["elevation"].values, [[4000.0, 3000.0], [2000.0, 1000.0]])


def test_meteorology_is_not_taken_for_a_dem(world, tmp_path):
    (meteo,) = write_meteo(world, tmp_path)
    assert detect(meteo).name == "cf_meteo"
    with pytest.raises(ReaderError, match="era5_daily_2021.nc: no elevation variable"):
        open_elevation(meteo)


@pytest.mark.parametrize(
    "variables, problem",
    [
        ({"elevation": (("lat", "lon"), np.ones((2, 2)), {"units": "hPa"})}, "units 'hPa'"),
        (
            {"elevation": (("time", "lat", "lon"), np.ones((3, 2, 2)), {"units": "m"})},
            "dimensions \\['time'\\] besides lat/lon",
        ),
        ({"slope": (("lat", "lon"), np.ones((2, 2)))}, "no elevation variable"),
    ],
)
def test_bad_dems_are_refused_in_one_line_naming_the_file(tmp_path, variables, problem):
    path = tmp_path / "bad_dem.nc"
    coords = {"lat": [36.0, 36.5], "lon": [138.0, 138.5]}
    if any("time" in v[0] for v in variables.values()):
        coords["time"] = np.arange(3)
    xr.Dataset(variables, coords=coords).to_netcdf(path)
    with pytest.raises(ReaderError, match=f"bad_dem.nc: .*{problem}"):
        open_elevation(path)
