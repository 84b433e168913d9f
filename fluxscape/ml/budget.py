"""Bottom-up against top-down: regional monthly carbon budgets (TgC) over GeoJSON polygons.

Bottom-up: the ``nee`` of a flux store (gC m-2 d-1, ensemble spread ``nee_sd``) totalled per
polygon and month by :func:`fluxscape.ml.regional.regional_totals` (pixel weights of
:func:`fluxscape.zonal.coverage_weights` on the product grid). Top-down: the ``land`` flux of
an inversion (:func:`fluxscape.readers.topdown.open_topdown`, gC m-2 d-1) totalled the same
way on its own lon/lat grid (exact cell fractions x the cells' WGS84 areas); its ``land_sd``
likewise, and ``fire`` when the file gives it (reported, not compared: tower NEE holds no
fire). Both sides: positive = carbon to the atmosphere.

Uncertainties: each side's sd is summed over pixels and days as fully correlated (as
:mod:`fluxscape.ml.regional` does); the two sides are independent, so the difference's sd is
``sqrt(bottomup_sd^2 + topdown_sd^2)``; ``within`` is ``|diff| <= k * combined_sd`` (default
k = 2, about 95 % for Gaussian errors).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.ml.regional import regional_totals

#: Columns of a budget table, in order.
COLUMNS = (
    "region",
    "month",
    "days",
    "bottomup_TgC",
    "bottomup_sd_TgC",
    "topdown_TgC",
    "topdown_sd_TgC",
    "topdown_fire_TgC",
    "diff_TgC",
    "combined_sd_TgC",
    "z",
    "within",
    "k",
    "bottomup_valid_fraction",
    "topdown_valid_fraction",
)


def topdown_field(ds: xr.Dataset, variable: str) -> xr.DataArray:
    """A top-down variable (time, lat, lon) as the (time, y, x) field regional totals take
    (lon/lat degrees, no grid mapping)."""
    return ds[variable].rename({"lat": "y", "lon": "x"}).transpose("time", "y", "x")


def month_end(times) -> pd.Timestamp:
    """Exclusive end of the last month of a monthly axis of month starts."""
    return pd.Timestamp(pd.DatetimeIndex(times)[-1]) + pd.DateOffset(months=1)


def _monthly(df: pd.DataFrame, prefix: str) -> pd.DataFrame:
    m = df[df["period_type"] == "month"]
    return m.rename(
        columns={
            "period": "month",
            "total_TgC": f"{prefix}_TgC",
            "sd_TgC": f"{prefix}_sd_TgC",
            "valid_fraction": f"{prefix}_valid_fraction",
        }
    )[["region", "month", "days", f"{prefix}_TgC", f"{prefix}_sd_TgC", f"{prefix}_valid_fraction"]]


def compare(bottomup: pd.DataFrame, topdown: pd.DataFrame, k: float = 2.0) -> pd.DataFrame:
    """The budget table from two regional totals tables (:func:`regional_totals` rows of one
    variable each, monthly rows used; ``topdown`` may hold a second variable ``fire``).

    Returns one row per region and month present in both, columns :data:`COLUMNS`:
    totals and sds in TgC (positive: to the atmosphere), ``diff_TgC`` = top-down - bottom-up,
    ``combined_sd_TgC`` = root of the sum of the squared sds, ``z`` = diff / combined sd,
    ``within`` = ``|diff| <= k * combined sd``, ``days`` of the month covered by both."""
    bu = _monthly(bottomup[bottomup["variable"] != "fire"], "bottomup")
    land = topdown[topdown["variable"] != "fire"]
    td = _monthly(land, "topdown")
    fire = topdown[(topdown["variable"] == "fire") & (topdown["period_type"] == "month")]
    out = bu.merge(td, on=["region", "month"], suffixes=("_bu", "_td"))
    out["days"] = np.minimum(out.pop("days_bu"), out.pop("days_td"))
    if len(fire):
        f = fire.rename(columns={"period": "month", "total_TgC": "topdown_fire_TgC"})
        out = out.merge(
            f[["region", "month", "topdown_fire_TgC"]], on=["region", "month"], how="left"
        )
    else:
        out["topdown_fire_TgC"] = np.nan
    out["diff_TgC"] = out["topdown_TgC"] - out["bottomup_TgC"]
    out["combined_sd_TgC"] = np.hypot(out["bottomup_sd_TgC"], out["topdown_sd_TgC"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["z"] = out["diff_TgC"] / out["combined_sd_TgC"]
    out["within"] = out["diff_TgC"].abs() <= k * out["combined_sd_TgC"]
    out["k"] = float(k)
    return out[list(COLUMNS)].sort_values(["region", "month"]).reset_index(drop=True)


def budget_table(
    flux: xr.Dataset,
    topdown: xr.Dataset,
    polygons,
    name_property: str = "name",
    k: float = 2.0,
    flux_period_end: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """Per polygon and month: bottom-up NEE of a flux store dataset (``nee``, ``nee_sd``,
    periods ending at ``flux_period_end``) against the top-down ``land`` (``land_sd``,
    ``fire``) of :func:`fluxscape.readers.topdown.open_topdown`; see :func:`compare`.

    The top-down grid is cut to the polygons' bounds plus one cell before totalling."""
    from fluxscape.ml.regional import load_polygons

    bu = regional_totals(
        flux["nee"], polygons, name_property, flux.get("nee_sd"), flux_period_end, "nee"
    )
    geoms = load_polygons(polygons, name_property)
    w, s, e, n = np.array([g.bounds for g in geoms.values()]).T
    res = float(abs(np.diff(topdown["lat"].values[:2])[0])) if topdown.sizes["lat"] > 1 else 1.0
    cut = topdown.sel(
        lon=slice(w.min() - res, e.max() + res), lat=slice(s.min() - res, n.max() + res)
    )
    end = month_end(cut["time"].values)
    sd = topdown_field(cut, "land_sd") if "land_sd" in cut else None
    parts = [regional_totals(topdown_field(cut, "land"), polygons, name_property, sd, end, "land")]
    if "fire" in cut:
        parts.append(
            regional_totals(topdown_field(cut, "fire"), polygons, name_property, None, end, "fire")
        )
    return compare(bu, pd.concat(parts, ignore_index=True), k)
