"""Burn severity from the normalized burn ratio and MCD64A1 burn dates, as pure array functions.

NBR = (NIR - SWIR2) / (NIR + SWIR2) (see :func:`fluxscape.products.indices.nbr`) is unitless
here (-1..1), not the x1000 integers of the FIREMON/MTBS literature: multiply dNBR, RdNBR and RBR
by 1000 to compare with published thresholds.

References:
- Key, C. H., Benson, N. C. (2006) Landscape Assessment (LA): sampling and analysis methods.
  USDA Forest Service RMRS-GTR-164-CD (FIREMON), dNBR severity ranges.
- Miller, J. D., Thode, A. E. (2007) Quantifying burn severity in a heterogeneous landscape with
  a relative version of the delta Normalized Burn Ratio (dNBR). Remote Sens. Environ. 109:66-80.
- Parks, S. A., Dillon, G. K., Miller, C. (2014) A new metric for quantifying burn severity: the
  relativized burn ratio. Remote Sensing 6:1827-1844.
- Giglio, L. et al. (2018) The Collection 6 MODIS burned area mapping algorithm and product.
  Remote Sens. Environ. 217:72-85 (MCD64A1 "Burn Date").
"""

from __future__ import annotations

import numpy as np

from fluxscape.products.anomaly import along_time, masked_median

#: Lower edges (unitless dNBR) of the USGS / Key & Benson (2006) classes above the first one;
#: FIREMON's x1000 ranges: enhanced regrowth high < -250, enhanced regrowth low -250..-101,
#: unburned -100..+99, low +100..+269, moderate-low +270..+439, moderate-high +440..+659,
#: high >= +660.
SEVERITY_EDGES = (-0.25, -0.1, 0.1, 0.27, 0.44, 0.66)
#: Class codes returned by :func:`severity_class` (0 = no data) and their CF flag meanings.
SEVERITY_FLAG_VALUES = (1, 2, 3, 4, 5, 6, 7)
SEVERITY_FLAG_MEANINGS = (
    "enhanced_regrowth_high enhanced_regrowth_low unburned low_severity "
    "moderate_low_severity moderate_high_severity high_severity"
)
UNBURNED = 3

#: MCD64A1 "Burn Date" special values.
MCD64_UNBURNED, MCD64_UNMAPPED, MCD64_WATER = 0, -1, -2


def dnbr(nbr_pre, nbr_post):
    """Differenced NBR, pre-fire minus post-fire (unitless; positive = loss of vegetation)."""
    return np.asarray(nbr_pre, float) - np.asarray(nbr_post, float)


def rdnbr(dnbr_value, nbr_pre, *, min_abs_pre: float = 0.001):
    """Relative dNBR of Miller & Thode (2007): dNBR / sqrt(|NBR_pre|) (unitless).

    With NBR unitless this equals the published x1000 formula dNBR / sqrt(|NBR_pre / 1000|)
    divided by 1000. |NBR_pre| is floored at ``min_abs_pre`` (0.001, i.e. 1 on the x1000 scale,
    the usual guard) so that bare, near-zero pre-fire NBR gives a large but finite value."""
    pre = np.abs(np.asarray(nbr_pre, float))
    return np.asarray(dnbr_value, float) / np.sqrt(np.maximum(pre, min_abs_pre))


def rbr(dnbr_value, nbr_pre):
    """Relativized burn ratio of Parks et al. (2014): dNBR / (NBR_pre + 1.001) (unitless)."""
    return np.asarray(dnbr_value, float) / (np.asarray(nbr_pre, float) + 1.001)


def severity_class(dnbr_value) -> np.ndarray:
    """USGS / Key & Benson (2006) burn severity class of dNBR (unitless): uint8 codes
    :data:`SEVERITY_FLAG_VALUES` (1 enhanced regrowth high ... 3 unburned ... 7 high), 0 where
    dNBR is NaN. A value on an edge belongs to the class above it."""
    d = np.asarray(dnbr_value, float)
    codes = np.digitize(np.nan_to_num(d), SEVERITY_EDGES, right=False) + 1
    return np.where(np.isfinite(d), codes, 0).astype(np.uint8)


def burn_severity(
    nbr,
    valid,
    dates,
    pre: tuple[np.datetime64, np.datetime64],
    post: tuple[np.datetime64, np.datetime64],
    *,
    min_abs_pre: float = 0.001,
) -> dict[str, np.ndarray]:
    """dNBR, RdNBR, RBR and severity class from pre- and post-fire windows of an NBR series.

    Inputs: ``nbr`` (time, ...) unitless; ``valid`` (bool, like ``nbr``): QA-usable
    observations; ``dates`` datetime64 observation dates, (time,) or (time, ...); ``pre`` and
    ``post``: inclusive [first, last] datetime64 windows. NBR_pre and NBR_post are the medians
    of the valid observations inside each window (robust to residual clouds).
    Returns a dict of arrays of the trailing shape: ``nbr_pre``, ``nbr_post``, ``dnbr``,
    ``rdnbr``, ``rbr`` (float, NaN where a window has no valid observation) and ``severity``
    (uint8, :func:`severity_class`).
    """
    nbr = np.asarray(nbr, float)
    dates = along_time(np.asarray(dates, "datetime64[ns]"), nbr)
    valid = np.asarray(valid, bool)

    def window_median(window: tuple[np.datetime64, np.datetime64]) -> np.ndarray:
        first, last = (np.datetime64(w, "ns") for w in window)
        return masked_median(nbr, valid & (dates >= first) & (dates <= last))

    nbr_pre, nbr_post = window_median(pre), window_median(post)
    d = dnbr(nbr_pre, nbr_post)
    return {
        "nbr_pre": nbr_pre,
        "nbr_post": nbr_post,
        "dnbr": d,
        "rdnbr": rdnbr(d, nbr_pre, min_abs_pre=min_abs_pre),
        "rbr": rbr(d, nbr_pre),
        "severity": severity_class(d),
    }


def mcd64a1_annual(burn_date, layer_years, years=None) -> dict[str, np.ndarray]:
    """Per-year burned mask and burn date from MCD64A1 monthly "Burn Date" layers.

    Inputs: ``burn_date`` (layer, ...) int: 0 unburned, 1-366 day of year of burning, -1
    unmapped, -2 water (values outside these are treated as unmapped); ``layer_years`` (layer,)
    the calendar year of each monthly layer; ``years`` the output years (default: the unique
    layer years).
    Returns a dict of (year, ...) arrays: ``burned`` (bool: a burn date in any layer of the
    year), ``date`` (float32 day of year of the earliest burn, NaN where unburned),
    ``unmapped_layers`` (int: layers of the year without a mapping, -1 or invalid; a pixel with
    unmapped months may have burned unseen), ``water`` (bool: flagged water in any layer).
    """
    bd = np.asarray(burn_date)
    layer_years = np.asarray(layer_years)
    years = np.unique(layer_years) if years is None else np.asarray(years)
    expand = (slice(None),) + (None,) * (bd.ndim - 1)
    is_burn = (bd >= 1) & (bd <= 366)
    unmapped = ~(is_burn | (bd == MCD64_UNBURNED) | (bd == MCD64_WATER))
    out: dict[str, list[np.ndarray]] = {
        "burned": [],
        "date": [],
        "unmapped_layers": [],
        "water": [],
    }
    for year in years:
        layer = (layer_years == year)[expand]
        burn_here = is_burn & layer
        first = np.min(np.where(burn_here, bd, 367), axis=0)
        out["burned"].append(burn_here.any(axis=0))
        out["date"].append(np.where(first <= 366, first, np.nan).astype(np.float32))
        out["unmapped_layers"].append((unmapped & layer).sum(axis=0))
        out["water"].append(((bd == MCD64_WATER) & layer).any(axis=0))
    return {name: np.stack(arrays) for name, arrays in out.items()}
