"""Target grid tiling (odc-geo) and nearest-neighbour resampling of sinusoidal tiles."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from odc.geo.xr import xr_reproject

from fluxscape.pipeline.grid import target_grid
from fluxscape.pipeline.schema import Region
from fluxscape.readers.modis_hdf4 import open_modis_tile, tile_geobox
from fluxscape.readers.ontile import gather, nearest_index


def test_tiles_cover_region_without_overlap():
    grid = target_grid(Region(bbox=(138.0, 35.5, 139.0, 36.5), resolution=0.01), 25)
    assert grid.geobox.shape.yx == (100, 100)
    cover = np.zeros(grid.geobox.shape.yx, int)
    for tile in grid.tiles:
        cover[tile.rows, tile.cols] += 1
        assert tile.geobox == grid.geobox[tile.rows, tile.cols]
    assert (cover == 1).all()


def test_region_snaps_to_pixel_grid_and_edge_tiles_are_smaller():
    grid = target_grid(Region(bbox=(138.034, 35.512, 138.968, 36.487), resolution=0.01), 25)
    w, s, e, n = grid.geobox.extent.boundingbox
    assert (w, s, e, n) == pytest.approx((138.03, 35.51, 138.97, 36.49), abs=1e-9)
    assert grid.geobox.shape.yx == (98, 94)
    last = grid.tiles[-1]
    assert last.geobox.shape.yx == (23, 19) and (last.rows.stop, last.cols.stop) == (98, 94)


def test_nearest_lookup_agrees_with_gdal_warp(sample_dir):
    path = sorted((sample_dir / "modis").glob("*.hdf"))[14]
    src_box = tile_geobox(path)
    tile = target_grid(Region(bbox=(138.25, 35.75, 138.5, 36.0)), 25).tiles[0].geobox
    index = nearest_index(src_box, tile)
    window = open_modis_tile(path, ["NDVI"], roi=index.window)
    ours = gather(window.NDVI.values, index, np.nan)
    full = open_modis_tile(path, ["NDVI"], roi=index.window)
    gdal = xr_reproject(full.NDVI, tile, resampling="nearest", dst_nodata=np.nan).values
    both = np.isfinite(ours) & np.isfinite(gdal)
    assert both.mean() > 0.5
    # pixel centres exactly on a source pixel edge may round either way
    assert (ours[both] == gdal[both]).mean() > 0.98
    assert isinstance(window, xr.Dataset)


def test_geobox_region_is_the_native_grid_of_a_real_modis_tile(realdata_dir):
    """``origin`` + ``shape`` give a grid exactly, pixel edges where the data centre put them
    (a bbox would snap them to multiples of the resolution): the grid of a real MODIS tile."""
    from fluxscape.readers.modis_hdf4 import SINUSOIDAL_PROJ, read_grids

    path = sorted((realdata_dir / "modis_hdf4").glob("MOD09A1.*.hdf"))[0]
    native = read_grids(path)[0].geobox
    res = native.resolution.x
    region = Region(
        crs=SINUSOIDAL_PROJ,
        resolution=res,
        origin=(native.affine.c, native.affine.f),
        shape=native.shape.yx,
    )
    grid = target_grid(region, 256)
    assert grid.geobox.shape == native.shape
    np.testing.assert_allclose(tuple(grid.geobox.affine)[:6], tuple(native.affine)[:6], atol=1e-6)
    assert (
        grid.geobox.crs == native.crs and len(grid.tiles) == int(np.ceil(native.shape.y / 256)) ** 2
    )
    w, s, e, n = region.lonlat_bbox  # h18v04 lies north of the equator, east of Greenwich
    assert -20 < w < e < 60 and 30 < s < n < 60


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"bbox": (138.0, 35.5, 139.0, 36.5)}, "give one of"),
        ({"shape": None}, "needs both origin"),
        ({"origin": (1e9, 1e9)}, "cannot transform"),
    ],
)
def test_geobox_region_refuses_what_is_not_one_grid(extra, message):
    from pydantic import ValidationError

    from fluxscape.readers.modis_hdf4 import SINUSOIDAL_PROJ

    base = {"crs": SINUSOIDAL_PROJ, "resolution": 1000.0, "origin": (0.0, 4e6), "shape": (10, 10)}
    with pytest.raises(ValidationError, match=message):
        Region(**(base | extra))


def test_mode_gives_each_coarse_pixel_the_class_most_of_its_source_pixels_have(sample_dir):
    """Land cover on a grid 10x coarser than MCD12Q1 (500 m): ``mode`` is the majority class
    of the source pixels whose centres fall in each cell, counted here by hand; ``nearest``
    (the class at the cell centre) misses it in some cells."""
    import collections

    from odc.geo.geobox import GeoBox
    from pyproj import Transformer

    from fluxscape.pipeline.features import land_cover_codes
    from fluxscape.readers.modis_hdf4 import granule_info

    path = sorted((sample_dir / "landcover").glob("MCD12Q1.*.hdf"))[-1]
    granule = granule_info(path)
    coarse = GeoBox.from_bbox((138.0, 35.5, 139.0, 36.5), "epsg:4326", resolution=0.05)
    mode = land_cover_codes("modis_hdf4", [granule], "LC_Type1", coarse, resampling="mode")
    near = land_cover_codes("modis_hdf4", [granule], "LC_Type1", coarse)

    src = granule.key
    classes = open_modis_tile(path, ["LC_Type1"])["LC_Type1"].values
    rows, cols = np.mgrid[0 : src.shape.y, 0 : src.shape.x]
    x, y = src.affine * (cols + 0.5, rows + 0.5)
    lon, lat = Transformer.from_crs(src.crs.to_wkt(), "EPSG:4326", always_xy=True).transform(x, y)
    cc, rr = np.floor((lon - 138.0) / 0.05).astype(int), np.floor((36.5 - lat) / 0.05).astype(int)
    ok = (cc >= 0) & (cc < 20) & (rr >= 0) & (rr < 20)
    votes = collections.defaultdict(collections.Counter)
    for r, c, v in zip(rr[ok], cc[ok], classes[ok], strict=True):
        votes[(r, c)][int(v)] += 1
    majority = np.array(
        [
            [max(votes[(r, c)].items(), key=lambda kv: (kv[1], -kv[0]))[0] for c in range(20)]
            for r in range(20)
        ]
    )
    assert len(np.unique(majority)) >= 3
    np.testing.assert_array_equal(mode, majority)
    assert (near != majority).sum() >= 5


def test_native_grid_report_copies_aligned_grids_and_counts_neighbour_pixels():
    """A grid on the source's lattice copies pixels; a shifted one of the same pixel size
    still takes the source pixel covering most of each pixel (only shear, rotation or other
    pixel sizes move it: the sinusoidal-to-lon/lat case is the demo's test below); a tower in
    a shifted pixel may lie in another source pixel than the one its pixel takes."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from fluxscape.pipeline import native

    src = GeoBox((100, 100), Affine(1000.0, 0, 0, 0, -1000.0, 0), "epsg:32654")
    assert native.aligned(src, src[10:30, 40:90])
    copied = native.neighbour_share([src], src[10:30, 40:90])
    assert copied["aligned"] and copied["pixels_from_neighbour"] == 0.0
    third = GeoBox((50, 50), Affine(1000.0, 0, 333.0, 0, -1000.0, -333.0), "epsg:32654")
    shifted = native.neighbour_share([src], third)
    # a third of a pixel off: the centre's source pixel covers 4/9 of the pixel, still the most
    assert not shifted["aligned"] and shifted["pixels_from_neighbour"] == 0.0
    assert shifted["source_pixels_per_pixel"] == 4
    near_edge = GeoBox((50, 50), Affine(1000.0, 0, 600.0, 0, -1000.0, 0), "epsg:32654")
    assert native.neighbour_share([src], near_edge)["pixels_from_neighbour"] == 0.0
    coarse = GeoBox((5, 5), Affine(5000.0, 0, 0, 0, -5000.0, 0), "epsg:32654")
    assert native.neighbour_share([src], coarse)["source_pixels_per_pixel"] >= 5
    # towers: pixel (0, 0) of near_edge spans source cols 0-1 and takes col 1 (its centre)
    x, y = np.array([700.0, 1500.0, 1e9]), np.array([-500.0, -500.0, -500.0])
    shares = native.shares_native_pixel([src], near_edge, x, y, [0, 0, 0], [0, 0, 0])
    assert shares.tolist() == [False, True, None]


def test_demo_records_how_its_grid_meets_the_modis_pixels(demo_out):
    """The demo's 0.01° grid over 1 km sinusoidal MODIS: the vi store and the report say how
    many pixels take a neighbouring MODIS pixel, sites.csv and the model card whether each
    tower lies in the MODIS pixel its grid pixel takes."""
    import json

    import pandas as pd

    vi = xr.open_zarr(demo_out / "products" / "vi.zarr")
    share = json.loads(vi.attrs["native_grid"])
    assert vi.attrs["resampling"] == "nearest" and not share["aligned"]
    assert 0.05 < share["pixels_from_neighbour"] < 0.6 and share["sampled"] >= 1000
    sites = pd.read_csv(demo_out / "reports" / "flux" / "sites.csv")
    assert sites["native_pixel"].isin([True, False]).all() and len(sites) == 12
    flux = xr.open_zarr(demo_out / "products" / "flux.zarr")
    placed = json.loads(flux.attrs["model_card"])["tower_pixels"]
    assert {s: p["native_pixel"] for s, p in placed.items()} == dict(
        zip(sites["site"], sites["native_pixel"], strict=True)
    )
    report = (demo_out / "report.html").read_text()
    assert "take a neighbouring source pixel" in report and "in the source pixel" in report
