"""The ``disturbance`` product: BFAST Monitor-style NDVI breaks, their date and magnitude, and
the year's minimum standardized anomaly, from a ``vi`` store (see
:func:`fluxscape.products.disturbance.detect_disturbance`); with ``burn_severity``, the dNBR,
RdNBR and USGS severity class of each break
(:func:`fluxscape.products.disturbance.burn_severity_of_breaks`); with ``reference``, MCD64A1
burn dates on the grid and their agreement with the breaks (:mod:`.burned_area`); with ``lst``,
the year's heat-stress days, maximum LST anomaly and heat-stress onset from an ``lst`` store
on the same grid (:func:`fluxscape.products.anomaly.annual_heat_summary`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.sources import Skipped
from fluxscape.pipeline.steps import burned_area
from fluxscape.pipeline.steps.base import Plan, StepContext
from fluxscape.pipeline.steps.derived import (
    DerivedTileTask,
    derived_task,
    read_source_tile,
    source_store,
)
from fluxscape.pipeline.steps.lst import product_times
from fluxscape.pipeline.store import VariableSpec, write_tile
from fluxscape.pipeline.timeaxis import period_lengths
from fluxscape.products import anomaly
from fluxscape.products.burn import SEVERITY_FLAG_MEANINGS, SEVERITY_FLAG_VALUES
from fluxscape.products.disturbance import burn_severity_of_breaks, detect_disturbance

STORED = {  # variable -> (dtype, fill for integers, attrs)
    "disturbed": (
        "uint8",
        255,
        {
            "long_name": "vegetation disturbance with onset in the year",
            "units": "1",
            "flag_values": [0, 1],
            "flag_meanings": "undisturbed disturbed",
        },
    ),
    "date": (
        "float32",
        None,
        {"long_name": "day of year of the disturbance onset", "units": "day of year"},
    ),
    "magnitude": (
        "float32",
        None,
        {"long_name": "median NDVI residual after the onset (negative: loss)", "units": "1"},
    ),
    "zscore_min": (
        "float32",
        None,
        {
            "long_name": "minimum standardized NDVI anomaly of the "
            "year against the history climatology",
            "units": "1",
        },
    ),
    "detection_date": (
        "float32",
        None,
        {"long_name": "day of year the monitoring boundary was crossed", "units": "day of year"},
    ),
}


BURN = {
    "dnbr": (
        "float32",
        None,
        {"long_name": "dNBR after the break (modelled minus observed NBR)", "units": "1"},
    ),
    "rdnbr": ("float32", None, {"long_name": "relative dNBR dNBR/sqrt(|NBR_pre|)", "units": "1"}),
    "burn_severity": (
        "uint8",
        0,
        {
            "long_name": "burn severity class of the break (USGS, Key & Benson 2006)",
            "units": "1",
            "flag_values": list(SEVERITY_FLAG_VALUES),
            "flag_meanings": SEVERITY_FLAG_MEANINGS,
        },
    ),
}


HEAT = {
    "heat_stress_days": (
        "float32",
        None,
        {
            "long_name": "days under heat stress in the year (lengths of the LST periods "
            "flagged as heat stress)",
            "units": "days",
        },
    ),
    "lst_zscore_max": (
        "float32",
        None,
        {"long_name": "maximum standardized LST anomaly of the year", "units": "1"},
    ),
    "heat_onset": (
        "float32",
        None,
        {
            "long_name": "day of year of the start of the first heat-stress period",
            "units": "day of year",
        },
    ),
}


def heat_of_tile(task: DerivedTileTask) -> dict[str, np.ndarray]:
    """The tile's heat-stress summary per monitored year from the lst store (settings
    ``lst_store``, ``lst_step``, ``monitor``, ``years``): each (year, y, x)."""
    s = task.settings
    ds = xr.open_zarr(s["lst_store"], consolidated=True)
    ds = ds[["lst_zscore", "heat_stress"]].isel(y=task.rows, x=task.cols)
    day = ds.time.values.astype("datetime64[D]")
    first, last = (np.datetime64(d, "D") for d in s["monitor"])
    inside = (day >= first) & (day <= last)
    ds = ds.isel(time=np.flatnonzero(inside)).load()
    times = pd.DatetimeIndex(ds.time.values)
    return anomaly.annual_heat_summary(
        ds.heat_stress.values == 1,
        ds.lst_zscore.values,
        times.values,
        period_lengths(times, s["lst_step"]),
        s["years"],
    )


def run_disturbance_tile(task: DerivedTileTask) -> dict:
    """Detect breaks on one tile of the source vi store and write them."""
    src = read_source_tile(task)
    s = task.settings
    result = detect_disturbance(
        src[s["variable"]],
        src["qa"],
        src["doy"],
        history=tuple(s["history"]),
        monitor=tuple(s["monitor"]),
        process=s["process"],
        min_magnitude=s["min_magnitude"],
    )
    out = result[list(STORED)]
    if s.get("burn_severity"):
        onset = result.break_date.min("year")  # one break per pixel in the monitoring period
        severity = burn_severity_of_breaks(
            src["nbr"], onset, src["qa"], src["doy"], history=tuple(s["history"])
        )
        hit = result.disturbed.astype(bool)
        for name in BURN:
            fill = 0 if name == "burn_severity" else np.nan
            out[name] = severity[name].where(hit, fill).astype(BURN[name][0])
    skipped: list[Skipped] = []
    if s.get("reference"):
        ref = burned_area.reference_tile(s["reference"], s["geobox"], out.year.values, skipped)
        for name in ref.data_vars:
            out[name] = (("year", "y", "x"), ref[name].values)
    if s.get("lst_store"):
        for name, values in heat_of_tile(task).items():
            out[name] = (("year", "y", "x"), values.astype(HEAT[name][0]))
    write_tile(Path(task.store), out, task.rows, task.cols)
    return {"tile": task.tile_id, "skipped": [k.to_json() for k in skipped]}


def plan(ctx: StepContext) -> Plan:
    """One task per tile of the source store's grid; one year per monitored calendar year."""
    p = ctx.product
    source = source_store(ctx)
    years = np.arange(p.monitor[0].year, p.monitor[1].year + 1)
    settings = {
        "variable": p.variable,
        "history": [str(d) for d in p.history],
        "monitor": [str(d) for d in p.monitor],
        "process": p.process,
        "min_magnitude": p.min_magnitude,
        "burn_severity": p.burn_severity,
    }
    read = [p.variable, "qa", "doy"]
    stored = dict(STORED)
    if p.burn_severity:
        source_vars = ctx.workflow.products[p.source].variables
        if "nbr" not in source_vars:
            raise FluxscapeError(
                f"products.{ctx.name}.burn_severity: the source product {p.source!r} has no nbr "
                f"(its variables: {source_vars}); add nbr to products.{p.source}.variables"
            )
        read = list(dict.fromkeys([*read, "nbr"]))
        stored |= BURN
    if p.lst:
        lst_product = ctx.workflow.products[p.lst]
        settings |= {
            "lst_store": str(source_store(ctx, p.lst)),
            "lst_step": product_times(ctx.workflow, lst_product)[1],
            "years": [int(y) for y in years],
        }
        stored |= HEAT
    variables = [
        VariableSpec(name, dtype, attrs, fill) for name, (dtype, fill, attrs) in stored.items()
    ]
    make_task = derived_task(ctx, source, read, settings)
    inputs, skipped, finish = [str(source)], [], None
    source_attrs = {
        "source_product": p.source,
        "monitoring_period": f"{pd.Timestamp(p.monitor[0]).date()}/"
        f"{pd.Timestamp(p.monitor[1]).date()}",
    }
    if p.reference:
        granules, skipped = burned_area.index_reference(ctx, years)
        per_tile = {t.id: tuple(g for g in granules if g.meets(t.geobox)) for t in ctx.grid.tiles}
        geoboxes = {t.id: t.geobox for t in ctx.grid.tiles}
        variables += burned_area.VARIABLES
        inputs += [g.path for g in granules]
        plain_task = make_task

        def make_task(tile):
            task = plain_task(tile)
            extra = {"reference": per_tile[tile.id], "geobox": geoboxes[tile.id]}
            return dataclasses.replace(task, settings={**task.settings, **extra})

        def finish(store: Path) -> None:
            scores = burned_area.agreement(store, p.burn_severity)
            report = ctx.out_dir / "reports" / ctx.name
            report.mkdir(parents=True, exist_ok=True)
            text = json.dumps(scores, indent=2)
            (report / "mcd64a1_agreement.json").write_text(text)
            source_attrs["mcd64a1_agreement"] = json.dumps(scores)

    return Plan(
        dims={"year": years},
        variables=variables,
        summary=f"Vegetation disturbance from {p.source}.{p.variable}: harmonic season-trend "
        f"model fitted on {p.history[0]}..{p.history[1]}, {p.process.upper()} monitoring of "
        f"{p.monitor[0]}..{p.monitor[1]} (BFAST Monitor style)"
        + ("; dNBR and burn severity of each break" if p.burn_severity else "")
        + ("; MCD64A1 burn dates as a reference" if p.reference else "")
        + (f"; heat stress days, maximum LST anomaly and onset from {p.lst}" if p.lst else ""),
        make_task=make_task,
        run_tile=run_disturbance_tile,
        inputs=inputs + ([str(ctx.product_store(p.lst))] if p.lst else []),
        skipped=skipped,
        finish=finish,
        source_attrs=source_attrs,
    )
