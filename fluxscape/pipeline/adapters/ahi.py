"""Himawari AHI as ``vi`` sources: HSD segments (satpy ``ahi_hsd``, pyresample index lookup on
the geostationary area, only the segments over the tile are opened) and JAXA P-Tree gridded
NetCDF (odc-geo index lookup on its regular lat/lon grid); P-Tree also as an ``lst`` source
(:func:`read_lst_ptree`: split window on B13 and B15).

AHI sees a place many times a day; ``options["hours"]`` = [first, last) UTC hours keeps only
observations in a fixed window (e.g. near local noon), so that the sun-angle dependence of the
reflectance does not leak into the season. Clouds are screened by brightness (red) and, for
HSD and P-Tree, by the 10.4 um brightness temperature.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from odc.geo.geobox import GeoBox

from fluxscape.pipeline.adapters.base import (
    Granule,
    cloud_screen,
    day_of_year,
    skip,
    solar_geometry,
    tile_bbox,
    tile_lonlat,
)
from fluxscape.pipeline.resample import gather, nearest_index
from fluxscape.pipeline.sources import Skipped
from fluxscape.products import split_window
from fluxscape.readers import ahi_hsd, ahi_ptree

HSD_BANDS = {"B03": "red", "B04": "nir", "B05": "swir16", "B06": "swir22"}
COLD_CLOUD_K = 265.0


def _in_hours(when, options: dict) -> bool:
    hours = options.get("hours")
    if not hours:
        return True
    h = when.hour + when.minute / 60
    return hours[0] <= h < hours[1]


def index_hsd(paths: list[str], options: dict) -> tuple[list[Granule], list[Skipped]]:
    """Group segment files by observation (satellite + nominal time); one granule each."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    skipped: list[Skipped] = []
    for path in paths:
        try:
            info = ahi_hsd.granule_info(path)
        except Exception as exc:
            skip(skipped, path, exc)
            continue
        if info["bbox"] is None or not _in_hours(info["nominal_start"], options):
            continue
        groups[(info["platform"], info["area"], info["nominal_start"])].append(info)
    granules = []
    for (platform, area, start), infos in sorted(groups.items(), key=lambda kv: kv[0][2]):
        boxes = np.array([i["bbox"] for i in infos])
        bbox = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        paths_ = tuple(sorted(i["path"] for i in infos))
        key = (platform, area, infos[0]["sub_lon"])
        granules.append(Granule(paths_[0], start, tuple(float(v) for v in bbox), key, paths_))
    return granules, skipped


def read_hsd(
    granules: list[Granule], tile: GeoBox, options: dict, skipped: list[Skipped]
) -> list[tuple[Granule, dict]]:
    """Open only the segments over the tile; nearest pixel via the AreaDefinition."""
    lon, lat = tile_lonlat(tile)
    out = []
    cache: dict = {}
    for granule in granules:
        try:
            selected = ahi_hsd.segments_for_bbox(granule.paths, tile_bbox(tile, 0.05))
            if not selected:
                continue
            ds = ahi_hsd.open_hsd(
                selected,
                bands=[*HSD_BANDS, "B13"],
                resolution=options.get("ahi_resolution", 1000),
                solar_angles=False,
            )
        except Exception as exc:
            skip(skipped, granule.path, exc)
            continue
        area = ds.attrs["area"]
        ckey = (area.area_extent, area.shape)
        if ckey not in cache:
            # pyresample returns (column, row) indices of the nearest pixel
            cols, rows = area.get_array_indices_from_lonlat(lon, lat)
            rows, cols = np.ma.filled(rows, -1), np.ma.filled(cols, -1)
            cache[ckey] = (rows, cols, (rows >= 0) & (cols >= 0))
        rows, cols, valid = cache[ckey]
        r, c = np.where(valid, rows, 0), np.where(valid, cols, 0)
        layers = {
            name: np.where(valid, ds[band].values[r, c], np.nan).astype("float32")
            for band, name in HSD_BANDS.items()
        }
        bt = np.where(valid, ds["B13"].values[r, c], np.nan)
        opened = [str(p) for p in selected]
        out.append((granule, _screen(layers, bt, granule, opened, lon, lat)))
    return out


def _screen(layers: dict, bt: np.ndarray, granule: Granule, opened: list[str], lon, lat) -> dict:
    observed = np.isfinite(layers["red"]) & np.isfinite(layers["nir"])
    with np.errstate(invalid="ignore"):
        cloudy = cloud_screen(layers["red"]) | (bt < COLD_CLOUD_K)
    layers["reliability"] = np.where(observed, np.where(cloudy, 3, 0), -1)
    layers["usable"] = observed & ~cloudy
    layers["doy"] = np.full(layers["red"].shape, day_of_year(granule.start), "float32")
    layers["solar_time"], layers["sza"] = solar_geometry(granule.start, lon, lat)
    layers["_opened"] = opened
    return layers


def index_ptree(paths: list[str], options: dict) -> tuple[list[Granule], list[Skipped]]:
    """P-Tree files: nominal time and grid extent (grid shape and bbox as the key)."""
    granules, skipped = [], []
    for path in paths:
        try:
            info = ahi_ptree.granule_info(path)
        except Exception as exc:
            skip(skipped, path, exc)
            continue
        if not _in_hours(info["nominal_start"], options):
            continue
        key = (info["pixels"], info["lines"], tuple(info["bbox"]))
        granules.append(Granule(path, info["nominal_start"], tuple(info["bbox"]), key, (path,)))
    return granules, skipped


def _ptree_scenes(granules: list[Granule], tile: GeoBox, variables: list[str], skipped):
    """``(granule, dataset, index)`` for each readable P-Tree file over the tile (its
    reflectances plus ``variables``, cut to the tile's bbox + 0.1 degree), with the
    nearest-pixel ``index`` built once; unreadable files are recorded in ``skipped``."""
    index = None
    for granule in granules:
        try:
            ds = ahi_ptree.open_ptree(granule.path, variables=variables, bbox=tile_bbox(tile, 0.1))
        except Exception as exc:
            skip(skipped, granule.path, exc)
            continue
        if index is None:
            index = nearest_index(ds.odc.geobox, tile)
        if index.empty:
            return
        yield granule, ds, index


def read_ptree(
    granules: list[Granule], tile: GeoBox, options: dict, skipped: list[Skipped]
) -> list[tuple[Granule, dict]]:
    """Reflectance of bands 3-6 and tbb_13 on the tile by an odc-geo index lookup."""
    out = []
    lon, lat = tile_lonlat(tile)
    for granule, ds, index in _ptree_scenes(granules, tile, ["tbb_13"], skipped):
        w = index.window
        layers = {
            name: gather(ds[f"reflectance_{b:02d}"].values[w], index, np.nan).astype("float32")
            for b, name in ((3, "red"), (4, "nir"), (5, "swir16"), (6, "swir22"))
        }
        bt = gather(ds["tbb_13"].values[w], index, np.nan)
        out.append((granule, _screen(layers, bt, granule, [granule.path], lon, lat)))
    return out


#: Native P-Tree pixels around a cloudy pixel whose LST is "other quality" (reliability 1):
#: cloud edges and thin cloud the brightness tests miss make the split window too cold.
LST_CLOUD_BUFFER = 2


def _lst_quality(red: np.ndarray, bt13: np.ndarray, lst: np.ndarray) -> np.ndarray:
    """MOD11-like quality class per native pixel: 0 good, 1 other quality (within
    :data:`LST_CLOUD_BUFFER` pixels of a cloud), 2 cloud (bright red or B13 colder than
    :data:`COLD_CLOUD_K`), 3 not produced (no LST: fill or night)."""
    from scipy.ndimage import binary_dilation

    with np.errstate(invalid="ignore"):
        cloudy = cloud_screen(red) | (bt13 < COLD_CLOUD_K)
    near = cloudy
    if LST_CLOUD_BUFFER > 0 and cloudy.any():
        near = binary_dilation(cloudy, np.ones((3, 3), bool), iterations=LST_CLOUD_BUFFER)
    quality = np.where(near, 1, 0)
    quality = np.where(cloudy, 2, quality)
    return np.where(np.isfinite(lst) & np.isfinite(red), quality, 3)


def read_lst_ptree(
    granules: list[Granule], tile: GeoBox, options: dict, skipped: list[Skipped]
) -> list[tuple[Granule, dict]]:
    """Each P-Tree scene's daytime land surface temperature on the tile, the ``lst`` layer
    contract of :func:`fluxscape.pipeline.adapters.modis.read_lst`: ``lst`` (K, split window
    :func:`fluxscape.products.split_window.split_window_lst` on ``tbb_13`` and ``tbb_15``
    with emissivities from the scene's NDVI, :func:`~fluxscape.products.split_window.
    ndvi_emissivity`), ``view_time`` (local mean solar time, hours), ``qc`` and
    ``reliability`` (the class of :func:`_lst_quality`: 0 good, 1 near cloud, 2 cloud, 3 not
    produced; -1 off the file's grid) and ``usable`` (reliability <= ``options["max_qa"]``,
    default 0, and LST finite). Nearest neighbour from the 0.02 degree grid; quality is
    decided on the native grid (the cloud buffer needs the neighbours). A file that cannot be
    read or has no tbb_13/tbb_15 is skipped."""
    out = []
    lon, lat = tile_lonlat(tile)
    max_qa = options.get("max_qa", 0)
    for granule, ds, index in _ptree_scenes(granules, tile, ["tbb_13", "tbb_15"], skipped):
        red, nir = ds["reflectance_03"].values, ds["reflectance_04"].values
        bt13, bt15 = ds["tbb_13"].values, ds["tbb_15"].values
        with np.errstate(invalid="ignore", divide="ignore"):
            ndvi = (nir - red) / (nir + red)
        lst = split_window.split_window_lst(bt13, bt15, *split_window.ndvi_emissivity(ndvi))
        quality = _lst_quality(red, bt13, lst)
        w = index.window
        layers = {"lst": gather(lst[w], index, np.nan).astype("float32")}
        layers["qc"] = gather(quality[w], index, -1).astype("int32")
        layers["reliability"] = layers["qc"]
        layers["usable"] = (layers["qc"] >= 0) & (layers["qc"] <= max_qa)
        layers["usable"] &= np.isfinite(layers["lst"])
        layers["view_time"] = solar_geometry(granule.start, lon, lat)[0]
        out.append((granule, layers))
    return out
