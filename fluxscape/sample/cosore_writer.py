"""Write soil-chamber datasets in the COSORE layout (see :mod:`fluxscape.readers.cosore`).

One folder per site, ``<out>/d20210101_SAMPLEnn/`` with ``DESCRIPTION.txt``, ``PORTS.txt``
and ``data_<dataset>.csv``: four control ports (``Rs``, treatment ``None``) and one trenched
port (``Rh``, treatment ``Trenching``, heterotrophic share ``rh_fraction`` of the site's
efflux). Each port is measured every 2 hours (port k at 10 k minutes past the even hour,
``CSR_MSMT_LENGTH`` 120 s), local time ``Asia/Tokyo``. Values are the world's truth
(:meth:`~fluxscape.sample.world.World.soil_co2_efflux`, :meth:`~.World.soil_ch4_flux` on
:meth:`~.World.soil_drivers`) at the measurement midpoint, with 5 % multiplicative noise
(CO2) and 0.15 nmol m-2 s-1 additive noise (CH4).

What a reader must handle, on purpose: two to three instrument outages a site (3-10 days, no
rows); 2 % of rows with ``CSR_ERROR`` TRUE and a wrong flux (x 3); 2 % of rows with a poor fit
(``CSR_R2_CO2`` 0.4-0.8) and a flux biased by +40 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fluxscape.sample.world import World

TIMEZONE = "Asia/Tokyo"
CONTROL_PORTS = (1, 2, 3, 4)
TRENCHED_PORT = 5
INTERVAL_H = 2
MSMT_LENGTH_S = 120
IGBP_NAMES = {"DBF": "Deciduous broadleaf forest", "ENF": "Evergreen needleleaf forest"}
ERROR_SHARE = 0.02
POOR_FIT_SHARE = 0.02


def write_description(folder: Path, site: pd.Series | dict) -> Path:
    """``DESCRIPTION.txt`` (``KEY: value`` lines) for one site."""
    lines = [
        "# DESCRIPTION.txt (fluxscape sample world)",
        f"CSR_DATASET: {site['site']}",
        f"CSR_SITE_NAME: {site['name']}",
        f"CSR_LONGITUDE: {site['lon']}",
        f"CSR_LATITUDE: {site['lat']}",
        f"CSR_ELEVATION: {site.get('elevation', 0.0):.0f}",
        f"CSR_TIMEZONE: {TIMEZONE}",
        f"CSR_IGBP: {IGBP_NAMES[site['igbp']]}",
        "CSR_INSTRUMENT: LI-8100A/LI-8150",
        f"CSR_MSMT_LENGTH: {MSMT_LENGTH_S}",
        "CSR_FILE_FORMAT: Processed_csv",
        "CSR_TIMESTAMP_FORMAT: %Y-%m-%d %H:%M:%S",
        f"CSR_TIMESTAMP_TZ: {TIMEZONE}",
        "CSR_NETWORK: fluxscape sample world",
    ]
    path = folder / "DESCRIPTION.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ports(folder: Path, site: pd.Series | dict) -> Path:
    """``PORTS.txt``: four control ports and the trenched Rh port, with chamber positions."""
    rows = [
        "# PORTS.txt (fluxscape sample world)",
        "CSR_PORT,\tCSR_MSMT_VAR,\tCSR_TREATMENT,"
        "\tCSR_AREA,\tCSR_OPAQUE,\tCSR_PLANTS_REMOVED,\tCSR_LONGITUDE,\tCSR_LATITUDE",
    ]
    for port in (*CONTROL_PORTS, TRENCHED_PORT):
        var, treatment = ("Rh", "Trenching") if port == TRENCHED_PORT else ("Rs", "None")
        lon = site["lon"] + 0.0001 * port
        rows.append(
            f"{port},\t{var},\t{treatment},\t317.8,\tTRUE,\tTRUE,\t{lon:.4f},\t{site['lat']}"
        )
    path = folder / "PORTS.txt"
    path.write_text("\n".join(rows) + "\n")
    return path


def _outages(days: pd.DatetimeIndex, rng: np.random.Generator) -> np.ndarray:
    """Boolean per day: the instrument was down."""
    down = np.zeros(len(days), bool)
    for _ in range(int(rng.integers(2, 4))):
        start = int(rng.integers(0, len(days) - 10))
        down[start : start + int(rng.integers(3, 11))] = True
    return down


def site_records(
    world: World, site: pd.Series | dict, days, rng: np.random.Generator
) -> pd.DataFrame:
    """The data table of one site (COSORE columns, local times as text)."""
    days = pd.DatetimeIndex(days)
    days = days[~_outages(days, rng)]
    ports = np.array((*CONTROL_PORTS, TRENCHED_PORT))
    hours = np.arange(0, 24, INTERVAL_H)
    begin = (
        days.values[:, None, None]
        + pd.to_timedelta(hours, unit="h").values[None, :, None]
        + pd.to_timedelta(10 * ports, unit="min").values[None, None, :]
    ).reshape(-1)
    port = np.broadcast_to(ports, (len(days), len(hours), len(ports))).reshape(-1)
    begin = pd.DatetimeIndex(begin)
    end = begin + pd.Timedelta(seconds=MSMT_LENGTH_S)
    mid = begin + pd.Timedelta(seconds=MSMT_LENGTH_S / 2)
    drv = world.soil_drivers(site["lon"], site["lat"], mid)
    rs = world.soil_co2_efflux(drv["t5"].to_numpy(), drv["sm10"].to_numpy(), site["r10"])
    rs = np.where(port == TRENCHED_PORT, rs * site["rh_fraction"], rs)
    ch4 = world.soil_ch4_flux(drv["t5"].to_numpy(), drv["sm10"].to_numpy())
    n = len(begin)
    co2 = rs * (1 + 0.05 * rng.standard_normal(n))
    ch4 = ch4 + 0.15 * rng.standard_normal(n)
    r2 = rng.uniform(0.95, 1.0, n)
    draw = rng.uniform(size=n)
    error = draw < ERROR_SHARE
    poor = (draw >= ERROR_SHARE) & (draw < ERROR_SHARE + POOR_FIT_SHARE)
    co2 = np.where(error, co2 * 3, co2)
    co2 = np.where(poor, co2 * 1.4, co2)
    r2 = np.where(poor, rng.uniform(0.4, 0.8, n), r2)
    fmt = "%Y-%m-%d %H:%M:%S"
    return pd.DataFrame(
        {
            "CSR_TIMESTAMP_BEGIN": begin.strftime(fmt),
            "CSR_TIMESTAMP_END": end.strftime(fmt),
            "CSR_PORT": port,
            "CSR_FLUX_CO2": np.round(co2, 4),
            "CSR_FLUX_SE_CO2": np.round(0.03 * np.abs(co2), 4),
            "CSR_R2_CO2": np.round(r2, 4),
            "CSR_FLUX_CH4": np.round(ch4, 4),
            "CSR_T5": np.round(drv["t5"].to_numpy(), 2),
            "CSR_SM10": np.round(drv["sm10"].to_numpy(), 3),
            "CSR_ERROR": np.where(error, "TRUE", "FALSE"),
        }
    )


def write_site(
    world: World, out: Path, site: pd.Series | dict, days, rng: np.random.Generator
) -> Path:
    """One COSORE dataset folder for ``site``; returns the folder."""
    folder = Path(out) / site["site"]
    folder.mkdir(parents=True, exist_ok=True)
    write_description(folder, site)
    write_ports(folder, site)
    data = site_records(world, site, days, rng)
    data.to_csv(folder / f"data_{site['site']}.csv", index=False)
    return folder


def write_chambers(
    world: World, out: Path, truth: Path, rng: np.random.Generator, n_sites: int | None = None
) -> list[Path]:
    """COSORE folders for the world's chamber sites over every day of the preset's years,
    plus ``truth/chamber_sites.csv`` and ``truth/chamber_daily.csv`` (true daily means per
    site and local day: ``rs``/``ch4`` in umol/nmol m-2 s-1, ``rs_gc`` gC m-2 d-1, ``ch4_mg``
    mgCH4 m-2 d-1, for the control ports)."""
    from fluxscape.sample.world import N_CHAMBER_SITES

    sites = world.chamber_sites(n_sites or N_CHAMBER_SITES)
    days = world.dates()
    folders, frames = [], []
    for _, site in sites.iterrows():
        folders.append(write_site(world, out, site, days, rng))
        daily = world.soil_flux_daily(site, days)
        frames.append(daily.assign(site=site["site"]).rename_axis("date").reset_index())
    truth.mkdir(parents=True, exist_ok=True)
    sites.to_csv(truth / "chamber_sites.csv", index=False)
    pd.concat(frames).to_csv(truth / "chamber_daily.csv", index=False, float_format="%.5f")
    return folders
