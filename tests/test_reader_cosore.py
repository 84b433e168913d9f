"""COSORE soil-chamber reader: the sample world's datasets give back the world's soil flux,
QC drops what it should, and hostile datasets give one line naming the file and the problem
(or a warning with the rows dropped), as the module docstring documents."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from fluxscape.errors import ReaderError
from fluxscape.products.soil_chamber import daily_port_fluxes, daily_site_fluxes
from fluxscape.readers import detect, inspect_file, open_file
from fluxscape.readers.cosore import QCOptions, read_cosore
from fluxscape.sample.cosore_writer import TRENCHED_PORT, write_site
from fluxscape.sample.world import PRESETS, World

DAYS = pd.date_range("2021-06-01", "2021-07-31", freq="D")


@pytest.fixture(scope="module")
def world() -> World:
    return World(PRESETS["soil"])


@pytest.fixture(scope="module")
def site(world) -> pd.Series:
    return world.chamber_sites(1).iloc[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, world, site) -> Path:
    """One sample-world COSORE folder: 5 ports, June-July 2021, outages, flags, poor fits."""
    out = tmp_path_factory.mktemp("cosore")
    return write_site(world, out, site, DAYS, np.random.default_rng(7))


def data_file(folder: Path) -> Path:
    return folder / f"data_{folder.name}.csv"


@pytest.fixture
def copy(tmp_path, dataset) -> Path:
    """A writable copy of the dataset folder, to break."""
    return Path(shutil.copytree(dataset, tmp_path / dataset.name))


def raw(folder: Path) -> pd.DataFrame:
    return pd.read_csv(data_file(folder), dtype=str, keep_default_na=False)


# --- reading the sample world ------------------------------------------------------------------


def test_site_description_and_ports_are_read(dataset, site):
    ds = read_cosore(dataset)
    assert ds.description["CSR_LATITUDE"] == pytest.approx(site["lat"])
    assert ds.description["CSR_LONGITUDE"] == pytest.approx(site["lon"])
    assert ds.timezone == "Asia/Tokyo"
    assert list(ds.ports["port"]) == [1, 2, 3, 4, 5]
    assert list(ds.ports["control"]) == [True] * 4 + [False]
    assert ds.ports.loc[4, "msmt_var"] == "Rh"


def test_local_timestamps_become_utc_nine_hours_earlier(dataset):
    ds = read_cosore(dataset)
    table = raw(dataset)
    good = (table["CSR_ERROR"] == "FALSE") & (table["CSR_R2_CO2"].astype(float) >= 0.9)
    first = table[good & (table["CSR_PORT"] != str(TRENCHED_PORT))].iloc[0]
    row = ds.data.iloc[0]
    assert row["port"] == int(first["CSR_PORT"])
    assert pd.Timestamp(first["CSR_TIMESTAMP_BEGIN"]) - pd.Timedelta(hours=9) == row["time_begin"]
    assert row["local_time"] == pd.Timestamp(first["CSR_TIMESTAMP_BEGIN"]) + pd.Timedelta(
        seconds=60
    )


def test_timestamps_follow_the_dataset_time_zone(copy):
    """Harvard Forest's COSORE dataset uses Etc/GMT+5 (UTC-5, no daylight saving)."""
    text = (copy / "DESCRIPTION.txt").read_text()
    (copy / "DESCRIPTION.txt").write_text(
        text.replace("CSR_TIMEZONE: Asia/Tokyo", "CSR_TIMEZONE: Etc/GMT+5")
    )
    western = read_cosore(copy).data.iloc[0]
    assert western["time_begin"] - western["local_time"] == pd.Timedelta(hours=5, seconds=-60)


def test_daily_co2_efflux_matches_truth_within_3_percent(dataset, world, site):
    ds = read_cosore(dataset)
    daily = daily_site_fluxes(daily_port_fluxes(ds.data), ds.ports).set_index("date")
    truth = world.soil_flux_daily(site, DAYS)
    both = daily.join(truth, rsuffix="_true").dropna(subset=["co2_gc"])
    measured = set(raw(dataset)["CSR_TIMESTAMP_BEGIN"].str[:10])
    assert 20 < len(both) == len(measured) < len(DAYS)  # every day but the outages
    assert np.abs(both["co2_gc"] / both["rs_gc"] - 1).max() < 0.03
    assert np.abs(both["ch4_mg"] - both["ch4_mg_true"]).max() < 0.15


def test_qc_drops_error_flagged_rows_of_control_ports(dataset):
    table = raw(dataset)
    control = table["CSR_PORT"].astype(int) != TRENCHED_PORT
    flagged = int(((table["CSR_ERROR"] == "TRUE") & control).sum())
    ds = read_cosore(dataset)
    assert flagged > 0 and ds.qc["dropped_error"] == flagged
    flags = table[table["CSR_ERROR"] == "TRUE"]
    bad_utc = pd.to_datetime(flags["CSR_TIMESTAMP_BEGIN"]) - pd.Timedelta(hours=9)
    bad = set(zip(bad_utc, flags["CSR_PORT"].astype(int), strict=True))
    kept = set(zip(ds.data["time_begin"], ds.data["port"], strict=True))
    assert len(kept) == len(ds.data) and not (bad & kept)


def test_qc_drops_co2_of_poor_fits_and_keeps_their_ch4(dataset):
    ds = read_cosore(dataset)
    poor = ds.data["r2_co2"] < 0.9
    assert poor.sum() == ds.qc["dropped_r2_co2"] > 0
    assert ds.data.loc[poor, "flux_co2"].isna().all()
    assert ds.data.loc[poor, "flux_ch4"].notna().all()


def test_without_qc_the_daily_efflux_is_biased_high(dataset, world, site):
    loose = QCOptions(min_r2_co2=None, drop_errors=False, co2_limits=(-1e9, 1e9))
    ds = read_cosore(dataset, loose)
    daily = daily_site_fluxes(daily_port_fluxes(ds.data), ds.ports).set_index("date")
    truth = world.soil_flux_daily(site, DAYS)
    ratio = (daily["co2_gc"] / truth["rs_gc"].reindex(daily.index)).mean()
    assert ratio > 1.03


def test_trenched_port_left_out_by_default_and_kept_on_request(dataset, site):
    assert TRENCHED_PORT not in set(read_cosore(dataset).data["port"])
    ds = read_cosore(dataset, QCOptions(treatments="all"))
    daily = daily_port_fluxes(ds.data).pivot(index="date", columns="port", values="co2_gc")
    ratio = (daily[TRENCHED_PORT] / daily[1]).median()
    assert ratio == pytest.approx(site["rh_fraction"], rel=0.05)


def test_physical_limits_drop_out_of_range_fluxes(copy):
    table = raw(copy)
    table.loc[:2, "CSR_FLUX_CO2"] = "75.0"  # above 50 umol m-2 s-1
    table.loc[:2, ["CSR_ERROR", "CSR_R2_CO2"]] = ["FALSE", "0.99"]
    table.to_csv(data_file(copy), index=False)
    ds = read_cosore(copy)
    assert ds.qc["dropped_limits_co2"] == 3 and ds.qc["dropped_na"] == 0
    assert (ds.data["flux_co2"].dropna() <= 50).all()


def test_detect_and_inspect_summarise_the_folder(dataset, site):
    assert detect(dataset).name == "cosore"
    s = inspect_file(dataset)
    assert s.bbox == [site["lon"], site["lat"], site["lon"], site["lat"]]
    assert s.details["ports"][-1] == f"{TRENCHED_PORT}:Rh:Trenching"
    assert "flux_co2" in s.variables and "t5" in s.variables
    assert s.time[0].startswith("2021-05-31T15:")  # 2021-06-01 00:10 JST


def test_inspect_cli_prints_site_and_ports(dataset):
    proc = run_cli("inspect", dataset)
    assert "reader:    cosore" in proc.stdout
    assert "ports:     1:Rs:None" in proc.stdout and "Sample world chamber site 1" in proc.stdout


def test_release_layout_tables_are_read(copy):
    """description.csv / ports.csv (the release's tables) in place of the .txt files."""
    desc = read_cosore(copy).description
    pd.DataFrame([{k: v for k, v in desc.items()}]).to_csv(copy / "description.csv", index=False)
    ports = pd.read_csv(copy / "PORTS.txt", comment="#", skipinitialspace=True)
    ports.columns = [c.strip() for c in ports.columns]
    ports.to_csv(copy / "ports.csv", index=False)
    (copy / "DESCRIPTION.txt").unlink()
    (copy / "PORTS.txt").unlink()
    ds = read_cosore(copy)
    assert ds.timezone == "Asia/Tokyo" and len(ds.ports) == 5


# --- hostile datasets --------------------------------------------------------------------------


def one_line_cli_error(folder: Path, *phrases: str) -> None:
    proc = run_cli("inspect", folder, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in proc.stderr
    for phrase in phrases:
        assert phrase in lines[0]


def test_missing_required_column_names_file_and_column(copy):
    raw(copy).drop(columns="CSR_TIMESTAMP_END").to_csv(data_file(copy), index=False)
    with pytest.raises(
        ReaderError, match=r"data_d2021.*missing required column\(s\) \[CSR_TIMESTAMP_END\]"
    ):
        read_cosore(copy)
    one_line_cli_error(copy, data_file(copy).name, "CSR_TIMESTAMP_END")


def test_missing_required_description_field_names_it(copy):
    text = (copy / "DESCRIPTION.txt").read_text()
    (copy / "DESCRIPTION.txt").write_text(text.replace("CSR_TIMEZONE: Asia/Tokyo\n", ""))
    with pytest.raises(ReaderError, match=r"DESCRIPTION.txt: missing .*\[CSR_TIMEZONE\]"):
        read_cosore(copy)


def test_unparsable_timestamp_names_file_line_and_value(copy):
    table = raw(copy)
    table.loc[5, "CSR_TIMESTAMP_BEGIN"] = "2021-06-31 25:00:00"
    table.to_csv(data_file(copy), index=False)
    with pytest.raises(ReaderError, match=r"unparsable CSR_TIMESTAMP_BEGIN on line 7: '2021-06-31"):
        read_cosore(copy)
    one_line_cli_error(copy, data_file(copy).name, "line 7")


def test_unknown_time_zone_is_an_error(copy):
    text = (copy / "DESCRIPTION.txt").read_text().replace("Asia/Tokyo\n", "JST+9\n", 1)
    (copy / "DESCRIPTION.txt").write_text(text)
    with pytest.raises(ReaderError, match=r"DESCRIPTION.txt: CSR_TIMEZONE 'JST\+9'"):
        read_cosore(copy)


@pytest.mark.parametrize(
    "value", ["positive = uptake", "positive to surface", "negative to atmosphere"]
)
def test_flux_sign_field_saying_uptake_positive_is_an_error(copy, value):
    with open(copy / "DESCRIPTION.txt", "a") as fh:
        fh.write(f"CSR_FLUX_SIGN: {value}\n")
    with pytest.raises(ReaderError, match=r"DESCRIPTION.txt: CSR_FLUX_SIGN is .*positive = to the"):
        read_cosore(copy)
    one_line_cli_error(copy, "DESCRIPTION.txt", "CSR_FLUX_SIGN")


def test_flux_sign_field_not_understood_is_an_error(copy):
    with open(copy / "DESCRIPTION.txt", "a") as fh:
        fh.write("CSR_FLUX_SIGN: sometimes\n")
    with pytest.raises(ReaderError, match=r"CSR_FLUX_SIGN is 'sometimes', not understood"):
        read_cosore(copy)


def test_open_file_gives_an_obs_dataset_with_units(dataset):
    ds = open_file(dataset)
    assert ds["flux_co2"].dims == ("obs",) and ds["flux_co2"].attrs["units"] == "umol m-2 s-1"
    assert ds["t5"].attrs["units"] == "degC" and ds.attrs["timezone"] == "Asia/Tokyo"
    assert set(ds["msmt_var"].values) == {"Rs"} and ds.attrs["qc_dropped_error"] > 0


def test_flux_sign_field_in_cosore_convention_is_accepted(copy):
    with open(copy / "DESCRIPTION.txt", "a") as fh:
        fh.write("CSR_FLUX_SIGN: positive to atmosphere\n")
    assert read_cosore(copy).qc["kept"] > 0


def test_all_na_flux_is_an_error_and_an_inspect_warning(copy):
    table = raw(copy)
    table["CSR_FLUX_CO2"] = "NA"
    table["CSR_FLUX_CH4"] = ""
    table.to_csv(data_file(copy), index=False)
    with pytest.raises(
        ReaderError, match=r"data_d2021.*: no valid flux: CSR_FLUX_CO2 and CSR_FLUX_CH4 NA"
    ):
        read_cosore(copy)
    proc = run_cli("inspect", copy, check=False)
    assert proc.returncode == 0
    assert proc.stderr.count("warning:") == 1
    assert f"{copy}: {data_file(copy).name}: no valid flux" in proc.stderr


def test_all_na_ch4_drops_ch4_with_a_warning(copy, caplog):
    table = raw(copy)
    table["CSR_FLUX_CH4"] = "NA"
    table.loc[:3, "CSR_FLUX_CO2"] = ""
    table.to_csv(data_file(copy), index=False)
    with caplog.at_level(logging.WARNING, logger="fluxscape.readers.cosore"):
        ds = read_cosore(copy)
    assert "flux_ch4" not in ds.data and ds.data["flux_co2"].notna().sum() > 1000
    assert ds.qc["dropped_na"] == 4
    assert any("CSR_FLUX_CH4 is NA on all" in r.message for r in caplog.records)


def test_port_not_in_ports_table_warns_and_drops_its_rows(copy, caplog):
    table = raw(copy)
    table.loc[:9, "CSR_PORT"] = "9"
    table.loc[:9, ["CSR_ERROR", "CSR_R2_CO2"]] = ["FALSE", "0.99"]
    table.to_csv(data_file(copy), index=False)
    with caplog.at_level(logging.WARNING, logger="fluxscape.readers.cosore"):
        ds = read_cosore(copy)
    assert ds.qc["dropped_unknown_port"] == 10 and 9 not in set(ds.data["port"])
    message = [r.message for r in caplog.records if "not in the ports table" in r.message]
    assert len(message) == 1 and data_file(copy).name in message[0] and "[9]" in message[0]
    proc = run_cli("inspect", copy, "--json", check=False)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)[0]["details"]["qc"]["dropped_unknown_port"] == 10


def test_folder_without_tables_is_a_directory_error_with_reason(tmp_path):
    folder = tmp_path / "d20210101_EMPTY"
    folder.mkdir()
    (folder / "DESCRIPTION.txt").write_text("CSR_SITE_NAME: x\n")
    with pytest.raises(ReaderError, match=r"is a directory, not a file \(cosore: .*no ports"):
        detect(folder)
    one_line_cli_error(folder, folder.name, "no ports")


# --- the soil preset -----------------------------------------------------------------------------


def test_soil_preset_writes_15_forest_sites_and_leaves_the_demo_alone(soil_sample):
    assert "chambers" not in PRESETS["demo"].sources  # the demo's files and run time stay
    folders = sorted((soil_sample / "chambers").iterdir())
    sites = pd.read_csv(soil_sample / "truth" / "chamber_sites.csv")
    assert [f.name for f in folders] == list(sites["site"]) and len(folders) == 15
    assert set(sites["igbp"]) <= {"DBF", "ENF"}
    summary = json.loads((soil_sample / "truth" / "world.json").read_text())
    assert summary["chambers_files"] == 15 and summary["modis_files"] > 0  # soil_flux predictors


def test_every_soil_site_gives_back_its_daily_truth(soil_sample):
    truth = pd.read_csv(soil_sample / "truth" / "chamber_daily.csv", parse_dates=["date"])
    worst = []
    for folder in sorted((soil_sample / "chambers").iterdir()):
        ds = read_cosore(folder)
        daily = daily_site_fluxes(daily_port_fluxes(ds.data), ds.ports)
        both = daily.merge(truth[truth["site"] == folder.name], on="date", suffixes=("", "_t"))
        both = both.dropna(subset=["co2_gc"])
        assert len(both) > 300  # a year less the outages
        worst.append(np.abs(both["co2_gc"] / both["rs_gc"] - 1).max())
        assert ds.qc["dropped_error"] > 0 and ds.qc["dropped_r2_co2"] > 0
    assert max(worst) < 0.04
