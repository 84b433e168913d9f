"""The ``vi`` product: vegetation indices composited per period on the target grid.

From an ``input``: for each tile, the input's granules that meet it are read onto the tile
through their source adapter (:mod:`fluxscape.pipeline.adapters`), masked with their QA / cloud
screen, and composited per period (the product's ``step``, else ``period.step``) by maximum NDVI
among usable observations (the MODIS MVC rule; a MODIS 16-day file is already one composite,
AHI and SGLI give several observations per period), by the QA-weighted median NDVI observation
(``composite: median``), or, for AHI, by the usable scene nearest a local solar time
(``composite: nearest_time``: the daily clear-sky layer with ``step: 1D``).

From a ``source`` (a vi product with a finer step, e.g. that daily layer): each tile task reads
its region of the source store and composites its time steps by the same rule
(:mod:`fluxscape.pipeline.compositing`, shared by both paths).

``doy`` keeps the day of year of the observation each composite took, ``qa`` its
reliability (or the best reliability seen when nothing was usable); for AHI, ``solar_time``
and ``sza`` its geometry.
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
from fluxscape.pipeline.compositing import Compositor
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.sources import Skipped, expand_paths
from fluxscape.pipeline.steps.base import Plan, StepContext
from fluxscape.pipeline.steps.derived import (
    DerivedTileTask,
    derived_task,
    read_source_tile,
    source_store,
)
from fluxscape.pipeline.store import VariableSpec, write_tile
from fluxscape.pipeline.timeaxis import period_index, period_starts
from fluxscape.products import indices

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

SOLAR_TIME_VARIABLE = VariableSpec(
    "solar_time",
    "float32",
    {
        "long_name": "local mean solar time of the observation selected (UTC + longitude / 15)",
        "units": "hour",
    },
)
SZA_VARIABLE = VariableSpec(
    "sza",
    "float32",
    {
        "long_name": "solar zenith angle of the observation selected",
        "standard_name": "solar_zenith_angle",
        "units": "degree",
    },
)
#: Observation-geometry variables; readers of sources seen many times a day give them.
GEOMETRY = ("solar_time", "sza")
GEOSTATIONARY = {"ahi_hsd", "ahi_ptree"}

#: Indices each reader can give (from delivered layers or from its bands).
CAPABILITIES = {
    "modis_hdf4": {"ndvi", "evi", "evi2", "nbr"},
    "sgli_l2": {"ndvi", "evi"},
    "sgli_l1b": {"ndvi", "evi", "evi2", "grvi"},
    "ahi_hsd": {"ndvi", "evi2", "nbr", "ndwi"},
    "ahi_ptree": {"ndvi", "evi2", "nbr", "ndwi"},
}


def vi_variables(names: list[str], geometry: bool = False) -> list[VariableSpec]:
    """Store variables of the vi product: the requested indices, ``qa`` and ``doy`` (and the
    picked observation's ``solar_time`` and ``sza`` with ``geometry``)."""
    extra = [SOLAR_TIME_VARIABLE, SZA_VARIABLE] if geometry else []
    return [VI_VARIABLES[n] for n in names] + [QA_VARIABLE, DOY_VARIABLE, *extra]


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
    step: str = "16D"
    solar_time: float = 12.0


def carried_variables(variables, geometry: bool) -> tuple[str, ...]:
    """The float variables a composite takes from its picked observation: the indices,
    ``doy`` and, with ``geometry``, ``solar_time`` and ``sza``."""
    return (*variables, "doy", *(GEOMETRY if geometry else ()))


def _write(task_store: str, result: dict, rows: slice, cols: slice) -> None:
    data = {name: (("time", "y", "x"), arr) for name, arr in result.items()}
    write_tile(Path(task_store), xr.Dataset(data), rows, cols)


def run_vi_tile(task: ViTileTask) -> dict:
    """Composite and write one tile. Returns ``{"tile", "skipped", "granules", "opened"}``;
    unreadable granules are skipped (file and reason), not raised."""
    times = pd.DatetimeIndex(task.times)
    skipped: list[Skipped] = []
    groups: dict = {}
    for granule in task.granules:
        if period_index(times, granule.start, task.step) is not None:
            groups.setdefault(granule.key, []).append(granule)
    adapter = adapter_for(task.reader)
    carried = carried_variables(task.variables, task.reader in GEOSTATIONARY)
    comp = Compositor(len(times), task.geobox.shape.yx, carried, task.composite, task.solar_time)
    used, opened = 0, []
    for members in groups.values():
        for granule, layers in adapter.read(members, task.geobox, task.options, skipped):
            used += 1
            opened += layers.pop("_opened", [])
            obs = {k: layers[k] for k in ("reliability", "usable", "doy", *GEOMETRY) if k in layers}
            obs.update(compute_indices(layers, list(task.variables)))
            comp.add(period_index(times, granule.start, task.step), obs)
    _write(task.store, comp.result(), task.rows, task.cols)
    return {
        "tile": task.tile_id,
        "skipped": [s.to_json() for s in skipped],
        "granules": used,
        "opened": sorted(set(opened)),
    }


def run_vi_source_tile(task: DerivedTileTask) -> dict:
    """Composite one tile of a finer vi store (e.g. daily) into this product's periods: every
    source time step with a value is an observation (``qa`` its reliability, usable up to
    ``max_reliability``), composited by the same rule as observations from files."""
    st = task.settings
    times = pd.DatetimeIndex(st["times"])
    src = read_source_tile(task)
    carried = [v for v in task.variables if v != "qa"]
    comp = Compositor(len(times), (src.sizes["y"], src.sizes["x"]), carried, st["composite"])
    written = st["written"]
    arrays = {name: src[name].values for name in task.variables}
    for d, when in enumerate(pd.DatetimeIndex(src.time.values)):
        t = period_index(times, when, st["step"])
        if t is None:
            continue
        q = arrays["qa"][d]  # float, NaN for the fill value 255 (no observation)
        qa = np.where(np.isfinite(q), q, 255).astype(np.int16)
        obs = {name: arrays[name][d] for name in carried}
        obs["reliability"] = np.where(qa == 255, -1, qa)
        obs["usable"] = np.isfinite(obs["ndvi"]) & (qa <= st["max_reliability"])
        comp.add(t, obs)
    result = comp.result()
    _write(task.store, {k: result[k] for k in written}, task.rows, task.cols)
    return {"tile": task.tile_id, "skipped": []}


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
    """A vi product from its input (observations of the files) or from its source (the
    store of a finer vi product)."""
    return _plan_source(ctx) if ctx.product.source is not None else _plan_input(ctx)


def _rule_text(product) -> str:
    if product.composite == "nearest_time":
        return f"the usable scene nearest {product.solar_time:g} h local solar time"
    return "QA-weighted median NDVI" if product.composite == "median" else "maximum NDVI"


def _plan_input(ctx: StepContext) -> Plan:
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
    step = product.step or ctx.workflow.period.step
    times = period_starts(ctx.workflow.period, step)
    granules = [g for g in indexed if period_index(times, g.start, step) is not None]
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
            step,
            product.solar_time,
        )

    return Plan(
        dims={"time": times.values},
        variables=vi_variables(product.variables, inp.reader in GEOSTATIONARY),
        summary=f"Vegetation indices ({inp.reader}) composited per {step} period on the target "
        f"grid from QA-masked observations ({_rule_text(product)})",
        make_task=make_task,
        run_tile=run_vi_tile,
        inputs=[p for g in granules for p in (g.paths or (g.path,))],
        skipped=skipped,
    )


def _plan_source(ctx: StepContext) -> Plan:
    """Composites of the finished store of ``source`` (a vi product with a finer step), one
    task per tile; the tile's region of the source store is read by the task itself."""
    product = ctx.product
    source = source_store(ctx)
    step = product.step or ctx.workflow.period.step
    times = period_starts(ctx.workflow.period, step)
    with xr.open_zarr(source, consolidated=True) as src:
        geometry = all(name in src for name in GEOMETRY)
    read = [*dict.fromkeys(["ndvi", *product.variables]), "doy", *(GEOMETRY if geometry else ())]
    specs = vi_variables(product.variables, geometry)
    settings = {
        "times": tuple(times.values),
        "step": step,
        "composite": product.composite,
        "max_reliability": product.max_pixel_reliability,
        "written": [v.name for v in specs],
    }
    return Plan(
        dims={"time": times.values},
        variables=specs,
        summary=f"Vegetation indices composited per {step} period from the {product.source} "
        f"store ({_rule_text(product)} of its values)",
        make_task=derived_task(ctx, source, [*read, "qa"], settings),
        run_tile=run_vi_source_tile,
        inputs=[],
        source_attrs={"source_product": product.source},
    )
