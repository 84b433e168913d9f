"""Site-climate features for flux upscaling without canopy remote sensing.

FLUXCOM's RS+METEO setup (Tramontana et al. 2016, Biogeosciences 13:4291; Jung et al. 2020,
Biogeosciences 17:1343) feeds the learners, besides the meteorology of the time step, the
*mean seasonal cycle* of its predictors and a static vegetation class: they tell a site's
climate (and so, roughly, its vegetation) apart from the weather of one month. The functions
here build those features from the drivers alone:

- :func:`potential_radiation` / :func:`monthly_potential_radiation`: top-of-atmosphere
  shortwave (W m-2) from solar geometry, for a latitude and a day or month of the year;
- :func:`add_site_climate`: per site, each driver's mean seasonal cycle (value for the row's
  month of the year), its annual mean and its seasonal amplitude;
- :func:`add_site_static`: |latitude|, monthly potential radiation and the IGBP class one-hot
  from a site list;
- :func:`add_water_availability`: a monthly bucket-model water availability index (FLUXCOM
  RS+METEO's WAI in spirit) from precipitation, radiation and temperature.

Nothing here reads a flux: the climate of a site is computed from its driver columns over
every row that has them, whether or not the row has a target, so a target's gaps or values
cannot change a feature (``tests/test_ml_validation.py`` checks this). In the gridded product
the same features come from the meteorology of each pixel (climatology of the forcing) and the
pixel's latitude; see ``docs/models.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fluxscape.errors import FluxscapeError

__all__ = [
    "SOLAR_CONSTANT",
    "add_site_climate",
    "add_water_availability",
    "add_site_static",
    "climate_feature_names",
    "monthly_potential_radiation",
    "potential_radiation",
    "water_availability",
]

#: Solar constant of FAO-56 (Allen et al. 1998): 0.0820 MJ m-2 min-1, in W m-2.
SOLAR_CONSTANT = 0.0820e6 / 60.0

_CLIMATE_SUFFIXES = ("msc", "mean", "amp")


def potential_radiation(lat_deg, doy) -> np.ndarray:
    """Daily mean top-of-atmosphere (extraterrestrial) shortwave radiation, W m-2.

    FAO-56 (Allen et al. 1998, eqs. 21-25): inverse relative Earth-Sun distance
    ``dr = 1 + 0.033 cos(2 pi doy / 365)``, solar declination
    ``d = 0.409 sin(2 pi doy / 365 - 1.39)``, sunset hour angle
    ``ws = arccos(-tan(lat) tan(d))`` (clipped for polar day and night) and
    ``Ra = Gsc / pi * dr * (ws sin(lat) sin(d) + cos(lat) cos(d) sin(ws))`` with the solar
    constant ``Gsc`` = 1366.7 W m-2.

    ``lat_deg``: latitude in degrees north (-90..90); ``doy``: day of the year (1..366);
    both broadcast. Returns W m-2 as a float array (0 in the polar night). FAO-56 example 8:
    20 deg S on 3 September (doy 246) gives 32.2 MJ m-2 d-1 = 372.7 W m-2.
    """
    lat = np.asarray(lat_deg, dtype=float)
    day = np.asarray(doy, dtype=float)
    if np.any(np.abs(lat) > 90.0):
        raise FluxscapeError("potential_radiation: latitude must be within -90..90 degrees")
    phi = np.deg2rad(lat)
    dr = 1.0 + 0.033 * np.cos(2.0 * np.pi * day / 365.0)
    decl = 0.409 * np.sin(2.0 * np.pi * day / 365.0 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(decl), -1.0, 1.0))
    ra = (
        SOLAR_CONSTANT
        / np.pi
        * dr
        * (ws * np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.sin(ws))
    )
    return np.maximum(ra, 0.0)


def monthly_potential_radiation(lat_deg, month) -> np.ndarray:
    """Mean of :func:`potential_radiation` over the days of a calendar month (365-day year),
    W m-2. ``lat_deg`` degrees north and ``month`` (1..12) broadcast against each other."""
    lat, mon = np.broadcast_arrays(np.asarray(lat_deg, float), np.asarray(month, int))
    if np.any((mon < 1) | (mon > 12)):
        raise FluxscapeError("monthly_potential_radiation: month must be within 1..12")
    first = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]) + 1  # doy of 1st
    out = np.zeros(lat.shape)
    for m in range(1, 13):
        sel = mon == m
        if sel.any():
            days = np.arange(first[m - 1], first[m])
            out[sel] = potential_radiation(lat[sel][:, None], days[None, :]).mean(axis=1)
    return out


def water_availability(
    precip: np.ndarray,
    sw_in: np.ndarray,
    ta: np.ndarray,
    days: np.ndarray,
    capacity: float = 150.0,
    spinup_years: int = 3,
) -> np.ndarray:
    """Water availability index (0-1) of a monthly bucket model, FLUXCOM's WAI in spirit.

    Inputs per month, in time order (one site): ``precip`` mm d-1, ``sw_in`` incoming
    shortwave W m-2, ``ta`` air temperature deg C, ``days`` days in the month. Demand is the
    Priestley-Taylor potential evapotranspiration with net radiation taken as 0.5 * sw_in
    (mm d-1, 0 below 0 deg C); supply is ``demand * W / capacity``. The store ``W`` (mm,
    0..``capacity``) gains ``precip * days`` and loses the supply each month; it is spun up
    by cycling the first 12 months ``spinup_years`` times. Returns ``W / capacity`` at the
    end of each month; a month with a NaN input is NaN (the store carries on through it with
    0 precipitation and 0 demand).
    """
    bad = ~(np.isfinite(precip) & np.isfinite(sw_in) & np.isfinite(ta))
    p = np.nan_to_num(np.asarray(precip, float)) * np.asarray(days, float)
    t = np.asarray(ta, float)
    rn = 0.5 * np.nan_to_num(np.asarray(sw_in, float)) * 0.0864  # MJ m-2 d-1
    es_slope = 4098.0 * 0.6108 * np.exp(17.27 * t / (t + 237.3)) / (t + 237.3) ** 2
    pet = 1.26 * es_slope / (es_slope + 0.066) * rn / 2.45  # mm d-1
    pet = np.where(np.isfinite(t) & (t > 0.0), pet, 0.0) * np.asarray(days, float)
    w = capacity
    n = len(p)
    first = list(range(min(12, n))) * spinup_years
    for i in first:
        w = float(np.clip(w + p[i] - pet[i] * w / capacity, 0.0, capacity))
    out = np.empty(n)
    for i in range(n):
        w = float(np.clip(w + p[i] - pet[i] * w / capacity, 0.0, capacity))
        out[i] = w / capacity
    out[bad] = np.nan
    return out


def add_water_availability(
    table: pd.DataFrame,
    site_col: str = "site",
    time_col: str = "time",
    precip: str = "P_F",
    sw_in: str = "SW_IN_F",
    ta: str = "TA_F",
    name: str = "wai",
) -> pd.DataFrame:
    """The table (monthly rows) with ``name``: :func:`water_availability` of each site run
    over its months in time order (a copy; drivers only)."""
    missing = [c for c in (site_col, time_col, precip, sw_in, ta) if c not in table.columns]
    if missing:
        raise FluxscapeError(f"table has no column(s) {missing}")
    out = table.copy()
    times = pd.DatetimeIndex(out[time_col])
    sites = out[site_col].to_numpy()
    p, sw, t = (out[c].to_numpy(dtype=float) for c in (precip, sw_in, ta))
    days = times.days_in_month.to_numpy(dtype=float)
    wai = np.full(len(out), np.nan)
    for site in pd.unique(sites):
        rows = np.flatnonzero(sites == site)
        rows = rows[np.argsort(times[rows], kind="stable")]
        wai[rows] = water_availability(p[rows], sw[rows], t[rows], days[rows])
    out[name] = wai
    return out


def climate_feature_names(drivers: list[str]) -> list[str]:
    """Names :func:`add_site_climate` adds for ``drivers``: ``<v>_msc``, ``<v>_mean``,
    ``<v>_amp`` per driver, in that order."""
    return [f"{v}_{s}" for v in drivers for s in _CLIMATE_SUFFIXES]


def add_site_climate(
    table: pd.DataFrame,
    drivers: list[str],
    site_col: str = "site",
    time_col: str = "time",
) -> pd.DataFrame:
    """The table with each site's climate of each driver added (a copy).

    For each driver ``v`` (a column of ``table``, in its own units) and each site:

    - ``<v>_msc``: the mean seasonal cycle, the mean of ``v`` over the site's rows of the
      same calendar month as the row (all years of the record);
    - ``<v>_mean``: the annual mean, the mean of the site's 12 monthly MSC values (months
      without data are skipped, so a gap-ridden season does not bias it by its row count);
    - ``<v>_amp``: the seasonal amplitude, max - min of those MSC values.

    Only ``site_col``, ``time_col`` and the driver columns are read: targets play no part.
    A site-month without any finite driver value gets NaN (the row is then dropped, and
    counted, by :func:`fluxscape.ml.validation.cross_validate`). Raises FluxscapeError on a
    missing column or a driver name that would collide with a flux column.
    """
    from fluxscape.ml.models import leaking_features

    leaks = leaking_features(drivers)
    if leaks:
        raise FluxscapeError(f"drivers include tower flux columns (leakage): {leaks}")
    missing = [c for c in [site_col, time_col, *drivers] if c not in table.columns]
    if missing:
        raise FluxscapeError(f"table has no column(s) {missing}")
    out = table.copy()
    moy = pd.DatetimeIndex(out[time_col]).month
    keys = pd.DataFrame({"site": out[site_col].to_numpy(), "moy": moy})
    for v in drivers:
        keys[v] = pd.to_numeric(out[v], errors="coerce").to_numpy(dtype=float)
    msc = keys.groupby(["site", "moy"])[list(drivers)].mean()
    annual = msc.groupby(level="site").mean()
    amp = msc.groupby(level="site").max() - msc.groupby(level="site").min()
    idx = pd.MultiIndex.from_arrays([keys["site"], keys["moy"]])
    for v in drivers:
        out[f"{v}_msc"] = msc[v].reindex(idx).to_numpy()
        out[f"{v}_mean"] = keys["site"].map(annual[v]).to_numpy()
        out[f"{v}_amp"] = keys["site"].map(amp[v]).to_numpy()
    return out


def add_site_static(
    table: pd.DataFrame,
    sites: pd.DataFrame,
    site_col: str = "site",
    time_col: str = "time",
    classes: list[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The table with static site features added (a copy) and the one-hot column names.

    ``sites`` is a site list as :func:`fluxscape.sitelist.read_site_list` returns it
    (``site_id``, ``lat`` in degrees north, ``igbp``). Added columns:

    - ``abs_lat``: |latitude|, degrees;
    - ``sw_pot_month``: :func:`monthly_potential_radiation` for the site's latitude and the
      row's calendar month, W m-2 (the tower's own ``SW_IN_POT`` where absent, e.g. on a grid);
    - ``pft_<IGBP>``: 1.0 for the site's IGBP class, else 0.0, one column per class in
      ``classes`` (default: the classes of the table's sites, sorted).

    Raises FluxscapeError when a site of the table is not in ``sites``.
    """
    lookup = sites.drop_duplicates("site_id").set_index("site_id")
    unknown = sorted(set(table[site_col].astype(str)) - set(lookup.index))
    if unknown:
        raise FluxscapeError(f"sites not in the site list: {unknown}")
    out = table.copy()
    site = out[site_col].astype(str)
    lat = site.map(lookup["lat"]).to_numpy(dtype=float)
    out["abs_lat"] = np.abs(lat)
    out["sw_pot_month"] = monthly_potential_radiation(lat, pd.DatetimeIndex(out[time_col]).month)
    igbp = site.map(lookup["igbp"]).fillna("").astype(str)
    if classes is None:
        classes = sorted(c for c in igbp.unique() if c)
    names = [f"pft_{c}" for c in classes]
    for c, name in zip(classes, names, strict=True):
        out[name] = (igbp == c).astype(float).to_numpy()
    return out, names
