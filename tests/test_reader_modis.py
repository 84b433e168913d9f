"""MODIS HDF4-EOS reader: geolocation against the sinusoidal formula, per-product decoding,
real LP DAAC files, the registry and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import missing_realdata, run_cli
from pyhdf.SD import SD, SDC
from pyproj import Transformer

from fluxscape.errors import ReaderError
from fluxscape.readers import detect, inspect_file, modis_hdf4
from fluxscape.readers.modis_hdf4 import (
    EARTH_RADIUS_M,
    SINUSOIDAL_PROJ,
    open_modis_tile,
    parse_filename,
    read_grids,
)

TILE_M = 2 * math.pi * EARTH_RADIUS_M / 36  # 1111950.5197 m
REAL_FULL_TILES = [
    "MCD15A2H.A2016201.h18v05.006.2016215124658.hdf",
    "MCD43A3.A2017199.h15v07.006.2017208032853.hdf",
    "MOD11B2.A2017001.h14v04.006.2017013155631.hdf",
]
REAL_SUBSET = "MOD09A1.A2017193.h18v04.006.2017202035302.hdf"


@pytest.fixture(scope="session")
def modis_real(realdata_dir: Path) -> Path:
    folder = realdata_dir / "modis_hdf4"
    if not folder.is_dir():
        missing_realdata(f"MODIS HDF4 files not found under {folder}")
    return folder


@pytest.fixture(scope="session")
def sample_tile(sample_dir: Path) -> Path:
    return sorted((sample_dir / "modis").glob("MOD13A2.A2021193.*.hdf"))[0]


def _formula_corners(h: int, v: int) -> tuple[tuple[float, float], tuple[float, float]]:
    ulx = -18 * TILE_M + h * TILE_M
    uly = 9 * TILE_M - v * TILE_M
    return (ulx, uly), (ulx + TILE_M, uly - TILE_M)


def test_sample_tile_corners_match_sinusoidal_formula_in_metres(sample_tile):
    meta = parse_filename(sample_tile)
    grid = read_grids(sample_tile)[0]
    ul, lr = _formula_corners(meta["h"], meta["v"])
    assert grid.upper_left == pytest.approx(ul, abs=1.0)
    assert grid.lower_right == pytest.approx(lr, abs=1.0)
    assert (grid.ydim, grid.xdim) == (1200, 1200)


@pytest.mark.parametrize("name", REAL_FULL_TILES)
def test_real_full_tile_corners_match_sinusoidal_formula_in_metres(modis_real, name):
    meta = parse_filename(name)
    grid = read_grids(modis_real / name)[0]
    ul, lr = _formula_corners(meta["h"], meta["v"])
    assert grid.upper_left == pytest.approx(ul, abs=1.0)
    assert grid.lower_right == pytest.approx(lr, abs=1.0)


def test_pixel_centre_lonlat_follows_inverse_sinusoidal_formula(sample_tile):
    ds = open_modis_tile(sample_tile, ["NDVI"], roi=(slice(500, 503), slice(700, 702)))
    x, y = np.meshgrid(ds.x.values, ds.y.values)
    lat = np.degrees(y / EARTH_RADIUS_M)
    lon = np.degrees(x / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    tr = Transformer.from_crs(SINUSOIDAL_PROJ, "EPSG:4326", always_xy=True)
    plon, plat = tr.transform(x, y)
    np.testing.assert_allclose(plon, lon, atol=1e-7)
    np.testing.assert_allclose(plat, lat, atol=1e-7)
    pixel = TILE_M / 1200
    ulx, uly = _formula_corners(29, 5)[0]
    assert ds.x.values[0] == pytest.approx(ulx + 700.5 * pixel, abs=1e-2)
    assert ds.y.values[0] == pytest.approx(uly - 500.5 * pixel, abs=1e-2)


def test_mod13_ndvi_is_stored_number_divided_by_10000(sample_tile):
    sd = SD(str(sample_tile), SDC.READ)
    sds = sd.select("1 km 16 days NDVI")
    dn = sds[:]
    scale = sds.attributes()["scale_factor"]
    sd.end()
    assert scale == 10000.0  # what real MOD13 files carry (divide semantics)
    ds = open_modis_tile(sample_tile, ["NDVI"])
    valid = dn != -3000
    assert valid.sum() > 1000
    np.testing.assert_allclose(ds.NDVI.values[valid], dn[valid] / 10000.0, rtol=1e-6)
    assert np.isnan(ds.NDVI.values[~valid]).all()


def test_mod13_quality_layers_are_kept_as_integers(sample_tile):
    ds = open_modis_tile(sample_tile, ["VI_Quality", "pixel_reliability"])
    assert ds.VI_Quality.dtype == np.uint16
    assert ds.pixel_reliability.dtype == np.int8
    assert set(np.unique(ds.pixel_reliability.values)) <= {-1, 0, 1, 2, 3}
    assert ds.VI_Quality.attrs["sds_name"] == "1 km 16 days VI Quality"


def test_reading_a_window_gives_the_same_values_as_the_full_tile(sample_tile):
    full = open_modis_tile(sample_tile, ["EVI"])
    part = open_modis_tile(sample_tile, ["EVI"], roi=(slice(400, 460), slice(800, 830)))
    np.testing.assert_array_equal(part.EVI.values, full.EVI.values[400:460, 800:830])
    np.testing.assert_allclose(part.x.values, full.x.values[800:830], atol=1e-6)


def test_real_mod11_lst_kelvin_and_view_angle_with_cf_offset(modis_real):
    ds = open_modis_tile(
        modis_real / "MOD11B2.A2017001.h14v04.006.2017013155631.hdf",
        ["LST_Day_6km", "Day_view_angl", "QC_Day"],
    )
    lst = ds.LST_Day_6km.values
    assert np.nanmin(lst) > 200 and np.nanmax(lst) < 340  # January, North Atlantic/America
    angle = ds.Day_view_angl.values
    # stored 0..130 with add_offset -65 applied the CF way -> -65..65 degrees
    assert np.nanmin(angle) >= -65 and np.nanmax(angle) <= 65 and np.nanmin(angle) < 0
    assert ds.QC_Day.dtype == np.uint8


def test_real_mod11_emissivity_decoded_in_cf_order(modis_real):
    """Emis_31/32 carry scale 0.002 and add_offset 0.49 documented as DN * scale + offset:
    the MODIS-land order scale * (DN - offset) would give values near 0."""
    ds = open_modis_tile(
        modis_real / "MOD11B2.A2017001.h14v04.006.2017013155631.hdf", ["Emis_31", "Emis_32"]
    )
    for name in ("Emis_31", "Emis_32"):
        emis = ds[name].values
        assert np.isfinite(emis).any()
        assert 0.9 < np.nanmedian(emis) < 1.0 and np.nanmax(emis) <= 0.49 + 0.002 * 255


def test_real_mcd15_lai_and_fpar_scaled_to_physical_range(modis_real):
    ds = open_modis_tile(modis_real / REAL_FULL_TILES[0], ["Lai_500m", "Fpar_500m"])
    assert 0 <= np.nanmin(ds.Lai_500m.values) and np.nanmax(ds.Lai_500m.values) <= 10.0
    assert 0 <= np.nanmin(ds.Fpar_500m.values) and np.nanmax(ds.Fpar_500m.values) <= 1.0
    assert np.isfinite(ds.Lai_500m.values).mean() > 0.1


def test_real_heg_subset_geolocation_and_reflectance(modis_real):
    path = modis_real / REAL_SUBSET
    grid = read_grids(path)[0]
    assert (grid.ydim, grid.xdim) == (73, 66)
    ds = open_modis_tile(path, ["sur_refl_b01", "sur_refl_b02"])
    assert ds.sizes == {"y": 73, "x": 66}
    assert ds.x.values[0] == pytest.approx(grid.upper_left[0] + 0.5 * TILE_M / 2400, abs=1e-2)
    red, nir = ds.sur_refl_b01.values, ds.sur_refl_b02.values
    assert np.nanmax(red) < 1.7 and np.nanmin(red) > -0.02
    # summer vegetation in the Alps/Po valley: NIR brighter than red on most pixels
    assert np.nanmean(nir > red) > 0.6
    s = inspect_file(path)
    w, so, e, n = s.bbox
    assert 9 < w < e < 11 and 45 < so < n < 47


@pytest.mark.parametrize("name", [*REAL_FULL_TILES, REAL_SUBSET])
def test_registry_detects_real_modis_files(modis_real, name):
    assert detect(modis_real / name).name == "modis_hdf4"


def test_garbage_file_with_modis_name_names_the_file(tmp_path):
    bad = tmp_path / "MOD13A2.A2021001.h29v05.061.2021018034215.hdf"
    bad.write_bytes(b"\x0e\x03\x13\x01" + b"not really hdf" * 10)
    with pytest.raises(ReaderError, match=bad.name):
        modis_hdf4.open_modis_tile(bad)
    with pytest.raises(ReaderError, match=bad.name):
        detect(bad)


def test_unknown_variable_is_reported_with_file_and_available_names(sample_tile):
    with pytest.raises(ReaderError, match="NDMI"):
        open_modis_tile(sample_tile, ["NDMI"])


def test_inspect_json_has_reader_variables_bbox_and_time(sample_tile, sample_dir):
    tower = sorted((sample_dir / "towers").glob("FLX_*.csv"))[0]
    proc = run_cli("inspect", sample_tile, tower, "--json")
    items = json.loads(proc.stdout)
    assert [i["reader"] for i in items] == ["modis_hdf4", "fluxnet"]
    for item in items:
        assert {"reader", "variables", "bbox", "time"} <= set(item)
    modis = items[0]
    assert "NDVI" in modis["variables"] and "VI_Quality" in modis["variables"]
    w, s, e, n = modis["bbox"]
    assert w < 138.0 and e > 139.0 and s == pytest.approx(30.0) and n == pytest.approx(40.0)
    assert modis["time"] == ["2021-07-12", "2021-07-27"]
    assert items[1]["time"][0].startswith("2021-01-01")


def test_inspect_bad_file_exits_1_naming_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    proc = run_cli("inspect", bad, check=False)
    assert proc.returncode == 1
    assert "notes.txt" in proc.stderr and "Traceback" not in proc.stderr


def test_plain_xarray_opens_modis_tile_through_entry_point(sample_tile):
    import xarray as xr

    ds = xr.open_dataset(sample_tile, engine="fluxscape_modis")
    ours = open_modis_tile(sample_tile, ["NDVI"])
    np.testing.assert_array_equal(ds.NDVI.values, ours.NDVI.values)


REAL_MOD09A1 = REAL_SUBSET
REAL_MCD15A2H = REAL_FULL_TILES[0]


def test_real_mod09a1_subset_grid_is_the_subset_not_the_whole_tile(modis_real):
    """The HEG subset keeps h18v04 in its name but its grid is 73 x 66 pixels at rows 923..995,
    columns 1626..1691 of the tile, on the tile's 500 m pixel edges."""
    path = modis_real / REAL_MOD09A1
    grid = read_grids(path)[0]
    assert grid.name == "MOD_Grid_500m_Surface_Reflectance_463"
    gbox = modis_hdf4.tile_geobox(path)
    assert gbox.shape.yx == (73, 66)
    pixel = TILE_M / 2400
    assert gbox.resolution.x == pytest.approx(pixel, rel=1e-9)
    assert gbox.resolution.y == pytest.approx(-pixel, rel=1e-9)
    (ulx, uly), _ = _formula_corners(18, 4)
    col, row = (gbox.affine.c - ulx) / pixel, (uly - gbox.affine.f) / pixel
    assert (col, row) == (pytest.approx(1626, abs=1e-4), pytest.approx(923, abs=1e-4))
    w, s, e, n = inspect_file(path).bbox
    assert 40 < s < n < 50 and -10 < w < e < 40  # h18v04: Europe, 40-50 N


def test_real_mod09a1_decoded_per_user_guide(modis_real):
    path = modis_real / REAL_MOD09A1
    ds = open_modis_tile(path)
    sd = SD(str(path), SDC.READ)
    try:
        dn = sd.select("sur_refl_b01")[:]
    finally:
        sd.end()
    np.testing.assert_allclose(ds.sur_refl_b01.values, dn * 1e-4, rtol=1e-6)
    for band in range(1, 8):
        v = ds[f"sur_refl_b0{band}"]
        assert v.dtype == np.float32 and v.attrs["units"] == "1"
        assert np.isfinite(v.values).all()  # no fill in this subset
        assert -0.01 <= np.nanmin(v.values) and np.nanmax(v.values) <= 1.6
    assert ds.sur_refl_qc_500m.dtype == np.uint32
    assert ds.sur_refl_state_500m.dtype == np.uint16
    doy = ds.sur_refl_day_of_year.values
    assert 193 <= np.nanmin(doy) and np.nanmax(doy) <= 200  # within the 8-day composite
    assert 0 < np.nanmin(ds.sur_refl_szen.values) and np.nanmax(ds.sur_refl_szen.values) < 60
    assert ds.time.values == np.datetime64("2017-07-12")
    assert inspect_file(path).time == ["2017-07-12", "2017-07-19"]


def test_real_mcd15a2h_fill_classes_are_nan_and_qa_integer(modis_real):
    path = modis_real / REAL_MCD15A2H
    ds = open_modis_tile(path, ["Lai_500m", "Fpar_500m", "FparLai_QC", "FparExtra_QC"])
    sd = SD(str(path), SDC.READ)
    try:
        lai_dn = sd.select("Lai_500m")[:]
    finally:
        sd.end()
    fill = lai_dn > 100  # 249..255 fill classes: 253 barren, 254 water, ...
    assert fill.mean() > 0.5  # Sahara and the Mediterranean
    assert np.isnan(ds.Lai_500m.values[fill]).all()
    np.testing.assert_allclose(ds.Lai_500m.values[~fill], lai_dn[~fill] * 0.1, rtol=1e-6)
    assert np.nanmax(ds.Fpar_500m.values) <= 1.0 and ds.Fpar_500m.attrs["units"] == "1"
    assert ds.Lai_500m.attrs["units"] == "m^2/m^2"
    assert np.array_equal(np.isnan(ds.Lai_500m.values), np.isnan(ds.Fpar_500m.values))
    assert ds.FparLai_QC.dtype == np.uint8 and ds.FparExtra_QC.dtype == np.uint8
    s = inspect_file(path)
    w, so, e, n = s.bbox
    assert so == pytest.approx(30.0) and n == pytest.approx(40.0) and w == pytest.approx(0.0)
    assert 10 < e < 14  # h18v05: western Mediterranean and North Africa
    assert s.time == ["2016-07-19", "2016-07-26"]
    assert s.details["grid"] == "MOD_Grid_MOD15A2H"


def test_roi_with_numpy_integer_bounds(modis_real):
    """Windows computed with numpy (np.int64 bounds) are read like plain-int ones."""
    path = modis_real / REAL_MOD09A1
    a = open_modis_tile(path, ["sur_refl_b01"], roi=(slice(np.int64(3), np.int64(9)), slice(2, 7)))
    b = open_modis_tile(path, ["sur_refl_b01"], roi=(slice(3, 9), slice(2, 7)))
    assert a.sizes == {"y": 6, "x": 5}
    np.testing.assert_array_equal(a.sur_refl_b01.values, b.sur_refl_b01.values)


def test_grids_are_parsed_once_per_version_of_a_file(tmp_path, sample_dir, monkeypatch):
    """read_grids caches by path, size and modification time: a file replaced by another
    (here a land-cover tile of another grid over a vi tile) is parsed again."""
    import os
    import shutil

    from fluxscape.readers import modis_hdf4
    from fluxscape.readers.modis_hdf4 import read_grids

    opens = []
    real_open = modis_hdf4._open_sd
    monkeypatch.setattr(modis_hdf4, "_open_sd", lambda p: opens.append(p) or real_open(p))

    vi = sorted((sample_dir / "modis").glob("MOD13A2.*.hdf"))[0]
    lc = sorted((sample_dir / "landcover").glob("MCD12Q1.*.hdf"))[0]
    path = tmp_path / "tile.hdf"
    shutil.copy(vi, path)
    first = read_grids(path)
    assert read_grids(path) == first and len(opens) == 1  # the second from the cache
    shutil.copy(lc, path)
    os.utime(path, ns=(1, 1))  # a different version even if the size were equal
    assert read_grids(path)[0].name != first[0].name
