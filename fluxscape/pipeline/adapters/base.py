"""Source adapters: from a reader's files to standard layers on a target tile.

Every raster source gives the ``vi`` step the same thing for each observation that meets a
tile: a dict of (y, x) arrays on the tile's pixels, with these names (those the sensor has):

* ``red``, ``green``, ``blue``, ``nir``, ``swir16``, ``swir22``: reflectance, 0-1
* ``ndvi``, ``evi``: delivered indices, unitless (MODIS MOD13, SGLI VGI)
* ``reliability``: int, -1 no observation, 0 good, 1 marginal, 2 snow/ice, 3 cloudy
* ``usable``: bool, the observation may enter a composite
* ``doy``: float, day of year of the observation
* ``solar_time``, ``sza`` (sources seen many times a day, AHI): local mean solar time of the
  observation (hours) and solar zenith angle (degrees), from :func:`solar_geometry`

An adapter module exposes ``index(paths, options) -> (granules, skipped)`` (headers only) and
``read(granules, tile, options, skipped) -> [(granule, layers)]`` for granules that share one
native grid (``Granule.key``). Resampling is nearest neighbour through an exact index lookup
built once per (native grid, tile): odc-geo for affine grids, pyresample for geostationary
areas and swaths, the EQA inverse for SGLI tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox, Geometry

from fluxscape.pipeline.sources import Skipped


@dataclass(frozen=True)
class Granule:
    """One observation of a source: its files, nominal start (UTC), lon/lat bbox [W,S,E,N]
    and a key shared by granules on the same native grid (so an index lookup is reused)."""

    path: str
    start: datetime
    bbox: tuple[float, float, float, float]
    key: Any
    paths: tuple[str, ...] = ()
    footprint: Geometry | None = field(default=None, compare=False, hash=False)

    def meets(self, tile: GeoBox) -> bool:
        """True when the granule's footprint (when known, compared in the tile's CRS) or else
        its lon/lat bbox intersects the tile."""
        if self.footprint is not None:
            return self.footprint.to_crs(tile.crs).intersects(tile.extent)
        w, s, e, n = self.bbox
        tb = tile.extent.to_crs("EPSG:4326").boundingbox
        return not (w > tb.right or e < tb.left or s > tb.top or n < tb.bottom)


def tile_lonlat(tile: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees) of the tile's pixel centres, shape (ny, nx)."""
    from pyproj import Transformer

    ny, nx = tile.shape.yx
    cols, rows = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    x, y = tile.affine * (cols, rows)
    if tile.crs.geographic:
        return np.asarray(x), np.asarray(y)
    tr = Transformer.from_crs(tile.crs.to_wkt(), "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def tile_bbox(tile: GeoBox, margin: float = 0.0) -> tuple[float, float, float, float]:
    """The tile's lon/lat bbox grown by ``margin`` degrees."""
    bb: BoundingBox = tile.extent.to_crs("EPSG:4326").boundingbox
    return (bb.left - margin, bb.bottom - margin, bb.right + margin, bb.top + margin)


def cloud_screen(red: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """Bright-red cloud test for reflectance sources without a cloud mask: True (cloudy)
    where red reflectance exceeds ``threshold`` (vegetated and bare land stay below ~0.25)."""
    with np.errstate(invalid="ignore"):
        return red > threshold


def day_of_year(when: datetime) -> float:
    """Day of year (1 = 1 January) of a datetime, as float."""
    return float(when.timetuple().tm_yday)


def solar_geometry(
    when: datetime, lon: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Local mean solar time (hours, 0-24: UTC + longitude / 15) and solar zenith angle
    (degrees, pyorbital's ``cos_zen``) at ``when`` (UTC) for lon/lat in degrees; float32
    arrays of the shape of ``lon``. Mean, not apparent, solar time: the equation of time
    (within +-16 minutes) is left out."""
    from pyorbital.astronomy import cos_zen

    hours = when.hour + when.minute / 60 + when.second / 3600
    solar_time = np.mod(hours + np.asarray(lon, float) / 15.0, 24.0)
    mu = np.clip(np.asarray(cos_zen(when, lon, lat), float), -1.0, 1.0)
    return solar_time.astype("float32"), np.degrees(np.arccos(mu)).astype("float32")


def skip(skipped: list[Skipped], path: str, exc: Exception) -> None:
    """Record a file that could not be read (reason without the path prefix)."""
    skipped.append(Skipped(path, str(exc).replace(f"{path}: ", "")))
