"""Himawari AHI readers: HSD segments through satpy's ahi_hsd and JAXA P-Tree gridded NetCDF,
checked against the sample world's truth, the CGMS geostationary formulas, segment
selection, the registry and hostile files."""

from __future__ import annotations

import bz2
import shutil
from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import pytest

from fluxscape.errors import ReaderError
from fluxscape.readers import detect, inspect_file, readers
from fluxscape.readers.ahi_hsd import (
    granule_info,
    linecol_to_lonlat,
    lonlat_to_linecol,
    open_hsd,
    read_header,
    segments_for_bbox,
)
from fluxscape.readers.ahi_ptree import granule_info as ptree_info
from fluxscape.readers.ahi_ptree import open_ptree
from fluxscape.sample import ahi_writer
from fluxscape.sample.ahi_writer import (
    clear_sky_bt13,
    cloud_cover,
    illumination_factor,
    target_area_for,
    write_ahi,
)
from fluxscape.sample.world import PRESETS, World

DAYS = ("2021-01-07", "2021-07-03")
WORLD = World(PRESETS["demo"], seed=42)


@pytest.fixture(scope="session")
def ahi_sample(tmp_path_factory) -> Path:
    """Two days (winter, summer) of sample AHI files: 3 HSD observations and 1 P-Tree file
    per day."""
    out = tmp_path_factory.mktemp("ahi")
    write_ahi(WORLD, out, np.random.default_rng(7), days=list(DAYS))
    return out


def hsd_files(root: Path, when: str, band: str = "*") -> list[Path]:
    t = datetime.strptime(when, "%Y-%m-%d %H:%M")
    folder = root / "hsd" / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}" / f"{t:%H%M}"
    return sorted(folder.glob(f"HS_*_B{band}_*.DAT.bz2"))


def ptree_file(root: Path, when: str) -> Path:
    t = datetime.strptime(when, "%Y-%m-%d %H:%M")
    return next((root / "ptree" / f"{t:%Y%m}" / f"{t:%d}" / f"{t:%H}").glob("NC_*.nc"))


def surface_truth(lon, lat, day: str) -> dict[str, np.ndarray]:
    ndvi = WORLD.ndvi(lon, lat, [np.datetime64(day)])[..., 0]
    return WORLD.reflectance(ndvi, WORLD.brightness(lon, lat))


def to_datetime(value: np.datetime64) -> datetime:
    return value.astype("datetime64[us]").item()


# --- HSD: satpy loads the files and the values are the truth -----------------------------


@pytest.mark.parametrize(
    ("band", "key", "resolution"),
    [("B03", "red", 500), ("B04", "nir", 1000), ("B05", "swir16", 2000), ("B06", "mir", 2000)],
)
@pytest.mark.parametrize("when", ["2021-01-07 00:00", "2021-07-03 02:30"])
def test_clear_sky_hsd_reflectance_is_truth_times_illumination_factor(
    ahi_sample, band, key, resolution, when
):
    ds = open_hsd(hsd_files(ahi_sample, when, band[1:]), resolution=resolution)
    assert ds.sizes["y"] >= 64 and ds.attrs["area"].is_geostationary
    lon, lat = ds["lon"].values, ds["lat"].values
    excess = ahi_writer._cloud_excess(WORLD, lon, lat, to_datetime(ds.observation_time.values))
    clear = excess < -0.3  # well away from any cloud edge
    assert clear.sum() > 0.02 * clear.size
    mu = np.cos(np.radians(ds["solar_zenith_angle"].values))
    expected = surface_truth(lon, lat, when[:10])[key] * illumination_factor(int(band[1:]), mu)
    diff = ds[band].values[clear] - expected[clear]
    assert np.abs(diff).max() < 0.012  # noise 0.002 (6 sigma) + count quantisation
    assert abs(diff.mean()) < 0.001


def test_reflectance_depends_on_sun_angle_more_in_red_than_in_nir(ahi_sample):
    """Winter morning (SZA ~70 deg) versus winter near noon: the same surface looks brighter,
    and NDVI lower, in the morning."""
    morning = open_hsd(hsd_files(ahi_sample, "2021-01-07 00:00"), resolution=2000)
    noon = open_hsd(hsd_files(ahi_sample, "2021-01-07 02:30"), resolution=2000)
    assert float(morning.solar_zenith_angle.mean()) > float(noon.solar_zenith_angle.mean()) + 10
    day = "2021-01-07"
    both_clear = np.ones(morning["B03"].shape, bool)
    for ds in (morning, noon):
        t = to_datetime(ds.observation_time.values)
        both_clear &= ahi_writer._cloud_excess(WORLD, ds.lon.values, ds.lat.values, t) < -0.5
    assert both_clear.sum() > 100
    ndvi = {}
    for name, ds in (("morning", morning), ("noon", noon)):
        red, nir = ds["B03"].values[both_clear], ds["B04"].values[both_clear]
        ndvi[name] = np.mean((nir - red) / (nir + red))
    lon, lat = noon.lon.values[both_clear], noon.lat.values[both_clear]
    truth = surface_truth(lon, lat, day)
    true_ndvi = np.mean((truth["nir"] - truth["red"]) / (truth["nir"] + truth["red"]))
    assert ndvi["morning"] < ndvi["noon"] < true_ndvi + 0.01
    assert ndvi["noon"] - ndvi["morning"] > 0.02


def test_clear_sky_b13_brightness_temperature_is_truth_in_kelvin(ahi_sample):
    ds = open_hsd(hsd_files(ahi_sample, "2021-07-03 05:00", "13"), resolution=2000)
    assert ds["B13"].attrs["units"] == "K"
    lon, lat = ds["lon"].values, ds["lat"].values
    t = to_datetime(ds.observation_time.values)
    clear = ahi_writer._cloud_excess(WORLD, lon, lat, t) < -0.3
    lst = WORLD.land_surface_temperature(lon, lat, [np.datetime64("2021-07-03")])[..., 0]
    mu = np.cos(np.radians(ds["solar_zenith_angle"].values))
    diff = ds["B13"].values[clear] - clear_sky_bt13(lst, mu)[clear]
    assert np.abs(diff).max() < 0.8 and abs(diff.mean()) < 0.1


def test_cloudy_pixels_are_bright_in_visible_and_cold_in_b13(ahi_sample):
    ds = open_hsd(hsd_files(ahi_sample, "2021-07-03 02:30"), resolution=2000)
    cover = cloud_cover(
        WORLD, ds.lon.values, ds.lat.values, to_datetime(ds.observation_time.values)
    )
    cloudy, clear = cover >= 1.0, cover <= 0.0
    assert cloudy.sum() > 30 and clear.sum() > 30
    assert ds["B03"].values[cloudy].min() > 0.45 > ds["B03"].values[clear].max()
    assert ds["B13"].values[cloudy].max() < 252 < ds["B13"].values[clear].min()


def test_clouds_move_between_morning_and_afternoon():
    lon, lat = np.meshgrid(np.linspace(138, 139, 50), np.linspace(35.5, 36.5, 50))
    morning = cloud_cover(WORLD, lon, lat, datetime(2021, 7, 3, 0, 0))
    afternoon = cloud_cover(WORLD, lon, lat, datetime(2021, 7, 3, 5, 0))
    assert np.mean(np.abs(morning - afternoon)) > 0.1


def test_observation_time_and_platform_come_from_the_headers(ahi_sample):
    ds = open_hsd(hsd_files(ahi_sample, "2021-07-03 02:30", "13"), resolution=2000)
    assert ds.time.values == np.datetime64("2021-07-03T02:30:00")
    assert ds.observation_time.values == np.datetime64("2021-07-03T02:30:23")
    assert ds.attrs["platform"] == "Himawari-8"
    assert ds.attrs["observation_start_time"] == "2021-07-03T02:30:08"


def test_all_bands_share_one_geostationary_grid_at_the_requested_resolution(ahi_sample):
    files = hsd_files(ahi_sample, "2021-07-03 02:30")
    coarse = open_hsd(files, resolution=2000)
    fine = open_hsd(files, resolution=1000)
    assert fine.sizes["y"] == 2 * coarse.sizes["y"] and fine.sizes["x"] == 2 * coarse.sizes["x"]
    assert fine.attrs["area"].area_extent == pytest.approx(coarse.attrs["area"].area_extent)
    # B03 at 2 km is the mean of 4 x 4 pixels at 0.5 km; B13 at 1 km repeats its 2 km pixel.
    b03 = open_hsd([f for f in files if "_B03_" in f.name], resolution=500)["B03"].values
    blocks = b03.reshape(coarse.sizes["y"], 4, coarse.sizes["x"], 4).mean(axis=(1, 3))
    np.testing.assert_allclose(coarse["B03"].values, blocks, atol=1e-5)
    np.testing.assert_array_equal(fine["B13"].values[::2, ::2], coarse["B13"].values)
    assert "spatial_ref" in fine.coords and "crs_wkt" in fine["spatial_ref"].attrs


# --- HSD geolocation ---------------------------------------------------------------------


def cgms_lonlat(line, col, h):
    """Pixel (line, column) -> lon/lat by the JMA HSD User's Guide / CGMS formulas
    (normalized geostationary projection), written out independently of PROJ."""
    x = np.radians((col - h.coff) * 2**16 / h.cfac)
    y = np.radians((line - h.loff) * 2**16 / h.lfac)
    ratio = (h.req_km / h.rpol_km) ** 2
    d = h.distance_km
    cxy, den = np.cos(x) * np.cos(y), np.cos(y) ** 2 + ratio * np.sin(y) ** 2
    sd = np.sqrt((d * cxy) ** 2 - den * (d * d - h.req_km**2))
    sn = (d * cxy - sd) / den
    s1, s2, s3 = d - sn * cxy, sn * np.sin(x) * np.cos(y), -sn * np.sin(y)
    lon = np.degrees(np.arctan2(s2, s1)) + h.sub_lon
    lat = np.degrees(np.arctan(ratio * s3 / np.hypot(s1, s2)))
    return lon, lat


@pytest.mark.parametrize("band", ["03", "13"])
def test_pixel_centre_lonlat_follows_the_cgms_geos_formula(ahi_sample, band):
    files = hsd_files(ahi_sample, "2021-07-03 02:30", band)
    seg3 = [f for f in files if "_S03" in f.name]
    hdr = read_header(seg3[0])
    ds = open_hsd(seg3, resolution=int(hdr.resolution_km * 1000), solar_angles=False)
    rows, cols = np.array([0, 5, hdr.lines - 1]), np.array([0, 17, hdr.columns - 1])
    line = hdr.first_line + rows[:, None]  # segment rows -> lines of the observation area
    col = 1 + cols[None, :]
    lon, lat = cgms_lonlat(line.astype(float), col.astype(float), hdr)
    np.testing.assert_allclose(ds.lon.values[np.ix_(rows, cols)], lon, atol=2e-5)
    np.testing.assert_allclose(ds.lat.values[np.ix_(rows, cols)], lat, atol=2e-5)
    plon, plat = linecol_to_lonlat(hdr, line, col)  # pyproj geos
    np.testing.assert_allclose(plon, lon, atol=1e-6)
    np.testing.assert_allclose(plat, lat, atol=1e-6)
    back_line, back_col = lonlat_to_linecol(hdr, lon, lat)
    np.testing.assert_allclose(back_line, np.broadcast_to(line, back_line.shape), atol=1e-6)
    np.testing.assert_allclose(back_col, np.broadcast_to(col, back_col.shape), atol=1e-6)


def test_sample_target_area_covers_region_plus_margin():
    area = target_area_for(WORLD.preset.bbox)
    lon, lat = area.pixel_lonlat(2000)
    w, s, e, n = WORLD.preset.bbox
    assert lon.min() < w - 0.1 and lon.max() > e + 0.1
    assert lat.min() < s - 0.1 and lat.max() > n + 0.1
    bigger = target_area_for(PRESETS["demo-4x"].bbox)
    assert bigger.segments > area.segments >= 4


# --- HSD segment selection ---------------------------------------------------------------


def expected_segments(root: Path, bbox) -> set[int]:
    """Segments with a pixel centre inside bbox, from the full scene's satpy lon/lat."""
    files = hsd_files(root, "2021-07-03 02:30", "13")
    ds = open_hsd(files, resolution=2000, solar_angles=False)
    w, s, e, n = bbox
    inside = (ds.lon >= w) & (ds.lon <= e) & (ds.lat >= s) & (ds.lat <= n)
    rows = np.flatnonzero(inside.any("x").values)
    lines_per_segment = read_header(files[0]).lines
    return {int(r) // lines_per_segment + 1 for r in rows}


@pytest.mark.parametrize(
    ("bbox", "segments"),
    [
        ((138.3, 35.95, 138.7, 36.15), {2}),  # inside segment 2
        ((138.3, 35.80, 138.7, 35.92), {2, 3}),  # across the segment 2/3 boundary
        ((138.9, 35.10, 139.0, 35.20), {4}),  # southern margin
    ],
)
def test_segment_selection_picks_exactly_the_segments_over_the_bbox(ahi_sample, bbox, segments):
    files = hsd_files(ahi_sample, "2021-07-03 02:30")
    chosen = segments_for_bbox(files, bbox)
    assert (
        {read_header(p).segment for p in chosen} == segments == expected_segments(ahi_sample, bbox)
    )
    assert len(chosen) == 5 * len(segments)  # every band of each chosen segment
    ds = open_hsd(chosen, resolution=2000)
    assert ds.attrs["segments"] == sorted(segments)
    assert ds.sizes["y"] == 16 * len(segments)
    w, s, e, n = bbox
    assert float(ds.lat.min()) < s and float(ds.lat.max()) > n


def test_segment_selection_of_a_far_away_bbox_is_empty(ahi_sample):
    assert segments_for_bbox(hsd_files(ahi_sample, "2021-07-03 02:30"), (10, 40, 11, 41)) == []


def test_granule_info_reads_segment_and_footprint_from_header_only(ahi_sample):
    path = [p for p in hsd_files(ahi_sample, "2021-07-03 02:30", "04") if "_S02" in p.name][0]
    info = granule_info(path)
    assert (info["band"], info["segment"], info["total_segments"]) == ("B04", 2, 4)
    assert (info["first_line"], info["lines"], info["resolution_km"]) == (33, 32, 1.0)
    assert info["area"] == "R301" and info["start"] < info["end"]
    w, s, e, n = info["bbox"]
    assert 137.6 < w < 138 and 139 < e < 139.4 and 35.7 < s < n < 36.4


# --- P-Tree -------------------------------------------------------------------------------


def test_ptree_grid_is_read_from_the_file_not_assumed(ahi_sample):
    path = ptree_file(ahi_sample, "2021-07-03 02:30")
    ds = open_ptree(path)
    pixels, lines = (int(v) for v in path.name.split(".")[1].split("_"))
    assert (ds.sizes["x"], ds.sizes["y"]) == (pixels, lines) != (2401, 2401)
    assert ds.x.values[1] - ds.x.values[0] == pytest.approx(0.02, abs=1e-9)
    assert ds.y.values[1] - ds.y.values[0] == pytest.approx(-0.02, abs=1e-9)
    assert ds.x.values[0] == pytest.approx(80 + 0.02 * round((ds.x.values[0] - 80) / 0.02))
    assert (
        "EPSG" in ds["spatial_ref"].attrs["crs_wkt"] and "4326" in ds.spatial_ref.attrs["crs_wkt"]
    )
    assert ds.odc.geobox.shape == (lines, pixels)
    assert ptree_info(path)["resolution_deg"] == pytest.approx(0.02)


def test_ptree_reflectance_is_albedo_over_cos_solar_zenith(ahi_sample):
    path = ptree_file(ahi_sample, "2021-01-07 02:30")
    ds = open_ptree(path)
    with netCDF4.Dataset(path) as nc:  # independent decoding of the packed shorts
        albedo = np.asarray(nc["albedo_03"][:], float)
        soz = np.asarray(nc["SOZ"][:], float)
    np.testing.assert_allclose(ds["albedo_03"].values, albedo, atol=1e-6)
    np.testing.assert_allclose(
        ds["reflectance_03"].values, albedo / np.cos(np.radians(soz)), rtol=1e-5
    )
    lon, lat = np.meshgrid(ds.x.values, ds.y.values)
    clear = ahi_writer._cloud_excess(WORLD, lon, lat, ds["observation_time"].values) < -0.3
    mu = np.cos(np.radians(ds["SOZ"].values))
    truth = surface_truth(lon, lat, "2021-01-07")["red"] * illumination_factor(3, mu)
    diff = ds["reflectance_03"].values[clear] - truth[clear]
    assert clear.sum() > 200 and np.abs(diff).max() < 0.012 and abs(diff.mean()) < 0.001
    assert 50 < float(ds.SOZ.mean()) < 60  # mid-January, near noon, 36 N


def test_ptree_hsd_and_truth_agree_on_clouds(ahi_sample):
    ds = open_ptree(ptree_file(ahi_sample, "2021-07-03 02:30"))
    lon, lat = np.meshgrid(ds.x.values, ds.y.values)
    cover = cloud_cover(WORLD, lon, lat, ds["observation_time"].values)
    assert ds["tbb_13"].values[cover >= 1].max() < 252 < ds["tbb_13"].values[cover <= 0].min()
    assert np.all(ds["observation_time"].values > np.datetime64("2021-07-03T02:30"))


def test_ptree_bbox_reads_only_a_window(ahi_sample):
    ds = open_ptree(ptree_file(ahi_sample, "2021-07-03 02:30"), bbox=(138.0, 35.5, 138.2, 35.6))
    assert ds.sizes["x"] == 11 and ds.sizes["y"] == 6
    assert ds.x.values[0] == pytest.approx(138.0) and ds.y.values[0] == pytest.approx(35.6)


# --- registry and inspect ----------------------------------------------------------------


def test_registry_detects_hsd_and_ptree_files(ahi_sample):
    assert {"ahi_hsd", "ahi_ptree"} <= set(readers())
    hsd = hsd_files(ahi_sample, "2021-07-03 02:30", "03")[0]
    assert detect(hsd).name == "ahi_hsd"
    assert detect(ptree_file(ahi_sample, "2021-07-03 02:30")).name == "ahi_ptree"


def test_inspect_summarises_band_segment_bbox_and_time(ahi_sample):
    hsd = [p for p in hsd_files(ahi_sample, "2021-07-03 02:30", "13") if "_S01" in p.name][0]
    s = inspect_file(hsd)
    assert s.reader == "ahi_hsd" and s.variables == ["B13"]
    assert s.time == ["2021-07-03T02:30:08", "2021-07-03T02:30:38"]
    assert s.details["segment"] == 1 and s.bbox[3] > WORLD.preset.bbox[3]
    p = inspect_file(ptree_file(ahi_sample, "2021-07-03 02:30"))
    assert p.reader == "ahi_ptree" and "albedo_03" in p.variables and "tbb_13" in p.variables
    w, s_, e, n = p.bbox
    assert w < 138 and s_ < 35.5 and e > 139 and n > 36.5
    assert p.time[0].startswith("2021-07-03T02:31")


# --- writer -------------------------------------------------------------------------------


def test_writer_is_deterministic_given_rng(tmp_path):
    a = write_ahi(
        WORLD,
        tmp_path / "a",
        np.random.default_rng(3),
        days=["2021-05-01"],
        hsd_times=["02:30"],
        ptree_times=[],
    )
    b = write_ahi(
        WORLD,
        tmp_path / "b",
        np.random.default_rng(3),
        days=["2021-05-01"],
        hsd_times=["02:30"],
        ptree_times=[],
    )
    assert [p.name for p in a] == [p.name for p in b] and len(a) == 20
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    assert not list((tmp_path / "a").rglob("*.part"))


def test_writer_uses_himawari9_after_the_switch(tmp_path):
    paths = write_ahi(
        WORLD,
        tmp_path,
        np.random.default_rng(0),
        days=["2022-12-20"],
        hsd_times=["02:30"],
        ptree_times=["02:30"],
    )
    assert all("_H09_" in p.name for p in paths)
    assert read_header(paths[0]).satellite == "Himawari-9"


@pytest.mark.slow
def test_demo_preset_writes_within_time_and_size_budget(tmp_path):
    paths = write_ahi(World(PRESETS["demo"], seed=42), tmp_path, np.random.default_rng(42))
    assert sum(p.stat().st_size for p in paths) < 80e6


# --- hostile inputs ------------------------------------------------------------------------

HSD_NAME = "HS_H08_20210703_0230_B13_R301_R20_S0104.DAT"


def plain_hsd(ahi_sample: Path, tmp_path: Path) -> Path:
    """A decompressed copy of a valid segment."""
    src = [p for p in hsd_files(ahi_sample, "2021-07-03 02:30", "13") if "_S01" in p.name][0]
    dst = tmp_path / HSD_NAME
    dst.write_bytes(bz2.decompress(src.read_bytes()))
    return dst


def assert_reader_error(fn, path: Path, *words: str) -> None:
    with pytest.raises(ReaderError) as err:
        fn(path)
    msg = str(err.value)
    assert path.name in msg
    for word in words:
        assert word in msg


def test_hsd_zero_byte_file_is_a_reader_error(tmp_path):
    path = tmp_path / HSD_NAME
    path.write_bytes(b"")
    assert_reader_error(open_hsd, path, "empty")
    assert_reader_error(granule_info, path, "empty")


def test_hsd_truncated_file_is_a_reader_error(ahi_sample, tmp_path):
    path = plain_hsd(ahi_sample, tmp_path)
    path.write_bytes(path.read_bytes()[:2000])
    assert_reader_error(open_hsd, path, "truncated")
    short_header = tmp_path / "short" / HSD_NAME
    short_header.parent.mkdir()
    short_header.write_bytes(path.read_bytes()[:600])
    assert_reader_error(granule_info, short_header, "truncated")


def test_hsd_truncated_bz2_is_a_reader_error(ahi_sample, tmp_path):
    src = hsd_files(ahi_sample, "2021-07-03 02:30", "13")[0]
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    assert_reader_error(open_hsd, path, "bz2")


def test_hsd_wrong_format_under_right_name_is_a_reader_error(tmp_path):
    path = tmp_path / HSD_NAME
    path.write_text("this is a text file, not Himawari Standard Data\n" * 50)
    assert_reader_error(open_hsd, path, "not a Himawari Standard Data file")


def test_hsd_broken_block_length_is_a_reader_error(ahi_sample, tmp_path):
    path = plain_hsd(ahi_sample, tmp_path)
    data = bytearray(path.read_bytes())
    offset = 282 + 50  # block 3 starts after blocks 1 (282 bytes) and 2 (50 bytes)
    assert data[offset] == 3
    data[offset + 1 : offset + 3] = (120).to_bytes(2, "little")  # real length is 127
    path.write_bytes(bytes(data))
    assert_reader_error(open_hsd, path, "broken header", "block 3")


def test_hsd_segment_number_in_name_and_header_must_agree(ahi_sample, tmp_path):
    path = plain_hsd(ahi_sample, tmp_path)
    renamed = path.rename(tmp_path / HSD_NAME.replace("S0104", "S0204"))
    assert_reader_error(open_hsd, renamed, "header says band 13 segment 1/4")


def all_fill_segment(tmp_path: Path, band: int, count: int = 65535) -> Path:
    area = target_area_for(WORLD.preset.bbox)
    res = ahi_writer.HSD_BANDS[band][2]
    proj = area.projection(res)
    nominal = datetime(2021, 7, 3, 2, 30)
    name = ahi_writer.hsd_name(nominal, band, res, 1, area.segments)
    counts = np.full((proj["segment_lines"], proj["columns"]), count, dtype="<u2")
    start, end = ahi_writer._observation_window(nominal)
    return ahi_writer.write_hsd_file(
        tmp_path / name,
        counts,
        band=band,
        wavelength_um=ahi_writer.HSD_BANDS[band][1],
        nominal=nominal,
        obs_start=start,
        obs_end=end,
        projection=proj,
        segment=1,
        total_segments=area.segments,
        first_line=1,
    )


def test_hsd_all_fill_counts_are_a_reader_error(tmp_path):
    """Every count 65535 (error) in every band: NaN everywhere, which is no data -> error."""
    paths = [all_fill_segment(tmp_path, 13), all_fill_segment(tmp_path, 3, 65534)]
    with pytest.raises(ReaderError, match="no valid pixel") as err:
        open_hsd(paths)
    assert paths[0].name in str(err.value)


def test_hsd_one_all_fill_band_becomes_nan_and_is_listed(ahi_sample, tmp_path):
    good = [p for p in hsd_files(ahi_sample, "2021-07-03 02:30", "03") if "_S01" in p.name]
    ds = open_hsd([*good, all_fill_segment(tmp_path, 13)], resolution=2000)
    assert ds.attrs["empty_bands"] == ["B13"]
    assert np.isnan(ds["B13"].values).all() and np.isfinite(ds["B03"].values).all()


def test_hsd_segments_with_a_gap_are_refused(ahi_sample):
    files = hsd_files(ahi_sample, "2021-07-03 02:30", "13")
    with pytest.raises(ReaderError, match="not contiguous"):
        open_hsd([files[0], files[2]])


def test_hsd_files_of_two_observations_are_refused(ahi_sample):
    files = hsd_files(ahi_sample, "2021-07-03 02:30", "13")[:1]
    files += hsd_files(ahi_sample, "2021-07-03 05:00", "13")[:1]
    with pytest.raises(ReaderError, match="one observation at a time"):
        open_hsd(files)


def ptree_copy(ahi_sample: Path, tmp_path: Path) -> Path:
    src = ptree_file(ahi_sample, "2021-07-03 02:30")
    return Path(shutil.copy(src, tmp_path / src.name))


def test_ptree_zero_byte_file_is_a_reader_error(tmp_path):
    path = tmp_path / "NC_H08_20210703_0230_R21_FLDK.00067_00067.nc"
    path.write_bytes(b"")
    assert_reader_error(open_ptree, path, "empty")


def test_ptree_truncated_file_is_a_reader_error(ahi_sample, tmp_path):
    path = ptree_copy(ahi_sample, tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_reader_error(open_ptree, path, "truncated")


def test_ptree_wrong_format_under_right_name_is_a_reader_error(tmp_path):
    path = tmp_path / "NC_H08_20210703_0230_R21_FLDK.00067_00067.nc"
    path.write_text("latitude,longitude,albedo_01\n35,138,0.1\n")
    assert_reader_error(open_ptree, path, "not a NetCDF")
    with pytest.raises(ReaderError, match="no reader recognises"):
        detect(path)


def test_ptree_all_fill_is_a_reader_error(ahi_sample, tmp_path):
    path = ptree_copy(ahi_sample, tmp_path)
    with netCDF4.Dataset(path, "a") as nc:
        for name in nc.variables:
            if name.startswith(("albedo_", "tbb_")):
                nc[name].set_auto_maskandscale(False)
                nc[name][:] = np.full(nc[name].shape, -32768, dtype="i2")  # _FillValue
    assert_reader_error(open_ptree, path, "fill")


def test_ptree_unparsable_timestamps_are_a_reader_error(ahi_sample, tmp_path):
    path = ptree_copy(ahi_sample, tmp_path)
    with netCDF4.Dataset(path, "a") as nc:
        nc["start_time"].units = "days since the launch of Himawari-8"
    assert_reader_error(open_ptree, path, "start_time", "unparsable")
    with netCDF4.Dataset(path, "a") as nc:
        nc["start_time"].units = "hours after 2021-07-03"
    assert_reader_error(open_ptree, path, "start_time")
    assert_reader_error(ptree_info, path, "start_time")


def test_ptree_missing_albedo_03_is_a_reader_error(ahi_sample, tmp_path):
    path = ptree_copy(ahi_sample, tmp_path)
    with netCDF4.Dataset(path, "a") as nc:
        nc.renameVariable("albedo_03", "albedo_3")
    assert_reader_error(open_ptree, path, "albedo_03")
