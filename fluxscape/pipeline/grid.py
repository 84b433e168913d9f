"""Target grid and tiles as odc-geo values.

The region's pixel grid is an odc-geo :class:`~odc.geo.geobox.GeoBox` whose pixel edges are
snapped to multiples of the resolution (so runs at the same resolution share pixels), covering
the workflow's bbox; :class:`~odc.geo.geobox.GeoboxTiles` cuts it into tiles from its
north-west corner. The store is chunked one tile per chunk, so tile writes never overlap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from affine import Affine
from odc.geo import resxy_
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.geom import BoundingBox, Geometry

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import remote
from fluxscape.pipeline.schema import Region


@dataclass(frozen=True)
class Tile:
    """One unit of work: its (row, col) index in the tiling, its GeoBox and its (rows, cols)
    slices in the region's GeoBox (which are also the Zarr region to write)."""

    index: tuple[int, int]
    geobox: GeoBox
    rows: slice
    cols: slice

    @property
    def id(self) -> str:
        return f"{self.index[0]}_{self.index[1]}"


@dataclass(frozen=True)
class TargetGrid:
    """The region's GeoBox, its tiling (odc-geo GeoboxTiles: tile-by-geometry queries) and
    its tiles (row-major from the north-west)."""

    geobox: GeoBox
    tiles: tuple[Tile, ...]
    tiling: GeoboxTiles | None = None


def region_geobox(region: Region) -> GeoBox:
    """The GeoBox covering the region's bbox (in ``bbox_crs``: degrees by default) in its CRS
    at its resolution (square pixels, north-up, pixel edges on multiples of the resolution).
    A bbox given in the grid's own CRS is used as it is: no box around a transformed box. A
    geobox region (``origin``, ``shape``) is that grid exactly."""
    if region.origin is not None:
        (x0, y0), (ny, nx) = region.origin, region.shape
        r = region.resolution
        return GeoBox((ny, nx), Affine(r, 0.0, x0, 0.0, -r, y0), region.crs)
    if region.bbox is not None and region.bbox_crs != "EPSG:4326":
        bbox = BoundingBox(*region.bbox, crs=region.bbox_crs)
    else:
        bbox = BoundingBox(*region.lonlat_bbox, crs="EPSG:4326")
    if bbox.crs != region.crs:
        bbox = bbox.to_crs(region.crs)
    res = resxy_(region.resolution, -region.resolution)
    # tol: a bbox within 1e-4 pixel of the grid lines is on them (float noise of metre bboxes)
    return GeoBox.from_bbox(bbox, crs=region.crs, resolution=res, tol=1e-4)


def target_grid(region: Region, tile_size: int) -> TargetGrid:
    """The region's GeoBox cut into ``tile_size`` x ``tile_size`` tiles (edge tiles smaller);
    with ``region.polygon``, only the tiles that meet the polygon (the others are not run and
    stay fill in the store)."""
    box = region_geobox(region)
    tiling = GeoboxTiles(box, (tile_size, tile_size))
    ny, nx = tiling.shape.yx
    if region.polygon:
        wanted = set(tiling.tiles(area_geometry(remote.local(region.polygon)).to_crs(box.crs)))
    else:
        wanted = {(iy, ix) for iy in range(ny) for ix in range(nx)}
    tiles = []
    for iy in range(ny):
        for ix in range(nx):
            if (iy, ix) in wanted:
                rows, cols = tiling.roi[iy, ix]
                tiles.append(Tile((iy, ix), tiling[iy, ix], rows, cols))
    if not tiles:
        raise FluxscapeError(f"region.polygon: {region.polygon} does not meet the region's grid")
    return TargetGrid(box, tuple(tiles), tiling)


@functools.lru_cache(maxsize=8)
def area_geometry(path: str) -> Geometry:
    """The union of the (multi)polygons of a GeoJSON file (lon/lat, EPSG:4326)."""
    import json

    import shapely
    from shapely.geometry import shape

    try:
        doc = json.loads(Path(path).read_text())
        feats = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
        shapes = [shape(f.get("geometry", f)) for f in feats]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FluxscapeError(
            f"region.polygon: {path}: not a GeoJSON polygon file ({exc})"
        ) from None
    polys = [s for s in shapes if s.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise FluxscapeError(f"region.polygon: {path} holds no Polygon or MultiPolygon")
    return Geometry(shapely.union_all(polys), crs="EPSG:4326")
