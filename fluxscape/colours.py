"""Colour rules shared by every picture of a product (quicklooks, the run report, the map
page): a variable whose values take both signs (NEE, anomalies, residuals) is drawn with a
diverging colour map centred on 0, any other with a sequential one; labels name the
quantity and its units."""

from __future__ import annotations

import math

SEQUENTIAL = "viridis"
DIVERGING = "RdBu_r"  # red for positive (e.g. a release of CO2), blue for negative


def colour_scale(lo: float, hi: float) -> tuple[str, float, float]:
    """The colour map and value range for data spanning ``lo``..``hi`` (e.g. the 2nd and 98th
    percentiles): values of both signs get :data:`DIVERGING` on a range symmetric about 0,
    others :data:`SEQUENTIAL` on ``lo``..``hi``. Returns ``(cmap name, vmin, vmax)``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return SEQUENTIAL, 0.0, 1.0
    if lo < 0 < hi:
        edge = max(-lo, hi)
        return DIVERGING, -edge, edge
    if lo == hi:
        return SEQUENTIAL, lo - 0.5, hi + 0.5
    return SEQUENTIAL, lo, hi


def label(name: str, attrs: dict) -> str:
    """``long name (units)`` of a variable, e.g. ``gross primary productivity, as carbon
    (g m-2 d-1)``; dimensionless units (``1``) are left out."""
    text = str(attrs.get("long_name") or name)
    units = str(attrs.get("units") or "")
    return f"{text} ({units})" if units and units != "1" else text
