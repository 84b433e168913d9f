"""Sample-world flux-tower files in the real FLUXNET2015 / ONEFlux FULLSET daily (DD) layout.

The columns are a subset (46 of ~200-390) of the real FULLSET DD header, in the real relative
order (checked against FLUXNET2015-format DD files: meteorology, energy fluxes, NIGHT_D/DAY_D,
then NEE with CUT before VUT, then RECO/GPP by partitioning method). Values follow a known
"truth" frame with small noise, daily QC fractions, and -9999 for missing values, so the
reader in :mod:`fluxscape.readers.fluxnet` can be tested against known answers.

Noise model (all Gaussian, gC m-2 d-1 unless noted):

* ``NEE_VUT_REF = RECO - GPP + N(0, NEE_NOISE_SD)``; ``NEE_CUT_REF`` differs by ``N(0, 0.03)``;
* night-time partitioning: ``RECO_NT = RECO * (1 + N(0, PARTITION_REL_SD))`` and
  ``GPP_NT = RECO_NT - NEE`` (exact, as ONEFlux NT does);
* daytime partitioning: ``GPP_DT``, ``RECO_DT`` each ``* (1 + N(0, PARTITION_REL_SD))``
  independently, so ``RECO_DT - GPP_DT`` differs from NEE by a few %, as in real data;
* meteorology: TA +- 0.1 degC, SW_IN +- 2 %, VPD +- (0.05 hPa + 2 %), P +- 2 %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DD_COLUMNS",
    "NEE_NOISE_SD",
    "PARTITION_REL_SD",
    "write_fullset_dd",
    "write_site_list",
]

#: Standard deviation of the measurement noise added to NEE (gC m-2 d-1).
NEE_NOISE_SD = 0.15
#: Relative standard deviation of the partitioned RECO/GPP around the truth.
PARTITION_REL_SD = 0.03

#: Columns written by :func:`write_fullset_dd`, in the real FULLSET DD order.
DD_COLUMNS: tuple[str, ...] = (
    "TIMESTAMP",
    "TA_F_MDS",
    "TA_F_MDS_QC",
    "TA_F",
    "TA_F_QC",
    "SW_IN_POT",
    "SW_IN_F",
    "SW_IN_F_QC",
    "LW_IN_F",
    "LW_IN_F_QC",
    "VPD_F_MDS",
    "VPD_F_MDS_QC",
    "VPD_F",
    "VPD_F_QC",
    "PA_F",
    "PA_F_QC",
    "P_F",
    "P_F_QC",
    "WS_F",
    "WS_F_QC",
    "USTAR",
    "USTAR_QC",
    "NETRAD",
    "NETRAD_QC",
    "G_F_MDS",
    "G_F_MDS_QC",
    "LE_F_MDS",
    "LE_F_MDS_QC",
    "LE_CORR",
    "H_F_MDS",
    "H_F_MDS_QC",
    "H_CORR",
    "NIGHT_D",
    "DAY_D",
    "NEE_CUT_REF",
    "NEE_VUT_REF",
    "NEE_CUT_REF_QC",
    "NEE_VUT_REF_QC",
    "NEE_CUT_REF_RANDUNC",
    "NEE_VUT_REF_RANDUNC",
    "RECO_NT_VUT_REF",
    "RECO_NT_CUT_REF",
    "GPP_NT_VUT_REF",
    "GPP_NT_CUT_REF",
    "RECO_DT_VUT_REF",
    "RECO_DT_CUT_REF",
    "GPP_DT_VUT_REF",
    "GPP_DT_CUT_REF",
)

_REQUIRED = ("TA_F", "SW_IN_F", "VPD_F", "P_F", "GPP", "RECO")
# Flux columns blanked (-9999) on gap days, and their QC partners made low.
_GAP_COLUMNS = (
    "LE_F_MDS",
    "LE_CORR",
    "H_F_MDS",
    "H_CORR",
    "NEE_CUT_REF",
    "NEE_VUT_REF",
    "NEE_CUT_REF_RANDUNC",
    "NEE_VUT_REF_RANDUNC",
    "RECO_NT_VUT_REF",
    "RECO_NT_CUT_REF",
    "GPP_NT_VUT_REF",
    "GPP_NT_CUT_REF",
    "RECO_DT_VUT_REF",
    "RECO_DT_CUT_REF",
    "GPP_DT_VUT_REF",
    "GPP_DT_CUT_REF",
)
_GAP_QC = ("LE_F_MDS_QC", "H_F_MDS_QC", "NEE_CUT_REF_QC", "NEE_VUT_REF_QC")
# Meteorology columns with a few missing days (MDS gap filling or sensor failure).
_MET_GAP = {
    "TA_F_MDS": "TA_F_MDS_QC",
    "VPD_F_MDS": "VPD_F_MDS_QC",
    "USTAR": "USTAR_QC",
    "NETRAD": "NETRAD_QC",
}
_INTEGER_COLUMNS = ("NIGHT_D", "DAY_D")
_SOLAR_CONSTANT = 1361.0  # W m-2
_STEFAN_BOLTZMANN = 5.670374e-8  # W m-2 K-4


def _qc_fraction(rng: np.random.Generator, n: int, low_fraction: float) -> np.ndarray:
    """Daily QC: fraction of good half-hours (multiples of 1/48), mostly >= 0.8, some low."""
    qc = 1.0 - rng.beta(0.6, 12.0, size=n)
    low = rng.random(n) < low_fraction
    qc[low] = rng.uniform(0.2, 0.75, size=int(low.sum()))
    return np.clip(np.round(qc * 48.0) / 48.0, 0.0, 1.0)


def _potential_radiation(doy: np.ndarray, lat: float) -> tuple[np.ndarray, np.ndarray]:
    """Daily mean top-of-atmosphere shortwave (W m-2) and day length (h) at latitude ``lat``."""
    phi = np.deg2rad(lat)
    decl = 0.409 * np.sin(2.0 * np.pi * doy / 365.0 - 1.39)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * doy / 365.0)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    s0 = (
        _SOLAR_CONSTANT
        / np.pi
        * dr
        * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    )
    return np.maximum(s0, 0.0), 24.0 * ws / np.pi


def _format_column(values: np.ndarray, integer: bool = False) -> list[str]:
    """Text as in real files: ~6 significant digits, integers bare, NaN as ``-9999``."""
    out = []
    for v in values:
        if not np.isfinite(v):
            out.append("-9999")
        elif integer:
            out.append(str(int(round(v))))
        else:
            s = f"{v:.6g}"
            if "e" in s:
                s = f"{v:.8f}".rstrip("0")
            if "." not in s:
                s += ".0"
            out.append(s)
    return out


def write_fullset_dd(
    path_dir: str | Path,
    site_id: str,
    daily: pd.DataFrame,
    rng: np.random.Generator,
    gap_fraction: float = 0.05,
    *,
    lat: float = 40.0,
) -> Path:
    """Write ``FLX_{site}_FLUXNET2015_FULLSET_DD_{y1}-{y2}_1-4.csv`` into ``path_dir``.

    Parameters
    ----------
    path_dir:
        Output folder (created if needed).
    site_id:
        FLUXNET site id, e.g. "JP-Tak".
    daily:
        Truth with a daily DatetimeIndex and columns ``TA_F`` (degC), ``SW_IN_F`` (W m-2),
        ``VPD_F`` (hPa), ``P_F`` (mm d-1), ``GPP`` and ``RECO`` (gC m-2 d-1); the true NEE is
        ``RECO - GPP``.
    rng:
        Random generator; the output is deterministic given its state.
    gap_fraction:
        Fraction (0-1) of days whose NEE/GPP/RECO/LE/H columns are written as -9999 (their QC
        set to < 0.2). A further ~1 % of days are missing in TA_F_MDS, VPD_F_MDS, USTAR, NETRAD.
    lat:
        Site latitude (degrees north) for SW_IN_POT and the NIGHT_D/DAY_D half-hour counts.

    Returns
    -------
    Path of the written CSV (columns :data:`DD_COLUMNS`, LF line ends, -9999 = missing).
    """
    missing = [c for c in _REQUIRED if c not in daily.columns]
    if missing:
        raise ValueError(f"daily truth frame lacks column(s): {', '.join(missing)}")
    if not isinstance(daily.index, pd.DatetimeIndex) or len(daily) == 0:
        raise ValueError("daily truth frame needs a non-empty DatetimeIndex")
    if not 0.0 <= gap_fraction < 1.0:
        raise ValueError(f"gap_fraction must be in [0, 1), got {gap_fraction}")

    idx = daily.index.normalize()
    n = len(idx)
    truth = {c: daily[c].to_numpy(dtype="float64") for c in _REQUIRED}
    cols: dict[str, np.ndarray] = {}

    # Meteorology ---------------------------------------------------------------------------
    ta = truth["TA_F"] + rng.normal(0.0, 0.1, n)
    cols["TA_F"] = ta
    cols["TA_F_QC"] = _qc_fraction(rng, n, 0.02)
    cols["TA_F_MDS"] = ta.copy()
    cols["TA_F_MDS_QC"] = cols["TA_F_QC"].copy()

    sw_pot, day_hours = _potential_radiation(idx.day_of_year.to_numpy(dtype="float64"), lat)
    sw = np.maximum(truth["SW_IN_F"] * (1.0 + rng.normal(0.0, 0.02, n)), 0.0)
    cols["SW_IN_POT"] = np.maximum(sw_pot, sw * 1.05)
    cols["SW_IN_F"] = sw
    cols["SW_IN_F_QC"] = _qc_fraction(rng, n, 0.02)

    clearness = np.clip(sw / np.maximum(cols["SW_IN_POT"], 1.0), 0.0, 1.0)
    emissivity = 0.70 + 0.2 * (1.0 - clearness)
    cols["LW_IN_F"] = emissivity * _STEFAN_BOLTZMANN * (ta + 273.15) ** 4 + rng.normal(0, 5, n)
    cols["LW_IN_F_QC"] = _qc_fraction(rng, n, 0.03)

    vpd = np.maximum(truth["VPD_F"] + rng.normal(0.0, 0.05, n) * (1.0 + 0.4 * truth["VPD_F"]), 0)
    cols["VPD_F"] = vpd
    cols["VPD_F_QC"] = _qc_fraction(rng, n, 0.02)
    cols["VPD_F_MDS"] = vpd.copy()
    cols["VPD_F_MDS_QC"] = cols["VPD_F_QC"].copy()

    cols["PA_F"] = 101.3 - rng.uniform(0.0, 3.0) + rng.normal(0.0, 0.6, n)
    cols["PA_F_QC"] = _qc_fraction(rng, n, 0.02)
    cols["P_F"] = np.maximum(truth["P_F"] * (1.0 + rng.normal(0.0, 0.02, n)), 0.0)
    cols["P_F_QC"] = _qc_fraction(rng, n, 0.01)
    ws = rng.gamma(4.0, 0.6, n)
    cols["WS_F"] = ws
    cols["WS_F_QC"] = _qc_fraction(rng, n, 0.02)
    cols["USTAR"] = np.maximum(0.1 * ws + rng.normal(0.0, 0.03, n), 0.03)
    cols["USTAR_QC"] = _qc_fraction(rng, n, 0.05)

    # Energy -------------------------------------------------------------------------------
    netrad = 0.62 * sw - 30.0 + 0.05 * (cols["LW_IN_F"] - 300.0) + rng.normal(0.0, 5.0, n)
    cols["NETRAD"] = netrad
    cols["NETRAD_QC"] = _qc_fraction(rng, n, 0.03)
    g = 0.04 * netrad + rng.normal(0.0, 2.0, n)
    cols["G_F_MDS"] = g
    cols["G_F_MDS_QC"] = _qc_fraction(rng, n, 0.03)
    gpp_scale = max(float(np.nanmax(truth["GPP"])), 1.0)
    evap_fraction = np.clip(0.3 + 0.4 * truth["GPP"] / gpp_scale, 0.1, 0.9)
    available = netrad - g
    closure = 0.8  # typical energy-balance closure of uncorrected fluxes
    le = np.maximum(evap_fraction * available * closure, 1.0) + np.abs(rng.normal(0.0, 2.0, n))
    h = (1.0 - evap_fraction) * available * closure + rng.normal(0.0, 3.0, n)
    cols["LE_F_MDS"] = le
    cols["LE_F_MDS_QC"] = _qc_fraction(rng, n, 0.06)
    cols["LE_CORR"] = le / closure
    cols["H_F_MDS"] = h
    cols["H_F_MDS_QC"] = _qc_fraction(rng, n, 0.06)
    cols["H_CORR"] = h / closure
    day_d = np.round(day_hours * 2.0)
    cols["DAY_D"] = day_d
    cols["NIGHT_D"] = 48.0 - day_d

    # Carbon -------------------------------------------------------------------------------
    gpp, reco = truth["GPP"], truth["RECO"]
    nee_vut = reco - gpp + rng.normal(0.0, NEE_NOISE_SD, n)
    nee_cut = nee_vut + rng.normal(0.0, 0.03, n)
    nee_qc = _qc_fraction(rng, n, 0.08)
    cols["NEE_VUT_REF"] = nee_vut
    cols["NEE_CUT_REF"] = nee_cut
    cols["NEE_VUT_REF_QC"] = nee_qc
    cols["NEE_CUT_REF_QC"] = nee_qc.copy()
    randunc = 0.08 + 0.04 * np.abs(nee_vut) + np.abs(rng.normal(0.0, 0.02, n))
    cols["NEE_VUT_REF_RANDUNC"] = randunc
    cols["NEE_CUT_REF_RANDUNC"] = randunc * (1.0 + rng.normal(0.0, 0.01, n))
    reco_nt = np.maximum(reco * (1.0 + rng.normal(0.0, PARTITION_REL_SD, n)), 0.0)
    reco_nt_cut = reco_nt * (1.0 + rng.normal(0.0, 0.01, n))
    cols["RECO_NT_VUT_REF"] = reco_nt
    cols["RECO_NT_CUT_REF"] = reco_nt_cut
    cols["GPP_NT_VUT_REF"] = reco_nt - nee_vut
    cols["GPP_NT_CUT_REF"] = reco_nt_cut - nee_cut
    reco_dt = np.maximum(reco * (1.0 + rng.normal(0.0, PARTITION_REL_SD, n)), 0.0)
    gpp_dt = np.maximum(gpp * (1.0 + rng.normal(0.0, PARTITION_REL_SD, n)), 0.0)
    cols["RECO_DT_VUT_REF"] = reco_dt
    cols["RECO_DT_CUT_REF"] = reco_dt * (1.0 + rng.normal(0.0, 0.01, n))
    cols["GPP_DT_VUT_REF"] = gpp_dt
    cols["GPP_DT_CUT_REF"] = gpp_dt * (1.0 + rng.normal(0.0, 0.01, n))

    # Gaps ---------------------------------------------------------------------------------
    n_gap = int(round(gap_fraction * n))
    if n_gap:
        gap_days = rng.choice(n, size=n_gap, replace=False)
        for name in _GAP_COLUMNS:
            cols[name][gap_days] = np.nan
        for name in _GAP_QC:
            cols[name][gap_days] = np.round(rng.uniform(0.0, 0.15, n_gap) * 48.0) / 48.0
    n_met_gap = max(1, int(round(0.01 * n))) if n >= 20 else 0
    for name, qc_name in _MET_GAP.items():
        if n_met_gap:
            days = rng.choice(n, size=n_met_gap, replace=False)
            cols[name][days] = np.nan
            cols[qc_name][days] = 0.0

    # Text ---------------------------------------------------------------------------------
    text = {"TIMESTAMP": list(idx.strftime("%Y%m%d"))}
    for name in DD_COLUMNS[1:]:
        text[name] = _format_column(cols[name], integer=name in _INTEGER_COLUMNS)
    lines = [",".join(DD_COLUMNS)]
    lines.extend(",".join(row) for row in zip(*(text[c] for c in DD_COLUMNS), strict=True))

    out_dir = Path(path_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y1, y2 = int(idx[0].year), int(idx[-1].year)
    out = out_dir / f"FLX_{site_id}_FLUXNET2015_FULLSET_DD_{y1}-{y2}_1-4.csv"
    out.write_text("\n".join(lines) + "\n", encoding="ascii")
    return out


def write_site_list(path: str | Path, sites: pd.DataFrame) -> Path:
    """Write a FLUXNET ``SitesList.csv`` (SiteCode, SiteName, Latitude, Longitude, IGBPCode).

    ``sites`` has columns ``site_id``, ``name``, ``lat``, ``lon`` (degrees, WGS84) and ``igbp``.
    ``path`` is the CSV to write, or a folder (then ``SitesList.csv`` inside it). Written like
    the real file: UTF-8 with a byte-order mark and CRLF line ends. Returns the file path.
    """
    needed = ("site_id", "name", "lat", "lon", "igbp")
    missing = [c for c in needed if c not in sites.columns]
    if missing:
        raise ValueError(f"sites frame lacks column(s): {', '.join(missing)}")
    out = Path(path)
    if out.is_dir():
        out = out / "SitesList.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {
            "SiteCode": sites["site_id"].astype(str).to_numpy(),
            "SiteName": sites["name"].astype(str).to_numpy(),
            "Latitude": sites["lat"].astype("float64").to_numpy(),
            "Longitude": sites["lon"].astype("float64").to_numpy(),
            "IGBPCode": sites["igbp"].astype(str).to_numpy(),
        }
    )
    frame.to_csv(out, index=False, encoding="utf-8-sig", lineterminator="\r\n")
    return out
