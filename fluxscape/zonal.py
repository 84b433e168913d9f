"""Exact fractional pixel weights of a polygon on a regular product grid.

A pixel's weight is the fraction of the pixel the polygon covers times the pixel's area:

- the fraction is exact (exactextract's ``coverage``: the planar area of the intersection of
  the polygon with the pixel, in the grid's own coordinates, over the pixel's area), so a
  pixel the polygon contains weighs 1 x its area, one it cuts weighs the part inside, and
  pixels it misses weigh nothing, whatever the polygon's detail;
- the area is the pixel's true area: on a geographic (lon/lat) grid the area on the WGS84
  ellipsoid of the cell between its two parallels and meridians (:func:`cell_area_m2`; it
  shrinks with the cosine of latitude), on a projected grid ``dx * dy`` (square metres for
  metric CRSs; true for equal-area grids such as MODIS sinusoidal, within the scale error for
  UTM).

Within one lon/lat pixel the fraction is planar in degrees; the metres per degree vary by less
than the pixel's latitude span times tan(latitude) across it, negligible at product resolutions.
An area-weighted mean is ``sum(w * v) / sum(w)`` over the pixels with a value. Neutral ground:
the catalog's extraction and the regional totals of ``ml`` both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from fluxscape.errors import FluxscapeError

__all__ = ["CellWeights", "cell_area_m2", "coverage_weights", "weighted_mean"]

#: WGS84 semi-major and semi-minor axes (m).
_WGS84_A = 6378137.0
_WGS84_B = 6356752.314245179


def cell_area_m2(lat_south: np.ndarray, lat_north: np.ndarray, dlon_deg: float) -> np.ndarray:
    """Area (m2) on the WGS84 ellipsoid of lon/lat cells bounded by two parallels and two
    meridians ``dlon_deg`` apart.

    Written by hand because pyproj's geodesic polygon area joins corners by geodesics, not
    parallels: the closed form of the ellipsoidal zone area (authalic integral)
    ``A = dlon * b^2 * [F(phi2) - F(phi1)]``, ``F = sin/(2(1 - e^2 sin^2)) + atanh(e sin)/(2e)``.
    """
    a, b = _WGS84_A, _WGS84_B
    e = np.sqrt(1.0 - (b / a) ** 2)

    def F(lat):
        s = np.sin(np.radians(lat))
        return s / (2.0 * (1.0 - e**2 * s**2)) + np.arctanh(e * s) / (2.0 * e)

    return np.radians(dlon_deg) * b**2 * (F(np.asarray(lat_north)) - F(np.asarray(lat_south)))


@dataclass(frozen=True)
class CellWeights:
    """The pixels a polygon touches: the window of the grid holding them (``rows`` index
    ``y``, ``cols`` index ``x``, as given), each touched pixel's position in that window
    (``iy``, ``ix``) and its weight (``weight``: coverage fraction x pixel area; m2 on a
    geographic grid, square CRS units on a projected one)."""

    rows: slice
    cols: slice
    iy: np.ndarray
    ix: np.ndarray
    weight: np.ndarray

    @property
    def n_pixels(self) -> int:
        """Pixels the polygon covers at least in part."""
        return int(self.weight.size)

    @property
    def area(self) -> float:
        """The polygon's area on the grid (sum of the weights)."""
        return float(self.weight.sum())


def _spacing(coord: np.ndarray, name: str) -> float:
    c = np.asarray(coord, dtype=float)
    if c.size < 2:
        raise FluxscapeError(f"coordinate {name} needs at least 2 pixel centres for weights")
    step = np.diff(c)
    if not np.allclose(step, step[0], rtol=1e-6, atol=1e-12):
        raise FluxscapeError(f"coordinate {name} is not regularly spaced")
    return float(step[0])


def _window(centres: np.ndarray, step: float, lo: float, hi: float) -> slice | None:
    """The index range of the pixels (centres, spacing ``step`` of either sign) whose extent
    meets [lo, hi], or None."""
    half = abs(step) / 2.0
    hit = np.flatnonzero((centres + half > lo) & (centres - half < hi))
    return None if hit.size == 0 else slice(int(hit[0]), int(hit[-1]) + 1)


def coverage_weights(
    x: np.ndarray,
    y: np.ndarray,
    geom: shapely.Geometry,
    geographic: bool,
    res: tuple[float, float] | None = None,
) -> CellWeights | None:
    """Exact fractional weights of ``geom`` (a (Multi)Polygon in the grid's CRS) on the grid
    of pixel centres ``x`` (ascending) and ``y`` (ascending or descending), both regularly
    spaced. ``geographic``: the grid is lon/lat degrees (weights in m2 on the WGS84
    ellipsoid); otherwise projected (weights in square CRS units). ``res`` (dx, dy): the pixel
    size, needed when a block of a grid has a single centre along ``x`` or ``y``. None when
    the polygon touches no pixel."""
    from exactextract import exact_extract
    from exactextract.feature import JSONFeatureSource
    from exactextract.raster import NumPyRasterSource

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    dx = abs(res[0]) if res is not None and x.size < 2 else _spacing(x, "x")
    dy = abs(res[1]) if res is not None and y.size < 2 else _spacing(y, "y")
    if dx <= 0:
        raise FluxscapeError("coordinate x must increase (west to east)")
    minx, miny, maxx, maxy = geom.bounds
    cols, rows = _window(x, dx, minx, maxx), _window(y, dy, miny, maxy)
    if cols is None or rows is None:
        return None
    xs, ys = x[cols], y[rows]
    ny, nx = ys.size, xs.size
    ady = abs(dy)
    raster = NumPyRasterSource(
        np.zeros((ny, nx), dtype=np.float32),
        xmin=xs[0] - dx / 2,
        ymin=ys.min() - ady / 2,
        xmax=xs[-1] + dx / 2,
        ymax=ys.max() + ady / 2,
    )
    feature = {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(geom)}
    (out,) = exact_extract(raster, JSONFeatureSource([feature]), ["cell_id", "coverage"])
    cell = np.asarray(out["properties"]["cell_id"], dtype=np.int64)
    fraction = np.asarray(out["properties"]["coverage"], dtype=float)
    keep = fraction > 0
    cell, fraction = cell[keep], fraction[keep]
    if cell.size == 0:
        return None
    top_row, ix = np.divmod(cell, nx)  # raster row 0 is the northern edge
    iy = top_row if dy < 0 else ny - 1 - top_row
    if geographic:
        lat = ys[iy]
        area = cell_area_m2(lat - ady / 2, lat + ady / 2, dx)
    else:
        area = np.full(cell.size, dx * ady)
    return CellWeights(rows, cols, iy, ix, fraction * area)


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted mean over the last axis of ``values`` (..., k) with ``weights`` (k),
    skipping non-finite values: (mean, weight of the values used), each of shape (...);
    the mean is NaN where no value is finite."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    used = ok.astype(np.float64) @ weights
    total = np.where(ok, v, 0.0) @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(used > 0, total / np.where(used > 0, used, 1.0), np.nan)
    return mean, used


def pixel_outline(rows, cols, x, y, dx: float, dy: float):
    """The outline (a shapely Polygon or MultiPolygon, in the grid's own coordinates) of the
    pixels at ``rows``, ``cols`` of a regular grid with centres ``x``, ``y`` and pixel sizes
    ``dx``, ``dy`` (positive)."""
    from shapely.geometry import box
    from shapely.ops import unary_union

    return unary_union(
        [
            box(x[c] - dx / 2, y[r] - dy / 2, x[c] + dx / 2, y[r] + dy / 2)
            for r, c in zip(rows, cols, strict=True)
        ]
    )
