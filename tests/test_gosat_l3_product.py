"""The demo's gosat_l3 store: each cell's monthly mean is the mean of the quality-passed
soundings in that cell and month; cells without soundings are NaN with count 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxscape.readers.gosat import open_gosat_nies
from fluxscape.sample.world import PRESETS, World


@pytest.fixture(scope="session")
def l3(demo_out):
    return xr.open_zarr(demo_out / "products" / "gosat_l3.zarr").load()


@pytest.fixture(scope="session")
def co2_soundings(sample_dir) -> pd.DataFrame:
    frames = []
    for path in sorted((sample_dir / "gosat" / "nies").glob("*_02C01S*.h5")):
        ds = open_gosat_nies(path)
        frames.append(
            pd.DataFrame(
                {
                    "lon": ds.lon.values,
                    "lat": ds.lat.values,
                    "time": ds.time.values,
                    "xco2": ds.xco2.values,
                    "ok": ds.quality_pass.values.astype(bool),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_cell_mean_equals_mean_of_passed_soundings(l3, co2_soundings):
    df = co2_soundings[co2_soundings.ok & co2_soundings.xco2.notna()].copy()
    res = 0.25
    west, north = float(l3.x.min()) - res / 2, float(l3.y.max()) + res / 2
    df["col"] = np.floor((df.lon - west) / res).astype(int)
    df["row"] = np.floor((north - df.lat) / res).astype(int)
    df["month"] = pd.DatetimeIndex(df.time).to_period("M").to_timestamp()
    groups = df.groupby(["month", "row", "col"])["xco2"]
    expected_mean, expected_count = groups.mean(), groups.size()
    checked = 0
    for (month, row, col), mean in expected_mean.items():
        cell = l3.sel(time=month).isel(y=row, x=col)
        assert int(cell.xco2_count) == expected_count[(month, row, col)]
        assert float(cell.xco2) == pytest.approx(mean, abs=1e-4)
        checked += 1
    assert checked > 100
    total = int(l3.xco2_count.sum())
    assert total == len(df)


def test_empty_cells_are_nan_with_count_zero(l3):
    empty = l3.xco2_count.values == 0
    assert np.isnan(l3.xco2.values[empty]).all()
    assert (np.isfinite(l3.xco2.values[~empty])).all()


def test_monthly_xco2_tracks_the_true_field(l3):
    world = World(PRESETS["demo"], seed=42)
    lon, lat = np.meshgrid(l3.x.values, l3.y.values)
    for t in (0, 7, 18):
        month = pd.Timestamp(l3.time.values[t])
        mid = month + pd.Timedelta(days=14)
        truth = world.xco2(lon, lat, [mid])[..., 0]
        diff = l3.xco2.isel(time=t).values - truth
        assert np.nanmean(np.abs(diff)) < 1.5  # ppm: noise 1.5 ppm averaged over soundings
    assert l3.xco2.attrs["units"] == "ppm" and l3.xch4.attrs["units"] == "ppb"
