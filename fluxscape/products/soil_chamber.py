"""Daily and per-period soil-chamber fluxes from chamber measurements (pure table functions).

Input: the measurement table of :class:`fluxscape.readers.cosore.CosoreDataset` (``data``:
``local_time``, ``port``, ``flux_co2`` in umol m-2 s-1 and optionally ``flux_ch4`` in
nmol m-2 s-1, QC already applied: NaN = no valid value) and its ports table (``port``,
``control``).

Day: the **local** calendar day on the dataset's own clock (``CSR_TIMEZONE``), by the
measurement's midpoint. Soil efflux follows the local diurnal cycle of soil temperature; a UTC
day would cut Japanese nights in two (UTC midnight is 09:00 JST). FLUXNET daily values use
local standard time too, so chamber and tower days line up.

Daily rule, per port and gas: the day is cut into ``24 / slot_hours`` slots (default 3 h: 8
slots); the daily mean is the mean of the slot means (so a port measured more often at night
does not bias the day), and it is kept only when the share of slots with at least one valid
value (``coverage``) is at least ``min_coverage`` (default 0.75). Site value: the mean of the
control ports' kept daily values (``ports`` with ``control`` true; a trenched or otherwise
treated port never enters it), with the number of ports averaged.

Period rule: the mean of the kept daily values in ``[start, end)``; ``coverage`` = kept days /
days in the period; kept when at least ``min_coverage`` (default 0.5).

Units out: CO2 as ``co2_gc`` in gC m-2 d-1 (umol m-2 s-1 x 12.011e-6 g umol-1 x 86400 s d-1),
CH4 as ``ch4_mg`` in mgCH4 m-2 d-1 (nmol m-2 s-1 x 16.04e-6 mg nmol-1 x 86400), positive to
the atmosphere; with ``<gas>_n`` (valid measurements or days) and ``<gas>_coverage``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fluxscape.errors import FluxscapeError

__all__ = [
    "CH4_NMOL_S_TO_MG_D",
    "CO2_UMOL_S_TO_GC_D",
    "daily_port_fluxes",
    "daily_site_fluxes",
    "period_fluxes",
]

#: umol CO2 m-2 s-1 -> gC m-2 d-1.
CO2_UMOL_S_TO_GC_D = 12.011e-6 * 86400.0
#: nmol CH4 m-2 s-1 -> mgCH4 m-2 d-1.
CH4_NMOL_S_TO_MG_D = 16.04e-6 * 86400.0
#: Measurement column, output name and conversion factor of each gas.
GASES = {
    "co2": ("flux_co2", "co2_gc", CO2_UMOL_S_TO_GC_D),
    "ch4": ("flux_ch4", "ch4_mg", CH4_NMOL_S_TO_MG_D),
}


def _gases(data: pd.DataFrame) -> dict:
    present = {g: v for g, v in GASES.items() if v[0] in data}
    if not present:
        raise FluxscapeError("chamber table has neither flux_co2 nor flux_ch4")
    return present


def daily_port_fluxes(
    data: pd.DataFrame, slot_hours: float = 3.0, min_coverage: float = 0.75
) -> pd.DataFrame:
    """Daily flux per port and local day.

    ``data``: columns ``local_time`` (datetime64, local clock), ``port`` and ``flux_co2``
    (umol m-2 s-1) and/or ``flux_ch4`` (nmol m-2 s-1). Returns one row per (port, date) that
    has any measurement: ``port``, ``date`` (local day, datetime64 at midnight), then per gas
    ``co2_gc`` (gC m-2 d-1, NaN when coverage < ``min_coverage``), ``co2_n`` (valid
    measurements), ``co2_coverage`` (share of slots with a valid value); ``ch4_mg`` likewise.
    """
    if not 0 < slot_hours <= 24 or (24 / slot_hours) % 1:
        raise FluxscapeError(f"slot_hours must divide 24 hours, got {slot_hours}")
    n_slots = int(round(24 / slot_hours))
    t = pd.DatetimeIndex(data["local_time"])
    frame = pd.DataFrame(
        {
            "port": data["port"].to_numpy(),
            "date": t.normalize(),
            "slot": ((t.hour + t.minute / 60 + t.second / 3600) // slot_hours).astype(int),
        }
    )
    out = frame[["port", "date"]].drop_duplicates().set_index(["port", "date"]).sort_index()
    for gas, (column, name, factor) in _gases(data).items():
        frame["v"] = data[column].to_numpy(float)
        valid = frame.dropna(subset=["v"])
        slots = valid.groupby(["port", "date", "slot"])["v"].mean()
        per_day = slots.groupby(level=["port", "date"])
        mean = per_day.mean()
        coverage = per_day.size() / n_slots
        n = valid.groupby(["port", "date"]).size()
        out[f"{gas}_n"] = n.reindex(out.index).fillna(0).astype(int)
        out[f"{gas}_coverage"] = coverage.reindex(out.index).fillna(0.0)
        kept = mean.where(coverage >= min_coverage - 1e-12) * factor
        out[name] = kept.reindex(out.index)
    return out.reset_index()


def daily_site_fluxes(port_daily: pd.DataFrame, ports: pd.DataFrame) -> pd.DataFrame:
    """Site daily flux: the mean of the control ports' kept daily values.

    ``port_daily``: :func:`daily_port_fluxes` output; ``ports``: ``port`` and ``control``
    (bool). Returns one row per date: ``date``, ``co2_gc`` (gC m-2 d-1), ``co2_ports`` (control
    ports averaged), ``co2_n`` (their measurements), and ``ch4_mg``/``ch4_ports``/``ch4_n``
    when present; NaN where no control port kept the day.
    """
    control = set(ports.loc[ports["control"].astype(bool), "port"])
    if 0 in control:  # port 0: one record for all ports
        control |= set(port_daily["port"])
    rows = port_daily[port_daily["port"].isin(control)]
    dates = pd.DatetimeIndex(sorted(port_daily["date"].unique()), name="date")
    out = pd.DataFrame(index=dates)
    for gas, (_, name, _) in GASES.items():
        if name not in rows:
            continue
        kept = rows.dropna(subset=[name]).groupby("date")
        out[name] = kept[name].mean().reindex(dates)
        out[f"{gas}_ports"] = kept.size().reindex(dates).fillna(0).astype(int)
        out[f"{gas}_n"] = kept[f"{gas}_n"].sum().reindex(dates).fillna(0).astype(int)
    return out.reset_index()


def period_fluxes(
    daily: pd.DataFrame,
    starts,
    ends,
    min_coverage: float = 0.5,
    by: str | None = "port",
) -> pd.DataFrame:
    """Per-period means of daily fluxes, periods ``[starts[i], ends[i])`` (e.g. 8-/16-day or
    monthly; see :func:`fluxscape.ml.timesteps.period_bounds`).

    ``daily``: :func:`daily_port_fluxes` (``by="port"``) or :func:`daily_site_fluxes`
    (``by=None``) output. Returns one row per (group, period): ``port`` (when ``by``),
    ``start``, ``end``, then per gas the mean of the kept daily values (``co2_gc`` gC m-2 d-1,
    ``ch4_mg`` mgCH4 m-2 d-1; NaN when coverage < ``min_coverage``), ``<gas>_days`` (kept days)
    and ``<gas>_coverage`` (kept days / period days).
    """
    starts, ends = pd.DatetimeIndex(starts), pd.DatetimeIndex(ends)
    if len(starts) != len(ends) or (ends <= starts).any():
        raise FluxscapeError("periods: starts and ends must pair up with end > start")
    dates = pd.DatetimeIndex(daily["date"])
    idx = starts.searchsorted(dates, side="right") - 1
    inside = (idx >= 0) & (dates < ends[np.clip(idx, 0, None)])
    frame = daily[inside].assign(period=idx[inside])
    groups = [by] if by else []
    keys = (
        pd.MultiIndex.from_product(
            [sorted(daily[by].unique()), range(len(starts))], names=[by, "period"]
        )
        if by
        else pd.Index(range(len(starts)), name="period")
    )
    out = pd.DataFrame(index=keys)
    length = pd.Series((ends - starts).days.to_numpy(float), index=range(len(starts)))
    period_days = length.reindex(out.index.get_level_values("period")).to_numpy()
    for gas, (_, name, _) in GASES.items():
        if name not in frame:
            continue
        kept = frame.dropna(subset=[name]).groupby([*groups, "period"])[name]
        days = kept.size().reindex(out.index).fillna(0).to_numpy()
        coverage = days / period_days
        mean = kept.mean().reindex(out.index).to_numpy()
        out[name] = np.where(coverage >= min_coverage - 1e-12, mean, np.nan)
        out[f"{gas}_days"] = days.astype(int)
        out[f"{gas}_coverage"] = coverage
    out = out.reset_index()
    out.insert(len(groups), "start", starts[out["period"]].to_numpy())
    out.insert(len(groups) + 1, "end", ends[out["period"]].to_numpy())
    return out.drop(columns="period")
