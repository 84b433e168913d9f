"""FLUXNET2015 / ONEFlux CSV reader: real files, a sample-world round trip and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import missing_realdata

from fluxscape.errors import ReaderError
from fluxscape.readers import fluxnet
from fluxscape.readers.fluxnet import (
    find_site_list,
    good_quality,
    parse_fluxnet_name,
    read_fluxnet,
    read_site_list,
)
from fluxscape.sample.fluxnet_writer import (
    DD_COLUMNS,
    NEE_NOISE_SD,
    write_fullset_dd,
    write_site_list,
)

BE_LCR_DD = "DD/FLX_BE-Lcr_FLUXNET2015_FULLSET_DD_2019-2020_beta-3.csv"
FR_TOU_DD = "DD/FLX_FR-Tou_FLUXNET2015_FULLSET_DD_2018-2020_beta-3.csv"
CH_DAV_MM = "MM/FLX_CH-Dav_FLUXNET2015_FULLSET_MM_1997-2020_beta-3.csv"
# From SitesList.csv of the warm-winter release (checked by eye against the file).
BE_LCR_LAT, BE_LCR_LON = 51.11218, 3.85043
CH_DAV_LAT, CH_DAV_LON = 46.81533, 9.85591


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def warmwinter(realdata_dir: Path) -> Path:
    folder = realdata_dir / "fluxnet2020_warmwinter"
    if not (folder / BE_LCR_DD).is_file():
        missing_realdata(f"FLUXNET warm-winter files not found under {folder}")
    return folder


@pytest.fixture(scope="session")
def be_lcr_dd(warmwinter: Path):
    return read_fluxnet(warmwinter / BE_LCR_DD)


def _raw_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV as plain text (independent of the reader)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [r for r in rows[1:] if r]


# ------------------------------------------------------------------------------------------
# Real daily (DD) file
# ------------------------------------------------------------------------------------------


def test_real_dd_time_step_is_one_day(be_lcr_dd):
    steps = np.diff(be_lcr_dd["time"].values)
    assert be_lcr_dd["time"].dims == ("time",)
    assert (steps == np.timedelta64(1, "D")).all()


def test_real_dd_first_and_last_day_match_timestamp_column(warmwinter, be_lcr_dd):
    header, rows = _raw_rows(warmwinter / BE_LCR_DD)
    col = header.index("TIMESTAMP")
    first = pd.Timestamp(be_lcr_dd["time"].values[0]).strftime("%Y%m%d")
    last = pd.Timestamp(be_lcr_dd["time"].values[-1]).strftime("%Y%m%d")
    assert (first, last) == (rows[0][col], rows[-1][col])
    assert be_lcr_dd.sizes["time"] == len(rows)


def test_real_dd_missing_marker_minus_9999_becomes_nan(warmwinter, be_lcr_dd):
    header, rows = _raw_rows(warmwinter / BE_LCR_DD)
    hits = [
        (i, name)
        for i, row in enumerate(rows)
        for name, cell in zip(header, row, strict=True)
        if cell == "-9999" and name != "TIMESTAMP"
    ]
    assert hits, "expected the real file to contain -9999 cells"
    row, name = hits[0]
    assert np.isnan(be_lcr_dd[name].values[row])
    assert all(not (be_lcr_dd[v].values == -9999).any() for v in be_lcr_dd.data_vars)


def test_real_dd_gpp_nt_mean_is_plausible_in_gc_per_m2_per_day(be_lcr_dd):
    mean_gpp = float(be_lcr_dd["GPP_NT_VUT_REF"].mean())
    assert -1.0 < mean_gpp < 20.0


def test_real_dd_units_attributes_for_carbon_met_and_qc(be_lcr_dd):
    assert be_lcr_dd["NEE_VUT_REF"].attrs["units"] == "gC m-2 d-1"
    assert be_lcr_dd["GPP_NT_VUT_REF"].attrs["units"] == "gC m-2 d-1"
    assert be_lcr_dd["TA_F"].attrs["units"] == "degC"
    assert be_lcr_dd["SW_IN_F"].attrs["units"] == "W m-2"
    assert be_lcr_dd["VPD_F"].attrs["units"] == "hPa"
    assert be_lcr_dd["LE_F_MDS"].attrs["units"] == "W m-2"
    assert be_lcr_dd["NEE_VUT_REF_QC"].attrs["units"] == "1"
    assert "fraction" in be_lcr_dd["NEE_VUT_REF_QC"].attrs["long_name"]


def test_real_dd_site_coordinate_and_attributes(warmwinter, be_lcr_dd):
    assert be_lcr_dd["site"].item() == "BE-Lcr"
    assert be_lcr_dd.attrs["site_id"] == "BE-Lcr"
    assert be_lcr_dd.attrs["resolution"] == "DD"
    assert be_lcr_dd.attrs["source_file"] == str(warmwinter / BE_LCR_DD)


def test_real_dd_columns_argument_reads_only_requested_air_temperature(warmwinter):
    ds = read_fluxnet(warmwinter / BE_LCR_DD, columns=["TA_F", "TA_F_QC"])
    assert sorted(ds.data_vars) == ["TA_F", "TA_F_QC"]
    assert ds.sizes["time"] == 731


# ------------------------------------------------------------------------------------------
# Real monthly (MM) file
# ------------------------------------------------------------------------------------------


def test_real_mm_times_are_first_of_consecutive_months(warmwinter):
    ds = read_fluxnet(warmwinter / CH_DAV_MM, columns=["NEE_VUT_REF"])
    times = pd.DatetimeIndex(ds["time"].values)
    assert (times.day == 1).all()
    months = times.year * 12 + times.month
    assert (np.diff(months) == 1).all()
    assert ds["NEE_VUT_REF"].attrs["units"] == "gC m-2 d-1"


def test_real_mm_time_count_equals_row_count(warmwinter):
    _, rows = _raw_rows(warmwinter / CH_DAV_MM)
    ds = read_fluxnet(warmwinter / CH_DAV_MM, columns=[])
    assert ds.sizes["time"] == len(rows)
    assert pd.Timestamp(ds["time"].values[-1]) == pd.Timestamp(rows[-1][0][:4] + "-12-01")


# ------------------------------------------------------------------------------------------
# Quality selection
# ------------------------------------------------------------------------------------------


def test_good_quality_gpp_selects_rows_with_nee_qc_at_least_0_8(warmwinter, be_lcr_dd):
    header, rows = _raw_rows(warmwinter / BE_LCR_DD)
    qc = np.array([float(r[header.index("NEE_VUT_REF_QC")]) for r in rows])
    gpp = np.array([float(r[header.index("GPP_NT_VUT_REF")]) for r in rows])
    expected = (qc >= 0.8) & (qc != -9999) & (gpp != -9999)
    mask = good_quality(be_lcr_dd, "GPP_NT_VUT_REF")
    assert mask.dtype == bool
    assert 0 < expected.sum() < len(rows)  # the file has both good and poor days
    np.testing.assert_array_equal(mask.values, expected)


def test_good_quality_threshold_is_adjustable_for_nee(be_lcr_dd):
    strict = good_quality(be_lcr_dd, "NEE_VUT_REF", min_qc=0.95)
    loose = good_quality(be_lcr_dd, "NEE_VUT_REF", min_qc=0.5)
    assert strict.sum() < loose.sum()
    assert (be_lcr_dd["NEE_VUT_REF_QC"].values[strict.values] >= 0.95).all()


def test_good_quality_without_qc_column_raises(warmwinter):
    ds = read_fluxnet(warmwinter / BE_LCR_DD, columns=["GPP_NT_VUT_REF"])
    with pytest.raises(ReaderError, match="NEE_VUT_REF_QC"):
        good_quality(ds, "GPP_NT_VUT_REF")


# ------------------------------------------------------------------------------------------
# Site list
# ------------------------------------------------------------------------------------------


def test_site_list_with_bom_gives_site_latitude_longitude(warmwinter):
    path = warmwinter / "SitesList.csv"
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"  # the premise: the file has a BOM
    sites = read_site_list(path)
    assert list(sites.columns) == ["site_id", "name", "lat", "lon", "igbp"]
    row = sites.set_index("site_id").loc["CH-Dav"]
    assert (row["lat"], row["lon"], row["igbp"]) == (CH_DAV_LAT, CH_DAV_LON, "ENF")


def test_find_site_list_from_mm_file_finds_parent_folder_file(warmwinter):
    assert find_site_list(warmwinter / CH_DAV_MM) == (warmwinter / "SitesList.csv").resolve()


def test_find_site_list_returns_none_when_absent(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    assert find_site_list(tmp_path / "a" / "b" / "c" / "x.csv") is None


# ------------------------------------------------------------------------------------------
# Registry: inspect
# ------------------------------------------------------------------------------------------


def test_inspect_real_dd_gives_site_point_bbox_and_daily_time_span(warmwinter):
    from fluxscape.readers.registry import inspect_file

    summary = inspect_file(warmwinter / BE_LCR_DD)
    assert summary.reader == "fluxnet"
    assert summary.bbox == [BE_LCR_LON, BE_LCR_LAT, BE_LCR_LON, BE_LCR_LAT]
    assert summary.time == ["2019-01-01", "2020-12-31"]
    assert summary.details["site"] == "BE-Lcr"
    assert summary.details["resolution"] == "DD"
    assert "NEE_VUT_REF" in summary.variables and "TIMESTAMP" not in summary.variables


# ------------------------------------------------------------------------------------------
# File names
# ------------------------------------------------------------------------------------------


def test_parse_name_fluxnet2015_fullset_dd():
    info = parse_fluxnet_name("/x/FLX_BE-Lcr_FLUXNET2015_FULLSET_DD_2019-2020_beta-3.csv")
    assert info is not None
    assert (info["site_id"], info["product"], info["resolution"]) == ("BE-Lcr", "FULLSET", "DD")
    assert (info["first_year"], info["last_year"]) == (2019, 2020)


def test_parse_name_ameriflux_and_japanflux_variants():
    amf = parse_fluxnet_name("AMF_US-Ha1_FLUXNET_SUBSET_HH_1991-2020_3-5.csv")
    jpf = parse_fluxnet_name("JPF_JP-Tef_FLUXNET_FLUXMET_HH_2001-2023_v1.3_r1.csv")
    assert amf is not None and jpf is not None
    assert (amf["site_id"], amf["product"], amf["resolution"]) == ("US-Ha1", "SUBSET", "HH")
    assert (jpf["site_id"], jpf["product"], jpf["last_year"]) == ("JP-Tef", "FLUXMET", 2023)


def test_parse_name_returns_none_for_other_names():
    assert parse_fluxnet_name("MOD13A2.A2020001.h28v05.061.hdf") is None
    assert parse_fluxnet_name("FLX_BE-Lcr_FLUXNET2015_FULLSET_2019-2020_beta-3.zip") is None


# ------------------------------------------------------------------------------------------
# Sample-world round trip
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    idx = pd.date_range("2019-01-01", "2020-12-31", freq="D")
    season = np.sin(2.0 * np.pi * (idx.day_of_year.to_numpy() - 100) / 365.0)
    return pd.DataFrame(
        {
            "TA_F": 10.0 + 12.0 * season,
            "SW_IN_F": 180.0 + 120.0 * season,
            "VPD_F": 6.0 + 5.0 * season,
            "P_F": np.where(idx.day % 4 == 0, 6.0, 0.0),
            "GPP": np.maximum(4.0 + 5.0 * season, 0.2),
            "RECO": 3.0 + 2.5 * season,
        },
        index=idx,
    )


@pytest.fixture(scope="module")
def sample_dd(tmp_path_factory, truth) -> Path:
    out = tmp_path_factory.mktemp("tower")
    return write_fullset_dd(out, "JP-Smp", truth, np.random.default_rng(7), gap_fraction=0.05)


def test_roundtrip_nee_equals_reco_minus_gpp_within_writer_noise(sample_dd, truth):
    ds = read_fluxnet(sample_dd)
    residual = ds["NEE_VUT_REF"].values - (truth["RECO"] - truth["GPP"]).to_numpy()
    residual = residual[np.isfinite(residual)]
    assert np.abs(residual).max() < 5.0 * NEE_NOISE_SD
    assert 0.7 * NEE_NOISE_SD < residual.std() < 1.3 * NEE_NOISE_SD
    assert abs(residual.mean()) < 0.05


def test_roundtrip_night_time_partition_closes_nee(sample_dd):
    ds = read_fluxnet(sample_dd)
    closure = ds["RECO_NT_VUT_REF"] - ds["GPP_NT_VUT_REF"] - ds["NEE_VUT_REF"]
    assert float(np.nanmax(np.abs(closure.values))) < 1e-4


def test_roundtrip_gap_days_are_nan_with_low_nee_qc(sample_dd, truth):
    ds = read_fluxnet(sample_dd)
    gaps = np.isnan(ds["NEE_VUT_REF"].values)
    assert gaps.sum() == round(0.05 * len(truth))
    assert np.isnan(ds["GPP_DT_VUT_REF"].values[gaps]).all()
    assert (ds["NEE_VUT_REF_QC"].values[gaps] < 0.2).all()
    assert not good_quality(ds, "GPP_NT_VUT_REF").values[gaps].any()
    assert "-9999" in sample_dd.read_text()
    assert "-9999.0" not in sample_dd.read_text()


def test_roundtrip_file_name_parses_to_site_and_years(sample_dd):
    info = parse_fluxnet_name(sample_dd)
    assert sample_dd.name == "FLX_JP-Smp_FLUXNET2015_FULLSET_DD_2019-2020_1-4.csv"
    assert info is not None
    assert (info["site_id"], info["resolution"], info["first_year"]) == ("JP-Smp", "DD", 2019)


def test_roundtrip_air_temperature_close_to_truth(sample_dd, truth):
    ds = read_fluxnet(sample_dd, columns=["TA_F"])
    np.testing.assert_allclose(ds["TA_F"].values, truth["TA_F"].to_numpy(), atol=0.6)


def test_writer_qc_fractions_mostly_good_and_within_0_1(sample_dd):
    ds = read_fluxnet(sample_dd)
    qc = ds["NEE_VUT_REF_QC"].values
    assert ((qc >= 0.0) & (qc <= 1.0)).all()
    assert 0.7 < (qc >= 0.8).mean() < 0.99


def test_writer_is_deterministic_given_rng(tmp_path, truth):
    a = write_fullset_dd(tmp_path / "a", "JP-Smp", truth, np.random.default_rng(3))
    b = write_fullset_dd(tmp_path / "b", "JP-Smp", truth, np.random.default_rng(3))
    assert a.read_bytes() == b.read_bytes()


def test_writer_columns_follow_real_fullset_dd_order(warmwinter):
    real_header, _ = _raw_rows(warmwinter / FR_TOU_DD)
    assert set(DD_COLUMNS) <= set(real_header)
    positions = [real_header.index(c) for c in DD_COLUMNS]
    assert positions == sorted(positions)


def test_roundtrip_site_list_gives_inspect_bbox(tmp_path, truth):
    path = write_fullset_dd(tmp_path / "DD", "JP-Smp", truth, np.random.default_rng(1))
    sites = pd.DataFrame(
        {"site_id": ["JP-Smp"], "name": ["Sample, forest"], "lat": [36.05], "lon": [140.1]}
    ).assign(igbp="MF")
    listing = write_site_list(tmp_path, sites)
    assert listing.read_bytes().startswith(b"\xef\xbb\xbfSiteCode,SiteName,")
    assert read_site_list(listing).iloc[0].to_dict()["name"] == "Sample, forest"
    summary = fluxnet.SPEC.summarize(path)
    assert summary.bbox == [140.1, 36.05, 140.1, 36.05]
    assert summary.time == ["2019-01-01", "2020-12-31"]


# ------------------------------------------------------------------------------------------
# Other resolutions and content-based detection (small hand-written files)
# ------------------------------------------------------------------------------------------


def test_half_hourly_time_is_timestamp_start_with_time_end(tmp_path):
    path = tmp_path / "FLX_JP-Hh1_FLUXNET2015_FULLSET_HH_2020-2020_1-4.csv"
    path.write_text(
        "TIMESTAMP_START,TIMESTAMP_END,NEE_VUT_REF,NEE_VUT_REF_QC\n"
        "202001010000,202001010030,1.5,0\n"
        "202001010030,202001010100,-9999,3\n"
        "202001010100,202001010130,2.5,2\n"
        "202001010130,202001010200,0.5,1\n"
    )
    ds = read_fluxnet(path)
    assert pd.Timestamp(ds["time"].values[1]) == pd.Timestamp("2020-01-01 00:30")
    assert pd.Timestamp(ds["time_end"].values[1]) == pd.Timestamp("2020-01-01 01:00")
    assert ds["NEE_VUT_REF"].attrs["units"] == "umolCO2 m-2 s-1"
    good = good_quality(ds, "NEE_VUT_REF")
    assert good.values.tolist() == [True, False, False, True]


def test_resolution_detected_from_timestamp_length_when_name_is_unknown(tmp_path):
    path = tmp_path / "tower_monthly.csv"
    path.write_text("TIMESTAMP,GPP_NT_VUT_REF\n201901,1.2\n201902,2.4\n")
    ds = read_fluxnet(path)
    assert ds.attrs["resolution"] == "MM"
    assert pd.Timestamp(ds["time"].values[1]) == pd.Timestamp("2019-02-01")


def test_yearly_carbon_flux_units_are_per_year(tmp_path):
    path = tmp_path / "FLX_JP-Yy1_FLUXNET2015_FULLSET_YY_2019-2020_1-4.csv"
    path.write_text("TIMESTAMP,NEE_VUT_REF,NEE_VUT_REF_QC\n2019,-250.5,0.9\n2020,-9999.0,0.1\n")
    ds = read_fluxnet(path)
    assert ds["NEE_VUT_REF"].attrs["units"] == "gC m-2 y-1"
    assert np.isnan(ds["NEE_VUT_REF"].values[1])
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2019-01-01")


def test_non_numeric_column_is_kept_as_text_without_crash(tmp_path):
    path = tmp_path / "FLX_JP-Txt_FLUXNET2015_FULLSET_DD_2020-2020_1-4.csv"
    path.write_text("TIMESTAMP,TA_F,NOTE\n20200101,1.5,ok\n20200102,-9999,sensor swap\n")
    ds = read_fluxnet(path)
    assert ds["NOTE"].values.tolist() == ["ok", "sensor swap"]
    assert np.isnan(ds["TA_F"].values[1])


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------

_DD_NAME = "FLX_XX-Bad_FLUXNET2015_FULLSET_DD_2019-2019_1-4.csv"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\xff\xfe garbage",
        b"just some words\nnot, a, flux file\n",
        b"TIMESTAMP,NEE_VUT_REF\nyesterday,1.0\n",
        b"TIMESTAMP,NEE_VUT_REF,NEE_VUT_REF_QC\n20190101,1.0,0.9\n20190102,0.",
        b"TIMESTAMP,NEE_VUT_REF\n",
        b"TIMESTAMP_START,TIMESTAMP_END,NEE\n201901010000,201901010030,1\n",
    ],
    ids=["empty", "binary", "no-timestamp", "bad-date", "truncated", "header-only", "not-dd"],
)
def test_garbage_named_like_dd_raises_reader_error_naming_file(tmp_path, content):
    path = tmp_path / _DD_NAME
    path.write_bytes(content)
    with pytest.raises(ReaderError) as info:
        read_fluxnet(path)
    assert _DD_NAME in str(info.value)


def test_missing_requested_column_raises_reader_error_naming_column(sample_dd):
    with pytest.raises(ReaderError) as info:
        read_fluxnet(sample_dd, columns=["TA_F", "FCH4_F_ANNOPTLM"])
    assert "FCH4_F_ANNOPTLM" in str(info.value)
    assert sample_dd.name in str(info.value)


def test_sniff_rejects_file_without_timestamp_column(tmp_path):
    path = tmp_path / _DD_NAME
    path.write_text("DATE,NEE\n2019-01-01,1.0\n")
    with pytest.raises(ReaderError, match=r"missing columns \[TIMESTAMP or TIMESTAMP_START\]"):
        fluxnet.SPEC.sniff(path)  # a sniff rejects by saying why
    path.write_text("TIMESTAMP,NEE\n20190101,1.0\n")
    assert fluxnet.SPEC.sniff(path) is True


def test_fluxnet_ch4_daily_methane_flux_in_nmol_per_m2_per_s(tmp_path):
    path = tmp_path / "FLX_JP-Swl_FLUXNET-CH4_DD_2015-2015_1-1.csv"
    path.write_text(
        "TIMESTAMP,FCH4,FCH4_F,FCH4_F_ANNOPTLM,FCH4_F_ANNOPTLM_QC,TA_F,NEE_F\n"
        "20150101,12.5,12.5,12.1,0.9,-1.5,0.8\n"
        "20150102,-9999,13.0,12.9,0.2,-0.5,0.7\n"
    )
    ds = read_fluxnet(path)
    assert ds["FCH4_F"].attrs["units"] == "nmolCH4 m-2 s-1"
    assert ds["FCH4_F_ANNOPTLM"].attrs["units"] == "nmolCH4 m-2 s-1"
    assert np.isnan(ds["FCH4"].values[1]) and ds["FCH4_F"].values[1] == 13.0
    assert ds.attrs["resolution"] == "DD"
