"""Bad inputs are told precisely (issue #13): a hostile corpus built in tmp_path, through
``fluxscape.readers.inspect_file`` and ``fluxscape inspect``.

Rejects (ReaderError, exit 1) name the actual problem, not "name matches but content does
not"; files that open but hold no valid data pass with a warning (stderr, exit 0);
``details["valid_values"]`` counts the valid values of each summary.
"""

from __future__ import annotations

import bz2
import gzip
import os
import shutil
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO

from fluxscape.cli import cli
from fluxscape.errors import ReaderError
from fluxscape.readers import detect, inspect_file, readers
from fluxscape.readers.magic import hdf5_truncation, kind_of
from fluxscape.sample import ahi_writer, modis_writer
from fluxscape.sample.ahi_writer import target_area_for
from fluxscape.sample.fluxnet_writer import write_fullset_dd
from fluxscape.sample.gosat_writer import Soundings, write_nies_l2
from fluxscape.sample.world import PRESETS

#: One real file name per reader (as tests/test_readers_all.py and the sample writers use).
NAMES = {
    "modis_hdf4": "MOD13A2.A2021001.h29v05.061.2021018034215.hdf",
    "fluxnet": "FLX_JP-Bad_FLUXNET2015_FULLSET_DD_2021-2022_1-4.csv",
    "gosat_nies": "GOSATTFTS20210101_02C01SV0290R21021900000GU000.h5",
    "gosat_acos": "acos_LtCO2_210101_v210210_B9213A_210301000000s.nc4",
    "sgli_l2": "GC1SG1_20210101D01D_T0529_L2SG_VGI_K_3000.h5",
    "sgli_l1b": "GC1SG1_202101090111M00407_1BSG_VNRDK_2002.h5",
    "ahi_hsd": "HS_H09_20220715_0230_B03_JP01_R10_S0101.DAT",
    "ahi_ptree": "NC_H08_20210601_0230_R21_FLDK.00067_00067.nc",
    "cf_meteo": "era5_daily_2021.nc",
}
HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>gone</body></html>\n"


def inspect_cli(path: Path) -> tuple[int, str, str]:
    """``fluxscape inspect PATH``: exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    return result.exit_code, result.stdout, result.stderr


def reject(path: Path, phrase: str) -> str:
    """inspect_file raises ReaderError naming the file and ``phrase`` (a regex)."""
    with pytest.raises(ReaderError, match=phrase) as err:
        inspect_file(path)
    message = str(err.value)
    assert str(path) in message
    assert "name matches but content does not" not in message
    return message


def reject_cli(path: Path, phrase: str) -> None:
    import re

    code, _, err = inspect_cli(path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and re.search(phrase, lines[0]), lines[0]


# --- the generic checks ---------------------------------------------------------------------


def test_kind_of_tells_containers_and_downloads_apart(tmp_path):
    cases = {
        "empty": b"",
        "hdf4": b"\x0e\x03\x13\x01" + bytes(60),
        "hdf5": b"\x89HDF\r\n\x1a\n" + bytes(60),
        "netcdf3": b"CDF\x01" + bytes(60),
        "gzip": gzip.compress(b"TIMESTAMP,NEE\n"),
        "bz2": bz2.compress(b"x" * 100),
        "html": b"\n  " + HTML,
        "xml": b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>',
        "json": b'{"error": "unauthorized"}',
        "text": b"TIMESTAMP,NEE_VUT_REF\n20210101,1.5\n",
        "latin1": "TIMESTAMP,SITE\n20210101,Sor\xf8\n".encode("latin-1"),
        "binary": bytes(range(256)),
    }
    for kind, content in cases.items():
        path = tmp_path / f"f_{kind}"
        path.write_bytes(content)
        assert kind_of(path) == ("text" if kind == "latin1" else kind), kind
    assert kind_of(tmp_path) == "directory"
    assert kind_of(tmp_path / "absent") == "missing"


@pytest.mark.parametrize("reader", sorted(NAMES))
def test_zero_byte_file_is_said_to_be_empty(tmp_path, reader):
    bad = tmp_path / NAMES[reader]
    bad.write_bytes(b"")
    message = reject(bad, r"is empty \(0 bytes\)")
    assert f"{reader}: is empty (0 bytes)" in message  # the reader whose name matched
    assert "readers tried:" in message


@pytest.mark.parametrize("reader", sorted(NAMES))
def test_html_page_under_a_data_name_is_called_a_failed_download(tmp_path, reader):
    bad = tmp_path / NAMES[reader]
    bad.write_bytes(HTML)
    reject(bad, r"is an HTML page, not .*\(a failed download\?")


def test_html_named_like_hsd_segment(tmp_path):
    bad = tmp_path / NAMES["ahi_hsd"]
    bad.write_bytes(HTML)
    phrase = r"is an HTML page, not a Himawari HSD segment \(a failed download\?"
    reject(bad, phrase)
    reject_cli(bad, phrase)


def test_directory_and_missing_file(tmp_path):
    folder = tmp_path / NAMES["modis_hdf4"]
    folder.mkdir()
    reject(folder, "is a directory, not a file")
    reject(tmp_path / "absent.hdf", "no such file")
    reject_cli(folder, "is a directory, not a file")


def test_unknown_name_says_what_the_file_is(tmp_path):
    bad = tmp_path / "download.bin"
    bad.write_bytes(HTML)
    reject(bad, r"no reader's file-name pattern matches; the file is an HTML page")


# --- MODIS ----------------------------------------------------------------------------------


def test_hdf5_named_like_modis_is_not_hdf4(tmp_path):
    bad = tmp_path / NAMES["modis_hdf4"]
    with h5py.File(bad, "w") as f:
        f["NDVI"] = np.zeros((4, 4), "int16")
    phrase = r"is an HDF5 file, not HDF4 \(MODIS HDF-EOS files are HDF4\)"
    reject(bad, phrase)
    reject_cli(bad, phrase)


def test_gzip_compressed_modis_file(tmp_path):
    bad = tmp_path / NAMES["modis_hdf4"]
    bad.write_bytes(gzip.compress(b"\x0e\x03\x13\x01" + bytes(1000)))
    reject(bad, r"is gzip-compressed, not HDF4 .*\(decompress it first\)")


def _mod13a2(path: Path, layers: dict[str, np.ndarray]) -> Path:
    size = 12
    tile = modis_writer.TileSpec(
        29, 5, size, (12_231_455.716, 4_447_802.079), (13_343_406.236, 3_335_851.559)
    )
    start, end = datetime(2021, 1, 1), datetime(2021, 1, 16)
    return modis_writer.write_modis_grid(
        path,
        modis_writer.MOD13A2,
        tile,
        layers,
        start,
        end,
        (138.0, 30.0, 150.0, 40.0),
        datetime(2021, 1, 18),
    )


def test_mod13a2_with_ndvi_all_fill_warns(tmp_path):
    evi = np.full((12, 12), 3000, "int16")
    path = _mod13a2(tmp_path / NAMES["modis_hdf4"], {"EVI": evi})
    summary = inspect_file(path)
    assert summary.details["valid_values"]["NDVI"] == 0
    assert summary.details["valid_values"]["EVI"] == 144
    assert summary.details["warnings"] == [
        "no valid data in NDVI: every value is fill or out of range"
    ]
    code, out, err = inspect_cli(path)
    assert code == 0 and "reader:    modis_hdf4" in out
    assert (
        err.strip()
        == f"warning: {path}: no valid data in NDVI: every value is fill or out of range"
    )


def test_mod13a2_all_layers_fill_warns_no_valid_data(tmp_path):
    path = _mod13a2(tmp_path / NAMES["modis_hdf4"], {})
    summary = inspect_file(path)
    assert not any(summary.details["valid_values"].values())
    assert summary.details["warnings"][0].startswith("no valid data: every value of NDVI, EVI")


def test_mod13a2_with_valid_data_has_no_warning(tmp_path):
    good = np.full((12, 12), 5000, "int16")
    path = _mod13a2(tmp_path / NAMES["modis_hdf4"], {"NDVI": good, "EVI": good})
    summary = inspect_file(path)
    assert summary.details["valid_values"]["NDVI"] == 144
    assert "warnings" not in summary.details
    code, _, err = inspect_cli(path)
    assert code == 0 and err == ""


# --- GOSAT ----------------------------------------------------------------------------------


def _soundings(n: int = 4) -> Soundings:
    time = np.datetime64("2021-07-14T04:00:00.000", "ms") + np.arange(n) * np.timedelta64(4, "s")
    return Soundings(
        np.linspace(138.1, 138.9, n),
        np.linspace(36.4, 35.6, n),
        time,
        np.zeros(n, bool),
        np.zeros(n, bool),
    )


def test_gosat_nies_without_data_group(tmp_path):
    path = write_nies_l2(tmp_path / NAMES["gosat_nies"], _soundings(), "xco2", np.full(4, 415.0))
    with h5py.File(path, "r+") as f:
        del f["Data"]
    phrase = r"has no /Data group \(GOSAT NIES L2 files hold /Data/mixingRatio/"
    reject(path, phrase)
    reject_cli(path, phrase)


def test_gosat_nies_truncated_says_header_and_file_sizes(tmp_path):
    path = write_nies_l2(tmp_path / NAMES["gosat_nies"], _soundings(), "xco2", np.full(4, 415.0))
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])
    assert hdf5_truncation(path) == (size, size // 2)
    reject(path, rf"truncated: header says {size} bytes, file has {size // 2}")


def test_gosat_nies_all_missing_warns_and_counts(tmp_path):
    path = write_nies_l2(tmp_path / NAMES["gosat_nies"], _soundings(), "xco2", np.full(4, np.nan))
    summary = inspect_file(path)
    assert summary.details["valid_values"] == {"xco2": 0}
    assert summary.details["warnings"] == ["no valid data: every xco2 value is missing"]
    good = write_nies_l2(
        tmp_path / "ok" / NAMES["gosat_nies"], _soundings(), "xco2", np.full(4, 415.0)
    )
    assert inspect_file(good).details["valid_values"] == {"xco2": 4}


def test_netcdf3_named_like_acos(tmp_path):
    bad = tmp_path / NAMES["gosat_acos"]
    bad.write_bytes(b"CDF\x01" + bytes(100))
    reject(bad, r"is a NetCDF classic \(netCDF-3\) file, not NetCDF-4/HDF5")


# --- AHI HSD --------------------------------------------------------------------------------


def _hsd_segment(folder: Path, count: int = 1200) -> Path:
    area = target_area_for(PRESETS["demo"].bbox)
    res = ahi_writer.HSD_BANDS[3][2]
    proj = area.projection(res)
    nominal = datetime(2021, 7, 3, 2, 30)
    name = ahi_writer.hsd_name(nominal, 3, res, 1, area.segments)
    counts = np.full((proj["segment_lines"], proj["columns"]), count, dtype="<u2")
    start, end = ahi_writer._observation_window(nominal)
    return ahi_writer.write_hsd_file(
        folder / name,
        counts,
        band=3,
        wavelength_um=ahi_writer.HSD_BANDS[3][1],
        nominal=nominal,
        obs_start=start,
        obs_end=end,
        projection=proj,
        segment=1,
        total_segments=area.segments,
        first_line=1,
        compress=False,
    )


def test_truncated_hsd_segment_says_header_and_file_sizes(tmp_path):
    path = _hsd_segment(tmp_path)
    size = path.stat().st_size
    summary = inspect_file(path)  # the complete segment is fine...
    assert summary.details["valid_values"]["B03"] > 0 and "warnings" not in summary.details
    path.write_bytes(path.read_bytes()[: size - 1000])  # ...cut in the pixel data it is not
    phrase = rf"truncated: header says {size} bytes, file has {size - 1000}"
    reject(path, phrase)
    reject_cli(path, phrase)


def test_bz2_hsd_named_dat_says_compressed(tmp_path):
    path = _hsd_segment(tmp_path)
    path.write_bytes(bz2.compress(path.read_bytes()))
    reject(path, r"is bzip2-compressed, not a Himawari HSD segment \(decompress it first\)")


def test_hsd_all_fill_warns(tmp_path):
    path = _hsd_segment(tmp_path, count=65535)
    summary = inspect_file(path)
    assert summary.details["valid_values"] == {"B03": 0}
    assert summary.details["warnings"] == ["no valid data in B03: every count is fill"]


# --- FLUXNET --------------------------------------------------------------------------------


def _truth() -> pd.DataFrame:
    idx = pd.date_range("2021-01-01", "2022-12-31", freq="D")
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


@pytest.fixture()
def fullset(tmp_path) -> Path:
    path = write_fullset_dd(tmp_path, "JP-Bad", _truth(), np.random.default_rng(1))
    assert path.name == NAMES["fluxnet"]
    return path


def test_fullset_all_missing_warns(fullset):
    frame = pd.read_csv(fullset, dtype=str)
    for col in frame.columns:
        if not col.startswith("TIMESTAMP"):
            frame[col] = "-9999"
    frame.to_csv(fullset, index=False)
    summary = inspect_file(fullset)
    counts = summary.details["valid_values"]
    assert counts["NEE_VUT_REF"] == 0 and not any(counts.values())
    (warning,) = summary.details["warnings"]
    assert warning.startswith("no valid data: NEE_VUT_REF, GPP_NT_VUT_REF")
    assert warning.endswith("are all -9999 (missing)")
    code, out, err = inspect_cli(fullset)
    assert code == 0 and "reader:    fluxnet" in out
    assert err.startswith(f"warning: {fullset}: no valid data: NEE_VUT_REF")


def test_fullset_without_nee_and_gpp_is_rejected_naming_the_columns(fullset):
    frame = pd.read_csv(fullset, dtype=str)
    drop = [c for c in frame.columns if c.startswith(("NEE_", "GPP_"))]
    frame.drop(columns=drop).to_csv(fullset, index=False)
    phrase = r"missing columns \[NEE_VUT_REF, GPP_NT_VUT_REF, GPP_DT_VUT_REF\]"
    reject(fullset, phrase)
    reject_cli(fullset, phrase)


def test_fullset_with_dt_partition_only_is_accepted(fullset):
    frame = pd.read_csv(fullset, dtype=str)
    frame.drop(columns=["GPP_NT_VUT_REF", "RECO_NT_VUT_REF"]).to_csv(fullset, index=False)
    summary = inspect_file(fullset)
    assert summary.details["valid_values"]["GPP_DT_VUT_REF"] > 0
    assert "warnings" not in summary.details


def test_csv_without_timestamp_names_the_missing_column(tmp_path):
    bad = tmp_path / NAMES["fluxnet"]
    bad.write_text("DATE,NEE\n2021-01-01,1.0\n")
    reject(bad, r"not a FLUXNET CSV: missing columns \[TIMESTAMP or TIMESTAMP_START\]")


def test_gzip_csv_named_csv(tmp_path, fullset):
    bad = tmp_path / "gz" / fullset.name
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(fullset.read_bytes()))
    reject(bad, r"is gzip-compressed, not a CSV text file .*\(decompress it first\)")


def test_real_fullset_copy_without_flux_columns(tmp_path):
    """The same on a copy (in tmp_path) of a real FULLSET file, when the real data is there."""
    root = Path(os.environ.get("FLUXSCAPE_REALDATA", REPO.parent / "shared" / "realdata"))
    found = sorted((root / "fluxnet2020_warmwinter" / "DD").glob("FLX_BE-Lcr_*.csv"))
    if not found:
        pytest.skip("real FLUXNET files not found (set FLUXSCAPE_REALDATA)")
    real = inspect_file(found[0])
    assert real.details["valid_values"]["NEE_VUT_REF"] > 300 and "warnings" not in real.details
    copy = tmp_path / found[0].name
    shutil.copy(found[0], copy)
    frame = pd.read_csv(copy, dtype=str)
    frame.drop(columns=["NEE_VUT_REF", "RECO_NT_VUT_REF", "RECO_DT_VUT_REF"]).to_csv(
        copy, index=False
    )
    reject(copy, r"missing columns \[NEE_VUT_REF, RECO_NT_VUT_REF, RECO_DT_VUT_REF\]")


def test_detect_keeps_its_contract(tmp_path):
    """detect returns the spec for a good file; for a bad one the ReaderError names the file,
    each reader whose name matched with its reason, and the readers tried."""
    bad = tmp_path / NAMES["ahi_ptree"]  # matches ahi_ptree and cf_meteo by name
    bad.write_bytes(b"")
    with pytest.raises(ReaderError) as err:
        detect(bad)
    message = str(err.value)
    assert message.startswith(f"{bad}: no reader recognises this file (")
    assert "ahi_ptree: is empty (0 bytes)" in message
    assert "cf_meteo: is empty (0 bytes)" in message
    assert message.endswith("readers tried: " + ", ".join(sorted(readers())))
