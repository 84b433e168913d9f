"""How the map page colours a variable (``/stats``): the value range and colour map of
:mod:`fluxscape.colours` (the rule every picture of a product follows: diverging about 0 for
signed variables, viridis otherwise) and the legend's colours from the tiler's colour map."""

from __future__ import annotations

import numpy as np

from fluxscape.colours import DIVERGING, colour_range

#: Colour stops in the legend's gradient.
LEGEND_STOPS = 11


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
    colormap, lo, hi = colour_range(attrs, float(lo), float(hi))
    signed = colormap == DIVERGING
    return {
        "min": lo,
        "max": hi,
        "signed": signed,
        "colormap": colormap,
        "colours": legend_colours(colormap),
        "units": str(attrs.get("units", "")),
        "long_name": str(attrs.get("long_name", "")),
    }
