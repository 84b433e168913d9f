"""Targets from FULLSET data: QC filtering, partitioning choice, coverage, time axes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.ml.targets import aggregate_drivers, build_targets, training_rows
from fluxscape.ml.timesteps import days_per_month, period_bounds
from fluxscape.readers.fluxnet import read_fluxnet

MM_DIR = "fluxnet2020_warmwinter/MM"


def _dd(days: pd.DatetimeIndex, gpp_nt, gpp_dt, qc, resolution="DD") -> xr.Dataset:
    n = len(days)
    reco = np.full(n, 3.0)
    ds = xr.Dataset(
        {
            "GPP_NT_VUT_REF": ("time", np.asarray(gpp_nt, float)),
            "GPP_DT_VUT_REF": ("time", np.asarray(gpp_dt, float)),
            "RECO_NT_VUT_REF": ("time", reco),
            "RECO_DT_VUT_REF": ("time", reco + 0.5),
            "NEE_VUT_REF": ("time", reco - np.asarray(gpp_nt, float)),
            "NEE_VUT_REF_QC": ("time", np.asarray(qc, float)),
            "TA_F": ("time", np.arange(n, dtype=float)),
        },
        coords={"time": days},
        attrs={"site_id": "XX-Tst", "resolution": resolution, "source_file": "t.csv"},
    )
    return ds


@pytest.fixture
def jan_feb():
    days = pd.date_range("2021-01-01", "2021-02-28", freq="D")
    gpp = np.where(days.month == 1, 2.0, 5.0)
    gpp[days.day == 15] = 100.0  # bad-QC outliers, must be filtered
    qc = np.where(days.day == 15, 0.3, 0.95)
    qc[(days.month == 2) & (days.day > 10)] = 0.5  # February: 10 good days of 28
    return _dd(days, gpp, gpp + 1.0, qc)


def test_monthly_targets_average_good_days_only(jan_feb):
    t = build_targets(jan_feb, pd.DatetimeIndex(["2021-01-01", "2021-02-01"]), min_coverage=0.3)
    assert list(t["site"]) == ["XX-Tst", "XX-Tst"]
    assert t["gpp"].tolist() == [2.0, 5.0]
    assert t["gpp_n_valid"].tolist() == [30, 10]
    np.testing.assert_allclose(t["gpp_coverage"], [30 / 31, 10 / 28])
    np.testing.assert_allclose(t["nee"], [1.0, -2.0])
    assert t.attrs["units"]["gpp"] == "gC m-2 d-1"
    assert "fch4" not in t.columns


def test_low_coverage_period_is_nan_but_kept_with_its_coverage(jan_feb):
    t = build_targets(jan_feb, pd.DatetimeIndex(["2021-01-01", "2021-02-01"]), min_coverage=0.5)
    assert t["gpp"].iloc[0] == 2.0 and np.isnan(t["gpp"].iloc[1])
    rows, counts = training_rows(t, "gpp")
    assert counts == {"rows": 2, "missing_target": 1, "missing_features": 0, "kept": 1}
    assert len(rows) == 1


def test_daytime_partitioning_selects_dt_columns(jan_feb):
    per = pd.DatetimeIndex(["2021-01-01"])
    nt = build_targets(jan_feb, per, partition="NT")
    dt = build_targets(jan_feb, per, partition="DT")
    assert dt["gpp"].iloc[0] == nt["gpp"].iloc[0] + 1.0
    assert dt["reco"].iloc[0] == 3.5 and nt["reco"].iloc[0] == 3.0
    assert dt.attrs["columns"]["gpp"] == "GPP_DT_VUT_REF"
    with pytest.raises(FluxscapeError, match="NT' or 'DT"):
        build_targets(jan_feb, per, partition="SR")


def test_sixteen_day_axis_and_min_qc_threshold(jan_feb):
    per = pd.DatetimeIndex(["2021-01-01", "2021-01-17", "2021-02-02"])
    t = build_targets(jan_feb, per, min_qc=0.2, min_coverage=0.0)
    # with min_qc 0.2 the day-15 outlier (QC 0.3) counts: (15 * 2 + 100) / 16
    assert t["gpp"].iloc[0] == pytest.approx((15 * 2.0 + 100.0) / 16)
    assert t["gpp_n_valid"].tolist() == [16, 16, 16]  # last period: 16 days inferred


def test_drivers_are_day_weighted_means(jan_feb):
    d = aggregate_drivers(jan_feb, ["TA_F"], pd.DatetimeIndex(["2021-01-01", "2021-02-01"]))
    assert d["TA_F"].tolist() == [15.0, 31 + 13.5]


def test_half_hourly_input_and_long_records_refused(jan_feb):
    hh = jan_feb.assign_attrs(resolution="HH")
    with pytest.raises(FluxscapeError, match="DD, WW or MM"):
        build_targets(hh, pd.DatetimeIndex(["2021-01-01"]))
    months = pd.DatetimeIndex(["2021-01-01", "2021-02-01"])
    mm = _dd(months, [1, 2], [1, 2], [1, 1], resolution="MM")
    with pytest.raises(FluxscapeError, match="crosses the end"):
        build_targets(mm, pd.date_range("2021-01-01", periods=8, freq="8D"))


def test_period_bounds_infer_month_and_modis_year_end():
    s, e = period_bounds(pd.DatetimeIndex(["2020-01-01", "2020-02-01"]))
    assert e[-1] == pd.Timestamp("2020-03-01")
    modis = pd.Timestamp(2021, 1, 1) + pd.to_timedelta(16 * np.arange(23), unit="D")
    _, e = period_bounds(modis)
    assert e[-1] == pd.Timestamp("2022-01-01")  # DOY 353 period ends at year end (13 days)
    table = days_per_month(*period_bounds(modis))
    assert table.to_numpy().sum() == 365
    assert table.iloc[1].to_dict() == {
        pd.Timestamp("2021-01-01"): 15.0,
        pd.Timestamp("2021-02-01"): 1.0,
        **{c: 0.0 for c in table.columns[2:]},
    }


def test_real_mm_targets_match_file_where_qc_good(realdata_dir):
    path = next((realdata_dir / MM_DIR).glob("FLX_DE-Hai_*.csv"))
    ds = read_fluxnet(path)
    per = pd.DatetimeIndex(ds["time"].values)
    t = build_targets(ds, per)
    good = ds["NEE_VUT_REF_QC"].values >= 0.8
    assert 150 < good.sum() < len(per)
    np.testing.assert_allclose(t["gpp"].to_numpy()[good], ds["GPP_NT_VUT_REF"].values[good])
    assert np.isnan(t["gpp"].to_numpy()[~good]).all()
    assert set(t["gpp_coverage"].round(6)) <= {0.0, 1.0}
    yearly = build_targets(
        ds, pd.date_range("2001-01-01", "2020-01-01", freq="YS"), min_coverage=0.9
    )
    # annual means from good months: mean daily GPP of a beech forest, 3-6 gC m-2 d-1
    assert ((yearly["gpp"].dropna() > 3) & (yearly["gpp"].dropna() < 6)).all()


def test_days_per_month_counts_each_day_of_each_period_once():
    """The vectorised table equals counting the days of each period one by one (16-day,
    monthly and daily axes; a period reaching into the next year)."""
    for times in (
        pd.date_range("2021-01-01", "2022-12-31", freq="16D"),
        pd.date_range("2020-01-01", "2021-12-01", freq="MS"),
        pd.date_range("2019-12-20", "2020-03-05", freq="D"),
    ):
        starts, ends = period_bounds(pd.DatetimeIndex(times))
        table = days_per_month(starts, ends)
        for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
            days = pd.date_range(s, e - pd.Timedelta(days=1), freq="D")
            months = days.to_period("M").to_timestamp().value_counts()
            row = table.loc[i]
            assert row.sum() == len(days)
            for month, n in months.items():
                assert row[month] == n
