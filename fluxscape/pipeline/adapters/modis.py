"""MODIS tiles on a target tile (odc-geo index lookup on the sinusoidal grid): MOD13/MYD13 VI
tiles as a ``vi`` source (:func:`read`), MCD64A1 burn dates (:func:`read_burn_date`) and
MOD11/MYD11 LST tiles as an ``lst`` source (:func:`read_lst`)."""

from __future__ import annotations

import numpy as np
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi

from fluxscape.pipeline.adapters.base import Granule, skip
from fluxscape.pipeline.resample import gather, nearest_index, reproject_stack
from fluxscape.pipeline.sources import Skipped
from fluxscape.products import qa
from fluxscape.readers import modis_hdf4
from fluxscape.readers.registry import detect

LAYERS = {  # reader variable -> standard layer
    "NDVI": "ndvi",
    "EVI": "evi",
    "red_reflectance": "red",
    "NIR_reflectance": "nir",
    "blue_reflectance": "blue",
    "MIR_reflectance": "swir22",
    "composite_day_of_the_year": "doy",
}
INT_LAYERS = ("VI_Quality", "pixel_reliability")


def index(paths: list[str], options: dict) -> tuple[list[Granule], list[Skipped]]:
    """Header of each MODIS file: composite start date and tile grid. With
    ``options["products"]`` (product name prefixes, e.g. ``("MOD11", "MYD11")``) files of other
    products are skipped with the reason."""
    granules, skipped = [], []
    wanted = tuple(options.get("products") or ())
    for path in paths:
        try:
            if detect(path).name != "modis_hdf4":
                raise ValueError("is not a MODIS HDF4-EOS file")
            meta = modis_hdf4.parse_filename(path)
            if meta is None:
                raise ValueError("file name does not follow the MODIS convention")
            if wanted and not meta["product"].startswith(wanted):
                raise ValueError(f"is a {meta['product']} file, not {'/'.join(wanted)}")
            gbox = modis_hdf4.tile_geobox(path)
            bb = gbox.extent.to_crs("EPSG:4326").boundingbox
            granules.append(
                Granule(
                    path,
                    meta["start"],
                    (bb.left, bb.bottom, bb.right, bb.top),
                    gbox,
                    (path,),
                    footprint=gbox.extent,
                )
            )
        except Exception as exc:  # any failure to read a header skips the file
            skip(skipped, path, exc)
    return granules, skipped


def read(
    granules: list[Granule], tile: GeoBox, options: dict, skipped: list[Skipped]
) -> list[tuple[Granule, dict]]:
    """Each granule's layers over the tile (one index lookup for the shared tile grid)."""
    src_box: GeoBox = granules[0].key
    resampling = options.get("resampling", "nearest")
    index_ = nearest_index(src_box, tile)
    if index_.empty:
        return []
    window = (
        index_.window if resampling == "nearest" else compute_reproject_roi(src_box, tile).roi_src
    )
    out = []
    for granule in granules:
        try:
            ds = modis_hdf4.open_modis_tile(granule.path, [*LAYERS, *INT_LAYERS], roi=window)
        except Exception as exc:
            skip(skipped, granule.path, exc)
            continue
        layers = {}
        for name in [*LAYERS, *INT_LAYERS]:
            is_int = name in INT_LAYERS
            nodata = -1 if is_int else np.nan
            data = ds[name].values.astype("int32" if is_int else "float32")
            if resampling == "nearest":
                data = gather(data, index_, nodata)
            else:
                how = "nearest" if is_int else resampling
                data = reproject_stack(data[None], src_box[window], tile, how, nodata)[0]
            layers[LAYERS.get(name, name)] = data
        rel = layers.pop("pixel_reliability")
        quality = layers.pop("VI_Quality")
        layers["reliability"] = np.where(rel >= 0, np.clip(rel, 0, 3), -1)
        layers["usable"] = qa.modis_vi_usable(quality, rel, options.get("max_reliability", 1))
        out.append((granule, layers))
    return out


def _each_granule(granules: list[Granule], tile: GeoBox, skipped: list[Skipped], read_one):
    """``[(granule, read_one(granule, index))]`` for granules sharing one native grid, with the
    nearest-pixel ``index`` of the tile built once; a granule whose ``read_one`` raises is
    recorded in ``skipped`` and left out."""
    index_ = nearest_index(granules[0].key, tile)
    if index_.empty:
        return []
    out = []
    for granule in granules:
        try:
            out.append((granule, read_one(granule, index_)))
        except Exception as exc:
            skip(skipped, granule.path, exc)
    return out


def read_burn_date(
    granules: list[Granule], tile: GeoBox, skipped: list[Skipped]
) -> list[tuple[Granule, np.ndarray]]:
    """MCD64A1 ``Burn Date`` codes of each monthly granule on the tile, nearest neighbour from
    the 500 m sinusoidal grid. Granules must share one native grid (``Granule.key``).
    Returns [(granule, int16 (y, x))]: 0 unburned, 1-366 day of year of the burn, -1 unmapped
    (also where the granule does not cover the pixel), -2 water. Unreadable files are
    recorded in ``skipped`` and left out."""

    def read_one(granule: Granule, index_) -> np.ndarray:
        ds = modis_hdf4.open_modis_tile(granule.path, ["Burn_Date"], roi=index_.window)
        codes = np.nan_to_num(ds["Burn_Date"].values, nan=-1).astype(np.int16)
        return gather(codes, index_, -1)

    return _each_granule(granules, tile, skipped, read_one)


#: Products :func:`read_lst` reads (``options["products"]`` of :func:`index` for LST).
LST_PRODUCTS = ("MOD11", "MYD11")
#: MOD11 daytime layers read by :func:`read_lst` (reader variable -> standard layer).
LST_LAYERS = {"LST_Day_1km": "lst", "Day_view_time": "view_time"}
LST_QC = "QC_Day"


def read_lst(
    granules: list[Granule], tile: GeoBox, options: dict, skipped: list[Skipped]
) -> list[tuple[Granule, dict]]:
    """Each MOD11/MYD11 granule's daytime LST over the tile: ``lst`` (K, NaN where fill),
    ``view_time`` (local solar hours), ``qc`` (the QC_Day word, -1 off the source grid),
    ``reliability`` (the mandatory QA bits 0-1: 0 good, 1 other quality, 2 cloud, 3 other
    not produced; -1 no pixel) and ``usable`` (mandatory QA <= ``options["max_qa"]``, default
    0, and LST present). Nearest neighbour only (LST is not averaged across QA classes);
    a file that is not MOD11 or cannot be read is skipped."""

    def read_one(granule: Granule, index_) -> dict:
        product = (modis_hdf4.parse_filename(granule.path) or {}).get("product", "")
        if not product.startswith(LST_PRODUCTS):
            raise ValueError(f"is a {product or 'non-MODIS'} file, not MOD11/MYD11 LST")
        ds = modis_hdf4.open_modis_tile(granule.path, [*LST_LAYERS, LST_QC], roi=index_.window)
        layers = {
            std: gather(ds[name].values.astype("float32"), index_, np.nan)
            for name, std in LST_LAYERS.items()
        }
        qc = gather(ds[LST_QC].values.astype("int32"), index_, -1)
        layers["qc"] = qc
        layers["reliability"] = np.where(qc >= 0, qa.bits(np.maximum(qc, 0), 0, 1), -1)
        layers["usable"] = qa.mod11_usable(layers["lst"], qc, options.get("max_qa", 0))
        return layers

    return _each_granule(granules, tile, skipped, read_one)
