"""The ``vi`` product: vegetation indices composited per period on the target grid.

For each tile: the input's granules that meet it are read onto the tile through their source
adapter (:mod:`fluxscape.pipeline.adapters`), masked with their QA / cloud screen, and
composited per period by maximum NDVI among usable observations (the MODIS MVC rule; a MODIS
16-day file is already one composite, AHI and SGLI give several observations per period) or,
with ``composite: median``, by the QA-weighted median NDVI observation
(:mod:`fluxscape.products.composite`).
``doy`` keeps the day of year of the observation each composite took, ``qa`` its
reliability (or the best reliability seen when nothing was usable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.adapters import adapter_for
from fluxscape.pipeline.adapters.base import Granule
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.sources import Skipped, expand_paths
from fluxscape.pipeline.steps.base import Plan, StepContext
from fluxscape.pipeline.store import VariableSpec, write_tile
from fluxscape.pipeline.timeaxis import period_index, period_starts
from fluxscape.products import composite, indices

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
    "grvi": VariableSpec(
        "grvi", "float32", {"long_name": "green-red vegetation index", "units": "1"}
    ),
    "nbr": VariableSpec("nbr", "float32", {"long_name": "normalized burn ratio", "units": "1"}),
    "ndwi": VariableSpec(
        "ndwi",
        "float32",
        {"long_name": "normalized difference water index (NIR, SWIR 1.6 um)", "units": "1"},
    ),
}
QA_VARIABLE = VariableSpec(
    "qa",
    "uint8",
    {
        "long_name": "reliability of the selected observation",
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

#: Indices each reader can give (from delivered layers or from its bands).
CAPABILITIES = {
    "modis_hdf4": {"ndvi", "evi", "evi2", "nbr"},
    "sgli_l2": {"ndvi", "evi"},
    "sgli_l1b": {"ndvi", "evi", "evi2", "grvi"},
    "ahi_hsd": {"ndvi", "evi2", "nbr", "ndwi"},
    "ahi_ptree": {"ndvi", "evi2", "nbr", "ndwi"},
}


def vi_variables(names: list[str]) -> list[VariableSpec]:
    """Store variables of the vi product: the requested indices, ``qa`` and ``doy``."""
    return [VI_VARIABLES[n] for n in names] + [QA_VARIABLE, DOY_VARIABLE]


def compute_indices(layers: dict, names: list[str]) -> dict[str, np.ndarray]:
    """The requested indices (plus ndvi) from standard layers; delivered ndvi/evi win."""
    get = layers.get
    out = {"ndvi": get("ndvi") if get("ndvi") is not None else indices.ndvi(get("red"), get("nir"))}
    formulas = {
        "evi": lambda: (
            get("evi")
            if get("evi") is not None
            else indices.evi(get("red"), get("nir"), get("blue"))
        ),
        "evi2": lambda: indices.evi2(get("red"), get("nir")),
        "grvi": lambda: indices.grvi(get("green"), get("red")),
        "nbr": lambda: indices.nbr(get("nir"), get("swir22")),
        "ndwi": lambda: indices.ndwi(get("nir"), get("swir16")),
    }
    for name in names:
        if name != "ndvi":
            out[name] = formulas[name]()
    return out


@dataclass(frozen=True)
class ViTileTask:
    """Everything one tile needs: where to write, what to read, and how."""

    store: str
    tile_id: str
    geobox: GeoBox
    rows: slice
    cols: slice
    times: tuple
    reader: str
    granules: tuple[Granule, ...]
    variables: tuple[str, ...]
    options: dict
    composite: str = "max_ndvi"


def run_vi_tile(task: ViTileTask) -> dict:
    """Composite and write one tile. Returns ``{"tile", "skipped", "granules", "opened"}``;
    unreadable granules are skipped (file and reason), not raised."""
    times = pd.DatetimeIndex(task.times)
    ny, nx = task.geobox.shape.yx
    shape = (len(times), ny, nx)
    out = {v: np.full(shape, np.nan, np.float32) for v in task.variables}
    best = np.full(shape, np.nan, np.float32)
    qa_out = np.full(shape, 255, np.uint8)
    doy_out = np.full(shape, np.nan, np.float32)
    skipped: list[Skipped] = []
    groups: dict = {}
    for granule in task.granules:
        if period_index(times, granule.start) is not None:
            groups.setdefault(granule.key, []).append(granule)
    adapter = adapter_for(task.reader)
    used, opened = 0, []
    stacks: dict[int, list] = {}
    for members in groups.values():
        for granule, layers in adapter.read(members, task.geobox, task.options, skipped):
            t = period_index(times, granule.start)
            used += 1
            opened += layers.pop("_opened", [])
            values = compute_indices(layers, list(task.variables))
            if task.composite == "median":
                stacks.setdefault(t, []).append((values, layers))
                continue
            ndvi = values["ndvi"]
            with np.errstate(invalid="ignore"):
                take = layers["usable"] & np.isfinite(ndvi) & ~(ndvi <= best[t])
            best[t] = np.where(take, ndvi, best[t])
            for name in task.variables:
                out[name][t] = np.where(take, values[name], out[name][t])
            doy_out[t] = np.where(take, layers["doy"], doy_out[t])
            rel = layers["reliability"]
            chosen_or_better = take | ((rel >= 0) & ~np.isfinite(best[t]) & (rel < qa_out[t]))
            qa_out[t] = np.where(chosen_or_better, np.clip(rel, 0, 3), qa_out[t])
    for t, stack in stacks.items():
        _median_composite(stack, t, task.variables, out, qa_out, doy_out)
    data = {name: (("time", "y", "x"), arr) for name, arr in out.items()}
    data["qa"] = (("time", "y", "x"), qa_out)
    data["doy"] = (("time", "y", "x"), doy_out)
    write_tile(Path(task.store), xr.Dataset(data), task.rows, task.cols)
    return {
        "tile": task.tile_id,
        "skipped": [s.to_json() for s in skipped],
        "granules": used,
        "opened": sorted(set(opened)),
    }


def _median_composite(stack: list, t: int, variables, out: dict, qa_out, doy_out) -> None:
    """Period ``t`` from its observations ``stack`` [(indices, layers)]: the QA-weighted median
    NDVI observation where one is usable, else the best reliability seen (as the MVC path)."""
    ndvi = np.stack([v["ndvi"] for v, _ in stack])
    rel = np.stack([layers["reliability"] for _, layers in stack])
    usable = np.stack([layers["usable"] for _, layers in stack]) & np.isfinite(ndvi)
    index, found = composite.weighted_median_index(ndvi, composite.qa_weights(rel, usable))

    def pick(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, index[None], axis=0)[0]

    for name in variables:
        out[name][t] = np.where(found, pick(np.stack([v[name] for v, _ in stack])), np.nan)
    doy_out[t] = np.where(found, pick(np.stack([layers["doy"] for _, layers in stack])), np.nan)
    seen = np.where(rel >= 0, rel, 255).min(axis=0)
    qa_out[t] = np.where(found, np.clip(pick(rel), 0, 3), np.clip(seen, 0, 255)).astype(np.uint8)


def _no_coverage(ctx: StepContext, name: str, files, indexed, in_period) -> str:
    """One line saying why no granule meets the region or period, with the inputs' extent."""
    wf = ctx.workflow
    if not indexed:
        return f"inputs.{name}: none of its {len(files)} file(s) could be read (see the log)"
    if not in_period:
        first = min(g.start for g in indexed).date()
        last = max(g.start for g in indexed).date()
        return (
            f"inputs.{name}: its {len(indexed)} granule(s) span {first} to {last}, outside "
            f"period {wf.period.start} to {wf.period.end}; hint: change period or the input paths"
        )
    w = min(g.bbox[0] for g in in_period)
    s = min(g.bbox[1] for g in in_period)
    e = max(g.bbox[2] for g in in_period)
    n = max(g.bbox[3] for g in in_period)
    return (
        f"inputs.{name}: none of its {len(files)} file(s) covers the region "
        f"{list(wf.region.lonlat_bbox)} (their headers span [{w:.2f}, {s:.2f}, {e:.2f}, {n:.2f}]); "
        "hint: check region.bbox (W, S, E, N in degrees) or `fluxscape inspect` the files"
    )


def plan(ctx: StepContext) -> Plan:
    """Index the input's granules (headers only) and plan one task per tile."""
    product = ctx.product
    inp = ctx.workflow.inputs[product.input]
    unsupported = set(product.variables) - CAPABILITIES.get(inp.reader, set())
    if unsupported:
        raise FluxscapeError(
            f"products.{ctx.name}.variables: {sorted(unsupported)} cannot be made from "
            f"{inp.reader} (it gives {sorted(CAPABILITIES.get(inp.reader, set()))})"
        )
    adapter = adapter_for(inp.reader)
    options = {
        "max_reliability": product.max_pixel_reliability,
        "resampling": product.resampling,
        "hours": list(product.hours) if product.hours else None,
    }
    files = expand_paths(inp.paths)
    indexed, skipped = adapter.index(files, options)
    times = period_starts(ctx.workflow.period)
    granules = [g for g in indexed if period_index(times, g.start) is not None]
    per_tile = {t.id: [g for g in granules if g.meets(t.geobox)] for t in ctx.grid.tiles}
    if not any(per_tile.values()):
        raise FluxscapeError(_no_coverage(ctx, product.input, files, indexed, granules))

    def make_task(tile: Tile) -> ViTileTask:
        return ViTileTask(
            str(ctx.store),
            tile.id,
            tile.geobox,
            tile.rows,
            tile.cols,
            tuple(times.values),
            inp.reader,
            tuple(per_tile[tile.id]),
            tuple(product.variables),
            options,
            product.composite,
        )

    return Plan(
        dims={"time": times.values},
        variables=vi_variables(product.variables),
        summary=f"Vegetation indices ({inp.reader}) composited per {ctx.workflow.period.step} "
        "period on the target grid from QA-masked observations ("
        + ("QA-weighted median NDVI" if product.composite == "median" else "maximum NDVI")
        + ")",
        make_task=make_task,
        run_tile=run_vi_tile,
        inputs=[p for g in granules for p in (g.paths or (g.path,))],
        skipped=skipped,
    )
