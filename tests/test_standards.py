"""Products as standard clients read them (issue #14): CF-1.10 exports checked by the IOOS
compliance-checker, every store variable georeferenced by Debian's GDAL 3.6 (``gdalinfo``)
and by rasterio's GDAL, and periods (CF time bounds) in the stores, search and extraction."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxscape.catalog import open_catalog


@pytest.fixture(scope="module")
def cat(demo_out):
    return open_catalog(demo_out / "catalog")


@pytest.fixture(scope="module")
def stores(demo_out) -> dict[str, Path]:
    found = {p.name.removesuffix(".zarr"): p for p in (demo_out / "products").glob("*.zarr")}
    assert {"vi", "flux", "gosat_l3", "phenology"} <= set(found)
    return found


def _data_vars(ds: xr.Dataset) -> list[str]:
    return [v for v in ds.data_vars if {"y", "x"} <= set(ds[v].dims)]


def test_time_stores_carry_cf_period_bounds_and_cell_methods(stores):
    for name, path in stores.items():
        ds = xr.open_zarr(path)
        if "time" not in ds.dims:
            assert name == "phenology"
            continue
        assert ds["time"].attrs["bounds"] == "time_bnds", name
        bnds = pd.DataFrame(ds["time_bnds"].values, columns=["start", "end"])
        starts = pd.DatetimeIndex(ds["time"].values)
        assert (bnds["start"] == starts).all(), name
        # periods tile the axis: each ends where the next begins, the last at its own end
        assert (bnds["end"].iloc[:-1].values == starts[1:].values).all(), name
        assert (bnds["end"] > bnds["start"]).all(), name
        for var in _data_vars(ds):
            if not var.endswith("_stderr"):  # no CF cell method names a standard error
                assert "time:" in ds[var].attrs["cell_methods"], (name, var)
    vi = xr.open_zarr(stores["vi"])
    last = pd.Timestamp(vi["time_bnds"].values[-1, 1])
    assert last == pd.Timestamp(f"{pd.Timestamp(vi.time.values[-1]).year + 1}-01-01")  # 16-day
    gosat = xr.open_zarr(stores["gosat_l3"])
    december = pd.Timestamp(gosat.time.values[-1])
    assert pd.Timestamp(gosat["time_bnds"].values[-1, 1]) == december + pd.offsets.MonthBegin(1)


def test_the_last_days_of_the_year_find_every_product_covering_them(cat, stores):
    """The last 16-day period runs to 31 December, a monthly one to the end of the month:
    search and extraction over the last days of the year find them (issue #14)."""
    year = pd.Timestamp(xr.open_zarr(stores["vi"]).time.values[-1]).year
    hits = {e.id for e in cat.search(time=f"{year}-12-25/{year}-12-31")}
    assert hits == {e.id for e in cat.entries()}
    for entry in cat.entries():  # extents end at the end of the last period, not its start
        assert pd.Timestamp(entry.time[1]).strftime("%m-%d") == "12-31", entry.time
    gosat = xr.open_zarr(stores["gosat_l3"])
    dec = gosat["xco2"].isel(time=-1).load()
    iy, ix = np.argwhere(np.isfinite(dec.values))[0]
    lon, lat = float(dec.x[ix]), float(dec.y[iy])
    df = cat.extract("xco2", point=(lon, lat), time=f"{year}-12-10/{year}-12-20")
    assert len(df) == 1 and df["value"].iloc[0] == pytest.approx(float(dec.values[iy, ix]))


def _cf_report(path: Path, tmp_path: Path) -> dict:
    out = tmp_path / f"{path.stem}.cf.json"
    checker = Path(sys.executable).with_name("compliance-checker")
    subprocess.run(
        [str(checker), "--test=cf:1.10", "-f", "json", "-o", str(out), str(path)],
        capture_output=True,
        text=True,
    )
    return json.loads(out.read_text())["cf:1.10"]


def test_netcdf_exports_of_every_product_pass_the_cf_1_10_checker(cat, tmp_path):
    for entry in cat.entries():
        path = cat.export(entry, tmp_path / f"{entry.product}.nc")
        report = _cf_report(path, tmp_path)
        errors = [(c["name"], c["msgs"]) for c in report["high_priorities"] if c["msgs"]]
        assert errors == [], (entry.id, errors)
        assert report["scored_points"] > 0.95 * report["possible_points"], entry.id


def test_netcdf_export_keeps_flags_integer_and_coordinates_without_fill(cat, tmp_path):
    path = cat.export("vi", tmp_path / "vi.nc", variables=["ndvi", "qa"])
    with netCDF4.Dataset(path) as nc:
        qa = nc["qa"]
        assert qa.dtype == np.uint8 and qa.getncattr("_FillValue") == 255
        assert qa.getncattr("flag_values").dtype == np.uint8
        for coord in ("x", "y", "time"):
            assert "_FillValue" not in nc[coord].ncattrs(), coord
        assert nc["time"].getncattr("bounds") == "time_bnds" and "time_bnds" in nc.variables
        assert nc["ndvi"].getncattr("grid_mapping") == "spatial_ref"
        assert nc.getncattr("Conventions") == "CF-1.10"
    src = xr.open_zarr(cat.directory.parent / "products" / "vi.zarr", mask_and_scale=False)
    back = xr.open_dataset(path, mask_and_scale=False)
    np.testing.assert_array_equal(back["qa"].values, src["qa"].values)


def _gdalinfo() -> str:
    exe = shutil.which("gdalinfo")
    assert exe, "Debian's gdal-bin is needed (.ci/run installs it)"
    return exe


def _gdal_name(store: Path, ds: xr.Dataset, var: str) -> str:
    """GDAL's classic-raster name of ``var``'s first 2-D slice (GDAL 3.6 needs an index for
    each extra dimension)."""
    extra = [d for d in ds[var].dims if d not in ("y", "x")]
    return f'ZARR:"{store}":/{var}' + ":0" * len(extra)


def _expected_transform(ds: xr.Dataset) -> list[float]:
    x, y = ds.x.values, ds.y.values
    dx, dy = float(x[1] - x[0]), float(y[1] - y[0])
    return [float(x[0]) - dx / 2, dx, 0.0, float(y[0]) - dy / 2, 0.0, dy]


def test_debian_gdal_georeferences_every_store_variable(stores):
    exe = _gdalinfo()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    checked = 0
    for store in stores.values():
        ds = xr.open_zarr(store)
        for var in _data_vars(ds):
            run = subprocess.run(
                [exe, "-json", _gdal_name(store.resolve(), ds, var)],
                capture_output=True,
                text=True,
            )
            assert run.returncode == 0, (version, store.name, var, run.stderr)
            info = json.loads(run.stdout)
            wkt = info.get("coordinateSystem", {}).get("wkt", "")
            assert 'ID["EPSG",4326]' in wkt, (version, store.name, var)
            np.testing.assert_allclose(info["geoTransform"], _expected_transform(ds), atol=1e-9)
            assert info["size"] == [ds.sizes["x"], ds.sizes["y"]]
            checked += 1
    assert checked >= 20


def test_rasterio_gdal_reads_time_as_bands_with_their_dates(stores):
    import rasterio

    ds = xr.open_zarr(stores["vi"])
    with rasterio.open(f'ZARR:"{stores["vi"].resolve()}":/ndvi') as src:
        assert src.crs.to_epsg() == 4326 and src.count == ds.sizes["time"]
        assert list(src.transform)[:6] == pytest.approx(
            [_expected_transform(ds)[i] for i in (1, 2, 0, 4, 5, 3)]
        )
        tags = src.tags(src.count)
        days = (ds.time.values[-1] - np.datetime64("1970-01-01")) // np.timedelta64(1, "D")
        assert int(tags["DIM_time_VALUE"]) == days
        assert tags["DIM_time_UNIT"].startswith("days since 1970-01-01")
        np.testing.assert_array_equal(src.read(src.count), ds.ndvi.isel(time=-1).values)
