"""The ``vi`` product: vegetation indices composited per period on the target grid.

From an ``input``: for each tile, the input's granules that meet it are read onto the tile by
their source (:func:`fluxscape.pipeline.inputs.read_onto_tile`), asking for the layers the
requested indices need and no more (delivered NDVI/EVI when the granule has them, else its
bands), masked with their QA / cloud screen, and composited per period (the product's
``step``, else ``period.step``) by maximum NDVI among usable observations (the MODIS MVC rule;
a MODIS 16-day file is already one composite, AHI and SGLI give several observations per
period), by the QA-weighted median NDVI observation (``composite: median``), or, for sources
seen many times a day, by the usable scene nearest a local solar time (``composite:
nearest_time``: the daily clear-sky layer with ``step: 1D``).

From a ``source`` (a vi product with a finer step, e.g. that daily layer): each tile task reads
its region of the source store and composites its time steps by the same rule
(:mod:`fluxscape.pipeline.compositing`, shared by both paths).

``doy`` keeps the day of year of the observation each composite took, ``qa`` its
reliability (or the best reliability seen when nothing was usable); for sources seen many
times a day, ``solar_time`` and ``sza`` its geometry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import native
from fluxscape.pipeline.compositing import Compositor
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.inputs import (
    TileInputs,
    coverage_error,
    granules_per_tile,
    read_onto_tile,
    select,
)
from fluxscape.pipeline.schema import STEPS, ProductRef, StrictModel, TimeStep, input_ref
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.steps.derived import read_source_tile, source_store
from fluxscape.pipeline.store import VariableSpec
from fluxscape.pipeline.timeaxis import period_index, period_starts, time_bounds
from fluxscape.products import indices
from fluxscape.readers.ontile import GEOMETRY, Granule
from fluxscape.readers.registry import get_reader

log = logging.getLogger(__name__)

Index = Literal["ndvi", "evi", "evi2", "grvi", "nbr", "ndwi"]

#: The layers each index is made from, delivered index first: the first alternative the
#: granule gives is read.
INDEX_LAYERS: dict[str, tuple[frozenset[str], ...]] = {
    "ndvi": (frozenset({"ndvi"}), frozenset({"red", "nir"})),
    "evi": (frozenset({"evi"}), frozenset({"red", "nir", "blue"})),
    "evi2": (frozenset({"red", "nir"}),),
    "grvi": (frozenset({"green", "red"}),),
    "nbr": (frozenset({"nir", "swir22"}),),
    "ndwi": (frozenset({"nir", "swir16"}),),
}


def layers_for(variables, available: frozenset[str]) -> frozenset[str] | None:
    """The layers to read for ``variables`` (ndvi always: the composite ranks by it) from a
    source or granule giving ``available``; None when one of them cannot be made."""
    need: set[str] = set()
    for name in dict.fromkeys(["ndvi", *variables]):
        alt = next((a for a in INDEX_LAYERS[name] if a <= available), None)
        if alt is None:
            return None
        need |= alt
    return frozenset(need)


def makeable(available: frozenset[str]) -> list[str]:
    """The indices that can be made from ``available`` layers."""
    return [v for v in INDEX_LAYERS if layers_for([v], available) is not None]


class ViConfig(StrictModel):
    """The ``vi`` product: vegetation indices on the target grid, QA-masked. Made from an
    ``input`` (its observations composited per step) or from the ``source`` store of a vi
    product with a finer step (e.g. 16-day composites of a daily clear-sky AHI layer)."""

    kind: Literal["vi"]
    input: Annotated[str | None, input_ref({"ndvi"}, {"red", "nir"})] = None  # raster input
    source: Annotated[str | None, ProductRef(("vi",))] = None  # or a finer vi product
    step: TimeStep | None = None  # own time step (default period.step)
    variables: list[Index] = ["ndvi"]
    max_pixel_reliability: Annotated[int, Field(ge=0, le=3)] = 1
    resampling: Literal["nearest", "average", "bilinear"] = "nearest"
    hours: tuple[float, float] | None = None  # UTC [first, last) hours of observations kept
    composite: Literal["max_ndvi", "median", "nearest_time"] = "max_ndvi"
    solar_time: Annotated[float, Field(ge=0, lt=24)] = 12.0  # local solar hour nearest_time aims at


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
        "units": "1",
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


_MAX_PICK = "time: point (the observation of maximum NDVI)"
_NEAREST = "time: point (the scene nearest the solar time asked for)"
#: CF cell_methods of each composite rule: (ndvi, the other indices, qa/doy/geometry).
CELL_METHODS = {
    "max_ndvi": ("time: maximum", _MAX_PICK, _MAX_PICK),
    "median": ("time: median", "time: median", "time: point"),
    "nearest_time": (_NEAREST, _NEAREST, _NEAREST),
}


def vi_variables(
    names: list[str], geometry: bool = False, composite: str = "max_ndvi"
) -> list[VariableSpec]:
    """Store variables of the vi product: the requested indices, ``qa`` and ``doy`` (and the
    picked observation's ``solar_time`` and ``sza`` with ``geometry``), with the CF
    ``cell_methods`` of the ``composite`` rule (under max_ndvi only ndvi is the period's
    maximum; the other indices come from the same observation)."""
    ndvi, index, picked = CELL_METHODS[composite]
    specs = [VI_VARIABLES[n] for n in names] + [QA_VARIABLE, DOY_VARIABLE]
    specs += [SOLAR_TIME_VARIABLE, SZA_VARIABLE] if geometry else []
    return [
        replace(
            v,
            attrs={
                **v.attrs,
                "cell_methods": ndvi if v.name == "ndvi" else index if v.name in names else picked,
            },
        )
        for v in specs
    ]


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


def carried_variables(variables, geometry: bool) -> tuple[str, ...]:
    """The float variables a composite takes from its picked observation: the indices,
    ``doy`` and, with ``geometry``, ``solar_time`` and ``sza``."""
    return (*variables, "doy", *(GEOMETRY if geometry else ()))


@dataclass(frozen=True)
class ViTask:
    """One tile of a vi product made from an input: its granules and how to composite.
    ``seed``: (store, first time index) of composites already made of the earlier granules
    of these periods (``fluxscape update``: the new granules are added to them, which the
    ``max_ndvi`` and ``nearest_time`` rules allow: their pick from a pair is their pick from
    all)."""

    tile: Tile
    times: tuple
    reader: str
    granules: tuple[Granule, ...]
    product: ViConfig
    step: str
    options: dict
    seed: tuple[str, int] | None = None


@dataclass(frozen=True)
class ViSourceTask:
    """One tile of a vi product composited from a finer vi store."""

    tile: Tile
    source: str
    read: tuple[str, ...]
    written: tuple[str, ...]
    times: tuple
    step: str
    product: ViConfig


def _rule_text(product: ViConfig) -> str:
    if product.composite == "nearest_time":
        return f"the usable scene nearest {product.solar_time:g} h local solar time"
    return "QA-weighted median NDVI" if product.composite == "median" else "maximum NDVI"


class ViStep(Step):
    kind = "vi"
    Config = ViConfig

    def validate(self, wf, name: str, p: ViConfig) -> None:
        key = f"products.{name}"
        if (p.input is None) == (p.source is None):
            which = "input" if p.input is None else "source"
            raise ValueError(
                f"{key}.{which}: give exactly one of input (an input's observations) or "
                "source (a vi product with a finer step)"
            )
        if p.input is not None:
            spec = get_reader(wf.inputs[p.input].reader)
            if layers_for(p.variables, spec.capabilities) is None:
                raise ValueError(
                    f"{key}.variables: {p.variables} cannot all be made from {spec.name} "
                    f"(it gives {sorted(spec.capabilities)}: {makeable(spec.capabilities)})"
                )
            if p.composite == "nearest_time" and not spec.many_per_day:
                raise ValueError(
                    f"{key}.composite: nearest_time picks among several scenes a day by their "
                    f"time (a source seen many times a day), not {spec.name}"
                )
            return
        src = wf.products[p.source]
        mine, theirs = p.step or wf.period.step, src.step or wf.period.step
        if STEPS.index(theirs) >= STEPS.index(mine):
            raise ValueError(
                f"{key}.step: {mine} is not coarser than the step {theirs} of its "
                f"source {p.source!r}; set step on one of them (e.g. 1D for the source)"
            )
        if p.composite == "nearest_time":
            raise ValueError(
                f"{key}.composite: nearest_time chooses among one day's scenes "
                "(a product with an input); from a source use max_ndvi or median"
            )
        if p.hours is not None:
            raise ValueError(
                f"{key}.hours: selects an input's scenes; its source "
                f"{p.source!r} already did (set hours there)"
            )
        if "ndvi" not in src.variables:
            raise ValueError(
                f"{key}.source: {p.source!r} has no ndvi, which the composite "
                "rule ranks observations by (add ndvi to its variables)"
            )
        missing = [v for v in p.variables if v not in src.variables]
        if missing:
            raise ValueError(
                f"{key}.variables: {missing} are not in its source {p.source!r} "
                f"(it has {src.variables})"
            )

    def plan(self, ctx: StepContext) -> Plan:
        return _plan_source(ctx) if ctx.product.source is not None else _plan_input(ctx)

    @staticmethod
    def run_tile(task: ViTask | ViSourceTask) -> TileResult:
        if isinstance(task, ViSourceTask):
            return run_vi_source_tile(task)
        return run_vi_tile(task)


def run_vi_tile(task: ViTask) -> TileResult:
    """Composite one tile from the granules that meet it."""
    times = pd.DatetimeIndex(task.times)
    p = task.product
    spec = get_reader(task.reader)
    record = TileInputs()
    carried = carried_variables(p.variables, spec.many_per_day)
    comp = Compositor(len(times), task.tile.geobox.shape.yx, carried, p.composite, p.solar_time)
    if task.seed is not None:
        seed_composites(comp, task.seed[0], task.seed[1], task.tile, carried)
    by_need: dict = {}
    for g in task.granules:
        if period_index(times, g.start, task.step) is not None:
            by_need.setdefault(layers_for(p.variables, g.layers), []).append(g)
    for need, granules in by_need.items():
        for granule, layers in read_onto_tile(
            task.reader, granules, task.tile.geobox, need, task.options, record
        ):
            obs = {k: layers[k] for k in ("reliability", "usable", "doy", *GEOMETRY) if k in layers}
            obs.update(compute_indices(layers, list(p.variables)))
            comp.add(period_index(times, granule.start, task.step), obs)
    data = {name: (("time", "y", "x"), arr) for name, arr in comp.result().items()}
    return TileResult(xr.Dataset(data), record)


def seed_composites(comp: Compositor, store: str, first: int, tile: Tile, carried) -> None:
    """Start ``comp``'s periods from the composites a store holds for them (time steps
    ``first`` ... on the tile): each as the one observation it picked (its carried values,
    ``qa`` as its reliability, usable where it has an NDVI), so that adding later
    observations gives the composite of all of them (``max_ndvi``, ``nearest_time``)."""
    if comp.rule == "median":
        raise ValueError("a median composite cannot be continued from its stored value")
    with xr.open_zarr(store, consolidated=True) as ds:
        part = ds[[*carried, "qa"]].isel(
            time=slice(first, first + comp.n), y=tile.rows, x=tile.cols
        )
        part = part.load()
    for t in range(part.sizes["time"]):
        obs = {name: part[name].values[t].astype(np.float32) for name in carried}
        q = part["qa"].values[t]  # float, NaN for the fill value 255 (no observation)
        obs["reliability"] = np.where(np.isfinite(q), q, -1).astype(np.int16)
        obs["usable"] = np.isfinite(obs["ndvi"])
        comp.add(t, obs)


def run_vi_source_tile(task: ViSourceTask) -> TileResult:
    """Composite one tile of a finer vi store (e.g. daily) into this product's periods: every
    source time step with a value is an observation (``qa`` its reliability, usable up to
    ``max_reliability``), composited by the same rule as observations from files."""
    p = task.product
    times = pd.DatetimeIndex(task.times)
    src = read_source_tile(task.source, task.read, task.tile)
    carried = [v for v in task.read if v != "qa"]
    comp = Compositor(len(times), (src.sizes["y"], src.sizes["x"]), carried, p.composite)
    arrays = {name: src[name].values for name in task.read}
    record = TileInputs()
    for d, when in enumerate(pd.DatetimeIndex(src.time.values)):
        t = period_index(times, when, task.step)
        if t is None:
            continue
        q = arrays["qa"][d]  # float, NaN for the fill value 255 (no observation)
        qa = np.where(np.isfinite(q), q, 255).astype(np.int16)
        obs = {name: arrays[name][d] for name in carried}
        obs["reliability"] = np.where(qa == 255, -1, qa)
        obs["usable"] = np.isfinite(obs["ndvi"]) & (qa <= p.max_pixel_reliability)
        record.observations += int(obs["usable"].any())
        comp.add(t, obs)
    result = comp.result()
    data = {k: (("time", "y", "x"), result[k]) for k in task.written}
    return TileResult(xr.Dataset(data), record)


def _plan_input(ctx: StepContext) -> Plan:
    """The input's granules (indexed before the run) that can give the indices and fall in
    the period, assigned to tiles by footprint; one task per tile."""
    p: ViConfig = ctx.product
    index = ctx.input_index(p.input)
    spec = index.spec
    step = p.step or ctx.workflow.period.step
    times = period_starts(ctx.workflow.period, step)
    usable, refused = select(index, lambda have: layers_for(p.variables, have), p.hours)
    granules = [g for g in usable if period_index(times, g.start, step) is not None]
    per_tile = granules_per_tile(granules, ctx.grid.tiling, ctx.grid.tiles)
    if not any(per_tile.values()):
        raise FluxscapeError(coverage_error(p.input, index, usable, granules, ctx.workflow))
    options = {
        "max_reliability": p.max_pixel_reliability,
        "resampling": p.resampling,
    }

    def make_task(tile: Tile) -> ViTask:
        return ViTask(
            tile, tuple(times.values), index.reader, tuple(per_tile[tile.id]), p, step, options
        )

    return Plan(
        dims={"time": times.values},
        time_bounds=time_bounds(times, step),
        source_attrs=resampling_attrs(ctx, granules),
        variables=vi_variables(p.variables, spec.many_per_day, p.composite),
        summary=f"Vegetation indices ({index.reader}) composited per {step} period on the "
        f"target grid from QA-masked observations ({_rule_text(p)})",
        make_task=make_task,
        inputs=[f for g in granules for f in g.files],
        skipped=list(index.skipped),
        ignored=refused,
    )


def resampling_attrs(ctx: StepContext, granules) -> dict:
    """Store attributes saying how the target grid meets the input's native pixel grids
    (:func:`fluxscape.pipeline.native.neighbour_share`), logged when pixels are not copied;
    empty for sources without a pixel grid (swaths, scenes on latitude/longitude arrays)."""
    grids = native.native_grids(granules)
    if not grids:
        return {}
    share = native.neighbour_share(grids, ctx.grid.geobox)
    method = ctx.product.resampling
    if share["aligned"]:
        log.info("%s: the grid is the input's own: pixels are copied", ctx.key("resampling"))
    elif share["pixels_from_neighbour"] is not None:
        advice = ""
        if (share["source_pixels_per_pixel"] or 0) >= 9 and method == "nearest":
            advice = "; a grid this much coarser than the input may want resampling: average"
        elif method == "nearest":
            advice = "; region.origin/shape on the input's grid would copy its pixels"
        log.info(
            "%s: %s: %.0f %% of the pixels take a neighbouring source pixel rather than the "
            "one covering most of them (a pixel spans about %g source pixels)%s",
            ctx.key("resampling"),
            method,
            100 * share["pixels_from_neighbour"],
            share["source_pixels_per_pixel"],
            advice,
        )
    return {"resampling": method, "native_grid": json.dumps(share)}


def _plan_source(ctx: StepContext) -> Plan:
    """Composites of the finished store of ``source`` (a vi product with a finer step), one
    task per tile; the tile's region of the source store is read by the task itself."""
    p: ViConfig = ctx.product
    source = source_store(ctx, p.source)
    step = p.step or ctx.workflow.period.step
    times = period_starts(ctx.workflow.period, step)
    with xr.open_zarr(source, consolidated=True) as src:
        geometry = all(name in src for name in GEOMETRY)
    read = [*dict.fromkeys(["ndvi", *p.variables]), "doy", *(GEOMETRY if geometry else ())]
    specs = vi_variables(p.variables, geometry, p.composite)

    def make_task(tile: Tile) -> ViSourceTask:
        return ViSourceTask(
            tile,
            str(source),
            (*read, "qa"),
            tuple(v.name for v in specs),
            tuple(times.values),
            step,
            p,
        )

    return Plan(
        dims={"time": times.values},
        time_bounds=time_bounds(times, step),
        variables=specs,
        summary=f"Vegetation indices composited per {step} period from the {p.source} "
        f"store ({_rule_text(p)} of its values)",
        make_task=make_task,
        source_attrs={"source_product": p.source},
    )


STEP = ViStep()
