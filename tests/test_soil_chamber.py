"""Daily and per-period chamber fluxes (products/soil_chamber.py), against hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fluxscape.errors import FluxscapeError
from fluxscape.products.soil_chamber import (
    CH4_NMOL_S_TO_MG_D,
    CO2_UMOL_S_TO_GC_D,
    daily_port_fluxes,
    daily_site_fluxes,
    period_fluxes,
)

PORTS = pd.DataFrame({"port": [1, 2, 3], "control": [True, True, False]})


def table(rows) -> pd.DataFrame:
    """rows: (local time, port, flux_co2, flux_ch4)."""
    t, port, co2, ch4 = zip(*rows, strict=True)
    return pd.DataFrame(
        {"local_time": pd.to_datetime(t), "port": port, "flux_co2": co2, "flux_ch4": ch4}
    )


def full_day(day: str, port: int, co2: float, ch4: float = -2.0) -> list:
    """One measurement in each of the 8 three-hour slots."""
    return [(f"{day} {h:02d}:20", port, co2, ch4) for h in range(1, 24, 3)]


def test_conversion_factors_match_the_molar_masses():
    assert CO2_UMOL_S_TO_GC_D == pytest.approx(1.0377504)  # 12.011e-6 g x 86400 s
    assert CH4_NMOL_S_TO_MG_D == pytest.approx(1.385856)  # 16.04e-6 mg x 86400 s


def test_daily_mean_is_the_mean_of_slot_means_in_gc():
    # slot 0 (00-03 h) has two values, 1 and 3: its mean 2 counts once, like the 7 others of 2
    rows = full_day("2021-06-01", 1, 2.0) + [("2021-06-01 02:50", 1, 1.0, -2.0)]
    rows[0] = ("2021-06-01 01:20", 1, 3.0, -2.0)
    out = daily_port_fluxes(table(rows)).iloc[0]
    assert out["co2_gc"] == pytest.approx(2.0 * 1.0377504)
    assert out["co2_n"] == 9 and out["co2_coverage"] == 1.0
    assert out["ch4_mg"] == pytest.approx(-2.0 * 1.385856)


def test_day_with_too_few_slots_has_no_value_but_keeps_its_counts():
    rows = full_day("2021-06-01", 1, 2.0)[:5]  # 5 of 8 slots: coverage 0.625 < 0.75
    out = daily_port_fluxes(table(rows)).iloc[0]
    assert np.isnan(out["co2_gc"])
    assert out["co2_n"] == 5 and out["co2_coverage"] == pytest.approx(0.625)
    six = daily_port_fluxes(table(full_day("2021-06-01", 1, 2.0)[:6])).iloc[0]
    assert six["co2_gc"] == pytest.approx(2.0 * 1.0377504)  # 6/8 = 0.75 is enough


def test_nan_flux_does_not_count_towards_coverage():
    rows = full_day("2021-06-01", 1, 2.0)
    rows[:3] = [(t, p, np.nan, c) for t, p, _, c in rows[:3]]
    out = daily_port_fluxes(table(rows)).iloc[0]
    assert np.isnan(out["co2_gc"]) and out["co2_coverage"] == pytest.approx(5 / 8)
    assert out["ch4_coverage"] == 1.0 and out["ch4_mg"] == pytest.approx(-2.0 * 1.385856)


def test_local_day_runs_midnight_to_midnight():
    rows = full_day("2021-06-01", 1, 2.0) + [("2021-06-01 23:59", 1, 10.0, -2.0)]
    rows += [("2021-06-02 00:01", 1, 5.0, -2.0)]
    out = daily_port_fluxes(table(rows)).set_index("date")
    assert out.loc["2021-06-01", "co2_n"] == 9
    assert out.loc["2021-06-02", "co2_n"] == 1
    # 23:59 joins the 21-24 h slot: (2 + 10) / 2 = 6 there, mean (7 x 2 + 6) / 8 = 2.5
    assert out.loc["2021-06-01", "co2_gc"] == pytest.approx(2.5 * 1.0377504)


def test_site_value_is_the_mean_of_control_ports_only():
    rows = full_day("2021-06-01", 1, 2.0) + full_day("2021-06-01", 2, 4.0)
    rows += full_day("2021-06-01", 3, 100.0)  # treated port: never in the site mean
    rows += full_day("2021-06-02", 1, 2.0) + full_day("2021-06-02", 2, 4.0)[:2]
    site = daily_site_fluxes(daily_port_fluxes(table(rows)), PORTS).set_index("date")
    assert site.loc["2021-06-01", "co2_gc"] == pytest.approx(3.0 * 1.0377504)
    assert site.loc["2021-06-01", "co2_ports"] == 2 and site.loc["2021-06-01", "co2_n"] == 16
    # port 2 covers 2 of 8 slots on 2 June: only port 1 is averaged
    assert site.loc["2021-06-02", "co2_gc"] == pytest.approx(2.0 * 1.0377504)
    assert site.loc["2021-06-02", "co2_ports"] == 1


def test_period_mean_of_kept_days_with_coverage_rule():
    daily = pd.DataFrame(
        {
            "port": 1,
            "date": pd.to_datetime(["2021-06-01", "2021-06-02", "2021-06-03", "2021-06-05"]),
            "co2_gc": [1.0, 2.0, np.nan, 7.0],
            "ch4_mg": [-1.0, -1.0, -1.0, -1.0],
        }
    )
    starts = pd.to_datetime(["2021-06-01", "2021-06-04"])
    ends = pd.to_datetime(["2021-06-04", "2021-06-08"])
    out = period_fluxes(daily, starts, ends)
    first, second = out.iloc[0], out.iloc[1]
    assert first["co2_gc"] == pytest.approx(1.5) and first["co2_days"] == 2
    assert first["co2_coverage"] == pytest.approx(2 / 3)
    assert np.isnan(second["co2_gc"]) and second["co2_coverage"] == pytest.approx(0.25)
    assert first["ch4_mg"] == -1.0 and first["ch4_days"] == 3
    assert list(out["start"]) == list(starts) and list(out["end"]) == list(ends)
    relaxed = period_fluxes(daily, starts, ends, min_coverage=0.25)
    assert relaxed.iloc[1]["co2_gc"] == 7.0


def test_period_of_site_values_without_port():
    daily = pd.DataFrame(
        {"date": pd.date_range("2021-06-01", periods=4), "co2_gc": [1.0, 2.0, 3.0, 4.0]}
    )
    out = period_fluxes(daily, ["2021-06-01"], ["2021-06-05"], by=None)
    assert "port" not in out and out.iloc[0]["co2_gc"] == pytest.approx(2.5)


def test_bad_periods_and_slots_are_errors():
    daily = pd.DataFrame({"port": 1, "date": pd.to_datetime(["2021-06-01"]), "co2_gc": [1.0]})
    with pytest.raises(FluxscapeError, match="end > start"):
        period_fluxes(daily, ["2021-06-02"], ["2021-06-01"])
    with pytest.raises(FluxscapeError, match="slot_hours must divide 24"):
        daily_port_fluxes(table(full_day("2021-06-01", 1, 2.0)), slot_hours=5)
