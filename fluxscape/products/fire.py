"""Active fires from a geostationary 3.9 um / 11 um pair: the contextual test of the MODIS
MOD14 family applied to Himawari AHI B07 (3.9 um) and B14 (11.2 um).

Pure array functions on one scene, ``(y, x)`` arrays: brightness temperatures in K, angles
in degrees. The algorithm and its thresholds (each cited beside its constant below):

* Giglio, L., Descloitres, J., Justice, C. O., Kaufman, Y. J. (2003). An enhanced contextual
  fire detection algorithm for MODIS. Remote Sensing of Environment 87, 273-282
  (MOD14 Collection 4/5: potential fires, absolute test, background window, contextual tests,
  sun-glint rejection, confidence).
* Giglio, L., Schroeder, W., Justice, C. O. (2016). The collection 6 MODIS active fire
  detection algorithm and fire products. Remote Sensing of Environment 178, 31-41.
* Xu, W., Wooster, M. J., Kaneko, T., He, J., Zhang, T., Fisher, D. (2017). Major advances in
  geostationary fire radiative power (FRP) retrieval over Asia and Australia stemming from
  use of Himarawi-8 AHI. Remote Sensing of Environment 193, 138-149 (the same contextual
  family on AHI B07/B14; the JAXA Himawari wildfire product follows it too).
* Wooster, M. J., Zhukov, B., Oertel, D. (2003). Fire radiative energy for quantitative study
  of biomass burning: derivation from the BIRD experimental satellite and comparison to MODIS
  fire products. Remote Sensing of Environment 86, 83-107 (the MIR-radiance FRP method).

Departures, on purpose: the test runs on the workflow grid (nearest native pixel, so choose a
resolution near the native 2 km); the 11 um band is AHI B14 (11.2 um) where MOD14 uses MODIS
band 31 (11 um) for T11 and band 32 (12 um) for the cloud test; with no land/water mask from
the source, sun glint is rejected by angle alone (:data:`GLINT_MAX_DEG`, MOD14's widest glint
limit, applied to every pixel: fires within it are not detected and are reported as
``glint``); the background mean absolute deviations have a floor (:data:`MAD_FLOOR_K`, ours)
so that a very uniform background does not make noise a fire.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fluxscape.radiometry import (
    STEFAN_BOLTZMANN,
    brightness_temperature,
    glint_angle,
    planck_radiance,
    view_geometry,
)

__all__ = [
    "FireResult",
    "brightness_temperature",
    "detect_fires",
    "frp_coefficient",
    "frp_mw",
    "glint_angle",
    "pixel_area_m2",
    "planck_radiance",
    "view_geometry",
]

# --- thresholds (Giglio et al. 2003, section 2; the C6 paper keeps them for these tests) ---

#: Day when the solar zenith angle is below this (degrees; MOD14: 85).
DAY_SZA_DEG = 85.0
#: Potential fire: T4 above (K), day / night (Giglio 2003: 310 / 305).
POTENTIAL_T4_K = (310.0, 305.0)
#: Potential fire: dT = T4 - T11 above (K), day / night (Giglio 2003: 10 / 10).
POTENTIAL_DT_K = (10.0, 10.0)
#: Absolute fire: T4 above (K), day / night (Giglio 2003: 360 / 320).
ABSOLUTE_T4_K = (360.0, 320.0)
#: Cloud: T11 below this (K) (Giglio 2003 uses T12 < 265 K).
CLOUD_T11_K = 265.0
#: Background fire (left out of the background statistics): T4 > 325 K and dT > 20 K by day,
#: T4 > 310 K and dT > 10 K by night (Giglio 2003).
BACKGROUND_FIRE = {"day": (325.0, 20.0), "night": (310.0, 10.0)}
#: Background windows: 3x3 up to 21x21 until >= 25 % of the window and >= 8 pixels are valid.
WINDOWS = tuple(range(3, 23, 2))
MIN_VALID_SHARE = 0.25
MIN_VALID = 8
#: Contextual tests: dT > mean + 3.5 MAD, dT > mean + 6 K, T4 > mean + 3 MAD,
#: day also T11 > mean11 + MAD11 - 4 K or the background fires' T4 MAD > 5 K.
K_DT, DT_MIN_K, K_T4, T11_MARGIN_K, BG_FIRE_MAD_K = 3.5, 6.0, 3.0, 4.0, 5.0
#: Floor of the background MADs (K): ours, about twice the sensor noise.
MAD_FLOOR_K = 0.5
#: Sun glint: reject candidates whose glint angle is below this (degrees). MOD14 rejects below
#: 2 deg always, below 8 deg with bright visible reflectances and below 12 deg next to water.
GLINT_MAX_DEG = 12.0
#: Confidence classes (MOD14 fire mask 7, 8, 9): low below 0.3, nominal to 0.8, high above.
CONFIDENCE_CLASSES = (0.3, 0.8)
#: MOD14 fire-mask codes used here.
MASK = {
    "missing": 0,
    "cloud": 4,
    "land": 5,
    "glint": 6,  # MOD14's "unknown": no decision could be made (here: sun glint)
    "low": 7,
    "nominal": 8,
    "high": 9,
}

# --- FRP (Wooster et al. 2003) ------------------------------------------------------------------


def frp_coefficient(wavelength_um: float, t_range=(650.0, 1350.0)) -> float:
    """The ``a`` of Wooster et al. (2003): least-squares fit of ``L(T) = a T^4`` to the Planck
    radiance at ``wavelength_um`` over fire temperatures ``t_range`` (K), W m-2 sr-1 um-1 K-4.
    MODIS 3.96 um gives 3.0e-9 as in the paper; AHI B07 (3.89 um) about 2.9e-9."""
    t = np.linspace(*t_range, 701)
    x = t**4
    return float(np.sum(x * planck_radiance(t, wavelength_um)) / np.sum(x * x))


#: Central wavelength (um) of AHI B07 (JMA: 3.8853 um for Himawari-8).
AHI_B07_UM = 3.8853
#: Central wavelength (um) of AHI B14 (JMA: 11.2392 um for Himawari-8).
AHI_B14_UM = 11.2392


def frp_mw(t4, t4_background, pixel_area_m2, wavelength_um: float = AHI_B07_UM) -> np.ndarray:
    """Fire radiative power (MW) by the MIR-radiance method (Wooster et al. 2003):
    ``FRP = A sigma / a (L4 - L4_bg)`` with ``A`` the pixel area (m2), ``L4`` the pixel's and
    ``L4_bg`` the background's 3.9 um radiance (from the brightness temperatures, K) and ``a``
    :func:`frp_coefficient`. Valid for fires between about 650 and 1350 K."""
    a = frp_coefficient(wavelength_um)
    dl = planck_radiance(t4, wavelength_um) - planck_radiance(t4_background, wavelength_um)
    return np.asarray(pixel_area_m2, float) * STEFAN_BOLTZMANN / a * dl * 1e-6


def pixel_area_m2(vza, nadir_km: float = 2.0) -> np.ndarray:
    """Ground area (m2) of a geostationary pixel of ``nadir_km`` at the sub-satellite point
    seen at view zenith ``vza`` (degrees): ``(nadir * r / h)^2 / cos(vza)`` with the slant
    range ``r`` (spherical Earth, h = 35 786 km). About 4 km2 at nadir, 7 km2 at 40 deg."""
    re, h = 6378.137, 35786.0
    v = np.radians(np.asarray(vza, float))
    # slant range from the view zenith (law of sines in the Earth-centre triangle)
    gamma = np.arcsin(re / (re + h) * np.sin(v))
    r = re * np.sin(v - gamma) / np.maximum(np.sin(gamma), 1e-12)
    r = np.where(v > 1e-6, r, h)
    return (nadir_km * 1e3 * r / h) ** 2 / np.cos(v)


# --- detection ----------------------------------------------------------------------------------


@dataclass
class FireResult:
    """One scene's detection: ``mask`` (uint8 MOD14 codes, :data:`MASK`), ``confidence``
    (0-1, NaN off fire), ``frp`` (MW, NaN off fire), ``dt`` (T4 - T11, K) and the background
    means ``t4_bg``/``dt_bg`` (K, NaN off candidates); all ``(y, x)``."""

    mask: np.ndarray
    confidence: np.ndarray
    frp: np.ndarray
    dt: np.ndarray
    t4_bg: np.ndarray
    dt_bg: np.ndarray

    @property
    def fire(self) -> np.ndarray:
        """Boolean: a fire of any confidence."""
        return self.mask >= MASK["low"]


def _ramp(x, lo: float, hi: float) -> np.ndarray:
    """Giglio et al. (2003) eq. 7: 0 below ``lo``, 1 above ``hi``, linear between."""
    return np.clip((np.asarray(x, float) - lo) / (hi - lo), 0.0, 1.0)


def _windows(a: np.ndarray, rows, cols, size: int) -> np.ndarray:
    """``size`` x ``size`` windows of ``a`` around (rows, cols), padded with NaN."""
    h = size // 2
    padded = np.pad(a, h, constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    return view[rows, cols]


def _mad(values: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Mean absolute deviation over the last two axes, NaN ignored (NaN if all are)."""
    dev = np.abs(values - mean[:, None, None])
    n = np.isfinite(dev).sum(axis=(1, 2))
    total = np.nansum(dev, axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def detect_fires(
    t4,
    t11,
    sza,
    glint,
    pixel_area=None,
    *,
    glint_max_deg: float = GLINT_MAX_DEG,
    t4_wavelength_um: float = AHI_B07_UM,
) -> FireResult:
    """The contextual active-fire test on one scene (see the module docstring).

    ``t4``/``t11``: 3.9 um and 11 um brightness temperatures (K, NaN: no observation);
    ``sza``: solar zenith (deg); ``glint``: glint angle (deg, :func:`glint_angle`);
    ``pixel_area``: m2 per pixel for FRP (None: FRP is NaN). Steps: cloud mask (T11 <
    265 K); potential fires (T4 and dT thresholds, day or night); absolute fires; for the
    others, background statistics of valid neighbours (cloud-free, not a background fire) in
    the smallest window of 3x3..21x21 with >= 25 % and >= 8 valid pixels, then the
    contextual tests; candidates within ``glint_max_deg`` of the specular direction are
    rejected (mask 6). Confidence: the geometric mean of Giglio et al. (2003) C1-C4 (day;
    C1-C3 by night; C5, water, is left out: no water mask), classes as MOD14."""
    t4 = np.asarray(t4, float)
    t11 = np.asarray(t11, float)
    sza = np.broadcast_to(np.asarray(sza, float), t4.shape)
    glint = np.broadcast_to(np.asarray(glint, float), t4.shape)
    shape = t4.shape
    observed = np.isfinite(t4) & np.isfinite(t11)
    day = sza < DAY_SZA_DEG
    with np.errstate(invalid="ignore"):
        dt = t4 - t11
        cloud = observed & (t11 < CLOUD_T11_K)
        clear = observed & ~cloud
        t4_pot = np.where(day, POTENTIAL_T4_K[0], POTENTIAL_T4_K[1])
        dt_pot = np.where(day, POTENTIAL_DT_K[0], POTENTIAL_DT_K[1])
        potential = clear & (t4 > t4_pot) & (dt > dt_pot)
        absolute = potential & (t4 > np.where(day, ABSOLUTE_T4_K[0], ABSOLUTE_T4_K[1]))
        bg_t4 = np.where(day, BACKGROUND_FIRE["day"][0], BACKGROUND_FIRE["night"][0])
        bg_dt = np.where(day, BACKGROUND_FIRE["day"][1], BACKGROUND_FIRE["night"][1])
        bg_fire = clear & (t4 > bg_t4) & (dt > bg_dt)
    valid_bg = clear & ~bg_fire

    mask = np.full(shape, MASK["land"], np.uint8)
    mask[~observed] = MASK["missing"]
    mask[cloud] = MASK["cloud"]
    confidence = np.full(shape, np.nan)
    frp = np.full(shape, np.nan)
    t4_bg_out = np.full(shape, np.nan)
    dt_bg_out = np.full(shape, np.nan)
    rows, cols = np.nonzero(potential)
    if rows.size:
        n = rows.size
        stats = {k: np.full(n, np.nan) for k in ("t4", "dt", "t11", "d4", "ddt", "d11", "dfire")}
        nclouds = np.zeros(n)
        pending = np.ones(n, bool)
        t4v = np.where(valid_bg, t4, np.nan)
        dtv = np.where(valid_bg, dt, np.nan)
        t11v = np.where(valid_bg, t11, np.nan)
        t4f = np.where(bg_fire, t4, np.nan)
        for size in WINDOWS:
            if not pending.any():
                break
            idx = np.nonzero(pending)[0]
            w4 = _windows(t4v, rows[idx], cols[idx], size).copy()
            w4[:, size // 2, size // 2] = np.nan
            nvalid = np.isfinite(w4).sum(axis=(1, 2))
            ok = (nvalid >= MIN_VALID) & (nvalid >= MIN_VALID_SHARE * (size * size - 1))
            if not ok.any():
                continue
            sel = idx[ok]
            w4 = w4[ok]
            wdt = _windows(dtv, rows[sel], cols[sel], size)
            w11 = _windows(t11v, rows[sel], cols[sel], size)
            wf = _windows(t4f, rows[sel], cols[sel], size)
            with np.errstate(invalid="ignore"):
                m4 = np.nanmean(w4, axis=(1, 2))
                mdt = np.nanmean(np.where(np.isfinite(w4), wdt, np.nan), axis=(1, 2))
                m11 = np.nanmean(np.where(np.isfinite(w4), w11, np.nan), axis=(1, 2))
            stats["t4"][sel], stats["dt"][sel], stats["t11"][sel] = m4, mdt, m11
            stats["d4"][sel] = _mad(w4, m4)
            stats["ddt"][sel] = _mad(np.where(np.isfinite(w4), wdt, np.nan), mdt)
            stats["d11"][sel] = _mad(np.where(np.isfinite(w4), w11, np.nan), m11)
            nf = np.isfinite(wf).sum(axis=(1, 2))
            with np.errstate(invalid="ignore", divide="ignore"):
                mf = np.where(nf > 0, np.nansum(wf, axis=(1, 2)) / nf, np.nan)
            stats["dfire"][sel] = np.where(nf > 0, _mad(wf, mf), 0.0)
            pending[sel] = False
        # adjacent clouds (3x3) for confidence C4
        wc = _windows(np.where(cloud, 1.0, 0.0), rows, cols, 3)
        nclouds = np.nansum(wc, axis=(1, 2))
        for k in ("d4", "ddt", "d11"):
            stats[k] = np.maximum(stats[k], MAD_FLOOR_K)
        pt4, pdt, p11 = t4[rows, cols], dt[rows, cols], t11[rows, cols]
        pday = day[rows, cols]
        with np.errstate(invalid="ignore"):
            test1 = pdt > stats["dt"] + K_DT * stats["ddt"]
            test2 = pdt > stats["dt"] + DT_MIN_K
            test3 = pt4 > stats["t4"] + K_T4 * stats["d4"]
            test4 = p11 > stats["t11"] + stats["d11"] - T11_MARGIN_K
            test5 = stats["dfire"] > BG_FIRE_MAD_K
        contextual = test1 & test2 & test3 & np.where(pday, test4 | test5, True)
        fire = absolute[rows, cols] | contextual
        glinted = glint[rows, cols] < glint_max_deg
        # confidence, Giglio et al. (2003) eqs. 8-12
        c1 = np.where(pday, _ramp(pt4, 310.0, 340.0), _ramp(pt4, 305.0, 320.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            z4 = (pt4 - stats["t4"]) / stats["d4"]
            zdt = (pdt - stats["dt"]) / stats["ddt"]
        c2 = np.where(np.isfinite(z4), _ramp(z4, 2.5, 6.0), 1.0)
        c3 = np.where(np.isfinite(zdt), _ramp(zdt, 3.0, 6.0), 1.0)
        c4 = 1.0 - _ramp(nclouds, 0.0, 6.0)
        conf = np.where(pday, (c1 * c2 * c3 * c4) ** 0.25, (c1 * c2 * c3) ** (1 / 3))
        keep = fire & ~glinted
        lo, hi = CONFIDENCE_CLASSES
        cls = np.where(conf > hi, MASK["high"], np.where(conf >= lo, MASK["nominal"], MASK["low"]))
        mask[rows[keep], cols[keep]] = cls[keep]
        mask[rows[fire & glinted], cols[fire & glinted]] = MASK["glint"]
        confidence[rows[keep], cols[keep]] = conf[keep]
        t4_bg_out[rows, cols] = stats["t4"]
        dt_bg_out[rows, cols] = stats["dt"]
        if pixel_area is not None:
            area = np.broadcast_to(np.asarray(pixel_area, float), shape)[rows, cols]
            bg = np.where(np.isfinite(stats["t4"]), stats["t4"], p11)
            frp[rows[keep], cols[keep]] = frp_mw(pt4, bg, area, t4_wavelength_um)[keep]
    return FireResult(mask, confidence, frp, dt, t4_bg_out, dt_bg_out)
