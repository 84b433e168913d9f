"""The demo's phenology store: per year and season, on the vi grid, recovering the sample
world's true start and end of season."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr


@pytest.fixture(scope="session")
def pheno(demo_out):
    return xr.open_zarr(demo_out / "products" / "phenology.zarr").load()


@pytest.fixture(scope="session")
def truth(sample_dir, pheno):
    t = xr.open_dataset(sample_dir / "truth" / "phenology.nc")
    return t.sel(lon=pheno.x, lat=pheno.y, method="nearest")


def test_store_layout_year_season_y_x(pheno):
    assert pheno.sos.dims == ("year", "season", "y", "x")
    assert pheno.year.values.tolist() == [2021, 2022]
    assert pheno.season.values.tolist() == [1, 2]
    assert pheno.sos.attrs["units"] == "day of year"
    for name in (
        "sos",
        "pos",
        "eos",
        "los",
        "peak",
        "amplitude",
        "integral",
        "n_obs",
        "greenup",
        "midgreenup",
        "maturity",
        "senescence",
        "midgreendown",
        "dormancy",
    ):
        assert name in pheno


@pytest.mark.parametrize("year", [2021, 2022])
def test_start_and_end_of_season_recover_truth_in_days(pheno, truth, year):
    sos = pheno.sos.sel(year=year, season=1).values
    eos = pheno.eos.sel(year=year, season=1).values
    assert np.isfinite(sos).mean() > 0.99
    sos_rmse = np.sqrt(np.nanmean((sos - truth.sos.sel(year=year).values) ** 2))
    eos_rmse = np.sqrt(np.nanmean((eos - truth.eos.sel(year=year).values) ** 2))
    # through the whole pipeline, nearest-pixel resampling included (issue 4 asks <= 6 days
    # for EOS on undisturbed pixels; the demo's figures are recorded in the issue note)
    assert sos_rmse <= 6.0
    assert eos_rmse <= 9.0


def test_single_season_world_has_no_second_season(pheno):
    assert np.isfinite(pheno.sos.sel(season=2).values).mean() < 0.01
