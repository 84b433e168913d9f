"""The ``phenology`` product: per year and season, MCD12Q2-style transition dates and season
metrics from a ``vi`` store (see :func:`fluxscape.products.phenology.phenology`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.inputs import TileInputs
from fluxscape.pipeline.schema import ProductRef, StrictModel
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.steps.derived import read_source_tile, source_store
from fluxscape.pipeline.store import VariableSpec
from fluxscape.products import phenology as pheno


class PhenologyConfig(StrictModel):
    """The ``phenology`` product from an earlier ``vi`` product of the workflow."""

    kind: Literal["phenology"]
    source: Annotated[str, ProductRef(("vi",))]
    variable: Literal["ndvi", "evi", "evi2"] = "ndvi"
    # smoothing and fit: a double logistic per season at the observation days (default)
    method: Literal["whittaker", "savgol", "double_logistic"] = "double_logistic"
    seasons: Annotated[int, Field(ge=1, le=2)] = 2
    sos_method: Literal["amplitude", "derivative"] = "amplitude"  # sos/eos rule (TIMESAT-like)
    sos_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5  # sos at this share of the rise
    eos_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5  # eos at this share of the fall
    smoothing_lambda: Annotated[float, Field(gt=0)] | None = None  # Whittaker lambda (day^3)
    savgol_window: Annotated[float, Field(gt=0)] = 41.0  # Savitzky-Golay window (days)
    min_amplitude: Annotated[float, Field(ge=0)] = 0.1  # smallest season amplitude (VI units)


@dataclass(frozen=True)
class PhenologyTask:
    """One tile of a phenology product: the source vi store and the calendar years."""

    tile: Tile
    source: str
    years: tuple[int, ...]
    product: PhenologyConfig


def run_phenology_tile(task: PhenologyTask) -> TileResult:
    """Smooth and extract phenology on one tile of the source vi store."""
    p = task.product
    src = read_source_tile(task.source, [p.variable, "qa", "doy"], task.tile)
    options = {
        "sos_method": p.sos_method,
        "sos_fraction": p.sos_fraction,
        "eos_fraction": p.eos_fraction,
        "savgol_window": p.savgol_window,
        "min_amplitude": p.min_amplitude,
    }
    if p.smoothing_lambda is not None:
        options["lam"] = p.smoothing_lambda
    result = pheno.phenology(
        src[p.variable],
        src["qa"],
        src["doy"],
        method=p.method,
        seasons=p.seasons,
        years=list(task.years),
        **options,
    )
    record = TileInputs(observations=int(np.isfinite(src[p.variable].values).any()))
    return TileResult(result[[*store_variables(p), *pheno.QA_VARIABLES]], record)


@functools.cache
def warm_kernels(method: str) -> None:
    """Run ``method`` once on a one-pixel, two-year series so that its compiled numba kernels
    are in numba's on-disk cache before any worker needs them: on a fresh install the driver
    compiles them once, instead of every worker compiling the same kernels at the same time
    (about 30 s of CPU each); afterwards it costs the driver a cache load (under 1 s), once
    per process."""
    times = pd.DatetimeIndex([f"{year}-01-01" for year in (2001, 2002)])
    starts = np.concatenate([t + pd.to_timedelta(16 * np.arange(23), "D") for t in times])
    doy = np.asarray(pd.DatetimeIndex(starts).day_of_year, float) + 7.0
    curve = 0.2 + 0.6 / (1 + np.exp(-(doy - 120) / 8)) - 0.6 / (1 + np.exp(-(doy - 280) / 8))
    coords = {"time": starts}
    dims = ("time", "y", "x")
    # float32 as the vi store holds them: ``method="whittaker"`` then takes its one-pass
    # kernel; float64 values take the general path (its kernels are warmed too).
    for dtype in (np.float32, np.float64) if method == "whittaker" else (np.float32,):
        pheno.phenology(
            xr.DataArray(curve.reshape(-1, 1, 1).astype(dtype), dims=dims, coords=coords),
            xr.DataArray(np.zeros((curve.size, 1, 1), np.uint8), dims=dims, coords=coords),
            xr.DataArray(doy.reshape(-1, 1, 1).astype(np.float32), dims=dims, coords=coords),
            method=method,
            years=[2001, 2002],
        )


def store_variables(p: PhenologyConfig) -> list[str]:
    """The float variables of the store: all of :data:`fluxscape.products.phenology.VARIABLES`,
    the date uncertainties only where the method gives them (``double_logistic``)."""
    if p.method == "double_logistic":
        return list(pheno.VARIABLES)
    return [v for v in pheno.VARIABLES if v not in pheno.UNCERTAINTY]


class PhenologyStep(Step):
    kind = "phenology"
    Config = PhenologyConfig

    def plan(self, ctx: StepContext) -> Plan:
        """One task per tile; dims year (calendar years of the period) and season."""
        p: PhenologyConfig = ctx.product
        source = source_store(ctx, p.source)
        warm_kernels(p.method)
        period = ctx.workflow.period
        years = tuple(range(pd.Timestamp(period.start).year, pd.Timestamp(period.end).year + 1))
        variables = [
            VariableSpec(name, "float32", dict(pheno.ATTRS[name])) for name in store_variables(p)
        ]
        variables += [
            VariableSpec("qa_overall", "uint8", dict(pheno.QA_ATTRS["qa_overall"]), fill=255),
            VariableSpec("qa_detailed", "uint16", dict(pheno.QA_ATTRS["qa_detailed"]), fill=65535),
        ]
        rule = (
            f" ({p.sos_fraction:g}/{p.eos_fraction:g} of the amplitude)"
            if p.sos_method == "amplitude"
            else ""
        )
        return Plan(
            dims={"year": np.array(years), "season": np.arange(1, p.seasons + 1)},
            variables=variables,
            summary=f"Land-surface phenology from {p.source}.{p.variable}: QA-weighted "
            f"{p.method} smoothing, up to {p.seasons} season(s) a year, sos/eos by "
            f"{p.sos_method}{rule}, MCD12Q2-style transition dates (day of year)",
            make_task=lambda tile: PhenologyTask(tile, str(source), years, p),
            source_attrs={"source_product": p.source},
        )

    run_tile = staticmethod(run_phenology_tile)


STEP = PhenologyStep()
