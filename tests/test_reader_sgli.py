"""GCOM-C SGLI readers: EQA tile geolocation against the handbook formula, L2 land tiles
decoded against the sample world's truth, L1B through satpy, the registry and bad input."""

from __future__ import annotations

import math
import shutil
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from fluxscape.errors import ReaderError
from fluxscape.readers import detect, inspect_file
from fluxscape.readers.sgli_l1b import granule_info as l1b_info
from fluxscape.readers.sgli_l1b import open_sgli_l1b, parse_l1b_filename
from fluxscape.readers.sgli_l1b import window_for_bbox as l1b_window
from fluxscape.readers.sgli_l2 import (
    QA_BITS,
    cloud_mask,
    eqa_lonlat,
    eqa_pixel,
    granule_info,
    open_sgli_l2,
    parse_l2_filename,
    tile_bbox,
    tile_pixel_index,
    tile_window,
    tiles_for_bbox,
    window_for_bbox,
)
from fluxscape.sample import sgli_writer
from fluxscape.sample.world import PRESETS, World

DEMO_BBOX = PRESETS["demo"].bbox


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def world() -> World:
    return World(PRESETS["demo"], seed=42)


@pytest.fixture(scope="session")
def sgli_dir(tmp_path_factory, world) -> Path:
    """Sample SGLI files: L2 tiles for 5 overpasses (RSRF on the 1st and 5th) and L1B
    granules (VNR + IRS) for two months."""
    out = tmp_path_factory.mktemp("sgli")
    rng = np.random.default_rng(7)
    dates = sgli_writer.revisit_dates(world)[88:93]  # late June / early July 2021
    sgli_writer.write_sgli_l2(world, out, rng, dates=dates)
    sgli_writer.write_sgli_l1b(world, out, rng, dates=sgli_writer.l1b_scene_dates(world)[4:6])
    return out


def _files(folder: Path, product: str) -> list[Path]:
    return sorted(folder.glob(f"GC1SG1_*_L2SG_{product:_<4}K_*.h5"))


@pytest.fixture(scope="session")
def l1b_pairs(sgli_dir) -> list[tuple]:
    """(VNR dataset, IRS dataset) opened through satpy, per granule."""
    pairs = []
    for vnr in sorted(sgli_dir.glob("*_1BSG_VNRDK_*.h5")):
        irs = vnr.with_name(vnr.name.replace("VNRDK", "IRSDK"))
        pairs.append((open_sgli_l1b(vnr), open_sgli_l1b(irs)))
    return pairs


def _region(ds, margin: float = 0.0) -> np.ndarray:
    w, s, e, n = DEMO_BBOX
    lon, lat = ds["lon"].values, ds["lat"].values
    return (lon >= w - margin) & (lon <= e + margin) & (lat >= s - margin) & (lat <= n + margin)


def _date(ds) -> np.datetime64:
    return ds["time"].values.astype("datetime64[D]")


def _clear_window(path: Path, variables=None):
    ds = open_sgli_l2(path, variables, roi=window_for_bbox(path, DEMO_BBOX))
    clear = ~cloud_mask(ds["QA_flag"].values) & _region(ds)
    return ds, clear


def _truth_reflectance(world, ds) -> dict:
    lon, lat = ds["lon"].values, ds["lat"].values
    return world.reflectance(world.ndvi(lon, lat, [_date(ds)])[..., 0], world.brightness(lon, lat))


# --- EQA geolocation ---------------------------------------------------------------------------


def _handbook_lonlat(line: int, col: int, v: int, h: int, n: int) -> tuple[float, float]:
    """The handbook formula, one pixel at a time, with Decimal half-up rounding (independent
    of the vectorised reader code)."""
    d = 180.0 / n / 18
    np0 = 2 * float(Decimal(180.0 / d).quantize(Decimal("0"), rounding=ROUND_HALF_UP))
    lat = 90.0 - (line + v * n + 0.5) * d
    np_i = float(
        Decimal(np0 * math.cos(math.radians(lat))).quantize(Decimal("0"), rounding=ROUND_HALF_UP)
    )
    lon = 360.0 / np_i * (col + h * n - np0 / 2 + 0.5)
    return lon, lat


@pytest.mark.parametrize(
    ("v", "h", "n"), [(5, 29, 1200), (5, 28, 1200), (4, 30, 4800), (12, 10, 1200), (1, 20, 4800)]
)
def test_eqa_lonlat_matches_handbook_formula_at_tile_corners_and_centre(v, h, n):
    for line, col in [(0, 0), (0, n - 1), (n - 1, 0), (n - 1, n - 1), (n // 2, n // 2)]:
        lon, lat = eqa_lonlat(line, col, v, h, n)
        exp_lon, exp_lat = _handbook_lonlat(line, col, v, h, n)
        if abs(exp_lon) > 180:
            assert np.isnan(lon)
        else:
            assert float(lon) == pytest.approx(exp_lon, abs=1e-9)
        assert float(lat) == pytest.approx(exp_lat, abs=1e-12)


def test_t0529_upper_left_edge_is_40N_and_K_tile_latitude_step_is_1_120_degree():
    _, lat = eqa_lonlat(np.arange(1200), 0, 5, 29, 1200)
    assert lat[0] + 0.5 / 120 == pytest.approx(40.0, abs=1e-12)
    assert lat[-1] - 0.5 / 120 == pytest.approx(30.0, abs=1e-12)
    np.testing.assert_allclose(np.diff(lat), -1 / 120, atol=1e-12)


def test_q_tile_latitude_step_is_1_480_degree():
    _, lat = eqa_lonlat(np.arange(3), 0, 5, 29, 4800)
    np.testing.assert_allclose(np.diff(lat), -1 / 480, atol=1e-12)


def test_eqa_longitude_step_widens_with_latitude_as_equal_area_grid():
    lon40, _ = eqa_lonlat(0, np.arange(2), 5, 29, 1200)
    lon30, _ = eqa_lonlat(1199, np.arange(2), 5, 29, 1200)
    step40, step30 = np.diff(lon40)[0], np.diff(lon30)[0]
    assert step40 * math.cos(math.radians(39.996)) == pytest.approx(1 / 120, rel=1e-3)
    assert step30 * math.cos(math.radians(30.004)) == pytest.approx(1 / 120, rel=1e-3)


def test_eqa_pixel_inverts_eqa_lonlat_for_every_pixel_of_a_tile():
    rows, cols = np.arange(1200)[:, None], np.arange(1200)[None, :]
    lon, lat = eqa_lonlat(rows, cols, 5, 29, 1200)
    line, col = eqa_pixel(lon, lat, 1200)
    assert (line == rows + 5 * 1200).all()
    assert (col == cols + 29 * 1200).all()


def test_eqa_grid_is_within_a_quarter_pixel_of_an_affine_sphere_sinusoidal_grid():
    # Why the reader computes lat/lon instead of declaring ESRI:53008: close, but not exact.
    rows, cols = np.arange(0, 1200, 37)[:, None], np.arange(0, 1200, 41)[None, :]
    lon, lat = eqa_lonlat(rows, cols, 5, 29, 1200)
    x_over_r = np.radians(lon) * np.cos(np.radians(lat))
    np0 = 36 * 1200
    affine = 2 * np.pi / np0 * (cols + 29 * 1200 - np0 / 2 + 0.5)
    err_px = np.abs(x_over_r - affine) / (2 * np.pi / np0)
    assert err_px.max() < 0.25
    assert err_px.max() > 1e-3


def test_demo_region_lies_in_tile_T0529_and_demo4x_also_in_T0528():
    assert tiles_for_bbox(DEMO_BBOX, 1200) == [(5, 29)]
    assert tiles_for_bbox(DEMO_BBOX, 4800) == [(5, 29)]
    assert tiles_for_bbox(PRESETS["demo-4x"].bbox, 1200) == [(5, 28), (5, 29)]


def test_tile_window_holds_every_pixel_centre_inside_the_bbox_and_no_spare_edge():
    rows, cols = np.arange(1200)[:, None], np.arange(1200)[None, :]
    lon, lat = eqa_lonlat(rows, cols, 5, 29, 1200)
    w, s, e, n = DEMO_BBOX
    inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
    r, c = tile_window(5, 29, DEMO_BBOX, 1200)
    ir, ic = np.nonzero(inside)
    assert r.start <= ir.min() and ir.max() < r.stop
    assert c.start <= ic.min() and ic.max() < c.stop
    assert r.stop - r.start <= ir.max() - ir.min() + 3
    assert c.stop - c.start <= ic.max() - ic.min() + 3
    assert tile_window(5, 27, DEMO_BBOX, 1200) is None


def test_tile_bbox_envelopes_every_pixel_centre_of_the_tile():
    w, s, e, n = tile_bbox(5, 29, 1200)
    lon, lat = eqa_lonlat(np.arange(1200)[:, None], np.arange(1200)[None, :], 5, 29, 1200)
    assert (s, n) == (30.0, 40.0)
    assert w <= lon.min() and lon.max() <= e
    assert lon.min() - w < 0.02 and e - lon.max() < 0.02


# --- L2 tiles against the truth ----------------------------------------------------------------


def test_l2_file_names_follow_the_jaxa_convention(sgli_dir):
    names = [p.name for p in sgli_dir.glob("*_L2SG_*.h5")]
    assert names and all(parse_l2_filename(n) for n in names)
    meta = parse_l2_filename(_files(sgli_dir, "VGI")[0])
    assert (meta["tile"], meta["resolution"], meta["n"], meta["period"]) == (
        "0529",
        "K",
        1200,
        "01D",
    )


def test_l2_overpasses_are_two_days_apart_and_rsrf_every_fourth(sgli_dir):
    days = sorted({parse_l2_filename(p)["date"] for p in _files(sgli_dir, "VGI")})
    assert {(b - a).days for a, b in zip(days, days[1:], strict=False)} == {2}
    assert len(_files(sgli_dir, "LST")) == len(_files(sgli_dir, "LAI")) == len(days) == 5
    rsrf_days = [parse_l2_filename(p)["date"] for p in _files(sgli_dir, "RSRF")]
    assert rsrf_days == [days[0], days[4]]


def test_decoded_ndvi_matches_truth_within_reflectance_noise_on_clear_pixels(sgli_dir, world):
    errors = []
    for path in _files(sgli_dir, "VGI"):
        ds, clear = _clear_window(path)
        truth = world.ndvi(ds["lon"].values, ds["lat"].values, [_date(ds)])[..., 0]
        errors.append((ds["NDVI"].values - truth)[clear])
    err = np.concatenate(errors)
    assert err.size > 20000 and np.isfinite(err).all()
    assert abs(err.mean()) < 0.003
    assert 0.008 < err.std() < 0.025  # 0.004 reflectance noise -> ~0.015 NDVI noise
    assert np.quantile(np.abs(err), 0.999) < 0.08


def test_decoded_evi_matches_truth_reflectances_on_clear_pixels(sgli_dir, world):
    path = _files(sgli_dir, "VGI")[2]
    ds, clear = _clear_window(path)
    r = _truth_reflectance(world, ds)
    truth = 2.5 * (r["nir"] - r["red"]) / (r["nir"] + 6 * r["red"] - 7.5 * r["blue"] + 1)
    err = (ds["EVI"].values - truth)[clear]
    assert abs(err.mean()) < 0.004 and err.std() < 0.03


def test_decoded_lst_matches_truth_within_half_kelvin_noise_on_clear_pixels(sgli_dir, world):
    errors = []
    for path in _files(sgli_dir, "LST"):
        ds, clear = _clear_window(path)
        truth = world.land_surface_temperature(ds["lon"].values, ds["lat"].values, [_date(ds)])
        errors.append((ds["LST"].values - truth[..., 0])[clear])
        assert ds["LST"].attrs["units"] == "K"
    err = np.concatenate(errors)
    assert abs(err.mean()) < 0.05
    assert 0.4 < err.std() < 0.8
    assert 270 < float(np.nanmean(ds["LST"])) < 320


def test_lst_is_missing_where_clouds_were_detected(sgli_dir):
    ds, _ = _clear_window(_files(sgli_dir, "LST")[0])
    cloudy = (ds["QA_flag"].values & (1 << QA_BITS["cloudy"])) != 0
    assert cloudy.sum() > 100
    assert np.isnan(ds["LST"].values[cloudy]).all()


def test_decoded_lai_matches_truth_on_clear_pixels(sgli_dir, world):
    errors = []
    for path in _files(sgli_dir, "LAI"):
        ds, clear = _clear_window(path)
        ndvi = world.ndvi(ds["lon"].values, ds["lat"].values, [_date(ds)])[..., 0]
        truth = world.lai(ndvi)
        errors.append(((ds["LAI"].values - truth) / np.maximum(truth, 0.5))[clear])
    rel = np.concatenate(errors)
    assert abs(np.median(rel)) < 0.03
    assert np.quantile(np.abs(rel), 0.9) < 0.35


def test_rsrf_surface_reflectances_match_truth_bands_on_clear_pixels(sgli_dir, world):
    ds, clear = _clear_window(_files(sgli_dir, "RSRF")[0])
    truth = _truth_reflectance(world, ds)
    for band, key in sgli_writer.BAND_TRUTH.items():
        if f"Rs_{band}" not in ds:
            continue
        err = (ds[f"Rs_{band}"].values - truth[key])[clear]
        assert abs(err.mean()) < 0.001, band
        assert 0.003 < err.std() < 0.005, band


def test_cloud_flagged_pixels_carry_contaminated_low_ndvi(sgli_dir, world):
    ds, _ = _clear_window(_files(sgli_dir, "VGI")[1])
    cloudy = ((ds["QA_flag"].values & (1 << QA_BITS["cloudy"])) != 0) & _region(ds)
    truth = world.ndvi(ds["lon"].values, ds["lat"].values, [_date(ds)])[..., 0]
    assert cloudy.sum() > 100
    assert np.isfinite(ds["NDVI"].values[cloudy]).all()
    assert (ds["NDVI"].values - truth)[cloudy].mean() < -0.3


def test_clouds_form_correlated_blobs_not_salt_and_pepper(sgli_dir):
    ds, _ = _clear_window(_files(sgli_dir, "VGI")[1])
    cloudy = cloud_mask(ds["QA_flag"].values) & _region(ds, -0.05)
    frac = cloudy.mean()
    assert 0.02 < frac < 0.98
    same_as_right = (cloudy[:, 1:] == cloudy[:, :-1]).mean()
    assert same_as_right > 0.9 > frac**2 + (1 - frac) ** 2


def test_pixels_outside_region_margin_are_error_dn_nan_with_no_data_bit(sgli_dir):
    ds = open_sgli_l2(_files(sgli_dir, "VGI")[0])
    assert ds["NDVI"].shape == (1200, 1200)
    far = ~_region(ds, sgli_writer.MARGIN_DEG + 0.02)
    assert np.isnan(ds["NDVI"].values[far]).all()
    assert ((ds["QA_flag"].values[far] & (1 << QA_BITS["no_data"])) != 0).all()
    assert np.isfinite(ds["NDVI"].values[_region(ds)]).all()


def test_qa_flag_is_kept_as_uint16_bits(sgli_dir):
    ds = open_sgli_l2(_files(sgli_dir, "LAI")[0], ["QA_flag"], roi=(slice(500, 510), slice(0, 5)))
    assert ds["QA_flag"].dtype == np.uint16
    assert list(ds.data_vars) == ["QA_flag"]


def test_roi_window_equals_the_same_slice_of_the_full_tile(sgli_dir):
    path = _files(sgli_dir, "RSRF")[0]
    full = open_sgli_l2(path)
    roi = (slice(430, 470), slice(150, 260))
    part = open_sgli_l2(path, ["Rs_VN08", "QA_flag", "Obs_time"], roi=roi)
    sub = full.isel(y=roi[0], x=roi[1])
    for name in ("Rs_VN08", "QA_flag", "Obs_time", "lat", "lon"):
        np.testing.assert_array_equal(part[name].values, sub[name].values)
    assert part["y"].values[0] == 430 and part["x"].values[0] == 150


def test_time_is_middle_of_overpass_and_obs_time_falls_within_it(sgli_dir):
    path = _files(sgli_dir, "LST")[0]
    info = granule_info(path)
    ds, clear = _clear_window(path)
    mid = pd.Timestamp(info["start"] + (info["end"] - info["start"]) / 2)
    assert pd.Timestamp(ds["time"].values) == mid
    obs = ds["Obs_time"].values[_region(ds)]
    assert not np.isnat(obs).any()
    assert (obs >= np.datetime64(info["start"]) - np.timedelta64(4, "s")).all()
    assert (obs <= np.datetime64(info["end"]) + np.timedelta64(4, "s")).all()
    assert 0 <= pd.Timestamp(mid).hour < 3  # ~10:30 local solar time over Japan


def test_granule_info_gives_times_tile_bbox_and_chunks_from_metadata(sgli_dir):
    path = _files(sgli_dir, "VGI")[0]
    info = granule_info(path)
    assert info["tile"] == "0529" and (info["vtile"], info["htile"], info["n"]) == (5, 29, 1200)
    assert info["product"] == "VGI" and info["period"] == "01D" and info["day_night"] == "D"
    assert (
        info["start"] < info["end"]
        and info["start"].date() == parse_l2_filename(path)["date"].date()
    )
    w, s, e, n = info["bbox"]
    assert w < DEMO_BBOX[0] and s <= DEMO_BBOX[1] and e > DEMO_BBOX[2] and n >= DEMO_BBOX[3]
    assert info["chunks"] == list(sgli_writer.CHUNKS)
    assert set(info["variables"]) == {"NDVI", "EVI", "QA_flag"}


def test_sample_files_are_written_complete_without_temporary_names(sgli_dir):
    assert not list(sgli_dir.glob("*.part"))


def test_writer_is_deterministic_given_the_rng(tmp_path, world):
    dates = sgli_writer.revisit_dates(world)[30:31]
    a = sgli_writer.write_sgli_l2(world, tmp_path / "a", np.random.default_rng(3), dates=dates)
    b = sgli_writer.write_sgli_l2(world, tmp_path / "b", np.random.default_rng(3), dates=dates)
    for pa, pb in zip(a, b, strict=True):
        da, db = open_sgli_l2(pa), open_sgli_l2(pb)
        for name in da.data_vars:
            np.testing.assert_array_equal(da[name].values, db[name].values)


def test_demo4x_writes_both_tiles_and_each_decodes_to_truth(tmp_path):
    world4 = World(PRESETS["demo-4x"], seed=42)
    dates = sgli_writer.revisit_dates(world4)[60:61]
    paths = sgli_writer.write_sgli_l2(
        world4, tmp_path, np.random.default_rng(1), dates=dates, products=("VGI",)
    )
    assert sorted(parse_l2_filename(p)["tile"] for p in paths) == ["0528", "0529"]
    for path in paths:
        ds = open_sgli_l2(path, roi=window_for_bbox(path, world4.preset.bbox))
        clear = ~cloud_mask(ds["QA_flag"].values)
        truth = world4.ndvi(ds["lon"].values, ds["lat"].values, [_date(ds)])[..., 0]
        err = (ds["NDVI"].values - truth)[clear]
        assert err.size > 50 and abs(err.mean()) < 0.01 and err.std() < 0.03


# --- resampling onto a lon/lat grid ------------------------------------------------------------


def _target_grid(bbox, step=0.01):
    w, s, e, n = bbox
    lon = np.arange(w + step / 2, e, step)
    lat = np.arange(n - step / 2, s, -step)
    return np.meshgrid(lon, lat)


def test_index_lookup_regrids_l2_ndvi_to_truth_on_a_lon_lat_grid(sgli_dir, world):
    path = _files(sgli_dir, "VGI")[0]
    info = granule_info(path)
    glon, glat = _target_grid(DEMO_BBOX)
    rows, cols, valid = tile_pixel_index(glon, glat, info["vtile"], info["htile"], info["n"])
    assert valid.all()
    win = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    ds = open_sgli_l2(path, ["NDVI", "QA_flag"], roi=win)
    r, c = rows - win[0].start, cols - win[1].start
    # the looked-up pixel contains the target point: centres within half a pixel
    assert np.abs(ds["lat"].values[r, c] - glat).max() <= 0.5 / 120 + 1e-9
    assert np.abs(ds["lon"].values[r, c] - glon).max() <= 0.5 * 360 / 34000
    ndvi = ds["NDVI"].values[r, c]
    clear = ~cloud_mask(ds["QA_flag"].values[r, c])
    src_lon, src_lat = ds["lon"].values[r, c], ds["lat"].values[r, c]
    err = (ndvi - world.ndvi(src_lon, src_lat, [_date(ds)])[..., 0])[clear]
    assert abs(err.mean()) < 0.003 and err.std() < 0.025
    at_target = (ndvi - world.ndvi(glon, glat, [_date(ds)])[..., 0])[clear]
    assert np.median(np.abs(at_target)) < 0.02  # plus the truth's change within half a pixel


def test_pixel_index_marks_points_of_the_neighbouring_tile_invalid():
    rows, cols, valid = tile_pixel_index(
        np.array([138.5, 136.0]), np.array([36.0, 37.5]), 5, 29, 1200
    )
    assert valid.tolist() == [True, False]  # 136.0 E at 37.5 N lies in T0528


def test_pyresample_kdtree_regrids_l1b_swath_to_truth_on_a_lon_lat_grid(l1b_pairs, world):
    from pyresample.geometry import AreaDefinition
    from pyresample.kd_tree import resample_nearest

    from fluxscape.readers.sgli_l1b import swath_definition

    vnr, _ = l1b_pairs[0]
    bbox = (138.2, 35.7, 138.8, 36.3)
    glon, glat = _target_grid(bbox)
    area = AreaDefinition("demo", "demo", "lonlat", "EPSG:4326", glon.shape[1], glon.shape[0], bbox)
    swath = swath_definition(vnr)
    nir = resample_nearest(
        swath, vnr["VN11"].values, area, radius_of_influence=1500, fill_value=np.nan
    )
    blue = resample_nearest(
        swath, vnr["VN03"].values, area, radius_of_influence=1500, fill_value=np.nan
    )
    lons, lats = area.get_lonlats()
    np.testing.assert_allclose(lons, glon, atol=1e-9)
    truth = world.reflectance(
        world.ndvi(glon, glat, [_date(vnr)])[..., 0], world.brightness(glon, glat)
    )["nir"]
    clear = blue < 0.2
    err = (nir - truth)[clear]
    assert np.isfinite(nir).all() and clear.mean() > 0.3
    assert abs(err.mean()) < 0.003 and err.std() < 0.02


# --- registry and inspect ----------------------------------------------------------------------


def test_registry_detects_l2_tiles_and_l1b_granules(sgli_dir):
    assert detect(_files(sgli_dir, "LST")[0]).name == "sgli_l2"
    assert detect(next(sgli_dir.glob("*_1BSG_VNRDK_*.h5"))).name == "sgli_l1b"
    assert detect(next(sgli_dir.glob("*_1BSG_IRSDK_*.h5"))).name == "sgli_l1b"


def test_registry_detects_l2_content_under_a_foreign_name(sgli_dir, tmp_path):
    renamed = tmp_path / "tile.h5"
    shutil.copy(_files(sgli_dir, "LAI")[0], renamed)
    assert detect(renamed).name == "sgli_l2"


def test_inspect_summary_has_variables_tile_bbox_and_iso_times(sgli_dir):
    summary = inspect_file(_files(sgli_dir, "RSRF")[0]).to_json()
    assert summary["reader"] == "sgli_l2"
    assert {"Rs_VN08", "Rs_VN11", "QA_flag", "Obs_time"} <= set(summary["variables"])
    assert summary["details"]["tile"] == "0529"
    assert summary["bbox"][1:4:2] == [30.0, 40.0]
    assert pd.Timestamp(summary["time"][0]) < pd.Timestamp(summary["time"][1])
    l1b = inspect_file(next(sgli_dir.glob("*_1BSG_VNRDK_*.h5"))).to_json()
    assert l1b["reader"] == "sgli_l1b" and "VN08" in l1b["variables"]
    w, s, e, n = l1b["bbox"]
    assert w < DEMO_BBOX[0] and e > DEMO_BBOX[2] and s < DEMO_BBOX[1] and n > DEMO_BBOX[3]


# --- L1B through satpy -------------------------------------------------------------------------


def test_satpy_l1b_vn_reflectances_match_truth_on_clear_pixels(l1b_pairs, world):
    for vnr, _ in l1b_pairs:
        clear = vnr["VN03"].values < 0.2  # clouds are bright in the blue
        assert 0.3 < clear.mean() < 0.95
        truth = _truth_reflectance(world, vnr)
        for band in ("VN03", "VN04", "VN05", "VN06", "VN08", "VN11"):
            err = (vnr[band].values - truth[sgli_writer.BAND_TRUTH[band]])[clear]
            assert abs(np.nanmean(err)) < 0.001, band
            assert np.nanstd(err) < 0.005, band


def test_satpy_l1b_sw_reflectances_match_truth_on_clear_pixels(l1b_pairs, world):
    for vnr, irs in l1b_pairs:
        clear = vnr["VN03"].values < 0.2
        truth = _truth_reflectance(world, irs)
        for band in ("SW03", "SW04"):
            err = (irs[band].values - truth[sgli_writer.BAND_TRUTH[band]])[clear]
            assert abs(np.nanmean(err)) < 0.001, band
            assert np.nanstd(err) < 0.005, band


def test_satpy_l1b_latlon_match_the_written_swath_within_ten_metres(l1b_pairs, world):
    vnr, irs = l1b_pairs[0]
    n_lines, n_pixels = vnr.sizes["y"], vnr.sizes["x"]
    lon, lat = sgli_writer._swath_lonlat(
        world, np.arange(n_lines)[:, None], np.arange(n_pixels)[None, :], n_lines, n_pixels
    )
    np.testing.assert_allclose(vnr["lat"].values, lat, atol=1e-4)
    np.testing.assert_allclose(vnr["lon"].values, lon, atol=1e-4)
    np.testing.assert_array_equal(irs["lon"].values, vnr["lon"].values)


def test_l1b_missing_dn_is_nan_and_stray_light_flag_bits_are_masked(l1b_pairs, world):
    vnr, _ = l1b_pairs[0]
    assert np.isnan(vnr["VN08"].values[0, 0])
    assert np.isnan(vnr["VN08"].values).sum() == 1
    flagged = vnr.isel(y=slice(-3, None))  # the writer set the stray-light bit on these lines
    truth = _truth_reflectance(world, flagged)
    clear = flagged["VN03"].values < 0.2
    err = (flagged["VN11"].values - truth["nir"])[clear]
    assert np.abs(err).max() < 0.02


def test_l1b_without_sun_zenith_correction_is_cos_sza_times_smaller(sgli_dir, l1b_pairs):
    from pyorbital.astronomy import sun_zenith_angle

    path = sorted(sgli_dir.glob("*_1BSG_VNRDK_*.h5"))[0]
    raw = open_sgli_l1b(path, ["VN08"], roi=(slice(40, 50), slice(40, 50)), sunz_corrected=False)
    corrected = l1b_pairs[0][0].isel(y=slice(40, 50), x=slice(40, 50))
    start = l1b_info(path)["start"]
    cos_sza = np.cos(np.radians(sun_zenith_angle(start, raw["lon"].values, raw["lat"].values)))
    np.testing.assert_allclose(raw["VN08"].values, corrected["VN08"].values * cos_sza, rtol=2e-3)


def test_l1b_time_is_scene_middle_and_info_reads_metadata_only(sgli_dir, l1b_pairs):
    path = sorted(sgli_dir.glob("*_1BSG_VNRDK_*.h5"))[0]
    info = l1b_info(path)
    mid = info["start"] + (info["end"] - info["start"]) / 2
    assert pd.Timestamp(l1b_pairs[0][0]["time"].values) == pd.Timestamp(mid)
    assert info["start"].replace(second=0, microsecond=0) == parse_l1b_filename(path)["start"]
    assert (info["lines"], info["pixels"]) == l1b_pairs[0][0]["VN08"].shape
    assert info["subsystem"] == "VNR" and info["resolution_m"] == 1000


def test_l1b_roi_and_bbox_window_select_the_same_pixels_as_the_full_scene(sgli_dir, l1b_pairs):
    path = sorted(sgli_dir.glob("*_1BSG_VNRDK_*.h5"))[0]
    bbox = (138.3, 35.8, 138.6, 36.1)
    win = l1b_window(path, bbox)
    part = open_sgli_l1b(path, ["VN11"], roi=win)
    full = l1b_pairs[0][0]
    np.testing.assert_array_equal(part["VN11"].values, full["VN11"].values[win])
    np.testing.assert_allclose(part["lat"].values, full["lat"].values[win])
    inside = _region(full) & (full["lon"].values >= bbox[0]) & (full["lon"].values <= bbox[2])
    inside &= (full["lat"].values >= bbox[1]) & (full["lat"].values <= bbox[3])
    rows, cols = np.nonzero(inside)
    assert win[0].start <= rows.min() and rows.max() < win[0].stop
    assert win[1].start <= cols.min() and cols.max() < win[1].stop


def test_l1b_with_scalar_attributes_like_satpy_fixtures_reads_the_same(sgli_dir, tmp_path):
    # JAXA writes 1-element arrays (handled by a view file until pytroll/satpy#3475 is
    # released); satpy's own fixtures write scalars. Both layouts must give the same values.
    path = sorted(sgli_dir.glob("*_1BSG_VNRDK_*.h5"))[0]
    scalar = tmp_path / path.name
    shutil.copy(path, scalar)
    with h5py.File(scalar, "r+") as h5:
        for key in ("Number_of_lines", "Number_of_pixels"):
            h5["Image_data"].attrs[key] = h5["Image_data"].attrs[key][0]
        for dset in h5["Geometry_data"].values():
            dset.attrs["Resampling_interval"] = dset.attrs["Resampling_interval"][0]
    roi = (slice(0, 30), slice(0, 30))
    a = open_sgli_l1b(path, ["VN05"], roi=roi)
    b = open_sgli_l1b(scalar, ["VN05"], roi=roi)
    np.testing.assert_array_equal(a["VN05"].values, b["VN05"].values)
    np.testing.assert_array_equal(a["lat"].values, b["lat"].values)


# --- hostile inputs: L2 ------------------------------------------------------------------------


def _copy(src: Path, folder: Path) -> Path:
    dst = folder / src.name
    shutil.copy(src, dst)
    return dst


def _raises(path: Path, *needles: str, opener=open_sgli_l2, **kwargs) -> str:
    with pytest.raises(ReaderError) as err:
        opener(path, **kwargs)
    msg = str(err.value)
    assert path.name in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


def test_l2_zero_byte_file_is_rejected_naming_the_file(sgli_dir, tmp_path):
    path = tmp_path / _files(sgli_dir, "VGI")[0].name
    path.write_bytes(b"")
    _raises(path, "empty file")
    _raises(path, "empty file", opener=granule_info)


def test_l2_truncated_file_is_rejected(sgli_dir, tmp_path):
    src = _files(sgli_dir, "VGI")[0]
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    _raises(path, "not a readable HDF5 file")


def test_l2_text_under_an_sgli_name_is_rejected_by_reader_and_registry(sgli_dir, tmp_path):
    path = tmp_path / _files(sgli_dir, "LST")[0].name
    path.write_text("<html>404 Not Found</html>\n")
    _raises(path, "not a readable HDF5 file")
    with pytest.raises(ReaderError, match=r"sgli_l2: is an HTML page, not HDF5 .*failed download"):
        detect(path)


def test_l2_hdf5_without_sgli_groups_is_rejected(sgli_dir, tmp_path):
    path = tmp_path / _files(sgli_dir, "LST")[0].name
    with h5py.File(path, "w") as h5:
        h5["data"] = np.zeros(3)
    _raises(path, "no /Global_attributes group")


def test_l2_all_fill_tile_opens_with_all_nan_values(sgli_dir, tmp_path):
    path = _copy(_files(sgli_dir, "LAI")[0], tmp_path)
    with h5py.File(path, "r+") as h5:
        h5["Image_data/LAI"][...] = 65535
    ds = open_sgli_l2(path, ["LAI"])
    assert np.isnan(ds["LAI"].values).all()


def test_l2_missing_slope_attribute_is_named(sgli_dir, tmp_path):
    path = _copy(_files(sgli_dir, "VGI")[0], tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["Image_data/NDVI"].attrs["Slope"]
    _raises(path, "/Image_data/NDVI", "missing attribute 'Slope'")


def test_l2_non_numeric_offset_attribute_is_named(sgli_dir, tmp_path):
    path = _copy(_files(sgli_dir, "LST")[0], tmp_path)
    with h5py.File(path, "r+") as h5:
        h5["Image_data/LST"].attrs["Offset"] = np.array([b"zero"])
    _raises(path, "'Offset' is not a number")


def test_l2_unparsable_image_start_time_is_named(sgli_dir, tmp_path):
    path = _copy(_files(sgli_dir, "LAI")[0], tmp_path)
    with h5py.File(path, "r+") as h5:
        h5["Global_attributes"].attrs["Image_start_time"] = np.array([b"yesterday noon"])
    _raises(path, "Image_start_time", "is not a time")
    _raises(path, "Image_start_time", opener=granule_info)


def test_l2_missing_tile_number_is_named(sgli_dir, tmp_path):
    path = _copy(_files(sgli_dir, "LAI")[0], tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["Global_attributes"].attrs["Tile_number"]
    _raises(path, "missing attribute 'Tile_number'")


def test_l2_missing_product_dataset_is_named(sgli_dir, tmp_path):
    path = _copy(_files(sgli_dir, "VGI")[0], tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["Image_data/NDVI"]
    _raises(path, "VGI file has no product layer", "NDVI")


def test_l2_unknown_variable_request_lists_what_the_file_has(sgli_dir):
    path = _files(sgli_dir, "LST")[0]
    _raises(path, "no dataset ['NDVI']", "LST", variables=["NDVI"])


def test_l2_tile_size_contradicting_the_file_name_is_rejected(sgli_dir, tmp_path):
    src = _files(sgli_dir, "LAI")[0]
    path = _copy(src, tmp_path)
    renamed = path.with_name(path.name.replace("LAI_K", "LAI_Q"))
    path.rename(renamed)
    _raises(renamed, "file name says Q (4800 pixels)")


# --- hostile inputs: L1B -----------------------------------------------------------------------


def _vnr(sgli_dir) -> Path:
    return sorted(sgli_dir.glob("*_1BSG_VNRDK_*.h5"))[0]


def test_l1b_zero_byte_and_truncated_files_are_rejected(sgli_dir, tmp_path):
    src = _vnr(sgli_dir)
    empty = tmp_path / "empty" / src.name
    empty.parent.mkdir()
    empty.write_bytes(b"")
    _raises(empty, "empty file", opener=open_sgli_l1b)
    cut = tmp_path / src.name
    cut.write_bytes(src.read_bytes()[:4000])
    _raises(cut, "not a readable HDF5 file", opener=open_sgli_l1b)


def test_l1b_l2_tile_under_an_l1b_name_is_rejected(sgli_dir, tmp_path):
    path = tmp_path / _vnr(sgli_dir).name
    shutil.copy(_files(sgli_dir, "VGI")[0], path)
    _raises(path, "Scene_start_time", opener=open_sgli_l1b)


def test_l1b_missing_reflectance_slope_is_named(sgli_dir, tmp_path):
    path = _copy(_vnr(sgli_dir), tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["Image_data/Lt_VN08"].attrs["Slope_reflectance"]
    _raises(path, "Lt_VN08", "missing attribute 'Slope_reflectance'", opener=open_sgli_l1b)


def test_l1b_unparsable_scene_start_time_is_named(sgli_dir, tmp_path):
    path = _copy(_vnr(sgli_dir), tmp_path)
    with h5py.File(path, "r+") as h5:
        h5["Global_attributes"].attrs["Scene_start_time"] = np.array([b"2021-13-45"], dtype="S21")
    _raises(path, "Scene_start_time", "is not a time", opener=open_sgli_l1b)
    _raises(path, "Scene_start_time", opener=l1b_info)


def test_l1b_missing_tie_point_latitude_is_named(sgli_dir, tmp_path):
    path = _copy(_vnr(sgli_dir), tmp_path)
    with h5py.File(path, "r+") as h5:
        del h5["Geometry_data/Latitude"]
    _raises(path, "Geometry_data/Latitude", opener=open_sgli_l1b)


def test_l1b_unknown_band_request_lists_the_bands_of_the_file(sgli_dir):
    _raises(_vnr(sgli_dir), "no band ['SW04']", "VN08", opener=open_sgli_l1b, variables=["SW04"])


def test_l1b_name_satpy_cannot_match_is_rejected_before_satpy(sgli_dir, tmp_path):
    path = tmp_path / "granule.h5"
    shutil.copy(_vnr(sgli_dir), path)
    _raises(path, "does not follow the JAXA L1B convention", opener=open_sgli_l1b)
    assert detect(path).name == "sgli_l1b"  # the content is still recognised


def test_l1b_all_missing_band_opens_with_all_nan(sgli_dir, tmp_path):
    path = _copy(_vnr(sgli_dir), tmp_path)
    with h5py.File(path, "r+") as h5:
        h5["Image_data/Lt_VN11"][...] = 16383
    ds = open_sgli_l1b(path, ["VN11"], roi=(slice(0, 20), slice(0, 20)))
    assert np.isnan(ds["VN11"].values).all()


# --- the full demo sample ----------------------------------------------------------------------


@pytest.mark.slow
def test_full_demo_sample_is_under_60_mb(tmp_path, world):
    start = time.process_time()
    paths = sgli_writer.write_sgli(world, tmp_path, np.random.default_rng(42))
    cpu = time.process_time() - start
    size = sum(p.stat().st_size for p in paths)
    assert size < 60e6, f"{size / 1e6:.1f} MB"
    assert len([p for p in paths if "_1BSG_" in p.name]) == 24
    print(f"SGLI demo sample: {len(paths)} files, {size / 1e6:.1f} MB, {cpu:.1f} s CPU")
