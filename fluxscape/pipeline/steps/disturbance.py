"""The ``disturbance`` product: BFAST Monitor-style NDVI breaks, their date and magnitude, and
the year's minimum standardized anomaly, from a ``vi`` store (see
:func:`fluxscape.products.disturbance.detect_disturbance`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fluxscape.pipeline.steps.base import Plan, StepContext
from fluxscape.pipeline.steps.derived import (
    DerivedTileTask,
    derived_task,
    read_source_tile,
    source_store,
)
from fluxscape.pipeline.store import VariableSpec, write_tile
from fluxscape.products.disturbance import detect_disturbance

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
    write_tile(Path(task.store), out, task.rows, task.cols)
    return {"tile": task.tile_id, "skipped": []}


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
    }
    variables = [
        VariableSpec(name, dtype, attrs, fill) for name, (dtype, fill, attrs) in STORED.items()
    ]
    return Plan(
        dims={"year": years},
        variables=variables,
        summary=f"Vegetation disturbance from {p.source}.{p.variable}: harmonic season-trend "
        f"model fitted on {p.history[0]}..{p.history[1]}, {p.process.upper()} monitoring of "
        f"{p.monitor[0]}..{p.monitor[1]} (BFAST Monitor style)",
        make_task=derived_task(ctx, source, [p.variable, "qa", "doy"], settings),
        run_tile=run_disturbance_tile,
        inputs=[str(source)],
        source_attrs={
            "source_product": p.source,
            "monitoring_period": f"{pd.Timestamp(p.monitor[0]).date()}/"
            f"{pd.Timestamp(p.monitor[1]).date()}",
        },
    )
