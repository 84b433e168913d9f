"""The ``disturbance`` product: BFAST Monitor-style NDVI breaks, their date and magnitude, and
the year's minimum standardized anomaly, from a ``vi`` store (see
:func:`fluxscape.products.disturbance.detect_disturbance`); with ``burn_severity``, the dNBR,
RdNBR and USGS severity class of each break
(:func:`fluxscape.products.disturbance.burn_severity_of_breaks`); with ``reference``, MCD64A1
burn dates on the grid and their agreement with the breaks (:mod:`.burned_area`); with ``lst``,
the year's heat-stress days, maximum LST anomaly and heat-stress onset from an ``lst`` store
on the same grid (:func:`fluxscape.products.anomaly.annual_heat_summary`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field, model_validator

from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.inputs import TileInputs, granules_per_tile
from fluxscape.pipeline.schema import ProductRef, StrictModel, input_ref
from fluxscape.pipeline.steps import burned_area
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.steps.derived import read_source_tile, source_store
from fluxscape.pipeline.steps.lst import product_times
from fluxscape.pipeline.store import VariableSpec
from fluxscape.pipeline.timeaxis import period_lengths
from fluxscape.products import anomaly
from fluxscape.products.burn import SEVERITY_FLAG_MEANINGS, SEVERITY_FLAG_VALUES
from fluxscape.products.disturbance import (
    break_method,
    burn_severity_of_breaks,
    detect_disturbance,
)
from fluxscape.readers.ontile import Granule

log = logging.getLogger(__name__)


class DisturbanceConfig(StrictModel):
    """The ``disturbance`` product from an earlier ``vi`` product: a stable ``history``
    period and a ``monitor`` period, each [first, last] dates."""

    kind: Literal["disturbance"]
    source: Annotated[str, ProductRef(("vi",))]
    variable: Literal["ndvi", "evi", "evi2", "nbr"] = "ndvi"
    history: tuple[date, date]
    monitor: tuple[date, date]
    process: Literal["mosum", "cusum"] = "mosum"
    method: Literal["auto", "season_trend", "drop"] = "auto"  # auto: drop below 2 history years
    min_magnitude: Annotated[float, Field(ge=0)] = 0.05
    burn_severity: bool = False  # dNBR / severity class of each break (source needs nbr)
    # an input of MCD64A1 tiles: burn dates scored against breaks
    reference: Annotated[str | None, input_ref({"burn_date"}, what="MCD64A1 burned-area tiles")] = (
        None
    )
    alerts: bool = False  # each patch of confirmed breaks -> an alert (catalog `alerts`)
    alert_min_pixels: Annotated[int, Field(ge=1)] = 2  # smallest patch alerted (pixels)
    lst: Annotated[str | None, ProductRef(("lst",))] = Field(
        None,
        description="An `lst` product of the same workflow: adds the year's heat-stress days, "
        "maximum LST anomaly and heat-stress onset.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> DisturbanceConfig:
        if not (self.history[0] < self.history[1] < self.monitor[0] <= self.monitor[1]):
            raise ValueError("need history[0] < history[1] < monitor[0] <= monitor[1]")
        return self


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
        {"long_name": "day of year of the disturbance onset", "units": "1"},
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
        {"long_name": "day of year the monitoring boundary was crossed", "units": "1"},
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
            "units": "1",
        },
    ),
}


@dataclass(frozen=True)
class DisturbanceTask:
    """One tile of a disturbance product: the source vi store and the variables read, the
    monitored years, and optionally the lst store (with its time step) and the reference
    burned-area granules that meet the tile."""

    tile: Tile
    source: str
    read: tuple[str, ...]
    years: tuple[int, ...]
    product: DisturbanceConfig
    lst_store: str | None = None
    lst_step: str | None = None
    reference_reader: str | None = None
    reference: tuple[Granule, ...] = ()


def heat_of_tile(task: DisturbanceTask) -> dict[str, np.ndarray]:
    """The tile's heat-stress summary per monitored year from the lst store: each
    (year, y, x)."""
    ds = xr.open_zarr(task.lst_store, consolidated=True)
    ds = ds[["lst_zscore", "heat_stress"]].isel(y=task.tile.rows, x=task.tile.cols)
    day = ds.time.values.astype("datetime64[D]")
    first, last = (np.datetime64(d, "D") for d in task.product.monitor)
    inside = (day >= first) & (day <= last)
    ds = ds.isel(time=np.flatnonzero(inside)).load()
    times = pd.DatetimeIndex(ds.time.values)
    return anomaly.annual_heat_summary(
        ds.heat_stress.values == 1,
        ds.lst_zscore.values,
        times.values,
        period_lengths(times, task.lst_step),
        list(task.years),
    )


def run_disturbance_tile(task: DisturbanceTask) -> TileResult:
    """Detect breaks on one tile of the source vi store (and add the optional layers)."""
    p = task.product
    src = read_source_tile(task.source, task.read, task.tile)
    history = tuple(str(d) for d in p.history)
    result = detect_disturbance(
        src[p.variable],
        src["qa"],
        src["doy"],
        history=history,
        monitor=tuple(str(d) for d in p.monitor),
        process=p.process,
        min_magnitude=p.min_magnitude,
        method=p.method,
    )
    out = result[list(STORED)]
    if p.burn_severity:
        onset = result.break_date.min("year")  # one break per pixel in the monitoring period
        severity = burn_severity_of_breaks(
            src["nbr"], onset, src["qa"], src["doy"], history=history
        )
        hit = result.disturbed.astype(bool)
        for name in BURN:
            fill = 0 if name == "burn_severity" else np.nan
            out[name] = severity[name].where(hit, fill).astype(BURN[name][0])
    record = TileInputs(observations=int(np.isfinite(src[p.variable].values).any()))
    if task.reference_reader:
        ref = burned_area.reference_tile(
            task.reference_reader, task.reference, task.tile.geobox, out.year.values, record
        )
        for name in ref.data_vars:
            out[name] = (("year", "y", "x"), ref[name].values)
    if task.lst_store:
        for name, values in heat_of_tile(task).items():
            out[name] = (("year", "y", "x"), values.astype(HEAT[name][0]))
    return TileResult(out, record)


class DisturbanceStep(Step):
    kind = "disturbance"
    Config = DisturbanceConfig

    def validate(self, wf, name: str, p: DisturbanceConfig) -> None:
        source_vars = wf.products[p.source].variables
        if p.burn_severity and "nbr" not in source_vars:
            raise ValueError(
                f"products.{name}.burn_severity: the source product {p.source!r} has no nbr "
                f"(its variables: {source_vars}); add nbr to products.{p.source}.variables"
            )
        if p.variable not in source_vars:
            raise ValueError(
                f"products.{name}.variable: {p.variable} is not in the source product "
                f"{p.source!r} (its variables: {source_vars})"
            )

    def plan(self, ctx: StepContext) -> Plan:
        """One task per tile of the source store's grid; one year per monitored year."""
        p: DisturbanceConfig = ctx.product
        source = source_store(ctx, p.source)
        years = np.arange(p.monitor[0].year, p.monitor[1].year + 1)
        read = [p.variable, "qa", "doy"]
        stored = dict(STORED)
        if p.burn_severity:
            read = list(dict.fromkeys([*read, "nbr"]))
            stored |= BURN
        fixed = {}
        if p.lst:
            lst_product = ctx.workflow.products[p.lst]
            fixed |= {
                "lst_store": str(source_store(ctx, p.lst)),
                "lst_step": product_times(ctx.workflow, lst_product)[1],
            }
            stored |= HEAT
        variables = [
            VariableSpec(name, dtype, attrs, fill) for name, (dtype, fill, attrs) in stored.items()
        ]
        inputs, ignored, finish, per_tile = [], [], None, {}
        method = break_method(p.method, tuple(str(d) for d in p.history))
        source_attrs = {
            "source_product": p.source,
            "break_method": method,
            "monitoring_period": f"{pd.Timestamp(p.monitor[0]).date()}/"
            f"{pd.Timestamp(p.monitor[1]).date()}",
        }
        skipped = []
        if p.reference:
            granules, ignored = burned_area.reference_granules(ctx, years)
            index = ctx.input_index(p.reference)
            skipped = list(index.skipped)
            per_tile = granules_per_tile(granules, ctx.grid.tiling, ctx.grid.tiles)
            variables += burned_area.VARIABLES
            inputs = [f for g in granules for f in g.files]
            fixed["reference_reader"] = index.reader

            def finish(store: Path) -> None:
                scores = burned_area.agreement(store, p.burn_severity)
                report = ctx.output_path("reports", ctx.name)
                report.mkdir(parents=True, exist_ok=True)
                text = json.dumps(scores, indent=2)
                (report / "mcd64a1_agreement.json").write_text(text)
                source_attrs["mcd64a1_agreement"] = json.dumps(scores)

        if p.alerts:
            finish = _with_alerts(ctx, p, finish)

        def make_task(tile: Tile) -> DisturbanceTask:
            return DisturbanceTask(
                tile,
                str(source),
                tuple(read),
                tuple(int(y) for y in years),
                p,
                reference=tuple(per_tile.get(tile.id, ())),
                **fixed,
            )

        return Plan(
            dims={"year": years},
            variables=variables,
            summary=f"Vegetation disturbance from {p.source}.{p.variable}: "
            + (
                f"confirmed drops below the same time of {p.history[0]}..{p.history[1]} in "
                f"{p.monitor[0]}..{p.monitor[1]} (a test for short histories)"
                if method == "drop"
                else f"harmonic season-trend model fitted on {p.history[0]}..{p.history[1]}, "
                f"{p.process.upper()} monitoring of {p.monitor[0]}..{p.monitor[1]} "
                "(BFAST Monitor style)"
            )
            + ("; dNBR and burn severity of each break" if p.burn_severity else "")
            + ("; MCD64A1 burn dates as a reference" if p.reference else "")
            + (f"; heat stress days, maximum LST anomaly and onset from {p.lst}" if p.lst else ""),
            make_task=make_task,
            inputs=inputs,
            skipped=skipped,
            ignored=ignored,
            finish=finish,
            source_attrs=source_attrs,
        )

    run_tile = staticmethod(run_disturbance_tile)


def _with_alerts(ctx: StepContext, p: DisturbanceConfig, finish):
    """``finish`` followed by publishing the store's break patches as alerts."""
    from fluxscape.pipeline import config as cfg

    access = cfg.product_access(ctx.workflow, ctx.name)
    catalog_dir = ctx.catalog_dir()

    def with_alerts(store: Path) -> None:
        from fluxscape.catalog.alerts import publish_alerts
        from fluxscape.pipeline.steps.disturbance_alerts import disturbance_features

        if finish is not None:
            finish(store)
        features = disturbance_features(store, ctx.name, access, p.alert_min_pixels)
        batch = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        ctx.output_path("alerts", ctx.name)  # proven inside OUT
        result = publish_alerts(features, ctx.out_dir, catalog_dir, ctx.name, batch)
        log.info("%s: %d disturbance alert(s) in %s", ctx.name, len(features), result["geojson"])

    return with_alerts


STEP = DisturbanceStep()
