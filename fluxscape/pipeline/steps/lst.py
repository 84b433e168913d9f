"""The ``lst`` product: daytime land surface temperature per period on the target grid, its
standardized anomaly and heat-stress flags.

For each tile: the input's granules that meet it (MODIS MOD11/MYD11 tiles, reader
``modis_hdf4``, or Himawari AHI P-Tree scenes, reader ``ahi_ptree``: split window on B13/B15)
are read onto the tile through the source adapter's ``read_lst``
(:mod:`fluxscape.pipeline.adapters`), masked with their quality (MOD11 mandatory QA, or the
AHI cloud/cloud-edge class, <= ``max_qa``) and averaged per period (``lst``, ``lst_count``).
Then, per pixel, the climatology of each period of the year over the ``baseline`` years gives
``lst_zscore``, and ``heat_stress`` flags z > ``threshold`` in runs of ``min_consecutive`` periods
(:func:`fluxscape.products.anomaly.heat_stress`). A tile holds all time steps, so the
climatology needs no second pass.
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
from fluxscape.pipeline.adapters.modis import LST_PRODUCTS
from fluxscape.pipeline.config import LstProduct, Workflow
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.sources import Skipped, expand_paths
from fluxscape.pipeline.steps.base import Plan, StepContext
from fluxscape.pipeline.steps.vi import _no_coverage
from fluxscape.pipeline.store import VariableSpec, write_tile
from fluxscape.pipeline.timeaxis import STEP_DAYS, period_index, period_starts
from fluxscape.products import anomaly


def lst_variables(threshold: float) -> list[VariableSpec]:
    """Store variables of the lst product (time, y, x)."""
    return [
        VariableSpec(
            "lst",
            "float32",
            {
                "long_name": "daytime land surface temperature, mean of the period's usable "
                "observations",
                "units": "K",
                "standard_name": "surface_temperature",
            },
        ),
        VariableSpec(
            "lst_count",
            "uint8",
            {"long_name": "number of usable LST observations in the period", "units": "1"},
            fill=255,
        ),
        VariableSpec(
            "lst_zscore",
            "float32",
            {
                "long_name": "standardized LST anomaly against the baseline climatology of "
                "the period of the year",
                "units": "1",
            },
        ),
        VariableSpec(
            "heat_stress",
            "uint8",
            {
                "long_name": f"heat stress: LST anomaly above {threshold:g} sd",
                "units": "1",
                "flag_values": [0, 1],
                "flag_meanings": "normal heat_stress",
            },
            fill=255,
        ),
    ]


@dataclass(frozen=True)
class LstTileTask:
    """Everything one tile needs: where to write, what to read, and the anomaly settings."""

    store: str
    tile_id: str
    geobox: GeoBox
    rows: slice
    cols: slice
    times: tuple
    reader: str
    granules: tuple[Granule, ...]
    options: dict
    settings: dict


def run_lst_tile(task: LstTileTask) -> dict:
    """Average, standardise and flag one tile, then write it. Returns ``{"tile", "skipped",
    "granules"}``; unreadable granules are skipped (file and reason), not raised."""
    times = pd.DatetimeIndex(task.times)
    ny, nx = task.geobox.shape.yx
    total = np.zeros((len(times), ny, nx))
    count = np.zeros((len(times), ny, nx), np.int64)
    skipped: list[Skipped] = []
    groups: dict = {}
    for granule in task.granules:
        if period_index(times, granule.start, task.settings["step"]) is not None:
            groups.setdefault(granule.key, []).append(granule)
    read_lst = adapter_for(task.reader).read_lst
    used = 0
    for members in groups.values():
        for granule, layers in read_lst(members, task.geobox, task.options, skipped):
            t = period_index(times, granule.start, task.settings["step"])
            use = layers["usable"]
            total[t] += np.where(use, layers["lst"], 0.0)
            count[t] += use
            used += 1
    lst = anomaly.period_mean(total, count)
    s = task.settings
    slot = anomaly.slot_in_year(times.values, s["slot_days"])
    first, last = (np.datetime64(d) for d in s["baseline"])
    day = times.values.astype("datetime64[D]")
    z, flag = anomaly.heat_stress(
        lst,
        count > 0,
        slot,
        (day >= first) & (day <= last),
        s["n_slots"],
        threshold=s["threshold"],
        min_consecutive=s["min_consecutive"],
        sd_floor=s["sd_floor"],
        min_count=s["min_baseline"],
    )
    dims = ("time", "y", "x")
    out = xr.Dataset(
        {
            "lst": (dims, lst.astype(np.float32)),
            "lst_count": (dims, np.minimum(count, 254).astype(np.uint8)),
            "lst_zscore": (dims, z.astype(np.float32)),
            "heat_stress": (dims, np.where(np.isfinite(z), flag, 255).astype(np.uint8)),
        }
    )
    write_tile(Path(task.store), out, task.rows, task.cols)
    return {"tile": task.tile_id, "skipped": [x.to_json() for x in skipped], "granules": used}


def product_times(workflow: Workflow, product: LstProduct) -> tuple[pd.DatetimeIndex, str]:
    """The lst product's time axis (period starts) and its step (``product.step`` or the
    workflow's ``period.step``)."""
    step = product.step or workflow.period.step
    return period_starts(workflow.period, step), step


def plan(ctx: StepContext) -> Plan:
    """Index the input's LST granules (headers only) and plan one task per tile."""
    p = ctx.product
    inp = ctx.workflow.inputs[p.input]
    adapter = adapter_for(inp.reader)
    if adapter.read_lst is None:
        raise FluxscapeError(
            f"products.{ctx.name}.input: reader {inp.reader!r} of input {p.input!r} gives no "
            "land surface temperature (use MOD11A2/MYD11A2 tiles with reader modis_hdf4, or "
            "Himawari P-Tree NetCDF with reader ahi_ptree)"
        )
    options = {"max_qa": p.max_qa, "products": list(LST_PRODUCTS)}
    files = expand_paths(inp.paths)
    indexed, skipped = adapter.index(files, options)
    times, step = product_times(ctx.workflow, p)
    granules = [g for g in indexed if period_index(times, g.start, step) is not None]
    per_tile = {t.id: [g for g in granules if g.meets(t.geobox)] for t in ctx.grid.tiles}
    if not any(per_tile.values()):
        raise FluxscapeError(_no_coverage(ctx, p.input, files, indexed, granules))
    settings = {
        "step": step,
        "baseline": [str(d) for d in p.baseline],
        "threshold": p.threshold,
        "min_consecutive": p.min_consecutive,
        "sd_floor": p.sd_floor,
        "min_baseline": p.min_baseline,
        "slot_days": STEP_DAYS.get(step),
        "n_slots": 12 if step == "1M" else -(-366 // STEP_DAYS[step]),
    }

    def make_task(tile: Tile) -> LstTileTask:
        return LstTileTask(
            str(ctx.store),
            tile.id,
            tile.geobox,
            tile.rows,
            tile.cols,
            tuple(times.values),
            inp.reader,
            tuple(per_tile[tile.id]),
            options,
            settings,
        )

    base = f"{p.baseline[0]}..{p.baseline[1]}"
    if inp.reader == "ahi_ptree":
        source = (
            f"ahi_ptree, Ulivieri et al. 1994 split window on B13/B15 with NDVI emissivity, "
            f"cloud class <= {p.max_qa}"
        )
    else:
        source = f"{inp.reader}, MOD11 QC mandatory QA <= {p.max_qa}"
    return Plan(
        dims={"time": times.values},
        variables=lst_variables(p.threshold),
        summary=f"Daytime land surface temperature ({source}) averaged per {step} period on "
        f"the target grid; standardized anomaly "
        f"against the {base} climatology of each period of the year (sd floor {p.sd_floor:g} "
        f"K) and heat stress where z > {p.threshold:g}"
        + (f" for {p.min_consecutive} consecutive periods" if p.min_consecutive > 1 else ""),
        make_task=make_task,
        run_tile=run_lst_tile,
        inputs=[x for g in granules for x in (g.paths or (g.path,))],
        skipped=skipped,
        source_attrs={"baseline_period": f"{p.baseline[0]}/{p.baseline[1]}", "time_step": step},
    )
