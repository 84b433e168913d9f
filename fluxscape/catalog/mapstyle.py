"""How the map page colours a variable: value range, sequential or diverging colour map, legend.

A variable is *signed* when its values mean a direction around zero (a net flux such as NEE,
an anomaly, a z-score, a change): then the colour map is diverging (``brbg_r``: negative
teal-green, zero white, positive brown; for NEE uptake is green and release brown) and the
scale is centred on 0, ``[-m, m]`` with ``m`` the larger magnitude of the 2nd and 98th
percentiles. Otherwise it is ``viridis`` over the 2nd-98th percentile range. Signed is decided
from the variable's attributes first (``long_name``/``standard_name`` naming a net exchange,
an anomaly, a z-score, a residual, a dNBR or a difference "minus"; ``valid_min`` < 0 <
``valid_max``; "normalized difference" indices are not signed by name), then from
the data: both signs hold a substantial part of the range (the smaller of |p2| and |p98| is at
least a quarter of the larger), so a few negative NDVI pixels over water do not make NDVI
signed.
"""

from __future__ import annotations

import re

import numpy as np

SEQUENTIAL = "viridis"
DIVERGING = "brbg_r"
#: Words of a long or standard name that make a variable signed.
SIGNED_NAME = re.compile(
    r"\bnet\b|exchange|anomal|z-?score|residual|\bdnbr\b|\bminus\b|departure|\bbias\b",
    re.IGNORECASE,
)
#: Smallest |negative| : |positive| percentile ratio (or its inverse) that makes data signed.
SIGNED_SHARE = 0.25
#: Colour stops in the legend's gradient.
LEGEND_STOPS = 11


def is_signed(attrs: dict, lo: float, hi: float) -> bool:
    """Whether a variable with these attributes and 2nd/98th percentiles ``lo``/``hi`` is
    signed (see the module docstring)."""
    names = f"{attrs.get('long_name', '')} {attrs.get('standard_name', '')}"
    if SIGNED_NAME.search(names):
        return True
    vmin, vmax = attrs.get("valid_min"), attrs.get("valid_max")
    if vmin is not None and vmax is not None and float(vmin) < 0 < float(vmax):
        return True
    if not lo < 0 < hi:
        return False
    return min(-lo, hi) >= SIGNED_SHARE * max(-lo, hi)


def legend_colours(name: str, stops: int = LEGEND_STOPS) -> list[str]:
    """``stops`` CSS hex colours evenly along the tiler's colour map ``name`` (low to high),
    so the legend shows the colours the tiles use."""
    from rio_tiler.colormap import cmap

    table = cmap.get(name)
    keys = np.linspace(0, 255, stops).round().astype(int)
    return ["#{:02x}{:02x}{:02x}".format(*(int(c) for c in table[int(k)][:3])) for k in keys]


def colour_scale(attrs: dict, values: np.ndarray) -> dict:
    """The map style of a variable from its attributes and a sample of its values (any
    shape; NaN ignored): ``min``/``max`` (the colour scale's ends; centred on 0 when signed),
    ``signed``, ``colormap`` (the tiler's ``colormap_name``), ``colours`` (legend stops),
    ``units`` and ``long_name`` (the variable's name when the store has none)."""
    finite = values[np.isfinite(values)]
    lo, hi = (0.0, 1.0) if finite.size == 0 else np.nanpercentile(finite, [2, 98])
    lo, hi = float(lo), float(hi)
    signed = is_signed(attrs, lo, hi)
    if signed:
        m = max(abs(lo), abs(hi)) or 1.0
        lo, hi = -m, m
    elif hi <= lo:
        hi = lo + 1.0
    colormap = DIVERGING if signed else SEQUENTIAL
    return {
        "min": lo,
        "max": hi,
        "signed": signed,
        "colormap": colormap,
        "colours": legend_colours(colormap),
        "units": str(attrs.get("units", "")),
        "long_name": str(attrs.get("long_name", "")),
    }
