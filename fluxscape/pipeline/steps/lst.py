"""The ``lst`` product: daytime land surface temperature per period on the target grid, its
standardized anomaly and heat-stress flags.

For each tile: the input's granules that meet it (a source giving ``lst``: MODIS MOD11/MYD11
tiles, or Himawari AHI P-Tree scenes, split window on B13/B15) are read onto the tile by
their source (:func:`fluxscape.pipeline.inputs.read_onto_tile`), masked with their quality
(MOD11 mandatory QA, or the AHI cloud/cloud-edge class, <= ``max_qa``) and averaged per
period (``lst``, ``lst_count``).
Then, per pixel, the climatology of each period of the year over the ``baseline`` years gives
``lst_zscore``, and ``heat_stress`` flags z > ``threshold`` in runs of ``min_consecutive`` periods
(:func:`fluxscape.products.anomaly.heat_stress`). A tile holds all time steps, so the
climatology needs no second pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field, model_validator

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.inputs import (
    TileInputs,
    coverage_error,
    giving_all,
    granules_per_tile,
    read_onto_tile,
    select,
)
from fluxscape.pipeline.schema import StrictModel, input_ref, year_or_date
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.store import VariableSpec
from fluxscape.pipeline.timeaxis import STEP_DAYS, period_index, period_starts, time_bounds
from fluxscape.products import anomaly
from fluxscape.readers.ontile import Granule


class LstConfig(StrictModel):
    """The ``lst`` product: daytime land surface temperature (K) per period on the target grid
    from MODIS MOD11/MYD11 tiles or Himawari AHI P-Tree scenes (split window; quality-masked
    mean of the usable observations of each period),
    its standardized anomaly against the per-period-of-year climatology of the ``baseline``
    years, and a heat-stress flag where the anomaly exceeds ``threshold``."""

    kind: Literal["lst"]  # Product kind.
    input: Annotated[str, input_ref({"lst"}, what="land surface temperature")] = Field(
        description="The LST input: a source giving land surface temperature, e.g. "
        "MOD11A2/MYD11A2 tiles or Himawari P-Tree NetCDF (split window on B13/B15)."
    )
    max_qa: Annotated[int, Field(ge=0, le=1)] = Field(
        0,
        description="Worst quality kept: MOD11 mandatory QA (QC bits 0-1: 0 good, 1 other "
        "quality; 2 and 3 mean not produced); for AHI 0 clear, 1 within 2 pixels of a cloud.",
    )
    baseline: tuple[date, date] = Field(
        description="[first, last] of the climatology: years (`[2017, 2021]`) or dates."
    )
    threshold: Annotated[float, Field(gt=0)] = Field(
        2.0, description="Standardized anomaly (z) above which a period is under heat stress."
    )
    min_consecutive: Annotated[int, Field(ge=1)] = Field(
        1,
        description="Flag heat stress only in runs of at least this many consecutive periods "
        "above the threshold (periods without a usable observation are skipped).",
    )
    sd_floor: Annotated[float, Field(gt=0)] = Field(
        1.0,
        description="Smallest climatological standard deviation (K), about the MOD11 accuracy: "
        "keeps z finite and meaningful where the baseline barely varies.",
    )
    min_baseline: Annotated[int, Field(ge=2)] = Field(
        3,
        description="Fewest usable baseline observations of a period of the year for a "
        "climatology (else z is NaN there).",
    )
    step: Literal["8D", "16D", "1M"] | None = Field(
        None,
        description="Time step of the product (default: the workflow's `period.step`); "
        "MOD11A2 is 8-day.",
    )

    @model_validator(mode="before")
    @classmethod
    def _baseline_years(cls, data):
        if isinstance(data, dict) and isinstance(data.get("baseline"), list | tuple):
            base = list(data["baseline"])
            if len(base) == 2:
                base = [year_or_date(base[0], False), year_or_date(base[1], True)]
            data = {**data, "baseline": base}
        return data

    @model_validator(mode="after")
    def _baseline_ordered(self) -> LstConfig:
        if self.baseline[1] < self.baseline[0]:
            raise ValueError(f"baseline ends ({self.baseline[1]}) before it starts")
        return self


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
                "cell_methods": "time: mean",
            },
        ),
        VariableSpec(
            "lst_count",
            "uint8",
            {
                "long_name": "number of usable LST observations in the period",
                "units": "1",
                "cell_methods": "time: sum",
            },
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
class LstTask:
    """One tile of an lst product: its granules and the product's time axis."""

    tile: Tile
    times: tuple
    step: str
    reader: str
    granules: tuple[Granule, ...]
    product: LstConfig


def mean_lst_on_tile(
    reader: str, granules, geobox, times: pd.DatetimeIndex, step: str, max_qa, record
) -> tuple[np.ndarray, np.ndarray]:
    """Mean land surface temperature (K) of each period of ``times`` (period starts, ``step``)
    on ``geobox`` from the usable observations of ``granules`` (those outside every period are
    not read), and the count of those observations; both (time, y, x). NaN where none.
    ``record``: the tile's TileInputs, filled by the reads."""
    ny, nx = geobox.shape.yx
    total = np.zeros((len(times), ny, nx))
    count = np.zeros((len(times), ny, nx), np.int64)
    granules = [g for g in granules if period_index(times, g.start, step) is not None]
    for granule, layers in read_onto_tile(
        reader, granules, geobox, {"lst"}, {"max_qa": max_qa}, record
    ):
        t = period_index(times, granule.start, step)
        use = layers["usable"]
        total[t] += np.where(use, layers["lst"], 0.0)
        count[t] += use
    return anomaly.period_mean(total, count), count


def run_lst_tile(task: LstTask) -> TileResult:
    """Average, standardise and flag one tile."""
    p = task.product
    times = pd.DatetimeIndex(task.times)
    record = TileInputs()
    lst, count = mean_lst_on_tile(
        task.reader, task.granules, task.tile.geobox, times, task.step, p.max_qa, record
    )
    slot_days = STEP_DAYS.get(task.step)
    n_slots = 12 if task.step == "1M" else -(-366 // STEP_DAYS[task.step])
    slot = anomaly.slot_in_year(times.values, slot_days)
    first, last = (np.datetime64(str(d)) for d in p.baseline)
    day = times.values.astype("datetime64[D]")
    z, flag = anomaly.heat_stress(
        lst,
        count > 0,
        slot,
        (day >= first) & (day <= last),
        n_slots,
        threshold=p.threshold,
        min_consecutive=p.min_consecutive,
        sd_floor=p.sd_floor,
        min_count=p.min_baseline,
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
    return TileResult(out, record)


def product_times(workflow, product: LstConfig) -> tuple[pd.DatetimeIndex, str]:
    """The lst product's time axis (period starts) and its step (``product.step`` or the
    workflow's ``period.step``)."""
    step = product.step or workflow.period.step
    return period_starts(workflow.period, step), step


class LstStep(Step):
    kind = "lst"
    Config = LstConfig

    def validate(self, wf, name: str, p: LstConfig) -> None:
        if not (p.baseline[0] <= wf.period.end and p.baseline[1] >= wf.period.start):
            raise ValueError(
                f"products.{name}.baseline: {[str(d) for d in p.baseline]} lies "
                f"outside the period {wf.period.start} to {wf.period.end}"
            )

    def plan(self, ctx: StepContext) -> Plan:
        """The input's LST granules (indexed before the run) in the period, by tile."""
        p: LstConfig = ctx.product
        index = ctx.input_index(p.input)
        usable, ignored = select(index, giving_all("lst"))
        times, step = product_times(ctx.workflow, p)
        granules = [g for g in usable if period_index(times, g.start, step) is not None]
        per_tile = granules_per_tile(granules, ctx.grid.tiling, ctx.grid.tiles)
        if not any(per_tile.values()):
            raise FluxscapeError(coverage_error(p.input, index, usable, granules, ctx.workflow))

        def make_task(tile: Tile) -> LstTask:
            return LstTask(
                tile, tuple(times.values), step, index.reader, tuple(per_tile[tile.id]), p
            )

        base = f"{p.baseline[0]}..{p.baseline[1]}"
        source = f"{index.reader}, {index.spec.quality or 'its quality flags'} <= {p.max_qa}"
        return Plan(
            dims={"time": times.values},
            time_bounds=time_bounds(times, step),
            variables=lst_variables(p.threshold),
            summary=f"Daytime land surface temperature ({source}) averaged per {step} period "
            f"on the target grid; standardized anomaly against the {base} climatology of each "
            f"period of the year (sd floor {p.sd_floor:g} K) and heat stress where z > "
            f"{p.threshold:g}"
            + (f" for {p.min_consecutive} consecutive periods" if p.min_consecutive > 1 else ""),
            make_task=make_task,
            inputs=[f for g in granules for f in g.files],
            skipped=list(index.skipped),
            ignored=ignored,
            source_attrs={
                "baseline_period": f"{p.baseline[0]}/{p.baseline[1]}",
                "time_step": step,
            },
        )

    run_tile = staticmethod(run_lst_tile)


STEP = LstStep()
