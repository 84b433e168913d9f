"""Every reader, through the registry and ``fluxscape inspect``: sample files of each source,
all real files in ../shared/realdata, and hostile files (one clear line, exit status 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, missing_realdata, run_cli

from fluxscape.errors import ReaderError
from fluxscape.readers import detect, inspect_file
from fluxscape.readers.fluxnet import good_quality, parse_fluxnet_name, read_fluxnet

SAMPLE_GLOBS = {
    "modis_hdf4": "modis/MOD13A2.*.hdf",
    "fluxnet": "towers/FLX_*_DD_*.csv",
    "gosat_nies": "gosat/nies/GOSATTFTS*_02C01S*.h5",
    "gosat_acos": "gosat/acos/acos_LtCO2_*.nc4",
    "sgli_l2": "sgli/GC1SG1_*_L2SG_VGI_K_*.h5",
    "sgli_l1b": "sgli/GC1SG1_*_1BSG_VNR*.h5",
    "ahi_hsd": "ahi/hsd/2021/06/*/0230/HS_*_B03_*.DAT.bz2",
    "ahi_ptree": "ahi/ptree/2021*/*/*/NC_H0*.nc",
    "cf_meteo": "meteo/era5_daily_*.nc",
}


@pytest.mark.parametrize("reader", sorted(SAMPLE_GLOBS))
def test_inspect_every_sample_source(sample_dir, reader):
    path = sorted(sample_dir.glob(SAMPLE_GLOBS[reader]))[0]
    proc = run_cli("inspect", path, "--json")
    info = json.loads(proc.stdout)[0]
    assert info["reader"] == reader
    assert info["variables"]
    w, s, e, n = info["bbox"]
    # every source covers (or, for point data, lies in) the sample region
    assert w <= 139.0 and e >= 138.0 and s <= 36.5 and n >= 35.5
    assert pd.Timestamp(info["time"][0]).year in (2021, 2022)


HOSTILE_NAMES = {
    "modis_hdf4": "MOD13A2.A2021001.h29v05.061.2021018034215.hdf",
    "fluxnet": "FLX_JP-Bad_FLUXNET2015_FULLSET_DD_2021-2022_1-4.csv",
    "gosat_nies": "GOSATTFTS20210101_02C01SV0290R21021900000GU000.h5",
    "gosat_acos": "acos_LtCO2_210101_v210210_B9213A_210301000000s.nc4",
    "sgli_l2": "GC1SG1_20210101D01D_T0529_L2SG_VGI_K_3000.h5",
    "sgli_l1b": "GC1SG1_202101090111M00407_1BSG_VNRDK_2002.h5",
    "ahi_hsd": "HS_H08_20210601_0230_B03_R301_R05_S0104.DAT",
    "ahi_ptree": "NC_H08_20210601_0230_R21_FLDK.00067_00067.nc",
    "cf_meteo": "era5_daily_2021.nc",
    "topdown": "CT2022.flux1x1.202101.nc",
    "cf_elevation": "elevation_30s.nc",
}
HOSTILE_CONTENT = {
    "zero-byte": b"",
    "wrong format": b"this is a text file, not the format its name promises\n" * 20,
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_CONTENT))
@pytest.mark.parametrize("reader", sorted(HOSTILE_NAMES))
def test_hostile_file_gives_one_line_naming_file_exit_1(tmp_path, reader, kind):
    bad = tmp_path / HOSTILE_NAMES[reader]
    bad.write_bytes(HOSTILE_CONTENT[kind])
    with pytest.raises(ReaderError, match=bad.name):
        inspect_file(bad)
    proc = run_cli("inspect", bad, check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and bad.name in lines[0] and "Traceback" not in proc.stderr


@pytest.fixture(scope="session")
def fluxnet_real(realdata_dir: Path) -> Path:
    folder = realdata_dir / "fluxnet2020_warmwinter"
    if not folder.is_dir():
        missing_realdata(f"FLUXNET files not found under {folder}")
    return folder


def _real_fluxnet_files() -> list[str]:
    root = Path(os.environ.get("FLUXSCAPE_REALDATA", REPO.parent / "shared" / "realdata"))
    folder = root / "fluxnet2020_warmwinter"
    return sorted(f"{p.parent.name}/{p.name}" for p in folder.glob("[DM][DM]/FLX_*.csv"))


@pytest.mark.parametrize("name", _real_fluxnet_files() or ["none"])
def test_every_real_fullset_file_opens_with_its_time_span(fluxnet_real, name):
    if name == "none":
        missing_realdata("no FLUXNET DD/MM files found")
    path = fluxnet_real / name
    meta = parse_fluxnet_name(path)
    ds = read_fluxnet(path)
    times = pd.DatetimeIndex(ds.time.values)
    assert times[0].year == meta["first_year"] and times[-1].year == meta["last_year"]
    step = np.diff(times.values).astype("timedelta64[D]").astype(int)
    if meta["resolution"] == "DD":
        assert (step == 1).all()
    else:
        assert set(times.day) == {1} and ((step >= 28) & (step <= 31)).all()
    assert (times[0].month, times[0].day) == (1, 1)
    assert detect(path).name == "fluxnet"


def test_dk_gds_without_valid_gpp_is_handled(fluxnet_real):
    path = next((fluxnet_real / "DD").glob("FLX_DK-Gds_*.csv"))
    ds = read_fluxnet(path)
    gpp = ds["GPP_NT_VUT_REF"].values
    assert len(gpp) == 366 and np.isnan(gpp).all()  # this release has no valid NT GPP here
    assert not good_quality(ds, "GPP_NT_VUT_REF").values.any()
    assert np.isfinite(ds["NEE_VUT_REF"].values).any()
    summary = inspect_file(path)
    assert summary.reader == "fluxnet" and summary.time[0].startswith("2020")


def test_fullset_csv_with_bom_and_windows_line_endings_is_read(tmp_path, sample_dir):
    src = sorted((sample_dir / "towers").glob("FLX_*_DD_*.csv"))[0]
    text = src.read_text()
    dst = tmp_path / src.name
    dst.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    a, b = read_fluxnet(src), read_fluxnet(dst)
    assert list(a.data_vars) == list(b.data_vars)
    np.testing.assert_array_equal(a["GPP_NT_VUT_REF"].values, b["GPP_NT_VUT_REF"].values)
    np.testing.assert_array_equal(a.time.values, b.time.values)
