"""The ``vi`` product: read MODIS VI granules that meet a tile, resample them onto the tile,
mask with QA, compute indices and write the tile's region of the store.

Runs on a Dask worker; it takes plain values (paths, GeoBoxes, dates) and returns what it
skipped, so it is idempotent and its memory is bounded by the tile (time x tile x tile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.resample import gather, nearest_index, reproject_stack
from fluxscape.pipeline.sources import (
    Granule,
    Skipped,
    expand_paths,
    granules_for,
    index_granules,
)
from fluxscape.pipeline.steps.base import Plan, StepContext
from fluxscape.pipeline.store import VariableSpec, write_tile
from fluxscape.pipeline.timeaxis import period_index, period_starts
from fluxscape.products import indices, qa
from fluxscape.readers.modis_hdf4 import open_modis_tile

MODIS_LAYERS = [
    "NDVI",
    "EVI",
    "VI_Quality",
    "pixel_reliability",
    "red_reflectance",
    "NIR_reflectance",
    "blue_reflectance",
    "MIR_reflectance",
    "composite_day_of_the_year",
]
INT_LAYERS = ["VI_Quality", "pixel_reliability"]

VI_VARIABLES = {
    "ndvi": VariableSpec(
        "ndvi",
        "float32",
        {
            "long_name": "normalized difference vegetation index",
            "units": "1",
            "standard_name": "normalized_difference_vegetation_index",
        },
    ),
    "evi": VariableSpec("evi", "float32", {"long_name": "enhanced vegetation index", "units": "1"}),
    "evi2": VariableSpec(
        "evi2", "float32", {"long_name": "two-band enhanced vegetation index", "units": "1"}
    ),
    "nbr": VariableSpec("nbr", "float32", {"long_name": "normalized burn ratio", "units": "1"}),
}
QA_VARIABLE = VariableSpec(
    "qa",
    "uint8",
    {
        "long_name": "pixel reliability of the selected observation",
        "units": "1",
        "flag_values": [0, 1, 2, 3],
        "flag_meanings": "good marginal snow_ice cloudy",
    },
    fill=255,
)
DOY_VARIABLE = VariableSpec(
    "doy",
    "float32",
    {
        "long_name": "day of year of the observation selected for the composite",
        "units": "day of year",
    },
)


def vi_variables(names: list[str]) -> list[VariableSpec]:
    """Store variables of the vi product: the requested indices, ``qa`` and ``doy``."""
    return [VI_VARIABLES[n] for n in names] + [QA_VARIABLE, DOY_VARIABLE]


@dataclass(frozen=True)
class ViTileTask:
    """Everything one tile needs: where to write, what to read, and how."""

    store: str
    tile_id: str
    geobox: GeoBox
    rows: slice
    cols: slice
    times: tuple  # period start dates (numpy datetime64)
    granules: tuple[Granule, ...]
    variables: tuple[str, ...]
    max_pixel_reliability: int
    resampling: str


def _read_group_on_tile(
    granules: list[Granule], tile: GeoBox, resampling: str, skipped: list[Skipped]
) -> list[tuple[Granule, dict[str, np.ndarray]]]:
    """Granules that share one native grid, read over the tile's footprint only and
    resampled onto ``tile`` (layer name -> (y, x) array per granule). Granules that fail to
    read are appended to ``skipped``."""
    src_box = granules[0].geobox
    index = nearest_index(src_box, tile)
    if index.empty:
        return []
    window = index.window
    if resampling != "nearest":  # read a padded window for interpolating methods
        rr = compute_reproject_roi(src_box, tile)
        window = rr.roi_src
    out = []
    for granule in granules:
        try:
            ds = open_modis_tile(granule.path, MODIS_LAYERS, roi=window)
        except Exception as exc:
            skipped.append(Skipped(granule.path, str(exc).replace(f"{granule.path}: ", "")))
            continue
        layers = {}
        for name in MODIS_LAYERS:
            nodata = -1 if name in INT_LAYERS else np.nan
            data = ds[name].values.astype("int32" if name in INT_LAYERS else "float32")
            if resampling == "nearest" or name in INT_LAYERS:
                if resampling != "nearest":
                    data = reproject_stack(data[None], src_box[window], tile, "nearest", nodata)[0]
                else:
                    data = gather(data, index, nodata)
            else:
                data = reproject_stack(data[None], src_box[window], tile, resampling, nodata)[0]
            layers[name] = data
        out.append((granule, layers))
    return out


def run_vi_tile(task: ViTileTask) -> dict:
    """Compute and write one tile of the vi product. Returns ``{"tile": id, "skipped":
    [{"file", "reason"}], "granules": n}``; unreadable granules are skipped, not raised."""
    times = pd.DatetimeIndex(task.times)
    ny, nx = task.geobox.shape.yx
    nt = len(times)
    out = {v: np.full((nt, ny, nx), np.nan, np.float32) for v in task.variables}
    qa_out = np.full((nt, ny, nx), 255, np.uint8)
    doy_out = np.full((nt, ny, nx), np.nan, np.float32)
    skipped: list[Skipped] = []
    groups: dict[GeoBox, list[Granule]] = {}
    for granule in task.granules:
        if period_index(times, granule.start) is not None:
            groups.setdefault(granule.geobox, []).append(granule)
    used = 0
    for members in groups.values():
        for granule, layers in _read_group_on_tile(members, task.geobox, task.resampling, skipped):
            t = period_index(times, granule.start)
            used += 1
            rel = layers["pixel_reliability"]
            observed = rel >= 0
            usable = qa.modis_vi_usable(layers["VI_Quality"], rel, task.max_pixel_reliability)
            usable &= np.isnan(out[task.variables[0]][t])  # first granule wins in overlaps
            red, nir = layers["red_reflectance"], layers["NIR_reflectance"]
            values = {
                "ndvi": layers["NDVI"],
                "evi": layers["EVI"],
                "evi2": indices.evi2(red, nir),
                "nbr": indices.nbr(nir, layers["MIR_reflectance"]),
            }
            for name in task.variables:
                out[name][t] = np.where(usable, values[name], out[name][t])
            fresh = observed & (qa_out[t] == 255)
            qa_out[t] = np.where(fresh, np.clip(rel, 0, 3), qa_out[t]).astype(np.uint8)
            doy_out[t] = np.where(usable, layers["composite_day_of_the_year"], doy_out[t])
    data = {name: (("time", "y", "x"), arr) for name, arr in out.items()}
    data["qa"] = (("time", "y", "x"), qa_out)
    data["doy"] = (("time", "y", "x"), doy_out)
    write_tile(Path(task.store), xr.Dataset(data), task.rows, task.cols)
    return {"tile": task.tile_id, "skipped": [s.to_json() for s in skipped], "granules": used}


def plan(ctx: StepContext) -> Plan:
    """Index the product's input granules and plan one task per tile."""
    product = ctx.product
    inp = ctx.workflow.inputs[product.input]
    files = expand_paths(inp.paths)
    granules, skipped = index_granules(files, inp.reader)
    times = period_starts(ctx.workflow.period)
    per_tile = {t.id: granules_for(t.geobox, granules) for t in ctx.grid.tiles}
    if not any(per_tile.values()):
        raise FluxscapeError(
            f"inputs.{product.input}: none of its {len(files)} file(s) covers the region "
            f"{list(ctx.workflow.region.lonlat_bbox)}"
        )

    def make_task(tile: Tile) -> ViTileTask:
        return ViTileTask(
            str(ctx.store),
            tile.id,
            tile.geobox,
            tile.rows,
            tile.cols,
            tuple(times.values),
            tuple(per_tile[tile.id]),
            tuple(product.variables),
            product.max_pixel_reliability,
            product.resampling,
        )

    return Plan(
        dims={"time": times.values},
        variables=vi_variables(product.variables),
        summary="Vegetation indices composited on the target grid from QA-masked satellite "
        "observations",
        make_task=make_task,
        run_tile=run_vi_tile,
        inputs=[g.path for g in granules],
        skipped=skipped,
    )
