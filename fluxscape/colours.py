"""Colour rules shared by every picture of a product (quicklooks, the run report, the map
page), so a variable looks the same everywhere.

A variable is *signed* when its values mean a direction around zero (a net flux such as NEE,
an anomaly, a z-score, a change): it is drawn with a diverging colour map (BrBG reversed:
negative teal-green, zero white, positive brown; for NEE uptake is green and release brown)
on a range centred on 0, ``[-m, m]`` with ``m`` the larger magnitude of the 2nd and 98th
percentiles; any other variable with ``viridis`` over the 2nd-98th percentile range. Signed
is decided from the variable's attributes first (``long_name``/``standard_name`` naming a net
exchange, an anomaly, a z-score, a residual, a dNBR or a difference "minus", unless it names a
spread — a standard deviation or uncertainty, never negative; ``valid_min`` <
0 < ``valid_max``; "normalized difference" indices are not signed by name), then from the
data: both signs hold a substantial part of the range (the smaller of |p2| and |p98| is at
least a quarter of the larger), so a few negative NDVI pixels over water do not make NDVI
signed.
"""

from __future__ import annotations

import math
import re

#: Colour map names as the tiler (rio-tiler) spells them; matplotlib's are in MATPLOTLIB.
SEQUENTIAL = "viridis"
DIVERGING = "brbg_r"
MATPLOTLIB = {SEQUENTIAL: "viridis", DIVERGING: "BrBG_r"}
#: Words of a long or standard name that make a variable signed.
SIGNED_NAME = re.compile(
    r"\bnet\b|exchange|anomal|z-?score|residual|\bdnbr\b|\bminus\b|departure|\bbias\b",
    re.IGNORECASE,
)
#: Words that make a variable a spread (a standard deviation or uncertainty of a signed
#: quantity, e.g. ``nee_sd``): never negative, so never signed, whatever else its name says.
SPREAD_NAME = re.compile(
    r"standard deviation|standard_error|uncertainty|\bsigma\b|posterior error|\bspread\b",
    re.IGNORECASE,
)
#: Smallest |negative| : |positive| percentile ratio (or its inverse) that makes data signed.
SIGNED_SHARE = 0.25


def is_signed(attrs: dict, lo: float, hi: float) -> bool:
    """Whether a variable with these attributes and 2nd/98th percentiles ``lo``/``hi`` is
    signed (see the module docstring)."""
    names = f"{attrs.get('long_name', '')} {attrs.get('standard_name', '')}"
    if SPREAD_NAME.search(names):
        return False
    if SIGNED_NAME.search(names):
        return True
    vmin, vmax = attrs.get("valid_min"), attrs.get("valid_max")
    if vmin is not None and vmax is not None and float(vmin) < 0 < float(vmax):
        return True
    if not lo < 0 < hi:
        return False
    return min(-lo, hi) >= SIGNED_SHARE * max(-lo, hi)


def colour_range(attrs: dict, lo: float, hi: float) -> tuple[str, float, float]:
    """The colour map (tiler name) and value range for a variable whose 2nd/98th percentiles
    are ``lo``/``hi``: ``(DIVERGING, -m, m)`` when signed, else ``(SEQUENTIAL, lo, hi)``
    (a one-value range widened by 1; no data: 0..1)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return SEQUENTIAL, 0.0, 1.0
    if is_signed(attrs, lo, hi):
        m = max(abs(lo), abs(hi)) or 1.0
        return DIVERGING, -m, m
    return SEQUENTIAL, lo, hi if hi > lo else lo + 1.0


def label(name: str, attrs: dict) -> str:
    """``long name (units)`` of a variable, e.g. ``gross primary productivity, as carbon
    (g m-2 d-1)``; dimensionless units (``1``) are left out."""
    text = str(attrs.get("long_name") or name)
    units = str(attrs.get("units") or "")
    return f"{text} ({units})" if units and units != "1" else text
