"""How the target grid meets a source's native pixel grid (issue #20).

Nearest-pixel resampling gives each target pixel the source pixel under its centre. When the
target grid is the source's own (or aligned to it: same CRS and pixel size, origin on its
pixel lattice) the pixels are copied. Otherwise each target pixel lies over parts of several
source pixels, and one whose centre's source pixel is not the one covering most of it
*draws from a neighbouring source pixel*. A tower may likewise lie in another source pixel
than the one its target pixel takes.
These functions measure both, for the store attributes, the run report and the model card.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from odc.geo.geobox import GeoBox

from fluxscape.readers.ontile import pixel_transform

#: Target pixels sampled to estimate the share that draws from a neighbouring source pixel.
SAMPLE = 4000
#: Sub-points per side of a target pixel when measuring the share of its centre's pixel.
SUBPOINTS = 5


def native_grids(granules: Sequence) -> list[GeoBox]:
    """The distinct pixel grids (GeoBox keys) of an input's granules; swaths and scenes
    without one (e.g. geolocated by latitude/longitude arrays) are left out."""
    grids: list[GeoBox] = []
    for g in granules:
        if isinstance(g.key, GeoBox) and g.key not in grids:
            grids.append(g.key)
    return grids


def aligned(src: GeoBox, dst: GeoBox, tol: float = 1e-6) -> bool:
    """True when ``dst``'s pixels are ``src``'s pixels: same CRS, same pixel size and
    orientation, and ``dst``'s origin on ``src``'s pixel lattice (within ``tol`` pixel)."""
    if src.crs != dst.crs:
        return False
    a, b = src.affine, dst.affine
    if not np.allclose([a.a, a.b, a.d, a.e], [b.a, b.b, b.d, b.e], rtol=1e-9, atol=0):
        return False
    col, row = ~a * (b.c, b.f)
    return abs(col - round(col)) < tol and abs(row - round(row)) < tol


def neighbour_share(grids: Sequence[GeoBox], dst: GeoBox, seed: int = 0) -> dict:
    """Estimate, on :data:`SAMPLE` random pixels of ``dst`` over the source, the fraction of
    target pixels whose centre's source pixel is not the source pixel covering most of them
    (measured on :data:`SUBPOINTS` squared points per pixel), and how many source pixels a
    target pixel spans (median of the distinct source pixels under its points).

    Returns ``{"aligned": bool, "pixels_from_neighbour": fraction or None,
    "source_pixels_per_pixel": median or None, "sampled": n}`` (``aligned``: every grid is
    aligned with ``dst``, so pixels are copied; None when no sampled pixel lies over a
    grid)."""
    if grids and all(aligned(g, dst) for g in grids):
        return {
            "aligned": True,
            "pixels_from_neighbour": 0.0,
            "source_pixels_per_pixel": 1.0,
            "sampled": 0,
        }
    rng = np.random.default_rng(seed)
    ny, nx = dst.shape.yx
    n = min(SAMPLE, ny * nx)
    flat = rng.choice(ny * nx, size=n, replace=False)
    rows, cols = np.divmod(flat, nx)
    offsets = (np.arange(SUBPOINTS) + 0.5) / SUBPOINTS
    sub_c = cols[:, None, None] + offsets[None, None, :]
    sub_r = rows[:, None, None] + offsets[None, :, None]
    sub_c, sub_r = np.broadcast_arrays(sub_c, sub_r)
    done = np.zeros(n, bool)
    from_neighbour = np.zeros(n, bool)
    spanned = np.zeros(n)
    for grid in grids:
        todo = ~done
        if not todo.any():
            break
        cx, cy = pixel_transform(dst, grid, cols[todo] + 0.5, rows[todo] + 0.5)
        sx, sy = pixel_transform(dst, grid, sub_c[todo], sub_r[todo])
        with np.errstate(invalid="ignore"):
            cx, cy, sx, sy = (np.floor(v) for v in (cx, cy, sx, sy))
        h, w = grid.shape.yx
        over = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        centre = cy * w + cx
        ids = (sy * w + sx).reshape(len(cx), -1)
        for i, k in zip(np.flatnonzero(over), np.flatnonzero(todo)[over], strict=True):
            values, counts = np.unique(ids[i], return_counts=True)
            from_neighbour[k] = counts[values == centre[i]].sum() < counts.max()
            spanned[k] = len(values)
            done[k] = True
    sampled = int(done.sum())
    return {
        "aligned": False,
        "pixels_from_neighbour": float(from_neighbour[done].mean()) if sampled else None,
        "source_pixels_per_pixel": float(np.median(spanned[done])) if sampled else None,
        "sampled": sampled,
    }


def shares_native_pixel(
    grids: Sequence[GeoBox], dst: GeoBox, x: np.ndarray, y: np.ndarray, rows, cols
) -> np.ndarray:
    """For points at ``x``, ``y`` (``dst``'s CRS) placed in ``dst`` pixels ``rows``, ``cols``:
    whether the point lies in the source pixel that its target pixel takes (the one under the
    pixel centre). Object array of True/False, None where no grid covers the point."""
    out = np.full(len(x), None, dtype=object)
    rows, cols = np.asarray(rows, float), np.asarray(cols, float)
    pcol, prow = ~dst.affine * (np.asarray(x, float), np.asarray(y, float))
    for grid in grids:
        tx, ty = (np.floor(v) for v in pixel_transform(dst, grid, pcol, prow))
        cx, cy = (np.floor(v) for v in pixel_transform(dst, grid, cols + 0.5, rows + 0.5))
        h, w = grid.shape.yx
        over = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
        for i in np.flatnonzero(over):
            if out[i] is None:
                out[i] = bool(tx[i] == cx[i] and ty[i] == cy[i])
    return out
