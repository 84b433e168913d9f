"""``fluxscape sample-data``: write the sample world in real file formats, with its truth.

Layout of the output directory::

    modis/    MOD13A2.AYYYYDDD.hHHvVV.061.<production>.hdf   16-day VI tiles (HDF4-EOS) and
              MOD11A2.AYYYYDDD.hHHvVV.061.<production>.hdf   8-day LST tiles (source
              ``modis_lst``: the ``disturbance`` preset only)
    burned_area/  MCD64A1.AYYYYDDD.hHHvVV.061.<production>.hdf   monthly burned area (500 m;
              the ``disturbance`` preset only)
    landcover/  MCD12Q1.AYYYY001.hHHvVV.061.<production>.hdf   annual land cover (500 m, IGBP
              and PFT classes; the ``demo`` preset)
    reflectance/  MOD09A1.AYYYYDDD.hHHvVV.061.<production>.hdf   8-day surface reflectance
              (500 m, source ``modis_sr``: the ``demo-rs`` preset)
    lai/      MCD15A2H.AYYYYDDD.hHHvVV.061.<production>.hdf   8-day LAI/FPAR (500 m, source
              ``modis_lai``: the ``demo-rs`` preset)
    towers/   FLX_<site>_FLUXNET2015_FULLSET_DD_<y1>-<y2>_1-4.csv and SitesList.csv
    gosat/    nies/GOSATTFTS*_02C0[12]S*.h5 and acos/acos_LtCO2_*.nc4 (every third day)
    sgli/     GC1SG1_*_T*_L2SG_{VGI,LST,LAI,RSRF}*.h5 (1 km tiles, 2-day revisit) and L1B
    meteo/    era5_daily_<year>.nc (ERA5-like daily t2m, d2m, ssrd, tp, stl1, swvl1 on 0.1
              degrees)
    regions/  prefectures.geojson (three made-up regions for regional totals)
    ahi/      hsd/HS_H0?_*_B??_R301_R??_S????.DAT.bz2 and ptree/NC_H0?_*.nc (first year,
              every 4th day, 3 times a day); source ``ahi_ptree`` (the ``disturbance``
              preset): ptree/NC_H0?_*_0230_*.nc only, every 2nd day of all years
    chambers/ d20210101_SAMPLEnn/ COSORE soil-chamber datasets (DESCRIPTION.txt, PORTS.txt,
              data_<dataset>.csv; source ``chambers``: the ``soil`` preset only)
    dem/      elevation_30s.nc (a GMTED2010-like 30 arc-second CF NetCDF DEM; source ``dem``:
              the ``soil`` preset only)
    topdown/  CT-sample.flux1x1.monthly.nc (CarbonTracker-like monthly 1 degree inversion
              fluxes, bio_flux_opt in mol m-2 s-1, 0-360 longitudes; the ``demo`` preset)
    truth/    world.json (with the events: disturbance patches, heat wave), towers.csv,
              tower_daily.csv, phenology.nc (one or two seasons), disturbance.nc,
              chamber_sites.csv and chamber_daily.csv (the ``soil`` preset),
              topdown_budget.csv (the top-down file's injected difference per region, month)

A preset names the sources it writes (the ``disturbance`` preset: MODIS VI, LST and burned
area, and a light AHI P-Tree record for AHI LST).

MODIS tiles are full 1200 x 1200 tiles; only pixels within the region plus a margin carry
data, the rest is fill (as over the ocean), which keeps the files small.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pyproj import Transformer
from scipy.ndimage import gaussian_filter

from fluxscape.readers.modis_hdf4 import SINUSOIDAL_PROJ, TILE_SIZE_M, tile_upper_left
from fluxscape.readers.modis_mod09a1 import SDS as MOD09A1_SDS
from fluxscape.sample.ahi_writer import write_ahi, write_ptree
from fluxscape.sample.fluxnet_writer import write_fullset_dd, write_site_list
from fluxscape.sample.gosat_writer import write_gosat
from fluxscape.sample.meteo_writer import write_meteo
from fluxscape.sample.modis_writer import (
    MCD12Q1,
    MCD15_FILL,
    MCD15A2H,
    MCD64A1,
    MOD09A1,
    MOD11A2,
    MOD13A2,
    MODIS_500M,
    ModisProduct,
    TileSpec,
    write_modis_grid,
)
from fluxscape.sample.regions_writer import write_regions
from fluxscape.sample.sgli_writer import write_sgli
from fluxscape.sample.world import LAND_COVER, LC_NAMES, PRESETS, Preset, World

log = logging.getLogger(__name__)

MODIS_1KM = 1200
MARGIN_DEG = 0.05
#: MOD13 VI Quality words (bits: MODLAND QA, usefulness, aerosol, adjacent cloud,
#: BRDF correction, mixed clouds, land/water = land) for good, marginal and cloudy pixels.
VIQ_GOOD = 0b00 | (0b0001 << 2) | (0b01 << 6) | (1 << 9) | (0b001 << 11)
VIQ_MARGINAL = 0b01 | (0b0100 << 2) | (0b10 << 6) | (1 << 8) | (1 << 9) | (0b001 << 11)
VIQ_CLOUDY = 0b10 | (0b1100 << 2) | (0b11 << 6) | (1 << 9) | (1 << 10) | (0b001 << 11)
NOISE_REFLECTANCE = 0.004
#: The ``ahi_ptree`` source writes one 02:30 UTC P-Tree scene every PTREE_DAY_STEP days of all
#: the preset's years: 2 gives 1096 files for 2017-2022 (about 175 MB, 25 s); every day would
#: take about 50 s and 350 MB.
PTREE_DAY_STEP = 2


def composite_starts(years) -> list[datetime]:
    """MODIS 16-day composite start dates (DOY 1, 17, ..., 353 of each year)."""
    return [datetime(y, 1, 1) + timedelta(days=d) for y in years for d in range(0, 365, 16)]


def modis_tiles_for(bbox: tuple[float, float, float, float]) -> list[tuple[int, int]]:
    """MODIS sinusoidal tiles (h, v) that intersect a lon/lat bbox."""
    w, s, e, n = bbox
    lon = np.concatenate(
        [np.linspace(w, e, 50), np.full(50, e), np.linspace(w, e, 50), np.full(50, w)]
    )
    lat = np.concatenate(
        [np.full(50, s), np.linspace(s, n, 50), np.full(50, n), np.linspace(s, n, 50)]
    )
    x, y = Transformer.from_crs("EPSG:4326", SINUSOIDAL_PROJ, always_xy=True).transform(lon, lat)
    x0, y0 = tile_upper_left(0, 0)
    hs = np.floor((np.asarray(x) - x0) / TILE_SIZE_M).astype(int)
    vs = np.floor((y0 - np.asarray(y)) / TILE_SIZE_M).astype(int)
    return sorted(
        {(h, v) for h in range(hs.min(), hs.max() + 1) for v in range(vs.min(), vs.max() + 1)}
    )


def _data_window(h: int, v: int, bbox, size: int = MODIS_1KM) -> tuple[slice, slice] | None:
    """Rows/columns of tile h/v (``size`` pixels a side) within bbox + margin (None if they do
    not meet)."""
    w, s, e, n = bbox
    lon = np.linspace(w - MARGIN_DEG, e + MARGIN_DEG, 200)
    lat = np.linspace(s - MARGIN_DEG, n + MARGIN_DEG, 200)
    glon, glat = np.meshgrid(lon, lat)
    x, y = Transformer.from_crs("EPSG:4326", SINUSOIDAL_PROJ, always_xy=True).transform(
        glon.ravel(), glat.ravel()
    )
    ulx, uly = tile_upper_left(h, v)
    px = TILE_SIZE_M / size
    cols = np.floor((np.asarray(x) - ulx) / px).astype(int)
    rows = np.floor((uly - np.asarray(y)) / px).astype(int)
    inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    if not inside.any():
        return None
    return (
        slice(rows[inside].min(), rows[inside].max() + 1),
        slice(cols[inside].min(), cols[inside].max() + 1),
    )


def _pixel_lonlat(
    h: int, v: int, win: tuple[slice, slice], size: int = MODIS_1KM
) -> tuple[np.ndarray, np.ndarray]:
    ulx, uly = tile_upper_left(h, v)
    px = TILE_SIZE_M / size
    cols = np.arange(win[1].start, win[1].stop)
    rows = np.arange(win[0].start, win[0].stop)
    x = ulx + (cols + 0.5) * px
    y = uly - (rows + 0.5) * px
    gx, gy = np.meshgrid(x, y)
    lon, lat = Transformer.from_crs(SINUSOIDAL_PROJ, "EPSG:4326", always_xy=True).transform(gx, gy)
    return np.asarray(lon), np.asarray(lat)


@dataclass(frozen=True)
class _TileData:
    """A MODIS tile that meets the region: its spec, the data window (rows, cols), the window's
    pixel-centre lon/lat and their bbox."""

    spec: TileSpec
    window: tuple[slice, slice]
    lon: np.ndarray
    lat: np.ndarray

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        lon, lat = self.lon, self.lat
        return (float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max()))

    def full(self, window_values: np.ndarray, fill, dtype) -> np.ndarray:
        """A whole tile of ``fill`` with ``window_values`` in the data window."""
        out = np.full((self.spec.size, self.spec.size), fill, dtype=dtype)
        out[self.window] = window_values
        return out

    def write(
        self,
        out: Path,
        product: ModisProduct,
        window: dict[str, np.ndarray],
        start: datetime,
        end: datetime,
        production: datetime,
        fills: dict[str, int] | None = None,
    ) -> Path:
        """Write one ``product`` file of this tile into ``out``: each SDS's ``window`` values
        in the data window, its fill (or ``fills[name]``) elsewhere; LP DAAC file name."""
        fills = fills or {}
        layers = {
            x.name: self.full(window[x.name], fills.get(x.name, x.fill), x.dtype)
            for x in product.sds
        }
        name = _file_name(product.short_name, start, self.spec, production)
        return write_modis_grid(
            out / name, product, self.spec, layers, start, end, self.bbox, production
        )


def _file_name(short_name: str, start: datetime, tile: TileSpec, production: datetime) -> str:
    """LP DAAC file name ``<short>.AYYYYDDD.hHHvVV.061.<YYYYDDDHHMMSS>.hdf``."""
    return (
        f"{short_name}.A{start:%Y}{start.timetuple().tm_yday:03d}.h{tile.h:02d}v{tile.v:02d}.061."
        f"{production:%Y}{production.timetuple().tm_yday:03d}{production:%H%M%S}.hdf"
    )


def _region_tiles(bbox, size: int = MODIS_1KM) -> list[_TileData]:
    """The MODIS tiles (``size`` pixels a side) with data over ``bbox`` plus the margin."""
    tiles = []
    for h, v in modis_tiles_for(bbox):
        win = _data_window(h, v, bbox, size)
        if win is None:
            continue
        lon, lat = _pixel_lonlat(h, v, win, size)
        ulx, uly = tile_upper_left(h, v)
        spec = TileSpec(h, v, size, (ulx, uly), (ulx + TILE_SIZE_M, uly - TILE_SIZE_M))
        tiles.append(_TileData(spec, win, lon, lat))
    return tiles


def _cloud_fraction(start: datetime) -> float:
    """Fraction of cloudy composite pixels: more in the rainy season (June-July)."""
    doy = start.timetuple().tm_yday
    return 0.18 + 0.18 * np.exp(-(((doy - 180) / 35.0) ** 2))


def _to_dn(values: np.ndarray, scale: float, lo: int, hi: int, dtype) -> np.ndarray:
    return np.clip(np.round(values * scale), lo, hi).astype(dtype)


def write_modis_vi(world: World, out: Path, rng: np.random.Generator) -> list[Path]:
    """Write MOD13A2 tiles for every 16-day composite of the world's years."""
    paths = []
    bbox = world.preset.bbox
    for td in _region_tiles(bbox):
        lon, lat = td.lon, td.lat
        bright = world.brightness(lon, lat)
        for start in composite_starts(world.preset.years):
            year_end = datetime(start.year, 12, 31)
            end = min(start + timedelta(days=15), year_end)
            span = (end - start).days + 1
            doy = start.timetuple().tm_yday + rng.integers(0, span, size=lon.shape)
            obs_dates = (np.datetime64(f"{start.year}-01-01") + (doy - 1)).astype("datetime64[D]")
            ndvi_true = _at(world.ndvi, lon, lat, obs_dates)
            refl = world.reflectance(ndvi_true, bright, _at(world.char, lon, lat, obs_dates))
            noise = {k: rng.normal(0, NOISE_REFLECTANCE, lon.shape) for k in refl}
            refl = {k: np.clip(refl[k] + noise[k], 0.001, 1) for k in refl}
            rank = _cloud_rank(rng, lon.shape)
            cf = _cloud_fraction(start)
            cloudy = rank < cf
            marginal = (rank >= cf) & (rank < cf + 0.08)
            # Residual cloud: bright, flat spectrum; marginal: extra noise (thin cloud, aerosol).
            for k, base in (("red", 0.28), ("nir", 0.31), ("blue", 0.30), ("mir", 0.20)):
                refl[k] = np.where(cloudy, base + rng.normal(0, 0.02, lon.shape), refl[k])
                refl[k] = np.where(marginal, refl[k] + rng.normal(0, 0.012, lon.shape), refl[k])
                refl[k] = np.clip(refl[k], 0.001, 1)
            red, nir, blue = refl["red"], refl["nir"], refl["blue"]
            ndvi = (nir - red) / (nir + red)
            evi = 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)
            reliability = np.where(cloudy, 3, np.where(marginal, 1, 0)).astype(np.int8)
            quality = np.where(cloudy, VIQ_CLOUDY, np.where(marginal, VIQ_MARGINAL, VIQ_GOOD))
            sza = np.abs(lat - 23.44 * np.sin(2 * np.pi * (doy - 81) / 365)) + 5
            layers_win = {
                "NDVI": _to_dn(ndvi, 10000, -2000, 10000, np.int16),
                "EVI": _to_dn(evi, 10000, -2000, 10000, np.int16),
                "VI Quality": quality.astype(np.uint16),
                "red reflectance": _to_dn(red, 10000, 0, 10000, np.int16),
                "NIR reflectance": _to_dn(nir, 10000, 0, 10000, np.int16),
                "blue reflectance": _to_dn(blue, 10000, 0, 10000, np.int16),
                "MIR reflectance": _to_dn(refl["mir"], 10000, 0, 10000, np.int16),
                "view zenith angle": _to_dn(
                    rng.uniform(-60, 60, lon.shape), 100, -9000, 9000, np.int16
                ),
                "sun zenith angle": _to_dn(sza, 100, -9000, 9000, np.int16),
                "relative azimuth angle": _to_dn(
                    rng.uniform(-180, 180, lon.shape), 10, -3600, 3600, np.int16
                ),
                "composite day of the year": doy.astype(np.int16),
                "pixel reliability": reliability,
            }
            production = start + timedelta(days=17, hours=3, minutes=42, seconds=15)
            paths.append(td.write(out, MOD13A2, layers_win, start, end, production))
    return paths


#: MOD11A2 ``QC_Day`` words (bits 0-1 mandatory QA, 2-3 data quality, 4-5 emissivity error,
#: 6-7 LST error): good (LST error <= 1 K), good from one clear day only (<= 2 K), other
#: quality (residual cloud, LST error > 3 K), not produced (cloud), not produced (other).
QC_LST_GOOD = 0
QC_LST_GOOD_2K = 0b01 << 6
QC_LST_OTHER = 0b01 | (0b01 << 2) | (0b01 << 4) | (0b11 << 6)
QC_LST_CLOUD = 0b10
QC_LST_NOT_PRODUCED = 0b11
LST_NOISE_K = 0.7  # daily retrieval noise of clear-sky LST (MOD11 accuracy is about 1 K)
LST_CONTAMINATED = 0.05  # share of produced composites with undetected cloud (cold bias)
NIGHT_COOLING_K = 4.0  # night LST below the daily mean air temperature


def lst_composite_starts(year: int) -> list[datetime]:
    """MOD11A2 8-day composite start dates of a year (DOY 1, 9, ..., 361)."""
    return [datetime(year, 1, 1) + timedelta(days=d) for d in range(0, 365, 8)]


def _daily_cloud_probability(world: World, days: pd.DatetimeIndex) -> np.ndarray:
    """Share of the region under cloud on each day: the world's synoptic cloudiness, more in
    the rainy season (June-July)."""
    doy = np.asarray(days.day_of_year, float)
    cloud = world._cloudiness(days)
    return np.clip(0.1 + 0.8 * cloud + 0.2 * np.exp(-(((doy - 180) / 35.0) ** 2)), 0, 0.95)


def _lst_layers(lst_true, air, p_cloud, ndvi, rng) -> dict:
    """MOD11A2 DN layers of one 8-day composite on the window's pixels. ``lst_true``/``air``
    (y, x, day) K and ``p_cloud`` (day,) for the composite's days, ``ndvi`` (y, x) at its
    middle (for the emissivities). A pixel's day is clear
    where a spatially correlated cloud rank exceeds the day's cloud share; LST is the mean of
    the clear days' truth plus retrieval noise; no clear day gives fill and QC "cloud"."""
    shape, n = ndvi.shape, len(p_cloud)
    clear = np.stack([_cloud_rank(rng, shape) >= p for p in p_cloud], axis=-1)
    n_clear = clear.sum(axis=-1)
    produced = n_clear > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = rng.normal(0, LST_NOISE_K, shape + (n,))
        day = np.where(clear, lst_true + noise, 0).sum(axis=-1) / n_clear
        night = np.where(clear, air - NIGHT_COOLING_K + noise, 0).sum(axis=-1) / n_clear
    contaminated = produced & (rng.uniform(size=shape) < LST_CONTAMINATED)
    day = np.where(contaminated, day - rng.uniform(2, 6, shape), day)
    qc = np.select(
        [~produced, contaminated, n_clear == 1],
        [QC_LST_CLOUD, QC_LST_OTHER, QC_LST_GOOD_2K],
        QC_LST_GOOD,
    ).astype(np.uint8)
    bits = (clear.astype(np.uint16) << np.arange(n, dtype=np.uint16)).sum(axis=-1)

    def lst_dn(kelvin):
        return np.where(produced, np.clip(np.round(kelvin / 0.02), 7500, 65535), 0)

    def byte(values, fill):
        return np.where(produced, np.clip(np.round(values), 0, 254), fill)

    return {
        "LST_Day_1km": lst_dn(day).astype(np.uint16),
        "QC_Day": qc,
        "Day_view_time": byte(10 * (10.5 + rng.normal(0, 0.3, shape)), 255).astype(np.uint8),
        "Day_view_angl": byte(rng.uniform(-65, 65, shape) + 65, 255).astype(np.uint8),
        "LST_Night_1km": lst_dn(night).astype(np.uint16),
        "QC_Night": qc,
        "Night_view_time": byte(10 * (22.5 + rng.normal(0, 0.3, shape)), 255).astype(np.uint8),
        "Night_view_angl": byte(rng.uniform(-65, 65, shape) + 65, 255).astype(np.uint8),
        "Emis_31": byte((0.965 + 0.02 * ndvi - 0.49) / 0.002, 0).astype(np.uint8),
        "Emis_32": byte((0.970 + 0.018 * ndvi - 0.49) / 0.002, 0).astype(np.uint8),
        "Clear_sky_days": np.where(produced, bits, 0).astype(np.uint8),
        "Clear_sky_nights": np.where(produced, bits, 0).astype(np.uint8),
    }


#: Outside the data window MOD11A2 QC words say "not produced" rather than their fill 0.
MOD11_QC_FILL = {x.name: QC_LST_NOT_PRODUCED for x in MOD11A2.sds if x.name.startswith("QC_")}


def write_modis_lst(world: World, out: Path, rng: np.random.Generator) -> list[Path]:
    """Write MOD11A2 8-day LST tiles for the world's years: daytime LST from
    :meth:`World.land_surface_temperature` (heat wave included) over the clear days of each
    composite (see :func:`_lst_layers`); the rest of each 1200 x 1200 tile is fill."""
    paths = []
    bbox = world.preset.bbox
    for td in _region_tiles(bbox):
        lon, lat = td.lon, td.lat
        for year in world.preset.years:
            days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
            lst_true = world.land_surface_temperature(lon, lat, days)
            air = world.air_temperature(lon, lat, days) + 273.15
            p_cloud = _daily_cloud_probability(world, days)
            starts = lst_composite_starts(year)
            ndvi_mid = world.ndvi(lon, lat, [np.datetime64(s.date()) + 4 for s in starts])
            for i, start in enumerate(starts):
                first = start.timetuple().tm_yday - 1
                sel = slice(first, min(first + 8, len(days)))
                layers_win = _lst_layers(
                    lst_true[..., sel], air[..., sel], p_cloud[sel], ndvi_mid[..., i], rng
                )
                end = start + timedelta(days=sel.stop - sel.start - 1)
                production = start + timedelta(days=9, hours=4, minutes=35, seconds=12)
                paths.append(
                    td.write(out, MOD11A2, layers_win, start, end, production, MOD11_QC_FILL)
                )
    return paths


#: MCD64A1 maps a burn some days after it happens: burn date = true day + 0..MCD64_MAX_LAG.
MCD64_MAX_LAG = 3
#: Winter months in which persistent cloud and snow leave part of the region unmapped.
MCD64_UNMAPPED_MONTHS = (1, 2, 12)
MCD64_UNMAPPED_FRACTION = 0.05


def write_modis_burned_area(world: World, out: Path, rng: np.random.Generator) -> list[Path]:
    """Write MCD64A1 monthly burned-area tiles (500 m) for every month of the world's years.

    Burned pixels are the world's fire patches (:meth:`World.disturbance`, kind fire) with
    ``Burn Date`` = true day of year + 0..:data:`MCD64_MAX_LAG` days in the month holding that
    date; clearings are not burns. In winter months a spatially correlated
    :data:`MCD64_UNMAPPED_FRACTION` of pixels is unmapped (-1). Everything else is 0
    (unburned land); the sample world has no water."""
    paths = []
    bbox = world.preset.bbox
    for td in _region_tiles(bbox, MODIS_500M):
        lon, lat = td.lon, td.lat
        truth = world.disturbance(lon, lat)
        fire = truth["kind"] == 2
        year = world.preset.event_year or 0
        lag = rng.integers(0, MCD64_MAX_LAG + 1, size=lon.shape)
        last_doy = 366 if year % 4 == 0 else 365
        burn_doy = np.where(fire, np.minimum(np.nan_to_num(truth["date"]) + lag, last_doy), 0)
        burn_day = np.datetime64(f"{year}-01-01") + burn_doy.astype(int) - 1
        burn_month = burn_day.astype("datetime64[M]")
        for y in world.preset.years:
            for month in range(1, 13):
                start = datetime(y, month, 1)
                end = (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).to_pydatetime()
                burnt = fire & (burn_month == np.datetime64(f"{y}-{month:02d}"))
                unmapped = np.zeros(lon.shape, bool)
                if month in MCD64_UNMAPPED_MONTHS:
                    unmapped = _cloud_rank(rng, lon.shape) < MCD64_UNMAPPED_FRACTION
                unmapped &= ~burnt
                date = np.where(burnt, burn_doy, np.where(unmapped, -1, 0)).astype(np.int16)
                first, last = start.timetuple().tm_yday, end.timetuple().tm_yday
                window = {
                    "Burn Date": date,
                    "Burn Date Uncertainty": np.where(burnt, 1 + lag, 0).astype(np.uint8),
                    # bit 0 land, bit 1 valid data
                    "QA": np.where(unmapped, 0b01, 0b11).astype(np.uint8),
                    "First Day": np.where(unmapped, -1, first).astype(np.int16),
                    "Last Day": np.where(unmapped, -1, last).astype(np.int16),
                }
                production = end + timedelta(days=25, hours=5, minutes=12, seconds=41)
                paths.append(td.write(out, MCD64A1, window, start, end, production))
    return paths


#: MCD12Q1 LC_Type5 (plant functional type) of the world's classes (IGBP codes are in
#: :data:`LAND_COVER`).
PFT_CODES = {"DBF": 4, "ENF": 1, "CRO": 7, "GRA": 6}


def write_modis_landcover(world: World, out: Path) -> list[Path]:
    """Write one MCD12Q1 annual land-cover tile (500 m) per year and tile: ``LC_Type1`` the
    IGBP code and ``LC_Type5`` the PFT of the world's class at each pixel centre
    (:meth:`World.land_cover`, codes in :data:`LAND_COVER`), ``QC`` 0 (classified land) and
    ``LW`` 2 (land); fill outside the region. The world's land cover does not change, so
    every year holds the same map, without misclassification."""
    igbp = np.array([LAND_COVER[n]["code"] for n in LC_NAMES], np.uint8)
    pft = np.array([PFT_CODES[n] for n in LC_NAMES], np.uint8)
    paths = []
    for td in _region_tiles(world.preset.bbox, MODIS_500M):
        lc = world.land_cover(td.lon, td.lat)
        window = {
            "LC_Type1": igbp[lc],
            "LC_Type5": pft[lc],
            "QC": np.zeros(lc.shape, np.uint8),
            "LW": np.full(lc.shape, 2, np.uint8),
        }
        for year in world.preset.years:
            start, end = datetime(year, 1, 1), datetime(year, 12, 31)
            production = datetime(year + 1, 7, 9, 3, 41, 7)
            paths.append(td.write(out, MCD12Q1, window, start, end, production))
    return paths


# --- MOD09A1 8-day surface reflectance and MCD15A2H 8-day LAI/FPAR, 500 m ------------------

#: MOD09A1 ``sur_refl_qc_500m`` of a produced pixel: atmospheric correction performed (bit 30),
#: MODLAND QA 00 and every band of highest quality (as nearly all pixels of real files).
SR_QC_IDEAL = 1 << 30
#: ``sur_refl_state_500m`` bits: land (bits 3-5 = 001), cloud state (0-1), shadow (2), aerosol
#: (6-7), internal cloud (10), adjacent to cloud (13).
SR_STATE_LAND = 0b001 << 3
SR_CLOUDY, SR_MIXED = 0b01, 0b10
SR_SHADOW, SR_INTERNAL_CLOUD, SR_ADJACENT = 1 << 2, 1 << 10, 1 << 13
#: Shares of the aerosol quantity codes 00 climatology, 01 low, 10 average, 11 high.
SR_AEROSOL_SHARES = (0.10, 0.60, 0.28, 0.02)
#: Share of pixels (beyond the cloudy ones) next to a cloud; a third of them in its shadow.
SR_ADJACENT_SHARE = 0.05
#: Reflectance of residual cloud per band (bright, flat), before noise.
SR_CLOUD = {
    "red": 0.28,
    "nir": 0.31,
    "blue": 0.30,
    "green": 0.29,
    "swir12": 0.30,
    "swir16": 0.25,
    "swir22": 0.20,
}
#: MOD09A1 SDS of each standard band: the reader's table (the MOD09 User's Guide's bands).
SR_BANDS = {band: sds for band, sds in MOD09A1_SDS.items() if band != "doy"}


def eight_day_starts(years) -> list[datetime]:
    """MODIS 8-day composite start dates (DOY 1, 9, ..., 361) of each year."""
    return [s for y in years for s in lst_composite_starts(y)]


def _composite_end(start: datetime, days: int = 8) -> datetime:
    """Last day of a composite: ``days`` - 1 after ``start``, at most 31 December."""
    return min(start + timedelta(days=days - 1), datetime(start.year, 12, 31))


def _obs_days(start: datetime, end: datetime, shape, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's observation day of the composite: day of year and numpy date."""
    span = (end - start).days + 1
    doy = start.timetuple().tm_yday + rng.integers(0, span, size=shape)
    dates = (np.datetime64(f"{start.year}-01-01") + (doy - 1)).astype("datetime64[D]")
    return doy, dates


def _sr_layers(world: World, td: _TileData, start: datetime, end: datetime, rng) -> dict:
    """MOD09A1 DN layers of one composite on the tile's data window.

    Clear pixels: the world's reflectance (:meth:`World.reflectance`: red and NIR from the
    true NDVI on the pixel's observation day, so NDVI(b01, b02) is the truth plus noise) with
    ``swir12`` (b5, 1.24 um) = (NIR + SWIR 1.6) / 2 + 0.03, plus :data:`NOISE_REFLECTANCE`
    noise per band. A spatially correlated share (:func:`_cloud_fraction`) is cloudy: bright,
    flat reflectance, state cloud 01 and internal cloud flag; the next
    :data:`SR_ADJACENT_SHARE` is adjacent to cloud (slightly brighter), a third of it also in
    cloud shadow (darker). Aerosol codes follow :data:`SR_AEROSOL_SHARES` (high aerosol adds
    haze to blue and red). The world has neither snow nor water nor cirrus."""
    lon, lat, shape = td.lon, td.lat, td.lon.shape
    doy, dates = _obs_days(start, end, shape, rng)
    ndvi = _at(world.ndvi, lon, lat, dates)
    char = _at(world.char, lon, lat, dates)
    refl = world.reflectance(ndvi, world.brightness(lon, lat), char)
    refl["swir12"] = 0.5 * (refl["nir"] + refl["swir16"]) + 0.03
    refl["swir22"] = refl.pop("mir")
    refl = {k: refl[k] + rng.normal(0, NOISE_REFLECTANCE, shape) for k in SR_BANDS}
    rank = _cloud_rank(rng, shape)
    cf = _cloud_fraction(start)
    cloudy = rank < cf
    adjacent = (rank >= cf) & (rank < cf + SR_ADJACENT_SHARE)
    shadow = adjacent & (rng.uniform(size=shape) < 1 / 3)
    aerosol = rng.choice(4, size=shape, p=SR_AEROSOL_SHARES)
    for k, base in SR_CLOUD.items():
        refl[k] = np.where(adjacent, refl[k] + 0.02, refl[k])
        refl[k] = np.where(shadow, refl[k] * 0.6, refl[k])
        refl[k] = np.where(cloudy, base + rng.normal(0, 0.02, shape), refl[k])
    for k in ("blue", "red"):
        refl[k] = np.where(aerosol == 3, refl[k] + 0.015, refl[k])
    state = (
        SR_STATE_LAND
        | (aerosol.astype(np.uint16) << 6)
        | np.where(cloudy, SR_CLOUDY | SR_INTERNAL_CLOUD, 0)
        | np.where(adjacent, SR_ADJACENT, 0)
        | np.where(shadow, SR_SHADOW, 0)
    )
    sza = np.abs(lat - 23.44 * np.sin(2 * np.pi * (doy - 81) / 365)) + 5
    layers = {
        SR_BANDS[k]: _to_dn(np.clip(v, 0.0005, 1.2), 10000, -100, 16000, np.int16)
        for k, v in refl.items()
    }
    return layers | {
        "sur_refl_qc_500m": np.full(shape, SR_QC_IDEAL, np.uint32),
        "sur_refl_szen": _to_dn(sza, 100, 1, 18000, np.int16),
        "sur_refl_vzen": _to_dn(rng.uniform(0.5, 60, shape), 100, 1, 18000, np.int16),
        "sur_refl_raz": _to_dn(rng.uniform(0.5, 180, shape), 100, 1, 18000, np.int16)
        * rng.choice(np.array([-1, 1], np.int16), size=shape),
        "sur_refl_state_500m": state.astype(np.uint16),
        "sur_refl_day_of_year": doy.astype(np.uint16),
    }


def write_modis_reflectance(
    world: World, out: Path, rng: np.random.Generator, starts: list[datetime] | None = None
) -> list[Path]:
    """Write MOD09A1 8-day 500 m surface-reflectance tiles (:func:`_sr_layers`) for every
    8-day composite of the world's years (or the composites starting on ``starts``); the rest
    of each 2400 x 2400 tile is fill."""
    paths = []
    starts = eight_day_starts(world.preset.years) if starts is None else starts
    for td in _region_tiles(world.preset.bbox, MODIS_500M):
        for start in starts:
            end = _composite_end(start)
            layers = _sr_layers(world, td, start, end, rng)
            production = start + timedelta(days=9, hours=3, minutes=53, seconds=2)
            paths.append(td.write(out, MOD09A1, layers, start, end, production))
    return paths


#: MCD15A2H ``FparLai_QC`` fields: MODLAND (bit 0), sensor (1), dead detector (2), cloud state
#: (3-4) and SCF_QC (5-7; 0 main, 1 main saturated, 2/3 backup, 4 not produced).
LAI_NOT_PRODUCED_QC = 0b10011101  # as real files: SCF 100, cloud 11, dead detector, MODLAND 1
LAI_NOISE_REL = 0.08  # relative noise of main-algorithm LAI
FPAR_NOISE = 0.03
LAI_SATURATION = 5.5  # main algorithm "saturated" (SCF 001) above this LAI
#: Shares: of the cloudy pixels, those not retrieved at all; of the clear ones, those from
#: the backup algorithm (bad geometry); beyond the cloudy ones, those under mixed cloud.
LAI_NOT_PRODUCED_SHARE = 0.15
LAI_BACKUP_SHARE = 0.05
LAI_MIXED_SHARE = 0.06
#: MOD15 biomes 1-4 (grasses/cereal crops, shrubs, broadleaf crops, savannah): FparExtra_QC bit 7.
BIOME_1_4 = {"DBF": False, "ENF": False, "CRO": True, "GRA": True}


def _lai_layers(world: World, td: _TileData, start: datetime, end: datetime, rng) -> dict:
    """MCD15A2H DN layers of one composite on the tile's data window.

    True FPAR and LAI come from the true NDVI on each pixel's observation day by the world's
    monotone relations (:meth:`World.fapar`: FPAR = 1.24 NDVI - 0.168 in [0, 0.95];
    :meth:`World.lai`: LAI = -ln(1 - FPAR) / 0.5, Beer's law, 0..6). Clear pixels: main
    algorithm (SCF 000, 001 above LAI :data:`LAI_SATURATION`), LAI x (1 + N(0, 0.08)),
    FPAR + N(0, 0.03); :data:`LAI_BACKUP_SHARE` of them from the backup algorithm (SCF 010,
    three times the noise, no standard deviation: 248). The cloudy share
    (:func:`_cloud_fraction`, spatially correlated): significant clouds, backup algorithm
    (SCF 011), LAI and FPAR biased low (x 0.6); :data:`LAI_NOT_PRODUCED_SHARE` of them not
    produced (fill 255, QC as real files: 157). The next :data:`LAI_MIXED_SHARE`: mixed
    clouds, main algorithm, biased x 0.85. The sensor bit is Terra or Aqua at random."""
    lon, lat, shape = td.lon, td.lat, td.lon.shape
    _, dates = _obs_days(start, end, shape, rng)
    ndvi = _at(world.ndvi, lon, lat, dates)
    fpar_t, lai_t = world.fapar(ndvi), world.lai(ndvi)
    rank = _cloud_rank(rng, shape)
    cf = _cloud_fraction(start)
    cloudy = rank < cf
    absent = rank < cf * LAI_NOT_PRODUCED_SHARE
    mixed = (rank >= cf) & (rank < cf + LAI_MIXED_SHARE)
    backup = ~cloudy & ~mixed & (rng.uniform(size=shape) < LAI_BACKUP_SHARE)
    noise = np.where(backup, 3.0, 1.0)
    bias = np.where(cloudy, 0.6, np.where(mixed, 0.85, 1.0))
    lai = np.clip(lai_t * bias * (1 + noise * rng.normal(0, LAI_NOISE_REL, shape)), 0, 10)
    fpar = np.clip(fpar_t * bias + noise * rng.normal(0, FPAR_NOISE, shape), 0, 1)
    scf = np.select([cloudy, backup, lai_t > LAI_SATURATION], [3, 2, 1], 0)
    cloud = np.select([cloudy, mixed], [1, 2], 0)
    sensor = rng.integers(0, 2, size=shape)
    qc = (scf >= 2).astype(int) | (sensor << 1) | (cloud << 3) | (scf << 5)
    qc = np.where(absent, LAI_NOT_PRODUCED_QC, qc)
    lc = world.land_cover(lon, lat)
    biome = np.array([BIOME_1_4[n] for n in LC_NAMES])[lc]
    extra = (
        (biome.astype(int) << 7)
        | (cloudy.astype(int) << 5)
        | ((rng.uniform(size=shape) < 0.3).astype(int) << 3)
    )
    no_sd = backup | cloudy

    def dn(values, scale, fill=MCD15_FILL):
        return np.where(absent, fill, np.clip(np.round(values / scale), 0, 100)).astype(np.uint8)

    return {
        "Fpar_500m": dn(fpar, 0.01),
        "Lai_500m": dn(lai, 0.1),
        "FparLai_QC": qc.astype(np.uint8),
        "FparExtra_QC": np.where(absent, MCD15_FILL, extra).astype(np.uint8),
        "FparStdDev_500m": np.where(no_sd & ~absent, 248, dn(0.02 + 0.03 * fpar, 0.01)).astype(
            np.uint8
        ),
        "LaiStdDev_500m": np.where(no_sd & ~absent, 248, dn(0.1 + 0.12 * lai, 0.1)).astype(
            np.uint8
        ),
    }


def write_modis_lai(
    world: World, out: Path, rng: np.random.Generator, starts: list[datetime] | None = None
) -> list[Path]:
    """Write MCD15A2H 8-day 500 m LAI/FPAR tiles (:func:`_lai_layers`) for every 8-day
    composite of the world's years (or the composites starting on ``starts``); the rest of
    each 2400 x 2400 tile is fill (255)."""
    paths = []
    starts = eight_day_starts(world.preset.years) if starts is None else starts
    for td in _region_tiles(world.preset.bbox, MODIS_500M):
        for start in starts:
            end = _composite_end(start)
            layers = _lai_layers(world, td, start, end, rng)
            production = start + timedelta(days=15, hours=12, minutes=46, seconds=58)
            paths.append(td.write(out, MCD15A2H, layers, start, end, production))
    return paths


def _at(truth, lon, lat, obs_dates: np.ndarray) -> np.ndarray:
    """A truth function ``truth(lon, lat, dates)`` per pixel at its own observation date."""
    out = np.empty(lon.shape)
    for d in np.unique(obs_dates):
        sel = obs_dates == d
        out[sel] = truth(lon[sel], lat[sel], [d])[..., 0]
    return out


def _cloud_rank(rng: np.random.Generator, shape) -> np.ndarray:
    """Spatially correlated cloud field as ranks in [0, 1) (clouds where rank < fraction)."""
    field = gaussian_filter(rng.normal(size=shape), sigma=4)
    ranks = field.ravel().argsort().argsort().reshape(shape)
    return ranks / ranks.size


def write_towers(world: World, out: Path, truth: Path, rng: np.random.Generator) -> list[Path]:
    """FULLSET DD files and SitesList.csv for the towers, plus the true daily series."""
    sites = world.towers()
    dates = world.dates()
    paths = [write_site_list(out / "SitesList.csv", sites)]
    frames = []
    for site in sites.itertuples():
        daily = world.tower_fluxes(site.lon, site.lat, dates)
        paths.append(write_fullset_dd(out, site.site_id, daily, rng, lat=site.lat))
        frames.append(daily.assign(site_id=site.site_id).rename_axis("date").reset_index())
    sites.to_csv(truth / "towers.csv", index=False)
    pd.concat(frames).to_csv(truth / "tower_daily.csv", index=False, float_format="%.5f")
    return paths


def write_truth_phenology(world: World, truth: Path, step: float = 0.01) -> Path:
    """True land cover and double-logistic parameters on a lon/lat grid over the region."""
    w, s, e, n = world.preset.bbox
    lon = np.arange(w + step / 2, e, step)
    lat = np.arange(n - step / 2, s, -step)
    glon, glat = np.meshgrid(lon, lat)
    years = list(world.preset.years)
    params = [world.phenology(glon, glat, y) for y in years]
    ds = xr.Dataset(
        {
            k: (("year", "lat", "lon"), np.stack([p[k] for p in params]).astype("f4"))
            for k in params[0]
        },
        coords={"year": years, "lat": lat, "lon": lon},
    )
    ds["land_cover"] = (
        ("lat", "lon"),
        world.land_cover(glon, glat).astype("i1"),
        {"flag_values": list(range(len(LC_NAMES))), "flag_meanings": " ".join(LC_NAMES)},
    )
    ds.attrs["model"] = (
        "ndvi = vmin + (vmax - vmin) * (1/(1+exp(-k1 (doy - sos))) + 1/(1+exp(k2 (doy - eos))) - 1)"
    )
    path = truth / "phenology.nc"
    ds.to_netcdf(path)
    return path


def write_truth_disturbance(world: World, truth: Path, step: float = 0.01) -> Path:
    """True disturbance (:meth:`World.disturbance`) on a lon/lat grid over the region."""
    w, s, e, n = world.preset.bbox
    lon, lat = np.arange(w + step / 2, e, step), np.arange(n - step / 2, s, -step)
    d = world.disturbance(*np.meshgrid(lon, lat))
    ds = xr.Dataset(
        {
            k: (("lat", "lon"), v.astype("f4" if v.dtype.kind == "f" else "i1"))
            for k, v in d.items()
        },
        coords={"lat": lat, "lon": lon},
        attrs={"event_year": world.preset.event_year or 0, "kind_meanings": "none clearing fire"},
    )
    path = truth / "disturbance.nc"
    ds.to_netcdf(path)
    return path


#: The kinds of files a sample world counts in ``truth/world.json`` (``<kind>_files``).
FILE_KINDS = (
    "modis",
    "towers",
    "gosat",
    "sgli",
    "ahi",
    "meteo",
    "burned_area",
    "modis_lst",
    "ahi_ptree",
    "landcover",
    "modis_sr",
    "modis_lai",
    "chambers",
    "topdown",
    "dem",
    "ahi_fire",
)

#: Sources in the order they are handed to the writing processes: the longest first (CPU
#: seconds on the demo and disturbance presets), so two processes finish close together.
_SOURCE_ORDER = (
    "ahi",
    "modis_lst",
    "modis",
    "ahi_ptree",
    "burned_area",
    "modis_sr",
    "modis_lai",
    "sgli",
    "ahi_fire",
    "chambers",
    "gosat",
    "meteo",
    "topdown",
    "towers",
    "landcover",
    "dem",
)


def _source_tasks(sources) -> list[tuple[str, ...]]:
    """The preset's sources grouped into independent writing tasks, longest first: the
    top-down file is written after the regions that ``meteo`` writes, in the same task."""
    names = [s for s in _SOURCE_ORDER if s in sources]
    tasks = [(s,) for s in names if s not in ("meteo", "topdown")]
    if "meteo" in names:
        tasks.append(("meteo", "topdown") if "topdown" in names else ("meteo",))
    elif "topdown" in names:
        tasks.append(("topdown",))
    return tasks


def _log_to_stderr(level: int) -> None:
    """In a writing process: this module's messages at ``level`` to stderr, as the CLI's."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )


def _write_sources(names: tuple[str, ...], out_dir: str, preset: Preset, seed: int) -> dict:
    """Write the sources ``names`` of the ``preset`` world (``seed``) into ``out_dir``, in
    order; returns {file kind: [written paths]}. Runs in a worker process or inline."""
    out = Path(out_dir)
    world = World(preset, seed=seed)
    truth = out / "truth"
    # One random stream per source, so adding a source never changes the others' files.
    streams = np.random.SeedSequence(seed).spawn(8)
    files: dict[str, list] = {}
    for name in names:
        files[name] = _write_source(name, world, out, truth, streams, seed)
    return files


def _write_source(name: str, world: World, out: Path, truth: Path, streams, seed: int) -> list:
    """Write one source of the sample world; returns the written paths."""
    if name == "modis":
        log.info("writing MODIS MOD13A2 tiles")
        return write_modis_vi(world, out / "modis", np.random.default_rng(streams[0]))
    if name == "towers":
        log.info("writing FLUXNET FULLSET tower files")
        (out / "towers").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(streams[1])
        return write_towers(world, out / "towers", truth, rng)[1:]
    if name == "gosat":
        log.info("writing GOSAT L2 soundings (NIES HDF5, ACOS Lite NetCDF)")
        return write_gosat(world, out, np.random.default_rng(streams[2]))
    if name == "sgli":
        log.info("writing GCOM-C SGLI L2 land tiles and L1B granules")
        return write_sgli(world, out / "sgli", np.random.default_rng(streams[3]))
    if name == "ahi":
        log.info("writing Himawari AHI HSD segments and P-Tree NetCDF")
        return write_ahi(world, out / "ahi", np.random.default_rng(streams[4]))
    if name == "meteo":
        log.info("writing ERA5-like daily meteorology NetCDF and the regions GeoJSON")
        paths = write_meteo(world, out / "meteo")
        write_regions(world, out / "regions")
        return paths
    if name == "burned_area":
        log.info("writing MODIS MCD64A1 monthly burned-area tiles")
        rng = np.random.default_rng(streams[7])
        return write_modis_burned_area(world, out / "burned_area", rng)
    if name == "modis_lst":
        log.info("writing MODIS MOD11A2 8-day LST tiles")
        # Its own stream (a child of the seed), so the other sources' files do not change.
        rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
        return write_modis_lst(world, out / "modis", rng)
    if name == "ahi_ptree":
        log.info("writing Himawari AHI P-Tree NetCDF (02:30 UTC, every %d days)", PTREE_DAY_STEP)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
        return write_ptree(world, out / "ahi" / "ptree", rng, day_step=PTREE_DAY_STEP)
    if name == "landcover":
        log.info("writing MODIS MCD12Q1 annual land-cover tiles")
        return write_modis_landcover(world, out / "landcover")
    if name == "modis_sr":
        log.info("writing MODIS MOD09A1 8-day surface-reflectance tiles")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 15]))
        return write_modis_reflectance(world, out / "reflectance", rng)
    if name == "modis_lai":
        log.info("writing MODIS MCD15A2H 8-day LAI/FPAR tiles")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 17]))
        return write_modis_lai(world, out / "lai", rng)
    if name == "chambers":
        log.info("writing COSORE soil-chamber datasets")
        from fluxscape.sample.cosore_writer import write_chambers

        rng = np.random.default_rng(np.random.SeedSequence([seed, 19]))
        return write_chambers(world, out / "chambers", truth, rng)
    if name == "dem":
        log.info("writing a 30 arc-second elevation NetCDF (DEM)")
        from fluxscape.sample.dem_writer import write_dem

        return write_dem(world, out / "dem")
    if name == "topdown":
        log.info("writing a CarbonTracker-like monthly 1-degree top-down flux NetCDF")
        from fluxscape.sample.topdown_writer import write_topdown

        regions = out / "regions" / "prefectures.geojson"
        if not regions.exists():
            write_regions(world, out / "regions")
        return [write_topdown(world, out / "topdown", truth, regions)]
    if name == "ahi_fire":
        log.info("writing Himawari AHI B07/B14 fire scenes (hourly, 4 days)")
        from fluxscape.sample.fire_writer import write_fire_scenes

        rng = np.random.default_rng(np.random.SeedSequence([seed, 21]))
        return write_fire_scenes(world, out / "ahi_fire", rng, truth_dir=truth)
    raise ValueError(f"unknown sample source {name!r}")


def write_sample_world(
    out_dir: str | Path, preset: str = "demo", seed: int = 42, workers: int | None = None
) -> dict:
    """Write the sample world for ``preset`` into ``out_dir``; returns a summary dict
    (preset, bbox, years, file counts, towers). ``workers`` processes write the sources side
    by side (default: one per CPU; 1 writes them one after the other, in this process); the
    files are the same either way."""
    if preset not in PRESETS:
        from fluxscape.errors import FluxscapeError

        raise FluxscapeError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    out = Path(out_dir)
    world = World(PRESETS[preset], seed=seed)
    truth = out / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    files: dict[str, list] = {name: [] for name in FILE_KINDS}
    tasks = _source_tasks(world.preset.sources)
    n = min(len(tasks), os.cpu_count() or 1) if workers is None else min(len(tasks), workers)
    if n <= 1:
        for task in tasks:
            files.update(_write_sources(task, str(out), world.preset, seed))
    else:
        # Each source has its own random stream and writes its own files, so the sources are
        # written side by side in processes (spawned: the caller may hold threads) and give the
        # same files as one after the other. The longest-running sources are submitted first.
        log.info("writing %d sources in %d processes", len(tasks), n)
        context = multiprocessing.get_context("spawn")
        level = log.getEffectiveLevel()
        with ProcessPoolExecutor(
            n, mp_context=context, initializer=_log_to_stderr, initargs=(level,)
        ) as pool:
            futures = [
                pool.submit(_write_sources, task, str(out), world.preset, seed) for task in tasks
            ]
            for future in futures:
                files.update(future.result())
    write_truth_phenology(world, truth)
    write_truth_disturbance(world, truth)
    summary = {
        "preset": preset,
        "seed": seed,
        "bbox": list(world.preset.bbox),
        "years": list(world.preset.years),
        "sources": list(world.preset.sources),
        **{f"{k}_files" if k != "towers" else "tower_files": len(v) for k, v in files.items()},
        "towers": world.towers().to_dict(orient="records"),
        "events": world.events(),
        "generator": "fluxscape.sample",
    }
    (truth / "world.json").write_text(json.dumps(summary, indent=2))
    return summary
