"""Target grid and tiles as odc-geo values.

The grid is an odc-geo :class:`~odc.geo.gridspec.GridSpec` anchored at the CRS origin, so tiles
of different runs at the same resolution and tile size line up; a run's region is the union of
the grid tiles that meet its bbox, and its store is chunked one tile per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from odc.geo import XY, resxy_
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox
from odc.geo.gridspec import GridSpec

from fluxscape.pipeline.config import Region


@dataclass(frozen=True)
class Tile:
    """One unit of work: its grid index, its GeoBox and its (rows, cols) slices in the
    region's GeoBox (which are also the Zarr region to write)."""

    index: tuple[int, int]
    geobox: GeoBox
    rows: slice
    cols: slice

    @property
    def id(self) -> str:
        return f"{self.index[0]}_{self.index[1]}"


@dataclass(frozen=True)
class TargetGrid:
    """The region's GeoBox and its tiles."""

    gridspec: GridSpec
    geobox: GeoBox
    tiles: tuple[Tile, ...]


def make_gridspec(crs: str, resolution: float, tile_size: int) -> GridSpec:
    """A GridSpec with square pixels of ``resolution`` CRS units, north-up, and square tiles
    of ``tile_size`` pixels, anchored at the CRS origin."""
    return GridSpec(
        crs,
        tile_shape=(tile_size, tile_size),
        resolution=resxy_(resolution, -resolution),
        origin=XY(0, 0),
    )


def target_grid(region: Region, tile_size: int) -> TargetGrid:
    """The GeoBox covering every grid tile that meets the region's bbox, and those tiles
    (row-major from the north-west)."""
    gs = make_gridspec(region.crs, region.resolution, tile_size)
    bbox = BoundingBox(*region.lonlat_bbox, crs="EPSG:4326")
    if str(gs.crs) != "EPSG:4326":
        bbox = bbox.to_crs(gs.crs)
    pairs = list(gs.tiles(bbox))
    left = min(g.extent.boundingbox.left for _, g in pairs)
    right = max(g.extent.boundingbox.right for _, g in pairs)
    bottom = min(g.extent.boundingbox.bottom for _, g in pairs)
    top = max(g.extent.boundingbox.top for _, g in pairs)
    region_box = GeoBox.from_bbox(
        (left, bottom, right, top),
        crs=gs.crs,
        resolution=resxy_(region.resolution, -region.resolution),
        tight=True,
    )
    tiles = []
    for index, gbox in pairs:
        rows, cols = region_box.overlap_roi(gbox)
        tiles.append(Tile(tuple(int(i) for i in index), gbox, rows, cols))
    tiles.sort(key=lambda t: (t.rows.start, t.cols.start))
    return TargetGrid(gs, region_box, tuple(tiles))
