"""The ``phenology`` product: per year and season, MCD12Q2-style transition dates and season
metrics from a ``vi`` store (see :func:`fluxscape.products.phenology.phenology`)."""

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
from fluxscape.products import phenology as pheno


def run_phenology_tile(task: DerivedTileTask) -> dict:
    """Smooth and extract phenology on one tile of the source vi store and write it."""
    src = read_source_tile(task)
    s = task.settings
    result = pheno.phenology(
        src[s["variable"]],
        src["qa"],
        src["doy"],
        method=s["method"],
        seasons=s["seasons"],
        years=s["years"],
        **s["options"],
    )
    names = [*pheno.VARIABLES, *pheno.QA_VARIABLES]
    write_tile(Path(task.store), result[names], task.rows, task.cols)
    return {"tile": task.tile_id, "skipped": []}


def plan(ctx: StepContext) -> Plan:
    """One task per tile; dims year (calendar years of the period) and season (1..seasons)."""
    p = ctx.product
    source = source_store(ctx)
    period = ctx.workflow.period
    years = list(range(pd.Timestamp(period.start).year, pd.Timestamp(period.end).year + 1))
    options = {
        "sos_method": p.sos_method,
        "sos_fraction": p.sos_fraction,
        "eos_fraction": p.eos_fraction,
        "savgol_window": p.savgol_window,
        "min_amplitude": p.min_amplitude,
    }
    if p.smoothing_lambda is not None:
        options["lam"] = p.smoothing_lambda
    settings = {
        "variable": p.variable,
        "method": p.method,
        "seasons": p.seasons,
        "years": years,
        "options": options,
    }
    variables = [VariableSpec(name, "float32", dict(pheno.ATTRS[name])) for name in pheno.VARIABLES]
    variables += [
        VariableSpec("qa_overall", "uint8", dict(pheno.QA_ATTRS["qa_overall"]), fill=255),
        VariableSpec("qa_detailed", "uint16", dict(pheno.QA_ATTRS["qa_detailed"]), fill=65535),
    ]
    return Plan(
        dims={"year": np.array(years), "season": np.arange(1, p.seasons + 1)},
        variables=variables,
        summary=f"Land-surface phenology from {p.source}.{p.variable}: QA-weighted {p.method} "
        f"smoothing, up to {p.seasons} season(s) a year, sos/eos by {p.sos_method}"
        + (
            f" ({p.sos_fraction:g}/{p.eos_fraction:g} of the amplitude)"
            if p.sos_method == "amplitude"
            else ""
        )
        + ", MCD12Q2-style transition dates (day of year)",
        make_task=derived_task(ctx, source, [p.variable, "qa", "doy"], settings),
        run_tile=run_phenology_tile,
        inputs=[],
        source_attrs={"source_product": p.source},
    )
