"""GCOM-C SGLI as ``vi`` sources: L2 VGI land tiles (exact EQA index lookup) and L1B swaths
(pyresample kd-tree nearest neighbour)."""

from __future__ import annotations

import numpy as np
from odc.geo.geobox import GeoBox

from fluxscape.pipeline.adapters.base import (
    Granule,
    cloud_screen,
    day_of_year,
    skip,
    tile_bbox,
    tile_lonlat,
)
from fluxscape.pipeline.sources import Skipped
from fluxscape.readers import sgli_l1b, sgli_l2


def index_l2(paths: list[str], options: dict) -> tuple[list[Granule], list[Skipped]]:
    """VGI tiles: overpass time, tile envelope, tile id as the grid key."""
    granules, skipped = [], []
    for path in paths:
        try:
            info = sgli_l2.granule_info(path)
            if info["product"] != "VGI":
                raise ValueError(f"is an SGLI {info['product']} tile; the vi product needs VGI")
            key = (info["vtile"], info["htile"], info["n"])
            granules.append(Granule(path, info["start"], tuple(info["bbox"]), key, (path,)))
        except Exception as exc:
            skip(skipped, path, exc)
    return granules, skipped


def read_l2(
    granules: list[Granule], tile: GeoBox, options: dict, skipped: list[Skipped]
) -> list[tuple[Granule, dict]]:
    """NDVI/EVI and the QA cloud mask of each tile on the target pixels."""
    vtile, htile, n = granules[0].key
    lon, lat = tile_lonlat(tile)
    rows, cols, valid = sgli_l2.tile_pixel_index(lon, lat, vtile, htile, n)
    if not valid.any():
        return []
    r0, r1 = int(rows[valid].min()), int(rows[valid].max()) + 1
    c0, c1 = int(cols[valid].min()), int(cols[valid].max()) + 1
    rr, cc = np.where(valid, rows - r0, 0), np.where(valid, cols - c0, 0)
    out = []
    for granule in granules:
        try:
            ds = sgli_l2.open_sgli_l2(
                granule.path, ["NDVI", "EVI", "QA_flag"], roi=(slice(r0, r1), slice(c0, c1))
            )
        except Exception as exc:
            skip(skipped, granule.path, exc)
            continue
        ndvi = np.where(valid, ds["NDVI"].values[rr, cc], np.nan)
        evi = np.where(valid, ds["EVI"].values[rr, cc], np.nan)
        cloudy = np.where(valid, sgli_l2.cloud_mask(ds["QA_flag"].values[rr, cc]), True)
        observed = valid & np.isfinite(ndvi)
        layers = {
            "ndvi": ndvi.astype("float32"),
            "evi": evi.astype("float32"),
            "reliability": np.where(observed, np.where(cloudy, 3, 0), -1),
            "usable": observed & ~cloudy,
            "doy": np.full(ndvi.shape, day_of_year(granule.start), "float32"),
        }
        out.append((granule, layers))
    return out


L1B_BANDS = {"VN03": "blue", "VN06": "green", "VN08": "red", "VN11": "nir"}


def index_l1b(paths: list[str], options: dict) -> tuple[list[Granule], list[Skipped]]:
    """VNR L1B scenes: scene time and swath bbox (each swath is its own grid)."""
    granules, skipped = [], []
    for path in paths:
        if "_VNR" not in path.rsplit("/", 1)[-1]:
            continue  # IRS/POL files of the scene carry no VN band
        try:
            info = sgli_l1b.granule_info(path)
            granules.append(Granule(path, info["start"], tuple(info["bbox"]), path, (path,)))
        except Exception as exc:
            skip(skipped, path, exc)
    return granules, skipped


def read_l1b(
    granules: list[Granule], tile: GeoBox, options: dict, skipped: list[Skipped]
) -> list[tuple[Granule, dict]]:
    """Reflectances of one swath resampled to the tile by nearest neighbour (pyresample)."""
    from pyresample import geometry, kd_tree

    lon, lat = tile_lonlat(tile)
    target = geometry.GridDefinition(lons=lon, lats=lat)
    out = []
    for granule in granules:
        try:
            window = sgli_l1b.window_for_bbox(granule.path, tile_bbox(tile, 0.05))
            if window is None:
                continue
            ds = sgli_l1b.open_sgli_l1b(granule.path, list(L1B_BANDS), roi=window)
        except Exception as exc:
            skip(skipped, granule.path, exc)
            continue
        swath = geometry.SwathDefinition(lons=ds["lon"].values, lats=ds["lat"].values)
        valid_in, valid_out, index_array, _ = kd_tree.get_neighbour_info(
            swath, target, radius_of_influence=1500, neighbours=1
        )
        layers = {}
        for band, name in L1B_BANDS.items():
            layers[name] = kd_tree.get_sample_from_neighbour_info(
                "nn",
                target.shape,
                ds[band].values.astype("float32"),
                valid_in,
                valid_out,
                index_array,
                fill_value=np.nan,
            ).astype("float32")
        observed = np.isfinite(layers["red"]) & np.isfinite(layers["nir"])
        cloudy = cloud_screen(layers["red"])
        layers["reliability"] = np.where(observed, np.where(cloudy, 3, 0), -1)
        layers["usable"] = observed & ~cloudy
        layers["doy"] = np.full(lon.shape, day_of_year(granule.start), "float32")
        out.append((granule, layers))
    return out
