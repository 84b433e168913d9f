"""Spectral vegetation indices as pure array functions.

Inputs are surface reflectances (unitless, 0-1) as numpy arrays, xarray objects or dask
arrays of any shape; outputs have the same shape, unitless, NaN where undefined.
"""

from __future__ import annotations

import numpy as np


def _ratio(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


def ndvi(red, nir):
    """Normalised difference vegetation index (NIR - red) / (NIR + red)."""
    return _ratio(nir - red, nir + red)


def evi(red, nir, blue):
    """Enhanced vegetation index (Huete et al. 2002, MODIS coefficients):
    2.5 (NIR - red) / (NIR + 6 red - 7.5 blue + 1)."""
    return _ratio(2.5 * (nir - red), nir + 6.0 * red - 7.5 * blue + 1.0)


def evi2(red, nir):
    """Two-band EVI (Jiang et al. 2008): 2.5 (NIR - red) / (NIR + 2.4 red + 1)."""
    return _ratio(2.5 * (nir - red), nir + 2.4 * red + 1.0)


def nbr(nir, swir2):
    """Normalised burn ratio (NIR - SWIR2) / (NIR + SWIR2); SWIR2 ~2.1-2.3 um
    (MODIS band 7, AHI B06, SGLI SW04)."""
    return _ratio(nir - swir2, nir + swir2)


def grvi(green, red):
    """Green-red vegetation index (Motohka et al. 2010): (green - red) / (green + red)."""
    return _ratio(green - red, green + red)


def ndwi(nir, swir16):
    """Normalised difference water index (Gao 1996): (NIR - SWIR 1.6 um) / (NIR + SWIR)."""
    return _ratio(nir - swir16, nir + swir16)
