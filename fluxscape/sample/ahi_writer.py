"""Sample-world Himawari AHI files: HSD segments (satpy ``ahi_hsd`` layout) and JAXA P-Tree
gridded NetCDF, written from the world's truth with clouds, sun-angle effects and noise.

What is written (``out_dir`` is the AHI folder of the sample world)::

    hsd/YYYY/MM/DD/hhmm/HS_H08_YYYYMMDD_hhmm_B{03,04,05,06,13}_R301_R{05,10,20}_S{ss}{tt}.DAT.bz2
    ptree/YYYYMM/DD/hh/NC_H08_YYYYMMDD_hhmm_R21_FLDK.{pixels:05d}_{lines:05d}.nc

* Only the FIRST year of the world's years, and in it only every :data:`DAY_STEP`-th day
  (4: 92 days) to keep the sample small, at :data:`HSD_TIMES` (00:00, 02:30 and 05:00 UTC:
  09:00, 11:30 and 14:00 in Japan; 02:40-02:50 is the daily house-keeping gap, so 02:30 is
  the observation closest to local noon at 138.5 E). P-Tree files on the same days, only at
  :data:`PTREE_TIMES` (02:30). Himawari-8 before 2022-12-13, Himawari-9 after.
* HSD: a target-area ("R301") observation whose window of the full-disk pixel lattice covers
  the region plus :data:`MARGIN_DEG`, cut into equal segments of :data:`SEGMENT_LINES_2KM`
  2-km lines (x2 at 1 km, x4 at 0.5 km), so that segment selection by region means something
  (the larger ``demo-4x`` region gets more segments). Bands B03 (0.5 km), B04 (1 km), B05, B06
  and B13 (2 km), bz2-compressed as JMA distributes them.
* P-Tree: the regional subset of the 0.02 degree full-disk lattice (longitudes 80 + 0.02 i,
  latitudes 60 - 0.02 j) around the region plus margin, all 21 variables.

Departures from real data, on purpose (real files are far too big to ship):

* real target areas (R301-R304) are one segment of about 1000 x 1000 km at 2.5-minute
  cadence; real full-disk segments are 550/1100/2200 lines x the full 5500/11000/22000
  columns. Here the window is the region plus margin and is split into segments;
* P-Tree full-disk files are 2401 x 2401 (5 km) or 6001 x 6001 (2 km) pixels; here a subset
  of the 2-km lattice (the name carries the subset's pixel/line numbers);
* calibration coefficients are plausible values, not those of a real file [hedged]; the
  block-5 "updated" VIS coefficients equal the nominal ones; no navigation corrections,
  no error lines; block 9 has the first and last line times.

The truth (what the tests and the pipeline must recover) is:

* clear-sky TOA reflectance = world surface reflectance x :func:`illumination_factor`
  (a sample-world stand-in for path radiance and BRDF: it grows with 1/cos(SZA) - 1 and
  more in the red than in the NIR, so NDVI from morning or winter scenes is biased low and
  a composite must prefer near-noon scenes or normalise the geometry);
* clear-sky B13 brightness temperature = :func:`clear_sky_bt13` in HSD files (the world's
  LST minus an atmospheric and time-of-day correction); in P-Tree files B13 and B15 =
  :func:`clear_sky_split_window` (emissivity from NDVI, and B15 colder than B13 by an amount
  that grows with the world's precipitable water :func:`water_vapour_cm`), so that a
  split-window algorithm recovers the LST;
* :func:`cloud_cover` (fraction 0-1 of each pixel under thick cloud, a smooth field that
  drifts with a daily wind; the daily cloud amount follows the world's cloudiness through
  ``World.weather``): cloudy pixels are bright (:data:`CLOUD_REFLECTANCE`) and cold
  (:func:`cloud_top_temperature`).
"""

from __future__ import annotations

import bz2
import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from fluxscape.readers.ahi_hsd import MJD_EPOCH
from fluxscape.sample.world import World

__all__ = [
    "CLOUD_REFLECTANCE",
    "DAY_STEP",
    "HSD_TIMES",
    "PTREE_TIMES",
    "SEGMENT_LINES_2KM",
    "TargetArea",
    "clear_sky_bt13",
    "clear_sky_split_window",
    "cloud_cover",
    "cloud_top_temperature",
    "illumination_factor",
    "ptree_grid",
    "tir_emissivity",
    "water_vapour_cm",
    "target_area_for",
    "write_ahi",
    "write_hsd_file",
    "write_ptree",
    "write_ptree_observation",
]

SUB_LON = 140.7
H_KM = 42164.0
REQ_KM = 6378.137
RPOL_KM = 6356.7523
H_M = (H_KM - REQ_KM) * 1000.0
#: Full-disk CFAC (= LFAC) and COFF (= LOFF) per resolution in metres (JMA HSD User's Guide).
FULL_DISK = {500: (81865099, 11000.5), 1000: (40932549, 5500.5), 2000: (20466275, 2750.5)}
MARGIN_DEG = 0.15
SEGMENT_LINES_2KM = 16
HSD_TIMES = ("00:00", "02:30", "05:00")
PTREE_TIMES = ("02:30",)
#: Every DAY_STEP-th day of the first year is written: 4 gives 92 days, 276 HSD observations
#: and 92 P-Tree files; for the demo preset about 21 s of CPU and 45 MB (58 MB on disk).
#: Every day would take about 85 s and 175 MB, over the sample world's budget.
DAY_STEP = 4
AREA = "R301"
H09_START = datetime(2022, 12, 13, 5, 0)  # Himawari-9 became the operational satellite

NOISE_REFLECTANCE = 0.002
NOISE_BT_K = 0.15
#: Cloud-top TOA reflectance (0-1) per band for a fully cloudy pixel (thick water/ice cloud);
#: the 2.3 um band is darker (ice and droplet absorption).
CLOUD_REFLECTANCE = {1: 0.62, 2: 0.62, 3: 0.62, 4: 0.64, 5: 0.48, 6: 0.30}
#: Strength of the illumination factor per band (see :func:`illumination_factor`).
ILLUMINATION_K = {1: 0.25, 2: 0.18, 3: 0.12, 4: 0.04, 5: 0.03, 6: 0.03}

#: Band number -> (world reflectance key or "bt", central wavelength um, resolution m).
HSD_BANDS = {
    3: ("red", 0.64, 500),
    4: ("nir", 0.86, 1000),
    5: ("swir16", 1.61, 2000),
    6: ("mir", 2.26, 2000),
    13: ("bt", 10.41, 2000),
}
#: P-Tree albedo bands 1-6 -> world reflectance key.
PTREE_ALBEDO = {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir16", 6: "mir"}
#: P-Tree tbb bands 7-16 -> offset (K) from the B13 clear-sky brightness temperature (a
#: plausible spectral shape: water-vapour bands 8-10 cold, 3.9 um warm in daytime). Clear-sky
#: B13 and B15 come from :func:`clear_sky_split_window` (B15 colder than B13 by a
#: water-vapour-dependent amount); the B15 offset here applies to cloud tops only.
PTREE_TBB = {
    7: 4.0,
    8: -45.0,
    9: -38.0,
    10: -30.0,
    11: -2.0,
    12: -25.0,
    13: 0.0,
    14: -0.5,
    15: -2.5,
    16: -12.0,
}

# Calibration [hedged: plausible, not from a real file]. VIS: 11-bit counts, 40 dark counts,
# full scale at reflectance 1.3; rad2albedo = pi / solar irradiance (W m-2 um-1).
VIS_BITS = 11
DARK_COUNTS = 40
VIS_FULL_SCALE = 1.3
SOLAR_IRRADIANCE = {1: 2018.0, 2: 1873.0, 3: 1611.0, 4: 971.0, 5: 241.0, 6: 77.1}
# IR (B13): 12-bit counts, radiance = count * gain + offset with a negative gain as in AHI.
IR_BITS = 12
IR_GAIN = -0.0044
IR_OFFSET = 18.0
IR_TB_COEFF = (-0.12, 1.00037, -1.2e-6)  # c0, c1, c2 of BT = c0 + c1 Te + c2 Te^2
#: IR band -> (valid bits, count-to-radiance gain, offset) [hedged: plausible, not from a real
#: file]. B07 (3.9 um) has 14-bit counts as in real AHI data; its range reaches about 30
#: W m-2 sr-1 um-1 (a 440 K brightness temperature; real AHI B07 saturates near 400 K) so that
#: fires are not clipped. B13 and B14 are 12-bit.
IR_CALIBRATION = {
    7: (14, -30.0 / 16383, 30.0),
    13: (IR_BITS, IR_GAIN, IR_OFFSET),
    14: (IR_BITS, -0.0046, 18.8),
}
LIGHT_SPEED = 2.99792458e8
PLANCK = 6.62606957e-34
BOLTZMANN = 1.3806488e-23


# --- geometry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetArea:
    """A window of the full-disk 2 km pixel lattice: ``line0``/``col0`` are the 0-based
    full-disk line/column of its north-west pixel; ``lines``/``columns`` its size in 2 km
    pixels (``lines`` = ``segments`` x ``segment_lines``)."""

    line0: int
    col0: int
    lines: int
    columns: int
    segment_lines: int

    @property
    def segments(self) -> int:
        return self.lines // self.segment_lines

    def projection(self, resolution: int) -> dict:
        """Block-3 values (CFAC, LFAC, COFF, LOFF) and the window size at ``resolution`` m:
        the full-disk offsets shifted by the window origin, so pixel edges nest across
        resolutions as in full-disk data."""
        f = 2000 // resolution
        cfac, coff = FULL_DISK[resolution]
        return {
            "CFAC": cfac,
            "LFAC": cfac,
            "COFF": coff - self.col0 * f,
            "LOFF": coff - self.line0 * f,
            "columns": self.columns * f,
            "lines": self.lines * f,
            "segment_lines": self.segment_lines * f,
        }

    def pixel_lonlat(self, resolution: int) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat (degrees) of every pixel centre at ``resolution`` m, shape (lines, cols)."""
        p = self.projection(resolution)
        lines = np.arange(1, p["lines"] + 1, dtype=float)
        cols = np.arange(1, p["columns"] + 1, dtype=float)
        gc, gl = np.meshgrid(cols, lines)
        x = np.radians((gc - p["COFF"]) * 2**16 / p["CFAC"]) * H_M
        y = np.radians((p["LOFF"] - gl) * 2**16 / p["LFAC"]) * H_M
        lon, lat = _geos_transformer(inverse=True).transform(x, y)
        return np.asarray(lon), np.asarray(lat)


@functools.lru_cache(maxsize=2)
def _geos_transformer(inverse: bool):
    from pyproj import Transformer

    geos = (
        f"+proj=geos +lon_0={SUB_LON} +h={H_M} +a={REQ_KM * 1000} +b={RPOL_KM * 1000} "
        "+units=m +no_defs"
    )
    if inverse:
        return Transformer.from_crs(geos, "EPSG:4326", always_xy=True)
    return Transformer.from_crs("EPSG:4326", geos, always_xy=True)


def target_area_for(
    bbox: Sequence[float],
    margin: float = MARGIN_DEG,
    segment_lines: int = SEGMENT_LINES_2KM,
) -> TargetArea:
    """The smallest 2 km full-disk window covering ``bbox`` [W, S, E, N] degrees plus
    ``margin``, with a whole number of ``segment_lines``-line segments."""
    w, s, e, n = bbox
    lon = np.linspace(w - margin, e + margin, 60)
    lat = np.linspace(s - margin, n + margin, 60)
    x, y = _geos_transformer(inverse=False).transform(*np.meshgrid(lon, lat))
    cfac, coff = FULL_DISK[2000]
    col = coff + np.degrees(np.asarray(x) / H_M) * cfac / 2**16  # 1-based, fractional
    line = coff - np.degrees(np.asarray(y) / H_M) * cfac / 2**16
    c0, c1 = int(np.floor(col.min() + 0.5)), int(np.floor(col.max() + 0.5))
    l0, l1 = int(np.floor(line.min() + 0.5)), int(np.floor(line.max() + 0.5))
    nseg = math.ceil((l1 - l0 + 1) / segment_lines)
    if nseg > 99:
        raise ValueError(f"region {bbox} needs {nseg} segments (> 99)")
    return TargetArea(l0 - 1, c0 - 1, nseg * segment_lines, c1 - c0 + 1, segment_lines)


# --- truth -------------------------------------------------------------------------------------


def _solar_cos_zenith(time: datetime, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    from pyorbital.astronomy import cos_zen

    return np.asarray(cos_zen(time, lon, lat), dtype=float)


def illumination_factor(band: int, cos_sza: np.ndarray) -> np.ndarray:
    """Sample-world ratio of clear-sky TOA reflectance to the world's surface reflectance:
    ``1 + k_band * (1 / cos(SZA) - 1)`` with k = 0.25, 0.18, 0.12, 0.04, 0.03, 0.03 for
    bands 1-6 (cos(SZA) floored at 0.05). Not physics: a stand-in for path radiance and
    BRDF that makes reflectance depend on the sun angle, more in the red than in the NIR."""
    mu = np.maximum(np.asarray(cos_sza, dtype=float), 0.05)
    return 1.0 + ILLUMINATION_K[band] * (1.0 / mu - 1.0)


def clear_sky_bt13(lst: np.ndarray, cos_sza: np.ndarray) -> np.ndarray:
    """Clear-sky B13 (10.4 um) brightness temperature (K) from the world's daytime land
    surface temperature: ``LST - 1.5 - 4 * (1 - cos(SZA))`` (water-vapour absorption and a
    cooler surface when the sun is low)."""
    return np.asarray(lst, float) - 1.5 - 4.0 * (1.0 - np.clip(cos_sza, 0.0, 1.0))


#: Sample-world precipitable water (cm) per hPa of surface vapour pressure (a rule of thumb:
#: about 4 cm at 25 hPa in a humid Japanese summer, under 1 cm in a dry winter).
WATER_VAPOUR_CM_PER_HPA = 0.16
#: B13 - B15 brightness-temperature difference (K) of a clear atmosphere: D = D0 + DW * W.
SPLIT_D0_K = 0.3
SPLIT_DW_K_PER_CM = 0.55
#: Split-window coefficient of the forward model: the B13 atmospheric deficit is GAMMA * D.
SPLIT_GAMMA = 1.8


def water_vapour_cm(world: World, lon: np.ndarray, lat: np.ndarray, dates) -> np.ndarray:
    """Precipitable water (cm) of the world's atmosphere, shape lon.shape + (len(dates),):
    :data:`WATER_VAPOUR_CM_PER_HPA` x the surface vapour pressure (hPa) of
    :meth:`World.meteo` (saturation vapour pressure minus VPD)."""
    met = world.meteo(lon, lat, dates)
    ta = met["TA_F"]
    es = 6.1078 * np.exp(17.27 * ta / (ta + 237.3))
    return WATER_VAPOUR_CM_PER_HPA * np.maximum(es - met["VPD_F"], 0.0)


def tir_emissivity(ndvi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample-world surface emissivities of AHI B13 (10.4 um) and B15 (12.4 um) from the
    world's NDVI (the same linear rule as the MOD11A2 sample's Emis_31/Emis_32): soil 0.965 /
    0.970, dense vegetation about 0.983 / 0.986."""
    v = np.clip(np.asarray(ndvi, float), 0.0, 1.0)
    return 0.965 + 0.02 * v, 0.970 + 0.018 * v


def clear_sky_split_window(
    lst: np.ndarray, cos_sza: np.ndarray, ndvi: np.ndarray, water_vapour: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky B13 (10.4 um) and B15 (12.4 um) brightness temperatures (K) of the P-Tree
    sample from the world's daytime LST, NDVI and precipitable water ``W`` (cm).

    Skin temperature at the scene = ``LST - 4 (1 - cos(SZA))`` (as :func:`clear_sky_bt13`:
    a cooler surface when the sun is low). The surface emits less than a black body
    (:func:`tir_emissivity`): ``E = 48 (1 - eps) - 75 (eps13 - eps15)`` K with eps the mean of
    the two bands. Water vapour absorbs more at 12.4 um than at 10.4 um: ``B13 - B15 = D =
    0.3 + 0.55 W`` K (0.85 K at 1 cm, 2.5 K at 4 cm) and the B13 deficit is ``1.8 D``. So
    ``B13 = skin - E - 1.8 D`` and ``B15 = B13 - D``: a linear stand-in for radiative transfer,
    chosen so that the Ulivieri et al. (1994) split-window form recovers the skin temperature
    from B13, B15 and the emissivities (the retrieval's errors are then the emissivity
    estimate, the noise and the clouds, as in real practice)."""
    skin = np.asarray(lst, float) - 4.0 * (1.0 - np.clip(cos_sza, 0.0, 1.0))
    e13, e15 = tir_emissivity(ndvi)
    deficit = 48.0 * (1.0 - (e13 + e15) / 2) - 75.0 * (e13 - e15)
    d = SPLIT_D0_K + SPLIT_DW_K_PER_CM * np.asarray(water_vapour, float)
    bt13 = skin - deficit - SPLIT_GAMMA * d
    return bt13, bt13 - d


def cloud_top_temperature(excess: np.ndarray) -> np.ndarray:
    """Cloud-top temperature (K) from the cloud field's excess over its threshold: 250 K at
    the cloud edge down to 225 K in the thickest cores."""
    return 250.0 - 25.0 * np.clip(np.asarray(excess, float) / 1.5, 0.0, 1.0)


_CLOUD_STEP = 0.02  # degrees, lattice of the cloud field
_CLOUD_SIGMA = 5.0  # lattice cells (about 10 km cloud cells)
_CLOUD_EDGE = 0.3  # field units over which a pixel goes from clear to fully cloudy


@functools.lru_cache(maxsize=4)
def _daily_cloud_amount(world: World, year: int) -> pd.Series:
    """Fraction of the region under cloud per day (0.05-0.9), from the world's cloudiness as
    seen in its shortwave radiation (``World.weather`` at the region centre)."""
    w, s, e, n = world.preset.bbox
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    met = world.weather((w + e) / 2, (s + n) / 2, days)
    cloud = (1 - met["SW_IN_F"] / (0.75 * met["SW_IN_POT"])) / 0.7
    return (0.05 + 0.85 * cloud.clip(0, 1)).rename("cloud_amount")


@functools.lru_cache(maxsize=8)
def _cloud_field(world: World, day: date) -> tuple[np.ndarray, float, float, float, float, float]:
    """The day's cloud field (zero mean, unit variance, smooth and periodic) on a lattice
    around the region, its origin, the threshold for the day's cloud amount and the wind
    (degrees per hour east and north)."""
    from scipy.ndimage import gaussian_filter
    from scipy.special import ndtri

    rng = np.random.default_rng([world.seed, 8128, day.toordinal()])
    u = 0.25 + 0.15 * rng.standard_normal()  # mostly westerly, degrees per hour
    v = 0.08 * rng.standard_normal()
    w, s, e, n = world.preset.bbox
    pad = MARGIN_DEG + 1.0
    lon0, lat0 = w - pad, s - pad
    nx = int((e - w + 2 * pad) / _CLOUD_STEP) + 1
    ny = int((n - s + 2 * pad) / _CLOUD_STEP) + 1
    field = gaussian_filter(rng.standard_normal((ny, nx)), _CLOUD_SIGMA, mode="wrap")
    field = (field - field.mean()) / field.std()
    amount = float(_daily_cloud_amount(world, day.year).loc[pd.Timestamp(day)])
    threshold = float(ndtri(1.0 - amount)) if 0 < amount < 1 else 9.0
    return field, lon0, lat0, threshold, u, v


def _cloud_excess(world: World, lon: np.ndarray, lat: np.ndarray, time) -> np.ndarray:
    """Cloud field minus the day's threshold at each point (positive = cloud). ``time`` is
    one UTC datetime or an array of numpy datetime64 broadcastable to ``lon`` (one day)."""
    from scipy.ndimage import map_coordinates

    t = np.asarray(time, dtype="datetime64[us]")
    day0 = t.min().astype("datetime64[D]")
    field, lon0, lat0, threshold, u, v = _cloud_field(world, day0.item())
    hours = (t - day0) / np.timedelta64(1, "h")
    col = (np.asarray(lon, float) - u * hours - lon0) / _CLOUD_STEP
    row = (np.asarray(lat, float) - v * hours - lat0) / _CLOUD_STEP
    col, row = np.broadcast_arrays(col, row)
    # The field is periodic (wrap-mode filter), so any drift stays smooth.
    value = map_coordinates(field, [row.ravel(), col.ravel()], order=1, mode="grid-wrap")
    return value.reshape(col.shape) - threshold


def cloud_cover(world: World, lon: np.ndarray, lat: np.ndarray, time) -> np.ndarray:
    """Fraction (0-1) of each point's pixel under thick cloud at ``time`` (a UTC datetime,
    or numpy datetime64 values of one day broadcastable to ``lon``).

    A smooth random field per day (seeded by the world's seed and the date, about 10 km
    cells) drifts with that day's wind; its threshold is set so that the cloudy share of
    the region follows the world's daily cloudiness; pixels go from clear to fully cloudy
    over a narrow band of the field (soft cloud edges)."""
    return np.clip(_cloud_excess(world, lon, lat, time) / _CLOUD_EDGE, 0.0, 1.0)


# --- HSD files ---------------------------------------------------------------------------------


def _mjd(t: datetime) -> float:
    return (t - MJD_EPOCH).total_seconds() / 86400.0


def _vis_calibration(band: int) -> dict:
    coeff = math.pi / SOLAR_IRRADIANCE[band]
    gain = VIS_FULL_SCALE / coeff / (2**VIS_BITS - 1 - DARK_COUNTS)
    return {"gain": gain, "offset": -DARK_COUNTS * gain, "coeff": coeff}


def reflectance_to_counts(band: int, reflectance: np.ndarray) -> np.ndarray:
    """11-bit counts whose satpy calibration gives ``reflectance`` (0-1):
    radiance = reflectance / coeff, count = (radiance - offset) / gain."""
    cal = _vis_calibration(band)
    counts = np.round((np.asarray(reflectance) / cal["coeff"] - cal["offset"]) / cal["gain"])
    return np.clip(counts, 0, 2**VIS_BITS - 1).astype("<u2")


def bt_to_counts(bt: np.ndarray, wavelength_um: float, band: int = 13) -> np.ndarray:
    """Counts (12-bit; 14-bit for B07) whose satpy calibration gives brightness temperature
    ``bt`` (K) in IR ``band`` (:data:`IR_CALIBRATION`): invert ``BT = c0 + c1 Te + c2 Te^2``
    for the effective temperature, Planck for the radiance (W m-2 sr-1 um-1), then the
    count-to-radiance line."""
    bits, gain, offset = IR_CALIBRATION[band]
    c0, c1, c2 = IR_TB_COEFF
    d = np.asarray(bt, float) - c0
    te = 2 * d / (c1 + np.sqrt(c1 * c1 + 4 * c2 * d))
    lam = wavelength_um * 1e-6
    a = PLANCK * LIGHT_SPEED / (BOLTZMANN * lam)
    rad = 2 * PLANCK * LIGHT_SPEED**2 / (1e6 * lam**5 * np.expm1(a / te))
    counts = np.round((rad - offset) / gain)
    return np.clip(counts, 1, 2**bits - 1).astype("<u2")


def platform_for(time: datetime) -> tuple[str, str]:
    """("H08", "Himawari-8") before Himawari-9 took over on 2022-12-13, else H09."""
    return ("H09", "Himawari-9") if time >= H09_START else ("H08", "Himawari-8")


def hsd_name(nominal: datetime, band: int, resolution: int, segment: int, total: int) -> str:
    """``HS_{H08|H09}_{YYYYMMDD}_{hhmm}_B{bb}_R301_R{05|10|20}_S{ss}{tt}.DAT`` (JMA naming)."""
    sat, _ = platform_for(nominal)
    return (
        f"HS_{sat}_{nominal:%Y%m%d_%H%M}_B{band:02d}_{AREA}_R{resolution // 100:02d}_"
        f"S{segment:02d}{total:02d}.DAT"
    )


def _header_dtype(band: int, lines: int, columns: int, n_times: int):
    from satpy.readers import ahi_hsd as s  # satpy's dtypes make the layout exact

    cal = s._VISCAL_INFO_TYPE if band <= 6 else s._IRCAL_INFO_TYPE
    return np.dtype(
        [
            ("block1", s._BASIC_INFO_TYPE),
            ("block2", s._DATA_INFO_TYPE),
            ("block3", s._PROJ_INFO_TYPE),
            ("block4", s._NAV_INFO_TYPE),
            ("block5", s._CAL_INFO_TYPE),
            ("calibration", cal),
            ("block6", s._INTER_CALIBRATION_INFO_TYPE),
            ("block7", s._SEGMENT_INFO_TYPE),
            ("block8", s._NAVIGATION_CORRECTION_INFO_TYPE),
            ("block9", s._OBSERVATION_TIME_INFO_TYPE),
            ("line_times", s._OBSERVATION_LINE_TIME_INFO_TYPE, (n_times,)),
            ("block10", s._ERROR_INFO_TYPE),
            ("block11", s._SPARE_TYPE),
            ("image", "<u2", (lines, columns)),
        ]
    )


def _header_lengths(dtype: np.dtype) -> dict[str, int]:
    f = dtype.fields
    return {
        "block1": f["block1"][0].itemsize,
        "block2": f["block2"][0].itemsize,
        "block3": f["block3"][0].itemsize,
        "block4": f["block4"][0].itemsize,
        "block5": f["block5"][0].itemsize + f["calibration"][0].itemsize,
        "block6": f["block6"][0].itemsize,
        "block7": f["block7"][0].itemsize,
        "block8": f["block8"][0].itemsize,
        "block9": f["block9"][0].itemsize + f["line_times"][0].itemsize,
        "block10": f["block10"][0].itemsize,
        "block11": f["block11"][0].itemsize,
    }


def write_hsd_file(
    path: Path,
    counts: np.ndarray,
    *,
    band: int,
    wavelength_um: float,
    nominal: datetime,
    obs_start: datetime,
    obs_end: datetime,
    projection: dict,
    segment: int,
    total_segments: int,
    first_line: int,
    compress: bool = True,
) -> Path:
    """Write one HSD segment file (all 11 header blocks, then ``counts`` as ``<u2``).

    ``projection`` holds CFAC, LFAC, COFF, LOFF for the observation area; ``first_line`` is
    the 1-based line of the segment's first row in the area. ``path`` is the ``.DAT`` name;
    with ``compress`` the file is ``path + '.bz2'``. Written under a temporary name and
    renamed. Returns the final path.
    """
    lines, columns = counts.shape
    dtype = _header_dtype(band, lines, columns, 2)
    rec = np.zeros(1, dtype)[0]
    lengths = _header_lengths(dtype)
    for number, (block, length) in enumerate(lengths.items(), start=1):
        rec[block]["hblock_number"] = number
        rec[block]["blocklength"] = length
    header_length = sum(lengths.values())
    _, satellite = platform_for(nominal)
    b1 = rec["block1"]
    b1["total_number_of_hblocks"] = 11
    b1["byte_order"] = 0  # little endian
    b1["satellite"] = satellite.encode()
    b1["proc_center_name"] = b"MSC"
    b1["observation_area"] = AREA.encode()
    b1["other_observation_info"] = b"OP"
    b1["observation_timeline"] = nominal.hour * 100 + nominal.minute
    b1["observation_start_time"] = _mjd(obs_start)
    b1["observation_end_time"] = _mjd(obs_end)
    b1["file_creation_time"] = _mjd(obs_end + timedelta(minutes=3))
    b1["total_header_length"] = header_length
    b1["total_data_length"] = lines * columns * 2
    b1["file_format_version"] = b"1.3"
    b1["file_name"] = path.name.encode()
    b2 = rec["block2"]
    b2["number_of_bits_per_pixel"] = 16
    b2["number_of_columns"] = columns
    b2["number_of_lines"] = lines
    b3 = rec["block3"]
    b3["sub_lon"] = SUB_LON
    for key in ("CFAC", "LFAC", "COFF", "LOFF"):
        b3[key] = projection[key]
    b3["distance_from_earth_center"] = H_KM
    b3["earth_equatorial_radius"] = REQ_KM
    b3["earth_polar_radius"] = RPOL_KM
    b3["req2_rpol2_req2"] = (REQ_KM**2 - RPOL_KM**2) / REQ_KM**2
    b3["rpol2_req2"] = RPOL_KM**2 / REQ_KM**2
    b3["req2_rpol2"] = REQ_KM**2 / RPOL_KM**2
    b3["coeff_for_sd"] = H_KM**2 - REQ_KM**2
    b3["resampling_types"] = 4
    b3["resampling_size"] = 4
    b4 = rec["block4"]
    b4["navigation_info_time"] = _mjd(obs_start)
    b4["SSP_longitude"] = 140.657
    b4["SSP_latitude"] = 0.004
    b4["distance_earth_center_to_satellite"] = 42165.2
    b4["nadir_longitude"] = 140.66
    b4["nadir_latitude"] = 0.02
    b5 = rec["block5"]
    b5["band_number"] = band
    b5["central_wave_length"] = wavelength_um
    b5["valid_number_of_bits_per_pixel"] = VIS_BITS if band <= 6 else IR_CALIBRATION[band][0]
    b5["count_value_error_pixels"] = 65535
    b5["count_value_outside_scan_pixels"] = 65534
    c = rec["calibration"]
    if band <= 6:
        cal = _vis_calibration(band)
        b5["gain_count2rad_conversion"] = cal["gain"]
        b5["offset_count2rad_conversion"] = cal["offset"]
        c["coeff_rad2albedo_conversion"] = cal["coeff"]
        c["coeff_update_time"] = _mjd(nominal - timedelta(days=1))
        c["cali_gain_count2rad_conversion"] = cal["gain"]
        c["cali_offset_count2rad_conversion"] = cal["offset"]
    else:
        _, b5["gain_count2rad_conversion"], b5["offset_count2rad_conversion"] = IR_CALIBRATION[band]
        c["c0_rad2tb_conversion"], c["c1_rad2tb_conversion"], c["c2_rad2tb_conversion"] = (
            IR_TB_COEFF
        )
        c["speed_of_light"] = LIGHT_SPEED
        c["planck_constant"] = PLANCK
        c["boltzmann_constant"] = BOLTZMANN
    b7 = rec["block7"]
    b7["total_number_of_segments"] = total_segments
    b7["segment_sequence_number"] = segment
    b7["first_line_number_of_image_segment"] = first_line
    b8 = rec["block8"]
    b8["center_column_of_rotation"] = projection["COFF"]
    b8["center_line_of_rotation"] = projection["LOFF"]
    rec["block9"]["number_of_observation_times"] = 2
    rec["line_times"]["line_number"] = [first_line, first_line + lines - 1]
    rec["line_times"]["observation_time"] = [_mjd(obs_start), _mjd(obs_end)]
    rec["image"] = counts
    payload = rec.tobytes()
    final = path.with_name(path.name + ".bz2") if compress else path
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(final.name + ".part")
    tmp.write_bytes(bz2.compress(payload, 9) if compress else payload)
    os.replace(tmp, final)
    return final


# --- writing the observations -------------------------------------------------------------------


@dataclass
class _Grid:
    """Pixel centres of one resolution of the target area and their static truth."""

    resolution: int
    lon: np.ndarray
    lat: np.ndarray
    brightness: np.ndarray


def _observation_window(nominal: datetime) -> tuple[datetime, datetime]:
    """Start/end of the target-area scan inside its 2.5-minute slot (about 30 s)."""
    return nominal + timedelta(seconds=8), nominal + timedelta(seconds=38)


def _obs_times(day: date, times: Sequence[str]) -> list[datetime]:
    out = []
    for t in times:
        hh, mm = (int(v) for v in t.split(":"))
        out.append(datetime(day.year, day.month, day.day, hh, mm))
    return out


def _toa_reflectance(
    surface: np.ndarray, band: int, mu: np.ndarray, cover: np.ndarray, rng
) -> np.ndarray:
    clear = surface * illumination_factor(band, mu)
    value = (1 - cover) * clear + cover * CLOUD_REFLECTANCE[band]
    return np.clip(value + rng.normal(0.0, NOISE_REFLECTANCE, value.shape), 0.0, VIS_FULL_SCALE)


def _bt13(lst, mu, excess, cover, rng) -> np.ndarray:
    value = (1 - cover) * clear_sky_bt13(lst, mu) + cover * cloud_top_temperature(excess)
    return value + rng.normal(0.0, NOISE_BT_K, value.shape)


def _write_hsd_observation(
    world: World,
    area: TargetArea,
    grids: dict[int, _Grid],
    nominal: datetime,
    truth: dict,
    root: Path,
    rng: np.random.Generator,
) -> list[Path]:
    """All bands and segments of one observation."""
    start, end = _observation_window(nominal)
    mid = start + (end - start) / 2
    folder_parts = (f"{nominal:%Y}", f"{nominal:%m}", f"{nominal:%d}", f"{nominal:%H%M}")
    paths = []
    geometry = {}
    for res, g in grids.items():
        excess = _cloud_excess(world, g.lon, g.lat, mid)
        geometry[res] = (_solar_cos_zenith(mid, g.lon, g.lat), excess)
    for band, (key, wavelength, res) in HSD_BANDS.items():
        mu, excess = geometry[res]
        cover = np.clip(excess / _CLOUD_EDGE, 0.0, 1.0)
        if key == "bt":
            counts = bt_to_counts(_bt13(truth[res]["lst"], mu, excess, cover, rng), wavelength)
        else:
            refl = _toa_reflectance(truth[res][key], band, mu, cover, rng)
            counts = reflectance_to_counts(band, refl)
        proj = area.projection(res)
        nseg, seg_lines = area.segments, proj["segment_lines"]
        for k in range(nseg):
            rows = slice(k * seg_lines, (k + 1) * seg_lines)
            name = hsd_name(nominal, band, res, k + 1, nseg)
            paths.append(
                write_hsd_file(
                    root.joinpath(*folder_parts, name),
                    counts[rows],
                    band=band,
                    wavelength_um=wavelength,
                    nominal=nominal,
                    obs_start=start,
                    obs_end=end,
                    projection=proj,
                    segment=k + 1,
                    total_segments=nseg,
                    first_line=k * seg_lines + 1,
                )
            )
    return paths


def _daily_truth(world: World, grids: dict[int, _Grid], days: list[date]) -> dict:
    """Surface reflectances per band and (2 km) LST for each day: {day: {res: {key: arr}}}."""
    stamps = pd.DatetimeIndex([pd.Timestamp(d) for d in days])
    out: dict = {d: {} for d in days}
    for res, g in grids.items():
        keys = {key for key, _, r in HSD_BANDS.values() if r == res and key != "bt"}
        if res == 2000:
            keys |= set(PTREE_ALBEDO.values())
        ndvi = world.ndvi(g.lon, g.lat, stamps)
        lst = world.land_surface_temperature(g.lon, g.lat, stamps) if res == 2000 else None
        for i, d in enumerate(days):
            refl = world.reflectance(ndvi[..., i], g.brightness)
            out[d][res] = {k: refl[k] for k in keys}
            if lst is not None:
                out[d][res]["lst"] = lst[..., i]
    return out


def write_ahi(
    world: World,
    out_dir: str | Path,
    rng: np.random.Generator,
    *,
    days: Sequence[date | str] | None = None,
    day_step: int = DAY_STEP,
    hsd_times: Sequence[str] = HSD_TIMES,
    ptree_times: Sequence[str] = PTREE_TIMES,
) -> list[Path]:
    """Write the AHI sample files for ``world`` into ``out_dir`` (``hsd/`` and ``ptree/``).

    ``days`` defaults to every ``day_step``-th day of the world's FIRST year; ``hsd_times``
    and ``ptree_times`` are UTC "hh:mm" observation times. Deterministic given ``rng``
    (noise) and the world's seed (clouds). Returns the written paths (HSD then P-Tree,
    in time order).
    """
    out = Path(out_dir)
    year = min(world.preset.years)
    if days is None:
        all_days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")[::day_step]
        day_list = [d.date() for d in all_days]
    else:
        day_list = [pd.Timestamp(d).date() for d in days]
    area = target_area_for(world.preset.bbox)
    grids = {}
    for res in (500, 1000, 2000):
        lon, lat = area.pixel_lonlat(res)
        grids[res] = _Grid(res, lon, lat, world.brightness(lon, lat))
    pgrid = ptree_grid(world.preset.bbox)
    paths: list[Path] = []
    ptree_paths: list[Path] = []
    for chunk in _chunks(day_list, 31):
        truth = _daily_truth(world, grids, chunk)
        ptruth = _ptree_truth(world, pgrid, chunk) if ptree_times else {}
        for day in chunk:
            for nominal in _obs_times(day, hsd_times):
                paths += _write_hsd_observation(
                    world, area, grids, nominal, truth[day], out / "hsd", rng
                )
            for nominal in _obs_times(day, ptree_times):
                ptree_paths.append(
                    write_ptree_observation(world, pgrid, nominal, ptruth[day], out / "ptree", rng)
                )
    return paths + ptree_paths


def write_ptree(
    world: World,
    out_dir: str | Path,
    rng: np.random.Generator,
    *,
    day_step: int = 1,
    times: Sequence[str] = PTREE_TIMES,
) -> list[Path]:
    """P-Tree NetCDF files only (no HSD) for every ``day_step``-th day of ALL the world's
    years at the UTC ``times`` ("hh:mm"), into ``out_dir/YYYYMM/DD/hh/``: the light AHI
    source of presets that need a long record (the ``disturbance`` preset's LST). Returns
    the paths in time order; deterministic given ``rng`` and the world's seed."""
    years = world.preset.years
    days = pd.date_range(f"{min(years)}-01-01", f"{max(years)}-12-31", freq="D")[::day_step]
    grid = ptree_grid(world.preset.bbox)
    paths: list[Path] = []
    for chunk in _chunks([d.date() for d in days], 61):
        truth = _ptree_truth(world, grid, chunk)
        for day in chunk:
            for nominal in _obs_times(day, times):
                paths.append(
                    write_ptree_observation(world, grid, nominal, truth[day], Path(out_dir), rng)
                )
    return paths


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- P-Tree NetCDF -----------------------------------------------------------------------------

PTREE_STEP = 0.02
PTREE_LON0 = 80.0
PTREE_LAT0 = 60.0


@dataclass(frozen=True)
class PtreeGrid:
    """A regional subset of the P-Tree 0.02 degree full-disk lattice: 1-D pixel-centre
    longitudes (west to east) and latitudes (north to south), degrees."""

    lon: np.ndarray
    lat: np.ndarray


def ptree_grid(bbox: Sequence[float], margin: float = MARGIN_DEG) -> PtreeGrid:
    """Lattice points ``80 + 0.02 i`` E and ``60 - 0.02 j`` N covering bbox plus margin."""
    w, s, e, n = bbox
    i0 = math.floor((w - margin - PTREE_LON0) / PTREE_STEP)
    i1 = math.ceil((e + margin - PTREE_LON0) / PTREE_STEP)
    j0 = math.floor((PTREE_LAT0 - (n + margin)) / PTREE_STEP)
    j1 = math.ceil((PTREE_LAT0 - (s - margin)) / PTREE_STEP)
    lon = np.round(PTREE_LON0 + PTREE_STEP * np.arange(i0, i1 + 1), 6)
    lat = np.round(PTREE_LAT0 - PTREE_STEP * np.arange(j0, j1 + 1), 6)
    return PtreeGrid(lon, lat)


def ptree_name(nominal: datetime, pixels: int, lines: int) -> str:
    """``NC_H08_YYYYMMDD_hhmm_R21_FLDK.{pixels:05d}_{lines:05d}.nc`` (JAXA P-Tree naming)."""
    sat, _ = platform_for(nominal)
    return f"NC_{sat}_{nominal:%Y%m%d_%H%M}_R21_FLDK.{pixels:05d}_{lines:05d}.nc"


def ptree_scan_offset_minutes(lat: np.ndarray) -> np.ndarray:
    """Minutes after the nominal time at which the full-disk scan (north to south, about
    8 minutes for 60 N..60 S, starting a minute late) reaches latitude ``lat``."""
    return 1.0 + 8.0 * (60.0 - np.asarray(lat, float)) / 120.0


def _ptree_truth(world: World, grid: PtreeGrid, days: list[date]) -> dict:
    """Per day: surface reflectance of the albedo bands, LST (K), NDVI and precipitable water
    (cm) on the grid."""
    glon, glat = np.meshgrid(grid.lon, grid.lat)
    stamps = pd.DatetimeIndex([pd.Timestamp(d) for d in days])
    ndvi = world.ndvi(glon, glat, stamps)
    lst = world.land_surface_temperature(glon, glat, stamps)
    wv = water_vapour_cm(world, glon, glat, stamps)
    bright = world.brightness(glon, glat)
    out = {}
    for i, d in enumerate(days):
        refl = world.reflectance(ndvi[..., i], bright)
        out[d] = {k: refl[k] for k in PTREE_ALBEDO.values()} | {
            "lst": lst[..., i],
            "ndvi": ndvi[..., i],
            "water_vapour": wv[..., i],
        }
    return out


def _satellite_angles(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Satellite zenith and azimuth (degrees, azimuth clockwise from north) of the
    geostationary satellite at SUB_LON seen from each point (spherical Earth)."""
    phi, dlon = np.radians(lat), np.radians(lon - SUB_LON)
    cos_gamma = np.cos(phi) * np.cos(dlon)  # cosine of the central angle to the SSP
    ratio = REQ_KM / H_KM
    sin_gamma = np.sqrt(1 - cos_gamma**2)
    zenith = np.degrees(np.arctan2(sin_gamma, cos_gamma - ratio))
    azimuth = np.degrees(np.arctan2(-np.sin(dlon), -np.sin(phi) * np.cos(dlon))) % 360.0
    return zenith, azimuth


_PTREE_SCALE = {
    "albedo": (1e-4, 0.0, "1"),
    "tbb": (0.01, 273.15, "K"),
    "angle": (0.01, 0.0, "degree"),
}


def write_ptree_observation(
    world: World, grid: PtreeGrid, nominal: datetime, truth: dict, root: Path, rng
) -> Path:
    """One P-Tree NetCDF file for ``nominal`` (UTC) on ``grid``; returns its path
    (``root/YYYYMM/DD/hh/NC_...nc``), written under a temporary name and renamed."""
    import netCDF4
    from pyorbital.astronomy import get_alt_az

    glon, glat = np.meshgrid(grid.lon, grid.lat)
    minutes = ptree_scan_offset_minutes(glat)
    hour = nominal.hour + (nominal.minute + minutes) / 60.0
    when = np.datetime64(nominal, "us") + (minutes * 60e6).astype("timedelta64[us]")
    alt, azi = get_alt_az(when, glon, glat)
    soz = 90.0 - np.degrees(alt)
    soa = np.degrees(azi) % 360.0
    excess = _cloud_excess(world, glon, glat, when)
    mu = np.cos(np.radians(soz))
    cover = np.clip(excess / _CLOUD_EDGE, 0.0, 1.0)
    saz, saa = _satellite_angles(glon, glat)
    variables: dict[str, tuple[str, np.ndarray, str]] = {}
    for band, key in PTREE_ALBEDO.items():
        refl = _toa_reflectance(truth[key], band, mu, cover, rng)
        variables[f"albedo_{band:02d}"] = (
            "albedo",
            refl * mu,
            f"albedo (reflectance * cos(SOZ)) of band {band:02d}",
        )
    clear13, clear15 = clear_sky_split_window(
        truth["lst"], mu, truth["ndvi"], truth["water_vapour"]
    )
    top = cloud_top_temperature(excess)
    for band, offset in PTREE_TBB.items():
        clear = clear15 if band == 15 else clear13 + offset
        bt = (1 - cover) * clear + cover * (top + 0.2 * offset)
        bt = bt + rng.normal(0.0, NOISE_BT_K, bt.shape)
        variables[f"tbb_{band:02d}"] = ("tbb", bt, f"brightness temperature of band {band:02d}")
    variables["SAZ"] = ("angle", saz, "satellite zenith angle")
    variables["SAA"] = ("angle", saa, "satellite azimuth angle")
    variables["SOZ"] = ("angle", soz, "solar zenith angle")
    variables["SOA"] = ("angle", soa, "solar azimuth angle")
    ny, nx = glon.shape
    folder = root / f"{nominal:%Y%m}" / f"{nominal:%d}" / f"{nominal:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / ptree_name(nominal, nx, ny)
    tmp = final.with_name(final.name + ".part")
    _, satellite = platform_for(nominal)
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
        nc.createDimension("latitude", ny)
        nc.createDimension("longitude", nx)
        nc.createDimension("time", 1)
        v = nc.createVariable("latitude", "f4", ("latitude",))
        v[:] = grid.lat
        v.units = "degrees_north"
        v.long_name = "latitude"
        v = nc.createVariable("longitude", "f4", ("longitude",))
        v[:] = grid.lon
        v.units = "degrees_east"
        v.long_name = "longitude"
        t0, t1 = nominal + timedelta(minutes=1), nominal + timedelta(minutes=9, seconds=30)
        for name, value in (("start_time", t0), ("end_time", t1)):
            v = nc.createVariable(name, "f8", ("time",))
            v.units = "days since 1858-11-17 0:0:0"
            v.long_name = f"observation {name.split('_')[0]} time (MJD)"
            v[:] = [_mjd(value)]
        for name, (kind, values, long_name) in variables.items():
            scale, offset, units = _PTREE_SCALE[kind]
            v = nc.createVariable(
                name,
                "i2",
                ("latitude", "longitude"),
                zlib=True,
                complevel=4,
                shuffle=True,
                fill_value=np.int16(-32768),
            )
            v.scale_factor = np.float32(scale)
            v.add_offset = np.float32(offset)
            v.units = units
            v.long_name = long_name
            v.valid_min = np.int16(-32767)
            v.valid_max = np.int16(32767)
            v[:] = np.ma.masked_invalid(values)
        v = nc.createVariable("Hour", "f4", ("latitude", "longitude"), zlib=True, complevel=4)
        v.units = "hour"
        v.long_name = "observation hour (UT)"
        v[:] = hour.astype(np.float32)
        nc.title = f"{satellite} AHI equal latitude-longitude map data (sample world)"
        nc.source = "fluxscape sample world, JAXA P-Tree Himawari L1 gridded data layout"
        nc.upper_left_latitude = float(grid.lat[0])
        nc.upper_left_longitude = float(grid.lon[0])
        nc.grid_interval = PTREE_STEP
        nc.pixel_number = nx
        nc.line_number = ny
    os.replace(tmp, final)
    return final
