"""Sample-world top-down fluxes: a CarbonTracker-like monthly 1 x 1 degree CF NetCDF.

``topdown/CT-sample.flux1x1.monthly.nc``: dims ``time`` (month starts), ``latitude`` (south
to north), ``longitude`` (0-360 degrees east, as some inversions ship it), cells with edges
on whole degrees around the region (plus :data:`MARGIN_CELLS`); variables in mol CO2 m-2 s-1,
positive to the atmosphere:

* ``bio_flux_opt``: the world's true NEE (:meth:`fluxscape.sample.world.World.fluxes`) as a
  monthly mean over each 1-degree cell (:data:`SUB` x :data:`SUB` sub-points a cell, every
  day: the inversion's coarse, smoothed view) plus a KNOWN injected offset
  :data:`INJECTED_OFFSET` gC m-2 d-1 everywhere (the top-down sees a weaker sink);
* ``bio_flux_opt_sd``: its stated 1-sigma error, :data:`STATED_SD` gC m-2 d-1 everywhere.

``truth/topdown_budget.csv`` holds, per region polygon (``regions/prefectures.geojson``) and
month, in TgC (positive: to the atmosphere):

* ``truth_TgC``: the true NEE total over the polygon on the product grid (0.01 degree pixel
  centres, monthly means of the daily truth, pixel weights of
  :func:`fluxscape.ml.regional.pixel_weights`);
* ``coarse_TgC``: the same total of the file's 1-degree truth without the offset (each 0.01
  degree pixel takes its 1-degree cell's value): what the top-down would say with no injection;
  ``coarse_TgC - truth_TgC`` is the representation error of the coarse grid;
* ``injected_TgC``: the offset x the polygon's geodesic area (WGS84, pyproj) x the month's
  days: the injected top-down minus truth difference.

A budget's top-down total should equal ``coarse_TgC + injected_TgC``; its difference top-down
minus bottom-up should equal ``injected_TgC + (coarse_TgC - bottomup_TgC)`` (the injection plus
the two known, non-injected parts: the coarse grid's representation error and the bottom-up
model's error against the truth).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.sample.world import World

#: Injected top-down minus truth offset of the land flux (gC m-2 d-1, positive: more release).
INJECTED_OFFSET = 0.5
#: Stated 1-sigma error of the top-down land flux (gC m-2 d-1).
STATED_SD = 0.4
#: Sub-points per cell side for the cell means.
SUB = 10
#: Cells added around the region's cells on each side.
MARGIN_CELLS = 1
#: mol CO2 m-2 s-1 -> gC m-2 d-1.
TO_G_C_PER_DAY = 12.011 * 86400.0
FILE_NAME = "CT-sample.flux1x1.monthly.nc"
TRUTH_NAME = "topdown_budget.csv"
#: Product-grid spacing (degrees) of the truth totals (the demo's resolution).
TRUTH_RES = 0.01


def months(world: World) -> pd.DatetimeIndex:
    """Month starts of the preset's years."""
    years = world.preset.years
    return pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-01", freq="MS")


def cell_edges(world: World) -> tuple[np.ndarray, np.ndarray]:
    """Whole-degree cell edges (lon, lat) covering the region plus the margin."""
    w, s, e, n = world.preset.bbox
    lon = np.arange(np.floor(w) - MARGIN_CELLS, np.ceil(e) + MARGIN_CELLS + 1.0)
    lat = np.arange(np.floor(s) - MARGIN_CELLS, np.ceil(n) + MARGIN_CELLS + 1.0)
    return lon, lat


def _monthly_mean_nee(world: World, lon: np.ndarray, lat: np.ndarray, start) -> np.ndarray:
    """Mean over the month starting at ``start`` of the true daily NEE at points (gC m-2 d-1)."""
    days = pd.date_range(start, start + pd.offsets.MonthEnd(0), freq="D")
    return world.fluxes(lon, lat, days)["NEE"].mean(axis=-1)


def coarse_truth(world: World) -> xr.DataArray:
    """The true NEE as monthly 1-degree cell means (time, lat, lon), gC m-2 d-1."""
    lon_e, lat_e = cell_edges(world)
    off = (np.arange(SUB) + 0.5) / SUB
    sub_lon = (lon_e[:-1, None] + off).ravel()
    sub_lat = (lat_e[:-1, None] + off).ravel()
    glon, glat = np.meshgrid(sub_lon, sub_lat)
    out = []
    for start in months(world):
        v = _monthly_mean_nee(world, glon, glat, start)
        ny, nx = lat_e.size - 1, lon_e.size - 1
        out.append(v.reshape(ny, SUB, nx, SUB).mean(axis=(1, 3)))
    return xr.DataArray(
        np.stack(out),
        dims=("time", "lat", "lon"),
        coords={"time": months(world), "lat": lat_e[:-1] + 0.5, "lon": lon_e[:-1] + 0.5},
    )


def write_topdown(world: World, out: Path, truth: Path, regions: Path) -> Path:
    """Write the top-down file into ``out`` and its truth table into ``truth`` (see the module
    docstring); ``regions``: the GeoJSON of the region polygons. Returns the file's path."""
    out.mkdir(parents=True, exist_ok=True)
    coarse = coarse_truth(world)
    land = (coarse + INJECTED_OFFSET) / TO_G_C_PER_DAY
    sd = xr.full_like(land, STATED_SD / TO_G_C_PER_DAY)
    flux_attrs = {"units": "mol m-2 s-1", "_sign": "positive: to the atmosphere"}
    ds = xr.Dataset(
        {
            "bio_flux_opt": (
                ("time", "latitude", "longitude"),
                land.values.astype("float32"),
                flux_attrs | {"long_name": "terrestrial biosphere flux, optimized"},
            ),
            "bio_flux_opt_sd": (
                ("time", "latitude", "longitude"),
                sd.values.astype("float32"),
                flux_attrs | {"long_name": "terrestrial biosphere flux, 1-sigma uncertainty"},
            ),
        },
        coords={
            "time": coarse["time"].values,
            "latitude": ("latitude", coarse["lat"].values, {"units": "degrees_north"}),
            # 0-360 degrees east, as some inversions ship their grids
            "longitude": ("longitude", coarse["lon"].values % 360.0, {"units": "degrees_east"}),
        },
        attrs={
            "Conventions": "CF-1.8",
            "title": "fluxscape sample world: CarbonTracker-like monthly 1x1 degree fluxes",
            "sign_convention": "positive: to the atmosphere",
            "injected_offset_gC_m2_d": INJECTED_OFFSET,
            "stated_sd_gC_m2_d": STATED_SD,
        },
    )
    for name in ds.data_vars:
        ds[name].attrs.pop("_sign")
    path = out / FILE_NAME
    ds.to_netcdf(path, engine="netcdf4")
    _truth_table(world, coarse, regions).to_csv(truth / TRUTH_NAME, index=False)
    return path


def _truth_table(world: World, coarse: xr.DataArray, regions: Path) -> pd.DataFrame:
    from pyproj import Geod

    from fluxscape.ml.regional import load_polygons, pixel_weights

    w, s, e, n = world.preset.bbox
    x = np.arange(w + TRUTH_RES / 2, e, TRUTH_RES)
    y = np.arange(s + TRUTH_RES / 2, n, TRUTH_RES)
    glon, glat = np.meshgrid(x, y)
    geoms = load_polygons(regions)
    weights = {r: pixel_weights(x, y, g).ravel() for r, g in geoms.items()}
    areas = {r: abs(Geod(ellps="WGS84").geometry_area_perimeter(g)[0]) for r, g in geoms.items()}
    iy = np.clip(
        np.searchsorted(coarse["lat"].values + 0.5, glat.ravel()), 0, coarse.sizes["lat"] - 1
    )
    ix = np.clip(
        np.searchsorted(coarse["lon"].values + 0.5, glon.ravel()), 0, coarse.sizes["lon"] - 1
    )
    rows = []
    for i, start in enumerate(months(world)):
        days = (start + pd.offsets.MonthEnd(0)).day
        fine = _monthly_mean_nee(world, glon, glat, start).ravel()
        cells = coarse.values[i][iy, ix]
        for r, wt in weights.items():
            rows.append(
                {
                    "region": r,
                    "month": start.strftime("%Y-%m"),
                    "days": days,
                    "truth_TgC": float(fine @ wt) * days / 1e12,
                    "coarse_TgC": float(cells @ wt) * days / 1e12,
                    "injected_TgC": INJECTED_OFFSET * areas[r] * days / 1e12,
                }
            )
    return pd.DataFrame(rows)
