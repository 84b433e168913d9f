"""GOSAT TANSO-FTS SWIR L2 readers (NIES HDF5, ACOS Lite NetCDF4): decoded values against the
sample world's truth, time, quality-flag semantics, fill values, the registry, inspect and bad
input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from fluxscape.errors import ReaderError
from fluxscape.readers import detect, inspect_file, open_file
from fluxscape.readers.gosat import (
    ACOS_FILL,
    NIES_FILL,
    open_gosat_acos,
    open_gosat_nies,
    parse_acos_name,
    parse_nies_name,
)
from fluxscape.sample.gosat_writer import (
    CLOUDY_FRACTION,
    NIES_XCO2_RAW_OFFSET,
    NOISE_SD,
    Soundings,
    overpass_days,
    plan_soundings,
    write_acos_lite,
    write_gosat,
    write_nies_l2,
)
from fluxscape.sample.world import PRESETS, World

#: The demo region and truth, one year (2021) to keep the session fixture to a few seconds.
WORLD = World(dataclasses.replace(PRESETS["demo"], years=(2021,)), seed=42)
DAY = pd.Timestamp("2021-07-14")


@pytest.fixture(scope="session")
def gosat_dir(tmp_path_factory) -> Path:
    """The test world's GOSAT files (2021, both layouts)."""
    out = tmp_path_factory.mktemp("gosat_sample")
    write_gosat(WORLD, out, np.random.default_rng(42))
    return out / "gosat"


def _files(gosat_dir: Path, kind: str) -> list[Path]:
    pattern = {
        "co2": "nies/GOSATTFTS*_02C01S*.h5",
        "ch4": "nies/GOSATTFTS*_02C02S*.h5",
        "acos": "acos/acos_LtCO2_*.nc4",
    }[kind]
    return sorted(gosat_dir.glob(pattern))


def _pooled(paths: list[Path], gas: str) -> pd.DataFrame:
    """All soundings of ``paths`` with the world's truth at their place and file day."""
    frames = []
    for path in paths:
        ds = open_file(path)
        info = parse_nies_name(path) or parse_acos_name(path)
        day = pd.Timestamp(info["date"])
        lon, lat = ds["lon"].values, ds["lat"].values
        truth = getattr(WORLD, gas)(lon, lat, [day])[..., 0]
        frames.append(
            pd.DataFrame(
                {
                    "day": day,
                    "lon": lon,
                    "lat": lat,
                    "time": ds["time"].values,
                    "value": ds[gas].values,
                    "truth": truth,
                    "quality_pass": ds["quality_pass"].values,
                    "quality_flag": ds["quality_flag"].values,
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    df["residual"] = df["value"] - df["truth"]
    return df


@pytest.fixture(scope="session")
def nies_co2(gosat_dir) -> pd.DataFrame:
    return _pooled(_files(gosat_dir, "co2"), "xco2")


@pytest.fixture(scope="session")
def nies_ch4(gosat_dir) -> pd.DataFrame:
    return _pooled(_files(gosat_dir, "ch4"), "xch4")


@pytest.fixture(scope="session")
def acos_co2(gosat_dir) -> pd.DataFrame:
    return _pooled(_files(gosat_dir, "acos"), "xco2")


def _soundings(n: int = 6, cloudy=None, unconverged=None) -> Soundings:
    """n soundings over the demo region on DAY at 04:00 UTC, 4 s apart."""
    lon = np.linspace(138.1, 138.9, n)
    lat = np.linspace(36.4, 35.6, n)
    time = np.datetime64("2021-07-14T04:00:00.000", "ms") + np.arange(n) * np.timedelta64(4, "s")
    cloudy = np.zeros(n, bool) if cloudy is None else np.asarray(cloudy, bool)
    unconverged = np.zeros(n, bool) if unconverged is None else np.asarray(unconverged, bool)
    return Soundings(lon, lat, time, cloudy, unconverged)


def _nies(tmp_path: Path, gas: str = "xco2", name: str | None = None, **kw) -> Path:
    snd = kw.pop("snd", None) or _soundings()
    value = kw.pop("value", None)
    if value is None:
        value = np.full(snd.size, 415.0 if gas == "xco2" else 1900.0)
    product = "02C01S" if gas == "xco2" else "02C02S"
    name = name or f"GOSATTFTS20210714_{product}V0290R210823GU000.h5"
    return write_nies_l2(tmp_path / name, snd, gas, value, **kw)


def _acos(
    tmp_path: Path,
    name: str = "acos_LtCO2_210714_v211029_B9213A_211029011634s.nc4",
    snd: Soundings | None = None,
    xco2=None,
) -> Path:
    snd = snd or _soundings()
    xco2 = np.full(snd.size, 415.0) if xco2 is None else np.asarray(xco2, float)
    return write_acos_lite(
        tmp_path / name,
        snd,
        xco2,
        np.full(snd.size, 1.5),
        np.full(snd.size, 413.0),
        np.random.default_rng(0),
    )


# --- sample writer ---------------------------------------------------------------------------


def test_overpass_days_repeat_every_third_day_across_years():
    days = overpass_days((2021, 2022))
    assert set(np.diff(days).astype("timedelta64[D]").astype(int)) == {3}
    assert days[0] <= pd.Timestamp("2021-01-03") and days[-1] >= pd.Timestamp("2022-12-29")


def test_writer_writes_nies_co2_ch4_and_acos_file_every_overpass_day(gosat_dir):
    days = overpass_days(WORLD.preset.years)
    for kind in ("co2", "ch4", "acos"):
        files = _files(gosat_dir, kind)
        assert len(files) == len(days)
        dates = [(parse_nies_name(p) or parse_acos_name(p))["date"] for p in files]
        assert pd.DatetimeIndex(dates).equals(days)


def test_writer_puts_passed_soundings_in_every_quarter_degree_cell_every_month(nies_co2):
    ok = nies_co2[nies_co2.quality_pass == 1]
    w, s, e, n = WORLD.preset.bbox
    cells = np.floor((ok.lon - w) / 0.25).astype(int) * 100 + np.floor((ok.lat - s) / 0.25).astype(
        int
    )
    counts = ok.groupby([ok.day.dt.to_period("M"), cells]).size()
    assert len(counts) == 12 * 16  # 12 months x 16 cells, none empty
    assert counts.min() >= 3
    assert ok.lon.between(w, e).all() and ok.lat.between(s, n).all()


def test_writer_soundings_per_overpass_day_between_30_and_80(gosat_dir):
    sizes = [h5py.File(p)["Data/geolocation/latitude"].size for p in _files(gosat_dir, "co2")[:40]]
    assert 30 <= min(sizes) and max(sizes) <= 80


def test_writer_is_deterministic_given_rng():
    a = plan_soundings(WORLD.preset.bbox, DAY, np.random.default_rng(5))
    b = plan_soundings(WORLD.preset.bbox, DAY, np.random.default_rng(5))
    np.testing.assert_array_equal(a.lon, b.lon)
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.cloudy, b.cloudy)


# --- decoding against the world's truth ----------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "gas"), [("nies_co2", "xco2"), ("nies_ch4", "xch4"), ("acos_co2", "xco2")]
)
def test_passed_soundings_equal_world_truth_within_retrieval_noise(request, table, gas):
    df = request.getfixturevalue(table)
    ok = df[df.quality_pass == 1]
    sd = NOISE_SD[gas]
    assert len(ok) > 3000
    assert abs(ok.residual.mean()) < 4 * sd / np.sqrt(len(ok))
    assert ok.residual.std() == pytest.approx(sd, rel=0.06)


@pytest.mark.parametrize(
    ("table", "gas", "bias"),
    [("nies_co2", "xco2", -5.0), ("nies_ch4", "xch4", -40.0), ("acos_co2", "xco2", -5.0)],
)
def test_screened_soundings_are_biased_low_so_ignoring_the_flag_is_wrong(request, table, gas, bias):
    df = request.getfixturevalue(table)
    failed = df[(df.quality_pass == 0) & df.value.notna()]
    assert failed.residual.mean() == pytest.approx(bias, rel=0.15)
    # a pipeline that averaged every finite value would be off by ~ a quarter of that bias
    everything = df[df.value.notna()].residual.mean()
    assert everything < 0.15 * bias
    assert abs(everything) > 10 * NOISE_SD[gas] / np.sqrt(len(df))


@pytest.mark.parametrize("table", ["nies_co2", "nies_ch4", "acos_co2"])
def test_about_a_quarter_of_soundings_fail_screening(request, table):
    df = request.getfixturevalue(table)
    assert (df.quality_pass == 0).mean() == pytest.approx(CLOUDY_FRACTION, abs=0.03)
    assert ((df.quality_flag == 0) == (df.quality_pass == 1)).all()


def test_nies_and_acos_locate_the_same_soundings_at_the_same_times(gosat_dir):
    nies = open_gosat_nies(_files(gosat_dir, "co2")[10])
    acos = open_gosat_acos(_files(gosat_dir, "acos")[10])
    merged = pd.merge(
        nies[["lat", "lon"]].to_dataframe().reset_index(),
        acos[["lat", "lon"]].to_dataframe().reset_index(),
        on="time",
        suffixes=("_nies", "_acos"),
    )
    assert len(merged) == acos.sizes["obs"]  # Lite keeps the converged subset
    np.testing.assert_allclose(merged.lat_nies, merged.lat_acos, atol=1e-5)
    np.testing.assert_allclose(merged.lon_nies, merged.lon_acos, atol=1e-5)


def test_nies_xco2_is_bias_corrected_and_xco2_raw_is_the_uncorrected_dataset(gosat_dir):
    path = _files(gosat_dir, "co2")[0]
    ds = open_gosat_nies(path)
    with h5py.File(path) as f:
        corrected = f["Data/mixingRatio/XCO2BiasCorrected"][()]
        raw = f["Data/mixingRatio/XCO2"][()]
        error = f["Data/mixingRatio/XCO2BiasCorrectedError"][()]
    good = corrected != NIES_FILL
    np.testing.assert_allclose(ds.xco2.values[good], corrected[good], rtol=1e-7)
    np.testing.assert_allclose(ds.xco2_raw.values[good], raw[good], rtol=1e-7)
    np.testing.assert_allclose(ds.xco2_uncertainty.values[good], error[good], rtol=1e-7)
    assert ds.xco2.attrs["bias_corrected"] == 1 and ds.xco2.attrs["units"] == "ppm"
    np.testing.assert_allclose(
        (ds.xco2_raw - ds.xco2).values[good], NIES_XCO2_RAW_OFFSET, atol=1e-4
    )


def test_nies_file_without_bias_correction_gives_xco2_from_xco2_dataset(tmp_path):
    path = _nies(
        tmp_path,
        name="GOSATTFTS20210714_02C01SV0280R210823GU000.h5",
        raw_offset=0.7,
        bias_corrected=False,
    )
    ds = open_gosat_nies(path)
    np.testing.assert_allclose(ds.xco2.values, 415.7, rtol=1e-6)
    assert ds.xco2.attrs["bias_corrected"] == 0
    assert "xco2_uncertainty" not in ds and "xco2_raw" not in ds
    assert ds.attrs["retrieval_version"] == "02.80"


def test_acos_uncertainty_and_raw_xco2_in_ppm(gosat_dir):
    ds = open_gosat_acos(_files(gosat_dir, "acos")[0])
    assert ds.xco2.attrs["units"] == ds.xco2_uncertainty.attrs["units"] == "ppm"
    assert 1.0 < float(ds.xco2_uncertainty.where(ds.quality_pass == 1).mean()) < 2.0
    assert ds.attrs["retrieval_version"] == "B9213A"
    assert ds.sounding_id.dtype == np.int64


# --- time ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["co2", "ch4", "acos"])
def test_times_are_utc_on_the_file_day_near_0400(gosat_dir, kind):
    for path in _files(gosat_dir, kind)[::50]:
        ds = open_file(path)
        info = parse_nies_name(path) or parse_acos_name(path)
        t = pd.DatetimeIndex(ds["time"].values)
        assert t.tz is None and ds["time"].attrs["time_zone"] == "UTC"
        assert (t.normalize() == pd.Timestamp(info["date"])).all()
        assert (t.hour == 4).all() and (t.minute < 10).all()


def test_nies_time_strings_decode_to_the_millisecond(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        f["scanAttribute/time"][0] = b"2021-07-14 04:00:00.313"
    t = open_gosat_nies(path)["time"].values
    assert t[0] == np.datetime64("2021-07-14T04:00:00.313")
    assert t[1] == np.datetime64("2021-07-14T04:00:04.000")


def test_acos_time_is_seconds_since_1970_utc(tmp_path):
    path = _acos(tmp_path)
    with netCDF4.Dataset(path) as nc:
        seconds = nc["time"][0]
    expected = np.datetime64("1970-01-01") + np.timedelta64(int(round(seconds * 1000)), "ms")
    assert (
        open_gosat_acos(path)["time"].values[0]
        == expected
        == np.datetime64("2021-07-14T04:00:00.000")
    )


# --- quality flags and fill values ------------------------------------------------------------


def test_nies_flag_zero_is_pass_and_any_other_value_is_fail(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        f["Data/retrievalQuality/totalPostScreeningResult"][...] = [0, 1, 2, 0, 7, 0]
    ds = open_gosat_nies(path)
    assert ds.quality_flag.values.tolist() == [0, 1, 2, 0, 7, 0]
    assert ds.quality_pass.values.tolist() == [1, 0, 0, 1, 0, 1]


def test_acos_quality_flag_zero_is_good(tmp_path):
    snd = _soundings(cloudy=[0, 1, 0, 1, 1, 0])
    ds = open_gosat_acos(_acos(tmp_path, snd=snd))
    assert ds.quality_flag.values.tolist() == [0, 1, 0, 1, 1, 0]
    assert ds.quality_pass.values.tolist() == [1, 0, 1, 0, 0, 1]


def test_nies_minus_9999_becomes_nan_and_fails_quality_even_with_flag_zero(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        f["Data/mixingRatio/XCO2BiasCorrected"][1] = NIES_FILL
        f["Data/geolocation/latitude"][2] = NIES_FILL
        assert (f["Data/retrievalQuality/totalPostScreeningResult"][()] == 0).all()
    ds = open_gosat_nies(path)
    assert np.isnan(ds.xco2.values[1]) and np.isnan(ds.lat.values[2])
    assert not (ds.xco2.values == NIES_FILL).any()
    assert ds.quality_pass.values.tolist() == [1, 0, 0, 1, 1, 1]


def test_acos_minus_999999_becomes_nan_with_or_without_fill_attribute(tmp_path):
    path = _acos(tmp_path, xco2=[415, np.nan, 415, 415, 415, 415])
    with netCDF4.Dataset(path, "r+") as nc:
        assert nc["xco2"]._FillValue == ACOS_FILL
        nc["xco2"].set_auto_mask(False)
        assert nc["xco2"][1] == ACOS_FILL
        plain = nc.createVariable("xco2_no_fill_attr", "f4", ("sounding_id",))
        plain[:] = np.array([ACOS_FILL, 1, 1, 1, 1, 1])
        nc.renameVariable("xco2", "xco2_with_fill_attr")
        nc.renameVariable("xco2_no_fill_attr", "xco2")
    ds = open_gosat_acos(path)
    assert np.isnan(ds.xco2.values[0]) and ds.quality_pass.values[0] == 0
    assert np.isfinite(ds.xco2.values[1:]).all()


def test_all_fill_nies_file_reads_as_nan_with_nothing_passing(tmp_path):
    n = 5
    snd = Soundings(
        np.full(n, np.nan),
        np.full(n, np.nan),
        _soundings(n).time,
        np.zeros(n, bool),
        np.zeros(n, bool),
    )
    path = _nies(tmp_path, snd=snd, value=np.full(n, np.nan), uncertainty=np.full(n, np.nan))
    with h5py.File(path, "r+") as f:
        f["Data/retrievalQuality/totalPostScreeningResult"][...] = 0  # flags say "passed"
        assert (f["Data/mixingRatio/XCO2"][()] == NIES_FILL).all()
    ds = open_gosat_nies(path)
    for name in ("xco2", "xco2_raw", "xco2_uncertainty", "lat", "lon"):
        assert np.isnan(ds[name].values).all(), name
    assert ds.quality_pass.sum() == 0
    summary = inspect_file(path)
    assert summary.bbox is None and summary.details["n_quality_pass"] == 0


def test_all_fill_acos_file_raises_naming_time(tmp_path):
    path = _acos(tmp_path, xco2=np.full(6, np.nan))
    with netCDF4.Dataset(path, "r+") as nc:
        for name in ("latitude", "longitude", "time", "xco2_uncertainty"):
            nc[name][:] = ACOS_FILL
    with pytest.raises(ReaderError, match=rf"{path.name}.*time is missing"):
        open_gosat_acos(path)


# --- one gas per NIES product ------------------------------------------------------------------


def test_ch4_file_gives_xch4_in_ppb_and_no_xco2(gosat_dir):
    path = _files(gosat_dir, "ch4")[0]
    ds = open_gosat_nies(path, gas="xch4")
    assert "xco2" not in ds and ds.xch4.attrs["units"] == "ppb"
    assert 1850 < float(ds.xch4.where(ds.quality_pass == 1).mean()) < 1950
    assert ds.attrs["product"] == "02C02S"


def test_ch4_file_asked_for_xco2_raises_naming_file_and_gas(gosat_dir):
    path = _files(gosat_dir, "ch4")[0]
    with pytest.raises(ReaderError, match=rf"{path.name}: no xco2 in this file; it holds xch4"):
        open_gosat_nies(path, gas="xco2")


def test_acos_asked_for_xch4_raises(gosat_dir):
    with pytest.raises(ReaderError, match="no xch4"):
        open_gosat_acos(_files(gosat_dir, "acos")[0], gas="xch4")


def test_co2_name_with_ch4_content_raises(tmp_path):
    path = _nies(tmp_path, gas="xch4", name="GOSATTFTS20210714_02C01SV0290R210823GU000.h5")
    with pytest.raises(ReaderError, match="02C01S.*XCH4"):
        open_gosat_nies(path)


def test_xch4_stored_in_ppm_is_converted_to_ppb(tmp_path):
    path = _nies(tmp_path, gas="xch4", value=np.full(6, 1.9), bias_corrected=False)
    with h5py.File(path, "r+") as f:
        f["Data/mixingRatio/XCH4"].attrs["unit"] = np.array([b"ppm"])
    np.testing.assert_allclose(open_gosat_nies(path).xch4.values, 1900.0, rtol=1e-6)


def test_unknown_unit_raises_naming_dataset_and_unit(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        f["Data/mixingRatio/XCO2BiasCorrected"].attrs["unit"] = np.array([b"furlongs"])
    with pytest.raises(ReaderError, match="XCO2BiasCorrected has unit 'furlongs'"):
        open_gosat_nies(path)


# --- file names and the registry ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "product", "version"),
    [
        ("GOSATTFTS20181124_02C01SV0280R181124GU000.h5", "02C01S", "02.80"),
        ("GOSATTFTS2021010100_02C01SV0290R21021900000GU000.h5", "02C01S", "02.90"),
        ("GOSATTFTS20210101_02C02SV0295R210301GU000.h5", "02C02S", "02.95"),
    ],
)
def test_nies_name_variants_parse(name, product, version):
    info = parse_nies_name(name)
    assert (info["product"], info["version"]) == (product, version)


def test_nies_tir_and_l3_names_are_not_swir_l2():
    assert parse_nies_name("GOSATTFTS20100316_02P02TV0001R14030500010.h5") is None
    assert parse_nies_name("GOSATTFTS2009060120090630_03C01SV0305.h5") is None


def test_acos_name_variants_parse():
    v9 = parse_acos_name("acos_LtCO2_200608_v210210_B9213A_201026001634s.nc4")
    v11 = parse_acos_name("acos_LtCO2_090418_B11000Ar_240910224028s.nc4")
    assert (v9["build"], v9["date"].date().isoformat()) == ("B9213A", "2020-06-08")
    assert (v11["build"], v11["version_date"]) == ("B11000Ar", None)
    assert parse_acos_name("oco2_LtCO2_190601_B11210Ar_240910224028s.nc4") is None


def test_registry_detects_both_layouts_by_name(gosat_dir):
    assert detect(_files(gosat_dir, "co2")[0]).name == "gosat_nies"
    assert detect(_files(gosat_dir, "ch4")[0]).name == "gosat_nies"
    assert detect(_files(gosat_dir, "acos")[0]).name == "gosat_acos"


def test_registry_detects_both_layouts_by_content_under_other_names(gosat_dir, tmp_path):
    nies = shutil.copy(_files(gosat_dir, "co2")[0], tmp_path / "granule.h5")
    acos = shutil.copy(_files(gosat_dir, "acos")[0], tmp_path / "granule.nc4")
    assert detect(nies).name == "gosat_nies"
    assert detect(acos).name == "gosat_acos"
    # ACOS content under a NIES name: the name check fails, the content check wins
    misnamed = shutil.copy(acos, tmp_path / "GOSATTFTS20210714_02C01SV0290R210823GU000.h5")
    assert detect(misnamed).name == "gosat_acos"
    assert open_file(nies).attrs["product"] == "02C01S"  # gas from content without a name


def test_inspect_gives_sounding_bbox_time_span_and_counts(gosat_dir):
    path = _files(gosat_dir, "co2")[5]
    ds = open_gosat_nies(path)
    s = inspect_file(path)
    assert s.reader == "gosat_nies"
    assert s.variables[:3] == ["xco2", "xco2_raw", "xco2_uncertainty"]
    assert s.bbox == pytest.approx(
        [float(ds.lon.min()), float(ds.lat.min()), float(ds.lon.max()), float(ds.lat.max())],
        abs=1e-6,
    )
    w, so, e, n = WORLD.preset.bbox
    assert w <= s.bbox[0] < s.bbox[2] <= e and so <= s.bbox[1] < s.bbox[3] <= n
    day = parse_nies_name(path)["date"].date().isoformat()
    assert s.time[0].startswith(f"{day}T04:00") and s.time[1].endswith("Z")
    assert pd.Timestamp(s.time[1][:-1]) == pd.Timestamp(ds.time.values.max())
    assert s.details["n_soundings"] == ds.sizes["obs"]
    assert s.details["n_quality_pass"] == int(ds.quality_pass.sum())


def test_inspect_cli_json_for_acos_file(gosat_dir):
    path = _files(gosat_dir, "acos")[0]
    out = json.loads(run_cli("inspect", path, "--json").stdout)[0]
    assert out["reader"] == "gosat_acos" and "xco2" in out["variables"]
    assert out["details"]["product"] == "ACOS_L2_Lite_FP"


# --- bad input ---------------------------------------------------------------------------------


NIES_NAME = "GOSATTFTS20210714_02C01SV0290R210823GU000.h5"
ACOS_NAME = "acos_LtCO2_210714_v211029_B9213A_211029011634s.nc4"


@pytest.mark.parametrize(
    ("name", "opener"), [(NIES_NAME, open_gosat_nies), (ACOS_NAME, open_gosat_acos)]
)
def test_zero_byte_file_raises_reader_error_naming_file(tmp_path, name, opener):
    bad = tmp_path / name
    bad.write_bytes(b"")
    with pytest.raises(ReaderError, match=bad.name):
        opener(bad)
    with pytest.raises(ReaderError, match=rf"{bad.name}: no reader recognises"):
        detect(bad)


@pytest.mark.parametrize("kind", ["co2", "acos"])
def test_truncated_file_raises_reader_error_naming_file(gosat_dir, tmp_path, kind):
    src = _files(gosat_dir, kind)[0]
    bad = tmp_path / src.name
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    opener = open_gosat_acos if kind == "acos" else open_gosat_nies
    with pytest.raises(ReaderError, match=bad.name):
        opener(bad)
    with pytest.raises(ReaderError, match=bad.name):
        inspect_file(bad)


def test_hdf5_without_mixing_ratio_group_raises_naming_it(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["Data/mixingRatio"]
    assert detect(path).name == "gosat_nies"  # the layout is recognised...
    with pytest.raises(ReaderError, match=rf"{path.name}: no /Data/mixingRatio group"):
        open_gosat_nies(path)  # ...and the missing part named


def test_hdf5_without_time_raises_naming_dataset(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["scanAttribute/time"]
    with pytest.raises(ReaderError, match="/scanAttribute/time"):
        open_gosat_nies(path)


def test_netcdf_without_xco2_raises_naming_variable(tmp_path):
    path = _acos(tmp_path)
    with netCDF4.Dataset(path, "r+") as nc:
        nc.renameVariable("xco2", "xco2_renamed")
    assert detect(path).name == "gosat_acos"
    with pytest.raises(ReaderError, match=rf"{path.name}: no variable 'xco2'"):
        open_gosat_acos(path)


def test_unparseable_nies_time_string_raises_naming_value_and_sounding(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        f["scanAttribute/time"][3] = b"2021-07-14 4h00 UTC"
    with pytest.raises(ReaderError, match=r"'2021-07-14 4h00 UTC' at sounding 3"):
        open_gosat_nies(path)


def test_impossible_nies_date_raises(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        f["scanAttribute/time"][0] = b"2021-02-30 04:00:00.000"
    with pytest.raises(ReaderError, match="2021-02-30"):
        open_gosat_nies(path)


def test_length_mismatch_between_datasets_raises(tmp_path):
    path = _nies(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["Data/geolocation/longitude"]
        f["Data/geolocation/longitude"] = np.zeros(4, "float32")
    with pytest.raises(ReaderError, match="longitude has shape"):
        open_gosat_nies(path)


def test_non_gosat_hdf5_is_not_detected(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ReaderError, match="no reader recognises"):
        detect(path)
