"""Bottom-up against top-down: regional monthly carbon budgets (TgC) over GeoJSON polygons.

Bottom-up: the ``nee`` of a flux store (gC m-2 d-1, ensemble spread ``nee_sd``) totalled per
polygon and month by :func:`fluxscape.ml.regional.regional_totals` (pixel weights of
:func:`fluxscape.zonal.coverage_weights` on the product grid). Top-down: the ``land`` flux of
an inversion (:func:`fluxscape.readers.topdown.open_topdown`, gC m-2 d-1) totalled the same
way on its own lon/lat grid (exact cell fractions x the cells' WGS84 areas); its ``land_sd``
likewise, and ``fire`` when the file gives it. Both sides: positive = carbon to the atmosphere.

Fire: tower NEE holds no fire. With a bottom-up fire field (:func:`fire_carbon`: the burned
pixels of a disturbance product x the carbon a burned m2 releases), the bottom-up side is
NEE + fire and the top-down side its land flux + its (imposed) fire, when the file gives fire
(CarbonTracker's ``fire_flux_imp``; a file without a fire variable is taken to include fire
in its land flux); without one, NEE is compared with the land flux alone and the top-down fire
is only reported. The table says which (``fire_included``) and keeps each part
(``bottomup_nee_TgC``, ``bottomup_fire_TgC``, ``topdown_land_TgC``, ``topdown_fire_TgC``).

Uncertainties: each side's sd is summed over pixels and days as fully correlated (as
:mod:`fluxscape.ml.regional` does); the bottom-up fire's sd is its stated relative error x
its total, independent of NEE's; the two sides are independent, so the difference's sd is
``sqrt(bottomup_sd^2 + topdown_sd^2)``; ``within`` is ``|diff| <= k * combined_sd`` (default
k = 2, about 95 % for Gaussian errors).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.ml.regional import regional_totals
from fluxscape.products.burn import UNBURNED

#: Columns of a budget table, in order.
COLUMNS = (
    "region",
    "month",
    "days",
    "bottomup_nee_TgC",
    "bottomup_fire_TgC",
    "bottomup_TgC",
    "bottomup_sd_TgC",
    "topdown_land_TgC",
    "topdown_fire_TgC",
    "topdown_TgC",
    "topdown_sd_TgC",
    "fire_included",
    "diff_TgC",
    "combined_sd_TgC",
    "z",
    "within",
    "k",
    "bottomup_valid_fraction",
    "topdown_valid_fraction",
)


def fire_carbon(disturbance: xr.Dataset, months, consumption: float) -> xr.DataArray:
    """Bottom-up fire emissions (gC m-2 d-1, positive: to the atmosphere) on the monthly
    periods starting at ``months`` (dims time, y, x of the disturbance store's grid): a pixel
    burned in a month releases ``consumption`` gC m-2 (fuel load x combustion completeness,
    e.g. GFED's per-biome values) spread over that month's days.

    Burned pixels and days from a ``disturbance`` store (dims year, y, x): MCD64A1's
    ``mcd64_burned``/``mcd64_date`` when the product has a ``reference``, else breaks with a
    burn severity of low or more (``burn_severity`` >= 4, USGS classes) dated by ``date``.
    FluxscapeError when the store has neither."""
    if "mcd64_burned" in disturbance:
        burned = disturbance["mcd64_burned"] == 1
        doy = disturbance["mcd64_date"]
    elif "burn_severity" in disturbance:
        burned = (disturbance["disturbed"] == 1) & (disturbance["burn_severity"] > UNBURNED)
        doy = disturbance["date"]
    else:
        raise FluxscapeError(
            "the disturbance store has no burned pixels to take fire from: give its product "
            "a reference (MCD64A1 burn dates) or burn_severity: true"
        )
    months = pd.DatetimeIndex(months)
    ends = months + pd.DateOffset(months=1)
    days = np.asarray((ends - months).days, float)
    years = disturbance["year"].values
    ny, nx = disturbance.sizes["y"], disturbance.sizes["x"]
    out = np.zeros((len(months), ny, nx))
    for i, year in enumerate(years):
        b = np.asarray(burned.isel(year=i).values, bool)
        d = np.asarray(doy.isel(year=i).values, float)
        ok = b & np.isfinite(d) & (d >= 1)
        if not ok.any():
            continue
        dates = pd.Timestamp(f"{int(year)}-01-01") + pd.to_timedelta(d[ok] - 1, unit="D")
        month = pd.DatetimeIndex(dates).to_period("M").to_timestamp()
        index = months.get_indexer(month)
        keep = index >= 0
        rows, cols = np.nonzero(ok)
        out[index[keep], rows[keep], cols[keep]] += consumption / days[index[keep]]
    coords = {"time": months, "y": disturbance["y"].values, "x": disturbance["x"].values}
    field = xr.DataArray(out, dims=("time", "y", "x"), coords=coords, name="fire")
    if "spatial_ref" in disturbance.coords:
        field = field.assign_coords(spatial_ref=disturbance["spatial_ref"])
    return field


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


def _fire_column(out: pd.DataFrame, totals: pd.DataFrame, column: str) -> pd.DataFrame:
    """``out`` with the monthly ``fire`` totals of ``totals`` (TgC, and their sd) merged in as
    ``column`` / ``column_sd``; NaN where there are none."""
    fire = totals[(totals["variable"] == "fire") & (totals["period_type"] == "month")]
    f = fire.rename(columns={"period": "month", "total_TgC": column, "sd_TgC": f"{column}_sd"})
    if f.empty:
        return out.assign(**{column: np.nan, f"{column}_sd": np.nan})
    return out.merge(
        f[["region", "month", column, f"{column}_sd"]], on=["region", "month"], how="left"
    )


def compare(bottomup: pd.DataFrame, topdown: pd.DataFrame, k: float = 2.0) -> pd.DataFrame:
    """The budget table from two regional totals tables (:func:`regional_totals` rows, monthly
    rows used): ``bottomup`` holds ``nee`` and, when the bottom-up side has fire, ``fire``;
    ``topdown`` holds its land flux and may hold ``fire``.

    Returns one row per region and month present in both, columns :data:`COLUMNS`: the parts
    and the compared totals in TgC (positive: to the atmosphere). With bottom-up fire
    (``fire_included``): ``bottomup_TgC`` = NEE + fire (sd: the root of the sum of the parts'
    squared sds) and ``topdown_TgC`` = land + top-down fire (land alone when the top-down
    gives no fire); otherwise NEE against land. ``diff_TgC`` = top-down - bottom-up,
    ``combined_sd_TgC`` = root of the sum of the squared sds, ``z`` = diff / combined sd,
    ``within`` = ``|diff| <= k * combined sd``, ``days`` of the month covered by both."""
    bu = _monthly(bottomup[bottomup["variable"] != "fire"], "bottomup")
    td = _monthly(topdown[topdown["variable"] != "fire"], "topdown")
    out = bu.merge(td, on=["region", "month"], suffixes=("_bu", "_td"))
    out["days"] = np.minimum(out.pop("days_bu"), out.pop("days_td"))
    out = _fire_column(out, bottomup, "bottomup_fire_TgC")
    out = _fire_column(out, topdown, "topdown_fire_TgC")
    included = bool((bottomup["variable"] == "fire").any())
    out["fire_included"] = included
    out["bottomup_nee_TgC"] = out["bottomup_TgC"]
    out["topdown_land_TgC"] = out["topdown_TgC"]
    if included:
        fire = out["bottomup_fire_TgC"].fillna(0.0)
        out["bottomup_TgC"] = out["bottomup_nee_TgC"] + fire
        out["bottomup_sd_TgC"] = np.hypot(
            out["bottomup_sd_TgC"], out["bottomup_fire_TgC_sd"].fillna(0.0)
        )
        out["topdown_TgC"] = out["topdown_land_TgC"] + out["topdown_fire_TgC"].fillna(0.0)
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
    fire: xr.DataArray | None = None,
    fire_relative_error: float = 0.5,
) -> pd.DataFrame:
    """Per polygon and month: bottom-up NEE of a flux store dataset (``nee``, ``nee_sd``,
    periods ending at ``flux_period_end``), plus the bottom-up ``fire`` field when given
    (:func:`fire_carbon`: gC m-2 d-1 on monthly periods, sd ``fire_relative_error`` x its
    value), against the top-down ``land`` (``land_sd``, ``fire``) of
    :func:`fluxscape.readers.topdown.open_topdown`; see :func:`compare`.

    The top-down grid is cut to the polygons' bounds plus one cell before totalling."""
    from fluxscape.ml.regional import load_polygons

    bu = regional_totals(
        flux["nee"], polygons, name_property, flux.get("nee_sd"), flux_period_end, "nee"
    )
    if fire is not None:
        sd = fire * fire_relative_error
        fire_end = month_end(fire["time"].values)
        fire_totals = regional_totals(fire, polygons, name_property, sd, fire_end, "fire")
        bu = pd.concat([bu, fire_totals], ignore_index=True)
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
