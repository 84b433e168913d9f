"""Phenology skill measurement: our product against a naive threshold, on an independent
MOD13A2-like test world with known start and end of season (issue #16).

Used by tests/test_phenology_skill.py (a small cube, acceptance bounds) and by
bench/phenology_skill.py (a larger cube, the ``## Phenology skill`` section of
bench/RESULTS.md). It shares nothing with the sample world (``fluxscape.sample``) but the
model of a season (a double logistic, whose inflection days are the truth, as in the sample
world).

The world (:func:`make_world`):

- an EPSG:4326 grid of ``size`` x ``size`` pixels of ``res`` degrees from 138 E 36 N and the
  native MODIS sinusoidal 926.6 m pixels (on the MODIS pixel lattice) under it, a sheared
  rectangle about twice as large; one season a year: a double logistic with ``sos``/``eos``
  (its inflection days = the 50 % amplitude crossings), rates ``k1``/``k2`` and levels
  ``vmin``/``vmax`` that are smooth functions of longitude and latitude (so the truth of any
  pixel of any grid is the functions at its centre), dates shifted each year (s.d. 5 days),
  rates scaled (s.d. 8 %) and the peak moved (s.d. 0.02) each year;
- 16-day composites (period starts DOY 1, 17, ..., 353; the last one 13 or 14 days), the
  composite day (``doy``) uniformly random within each period, the value the true curve on
  that day plus Gaussian noise (``noise`` s.d.);
- ``cloud`` of the composites cloudy: QA 3 and a low value (the truth times 0.2-0.6);
  the others QA 0.

The measures (:func:`measure`): our product (:func:`fluxscape.products.phenology.phenology`
with the given options, the season of largest amplitude in each year) and the naive
baseline (:func:`naive_dates`: per year, the clear composites at their actual day linearly
interpolated, sos / eos = the first / last crossing of 50 % of the amplitude between the
minimum before / after the peak and the peak), each as RMSE in days against the truth, on
the native grid and on the EPSG:4326 grid fed by nearest-pixel resampling as the ``vi`` step
does (:func:`fluxscape.readers.ontile.nearest_index`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox

from fluxscape.products import phenology as ph
from fluxscape.products import smoothing as sm
from fluxscape.readers import ontile
from fluxscape.readers.modis_hdf4 import SINUSOIDAL_PROJ

YEARS = (2021, 2022, 2023)
#: MODIS 1 km sinusoidal pixel size (m): 1200 pixels a 1111950.52 m tile.
PIXEL_M = 1111950.5196666666 / 1200
#: South-west corner (degrees) of the EPSG:4326 test grid; the native grid covers it.
CORNER = (138.0, 36.0)
#: The MODIS sinusoidal grid's upper-left corner (m), the pixel lattice of the native grid.
MODIS_ORIGIN = (-20015109.354, 10007554.677)


@dataclass
class SkillWorld:
    """A test world: the native grid, its cube (time, y, x: ``ndvi``, ``qa``, ``doy`` as in a
    ``vi`` store) and the truth functions (:meth:`truth`)."""

    geobox: GeoBox
    cube: xr.Dataset
    seed: int
    target: GeoBox

    def truth(self, lon: np.ndarray, lat: np.ndarray, year: int) -> dict[str, np.ndarray]:
        """Double-logistic parameters at ``lon``/``lat`` (degrees) in ``year``: ``sos``,
        ``eos`` (day of year of the inflection points), ``k1``, ``k2`` (1/day), ``vmin``,
        ``vmax`` (NDVI)."""
        return season_parameters(lon, lat, year, self.seed)


def _field(lon: np.ndarray, lat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth field in about [-1, 1]: three plane waves of 0.6-2 degree wavelength."""
    k = rng.uniform(0.5, 1.6, (3, 2)) * rng.choice([-1, 1], (3, 2))
    phase = rng.uniform(0, 2 * np.pi, 3)
    total = sum(
        np.sin(2 * np.pi * (kx * lon + ky * lat) + p) for (kx, ky), p in zip(k, phase, strict=True)
    )
    return total / np.sqrt(1.5)


def season_parameters(lon, lat, year: int, seed: int) -> dict[str, np.ndarray]:
    """See :meth:`SkillWorld.truth`."""
    lon, lat = np.asarray(lon, float), np.asarray(lat, float)
    rng = np.random.default_rng([seed, 7])
    f = {n: _field(lon, lat, rng) for n in ("sos", "eos", "k1", "k2", "vmin", "vmax")}
    shift, rate, peak = np.random.default_rng([seed, 8, year]).normal(0, [5, 0.08, 0.02])
    return {
        "sos": 120 + 15 * f["sos"] + shift,
        "eos": 275 + 12 * f["eos"] + 0.5 * shift,
        "k1": (0.09 + 0.025 * np.clip(f["k1"], -1, 1)) * (1 + rate),
        "k2": (0.07 + 0.02 * np.clip(f["k2"], -1, 1)) * (1 - rate),
        "vmin": 0.2 + 0.05 * np.clip(f["vmin"], -1, 1),
        "vmax": 0.75 + 0.08 * np.clip(f["vmax"], -1, 1) + peak,
    }


def true_ndvi(p: dict[str, np.ndarray], doy: np.ndarray) -> np.ndarray:
    """The double logistic of parameters ``p`` (arrays broadcasting with ``doy``)."""
    return sm.double_logistic(doy, p["vmin"], p["vmax"], p["sos"], p["k1"], p["eos"], p["k2"])


def period_starts(years=YEARS) -> pd.DatetimeIndex:
    """MOD13A2 16-day period starts: DOY 1, 17, ..., 353 of each year."""
    return pd.DatetimeIndex(
        [pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d) for y in years for d in range(0, 365, 16)]
    )


def lonlat_geobox(size: int, res: float = 0.01) -> GeoBox:
    """The EPSG:4326 grid: ``size`` x ``size`` pixels of ``res`` degrees from :data:`CORNER`."""
    from affine import Affine

    west, south = CORNER
    return GeoBox((size, size), Affine(res, 0, west, 0, -res, south + size * res), "EPSG:4326")


def native_geobox(target: GeoBox) -> GeoBox:
    """The MODIS 1 km sinusoidal pixels (on the MODIS lattice) covering ``target``'s
    footprint with a pixel to spare: a sheared, larger rectangle around it."""
    from affine import Affine

    bb = target.extent.to_crs(SINUSOIDAL_PROJ).boundingbox
    x0, y0 = MODIS_ORIGIN
    c0 = int(np.floor((bb.left - x0) / PIXEL_M)) - 1
    c1 = int(np.ceil((bb.right - x0) / PIXEL_M)) + 1
    r0 = int(np.floor((y0 - bb.top) / PIXEL_M)) - 1
    r1 = int(np.ceil((y0 - bb.bottom) / PIXEL_M)) + 1
    affine = Affine(PIXEL_M, 0, x0 + c0 * PIXEL_M, 0, -PIXEL_M, y0 - r0 * PIXEL_M)
    return GeoBox((r1 - r0, c1 - c0), affine, SINUSOIDAL_PROJ)


def pixel_lonlat(geobox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees) of the pixel centres of ``geobox`` (y, x)."""
    from pyproj import Transformer

    ny, nx = geobox.shape.yx
    cols, rows = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    x, y = geobox.affine * (cols, rows)
    if geobox.crs.epsg == 4326:
        return np.asarray(x), np.asarray(y)
    tr = Transformer.from_crs(geobox.crs.to_wkt(), "EPSG:4326", always_xy=True)
    return tr.transform(x, y)


def make_world(
    size: int = 48,
    *,
    cloud: float = 0.2,
    noise: float = 0.02,
    seed: int = 0,
    years=YEARS,
    res: float = 0.01,
) -> SkillWorld:
    """The test world (see the module docstring): the native cube under an EPSG:4326 grid of
    ``size`` x ``size`` pixels of ``res`` degrees (``SkillWorld.target``)."""
    rng = np.random.default_rng(seed)
    target = lonlat_geobox(size, res)
    gbox = native_geobox(target)
    lon, lat = pixel_lonlat(gbox)
    starts = period_starts(years)
    start_doy = starts.day_of_year.to_numpy()
    year_len = np.where(starts.is_leap_year, 366, 365)
    span = np.minimum(16, year_len - start_doy + 1)
    ny, nx = gbox.shape.yx
    npix = ny * nx
    doy = start_doy + np.floor(rng.random((npix, starts.size)) * span).astype(int)
    ndvi = np.empty((npix, starts.size))
    for year in years:
        sel = starts.year == year
        p = {k: v.reshape(-1, 1) for k, v in season_parameters(lon, lat, year, seed).items()}
        ndvi[:, sel] = true_ndvi(p, doy[:, sel])
    ndvi += rng.normal(0, noise, ndvi.shape)
    cloudy = rng.random(ndvi.shape) < cloud
    ndvi = np.where(cloudy, ndvi * rng.uniform(0.2, 0.6, ndvi.shape), ndvi)
    qa = np.where(cloudy, 3, 0)

    def cube(a: np.ndarray, dtype) -> np.ndarray:
        return a.T.reshape(starts.size, ny, nx).astype(dtype)

    coords = {
        "time": starts,
        "y": gbox.affine.f + gbox.affine.e * (np.arange(ny) + 0.5),
        "x": gbox.affine.c + gbox.affine.a * (np.arange(nx) + 0.5),
    }
    dims = ("time", "y", "x")
    ds = xr.Dataset(
        {
            "ndvi": (dims, cube(ndvi, np.float32)),
            "qa": (dims, cube(qa, np.uint8)),
            "doy": (dims, cube(doy, np.float32)),
        },
        coords=coords,
    )
    return SkillWorld(gbox, ds, seed, target)


def to_grid(cube: xr.Dataset, native: GeoBox, target: GeoBox) -> xr.Dataset:
    """The cube on ``target`` by nearest source pixel, as the ``vi`` step resamples
    (:func:`fluxscape.readers.ontile.nearest_index`, :func:`~fluxscape.readers.ontile.gather`)."""
    index = ontile.nearest_index(native, target)
    ny, nx = target.shape.yx
    out = {}
    for name, nodata in (("ndvi", np.nan), ("qa", 255), ("doy", np.nan)):
        window = cube[name].values[:, index.window[0], index.window[1]]
        out[name] = (("time", "y", "x"), ontile.gather(window, index, nodata))
    coords = {
        "time": cube["time"].values,
        "y": target.affine.f + target.affine.e * (np.arange(ny) + 0.5),
        "x": target.affine.c + target.affine.a * (np.arange(nx) + 0.5),
    }
    return xr.Dataset(out, coords=coords)


def dates_to_grid(dates: np.ndarray, native: GeoBox, target: GeoBox) -> np.ndarray:
    """Per-pixel results (..., y, x) on ``native`` reprojected to ``target`` by nearest source
    pixel (the same lookup as :func:`to_grid`)."""
    index = ontile.nearest_index(native, target)
    window = np.asarray(dates)[..., index.window[0], index.window[1]]
    return ontile.gather(window, index, np.nan)


# --- the two methods -------------------------------------------------------------------------


def naive_dates(cube: xr.Dataset, years=YEARS) -> dict[str, np.ndarray]:
    """The naive baseline: per pixel and year, the clear (QA 0) composites of that year at
    their actual day (``doy``), linearly interpolated to every day; sos = the first day the
    line reaches half-way between its minimum before the peak and the peak (the maximum),
    eos = the last day it is at or above half-way between the peak and its minimum after it,
    both interpolated between days. Returns ``sos``, ``eos`` (year, y, x) in day of year."""
    starts = pd.DatetimeIndex(cube["time"].values)
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    v = cube["ndvi"].values.reshape(len(starts), -1).T.astype(float)
    q = cube["qa"].values.reshape(len(starts), -1).T
    d = cube["doy"].values.reshape(len(starts), -1).T.astype(float)
    out = {k: np.full((len(years), ny * nx), np.nan) for k in ("sos", "eos")}
    for i, year in enumerate(years):
        sel = starts.year == year
        x, y = d[:, sel], v[:, sel]
        valid = (q[:, sel] == 0) & np.isfinite(x) & np.isfinite(y)
        days = np.arange(1.0, 366.0)
        line = sm.interpolate_rows(x, y, valid, days)
        enough = valid.sum(axis=1) >= 4
        ipk = np.nanargmax(np.where(np.isfinite(line), line, -np.inf), axis=1)
        peak = line[np.arange(line.shape[0]), ipk]
        before = np.where(np.arange(days.size) <= ipk[:, None], line, np.inf)
        after = np.where(np.arange(days.size) >= ipk[:, None], line, np.inf)
        up_level = 0.5 * (np.min(before, axis=1) + peak)
        dn_level = 0.5 * (np.min(after, axis=1) + peak)
        out["sos"][i] = np.where(enough, _first_crossing(line, days, up_level, ipk), np.nan)
        out["eos"][i] = np.where(enough, _last_crossing(line, days, dn_level, ipk), np.nan)
    return {k: a.reshape(len(years), ny, nx) for k, a in out.items()}


def _first_crossing(line, days, level, ipk) -> np.ndarray:
    """First day (interpolated) at or above ``level`` up to the peak."""
    above = (line >= level[:, None]) & (np.arange(days.size) <= ipk[:, None])
    j = np.argmax(above, axis=1)
    j0 = np.maximum(j - 1, 0)
    rows = np.arange(line.shape[0])
    a, b = line[rows, j0], line[rows, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(b > a, (level - a) / (b - a), 1.0)
    return np.where(j > 0, days[j0] + np.clip(frac, 0, 1), days[j])


def _last_crossing(line, days, level, ipk) -> np.ndarray:
    """Last day (interpolated) at or above ``level`` from the peak on."""
    above = (line >= level[:, None]) & (np.arange(days.size) >= ipk[:, None])
    j = days.size - 1 - np.argmax(above[:, ::-1], axis=1)
    j1 = np.minimum(j + 1, days.size - 1)
    rows = np.arange(line.shape[0])
    a, b = line[rows, j], line[rows, j1]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(a > b, (a - level) / (a - b), 0.0)
    return np.where(j1 > j, days[j] + np.clip(frac, 0, 1), days[j])


def product_dates(cube: xr.Dataset, years=YEARS, **options) -> xr.Dataset:
    """Our product on ``cube``, reduced to one season a year: the season of largest
    amplitude. Returns the product's variables with dims (year, y, x)."""
    ds = ph.phenology(cube["ndvi"], cube["qa"], cube["doy"], years=list(years), **options)
    amp = ds["amplitude"].fillna(-np.inf)
    best = amp.argmax("season")
    return ds.isel(season=best)


# --- scores ----------------------------------------------------------------------------------


def truth_on(geobox: GeoBox, years=YEARS, seed: int = 0) -> dict[str, np.ndarray]:
    """True ``sos``, ``eos`` (year, y, x) at the pixel centres of ``geobox``."""
    lon, lat = pixel_lonlat(geobox)
    out = {"sos": [], "eos": []}
    for year in years:
        p = season_parameters(lon, lat, year, seed)
        out["sos"].append(p["sos"])
        out["eos"].append(p["eos"])
    return {k: np.stack(v) for k, v in out.items()}


def rmse(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Root mean square error (days) over the finite estimates."""
    d = np.asarray(estimate, float) - np.asarray(truth, float)
    d = d[np.isfinite(d)]
    return float(np.sqrt(np.mean(d**2))) if d.size else float("nan")


def scores(estimate: dict, truth: dict) -> dict[str, float]:
    """``sos_rmse``, ``eos_rmse`` (days) and ``coverage`` (share of finite dates)."""
    est = {k: np.asarray(estimate[k]) for k in ("sos", "eos")}
    cover = np.mean([np.isfinite(est[k]).mean() for k in est])
    return {
        "sos_rmse": rmse(est["sos"], truth["sos"]),
        "eos_rmse": rmse(est["eos"], truth["eos"]),
        "coverage": float(cover),
    }


def measure(world: SkillWorld, *, years=YEARS, **options) -> dict[str, dict[str, float]]:
    """Scores of our product (``options`` to :func:`fluxscape.products.phenology.phenology`)
    and of the naive baseline on the native grid and on the world's EPSG:4326 grid (the
    cube resampled by nearest pixel, then each method). Keys ``native``/``lonlat`` x
    ``ours``/``naive``, each :func:`scores`; plus the product datasets under ``_products``."""
    out: dict = {"_products": {}}
    target = world.target
    for grid, gbox, cube in (
        ("native", world.geobox, world.cube),
        ("lonlat", target, to_grid(world.cube, world.geobox, target)),
    ):
        truth = truth_on(gbox, years, world.seed)
        ours = product_dates(cube, years, **options)
        out["_products"][grid] = (ours, truth, cube)
        out[grid] = {
            "ours": scores({k: ours[k].values for k in ("sos", "eos")}, truth),
            "naive": scores(naive_dates(cube, years), truth),
        }
    return out
