"""Land surface temperature from two thermal-infrared window bands (split window), pure array
functions.

* :func:`ndvi_emissivity`: band emissivities from NDVI by the NDVI threshold method (Sobrino,
  Jimenez-Munoz and Paolini 2004, "Land surface temperature retrieval from LANDSAT TM 5",
  Remote Sensing of Environment 90: 434-440; Sobrino et al. 2008, IEEE TGRS 46: 316-327):
  vegetation proportion ``Pv = ((NDVI - NDVI_s) / (NDVI_v - NDVI_s))^2`` with NDVI_s = 0.2
  (bare soil) and NDVI_v = 0.5 (full cover), ``eps = eps_v Pv + eps_s (1 - Pv)`` (the cavity
  term is left out). Soil and vegetation emissivities of AHI B13 (10.4 um) and B15 (12.4 um)
  are typical values [hedged: not fitted to a spectral library].
* :func:`split_window_lst`: Ulivieri, Castronuovo, Francioni and Cardillo (1994), "A split
  window algorithm for estimating land surface temperature from satellites", Advances in
  Space Research 14(3): 59-65: ``LST = T11 + 1.8 (T11 - T12) + 48 (1 - eps) - 75 d_eps``
  with T11/T12 the brightness temperatures (K) of the ~11 and ~12 um window bands, ``eps``
  their mean emissivity and ``d_eps`` = eps11 - eps12. Derived for AVHRR bands 4/5; applied
  here to AHI B13/B15 [hedged: the coefficients are not refitted for AHI's response
  functions, so a real-data bias of 1-2 K is to be expected].
"""

from __future__ import annotations

import numpy as np

#: NDVI of bare soil and of full vegetation cover (NDVI threshold method).
NDVI_SOIL = 0.2
NDVI_VEGETATION = 0.5
#: (B13, B15) emissivities of bare soil and of full vegetation cover [hedged: typical values].
EMISSIVITY_SOIL = (0.966, 0.973)
EMISSIVITY_VEGETATION = (0.982, 0.985)
#: Ulivieri et al. (1994) coefficients: LST = T11 + A (T11 - T12) + B (1 - eps) - C d_eps.
ULIVIERI = (1.8, 48.0, 75.0)


def ndvi_emissivity(ndvi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Emissivities (unitless, 0-1) of AHI B13 and B15 from NDVI (any shape; NaN stays NaN)
    by the NDVI threshold method (module docstring)."""
    ndvi = np.asarray(ndvi, float)
    pv = np.clip((ndvi - NDVI_SOIL) / (NDVI_VEGETATION - NDVI_SOIL), 0.0, 1.0) ** 2
    e13 = EMISSIVITY_VEGETATION[0] * pv + EMISSIVITY_SOIL[0] * (1 - pv)
    e15 = EMISSIVITY_VEGETATION[1] * pv + EMISSIVITY_SOIL[1] * (1 - pv)
    return e13, e15


def split_window_lst(
    t11: np.ndarray, t12: np.ndarray, e11: np.ndarray, e12: np.ndarray
) -> np.ndarray:
    """Land surface temperature (K) by the Ulivieri et al. (1994) split window from the
    brightness temperatures ``t11``, ``t12`` (K) and emissivities ``e11``, ``e12`` of the
    ~11 and ~12 um bands (AHI B13 and B15); arrays of one shape, NaN propagates."""
    a, b, c = ULIVIERI
    t11, t12 = np.asarray(t11, float), np.asarray(t12, float)
    eps = (np.asarray(e11, float) + np.asarray(e12, float)) / 2
    return t11 + a * (t11 - t12) + b * (1 - eps) - c * (np.asarray(e11) - np.asarray(e12))
