"""The ``heatwave_alerts`` product: heat waves from daily land surface temperature
(:mod:`fluxscape.products.heatwave`), as a daily store and as alerts.

Store (daily, ``(time, y, x)``): ``lst`` (K, mean of the day's usable observations),
``lst_anomaly`` (K, against the per-day-of-year baseline of the ``baseline`` years, +-
``window_days``) and ``hot`` (1 where the anomaly exceeds ``threshold_k``). After the last
tile (:meth:`Plan.finish`), the days after the baseline are searched for runs of at least
``min_days`` hot observed days per pixel; clusters of such pixels are heat-wave events, each
an alert (a polygon with onset, last day, duration, extent in km2 and peak anomaly) in
``OUT/alerts/<product>/<batch>.geojson`` and the catalog's ``alerts`` collection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
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
    select,
)
from fluxscape.pipeline.schema import StrictModel, input_ref, year_or_date
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.steps.lst import mean_lst_on_tile
from fluxscape.pipeline.store import VariableSpec
from fluxscape.pipeline.timeaxis import period_index, period_starts, time_bounds
from fluxscape.products import heatwave
from fluxscape.readers.ontile import Granule

log = logging.getLogger(__name__)


class HeatwaveAlertsConfig(StrictModel):
    """The ``heatwave_alerts`` product: daily land surface temperature, its anomaly against
    the per-day-of-year baseline and heat-wave events (onset, extent, peak anomaly) after the
    baseline, raised as alerts in the catalog's ``alerts`` collection."""

    kind: Literal["heatwave_alerts"]  # Product kind.
    input: Annotated[str, input_ref({"lst"}, what="land surface temperature")] = Field(
        description="Daily LST: a source giving `lst` (e.g. Himawari P-Tree scenes, split "
        "window on B13/B15)."
    )
    baseline: tuple[date, date] = Field(
        description="[first, last] of the baseline: years (`[2017, 2021]`) or dates; heat "
        "waves are searched after its last day."
    )
    threshold_k: Annotated[float, Field(gt=0)] = Field(
        4.0, description="A hot day: LST above the day-of-year baseline mean by this (K)."
    )
    min_days: Annotated[int, Field(ge=1)] = Field(
        3, description="A heat wave: at least this many hot observed days in a row."
    )
    window_days: Annotated[int, Field(ge=0, le=45)] = Field(
        7, description="Baseline of a day: the baseline years' days within +- this many days."
    )
    min_pixels: Annotated[int, Field(ge=1)] = Field(
        4, description="Smallest event (pixels, 8-connected) raised as an alert."
    )
    max_qa: Annotated[int, Field(ge=0, le=1)] = Field(
        0, description="Worst quality kept (as the lst product: 0 clear, 1 near a cloud)."
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


VARIABLES = [
    VariableSpec(
        "lst",
        "float32",
        {
            "long_name": "daytime land surface temperature, mean of the day's usable observations",
            "units": "K",
            "standard_name": "surface_temperature",
        },
    ),
    VariableSpec(
        "lst_anomaly",
        "float32",
        {"long_name": "LST minus the day-of-year baseline mean", "units": "K"},
    ),
    VariableSpec(
        "hot",
        "uint8",
        {
            "long_name": "hot day: LST anomaly above the threshold",
            "units": "1",
            "flag_values": [0, 1],
            "flag_meanings": "normal hot",
        },
        fill=255,
    ),
]


@dataclass(frozen=True)
class HeatTask:
    """One tile: its LST granules, the days of the product and the settings."""

    tile: Tile
    times: tuple
    reader: str
    granules: tuple[Granule, ...]
    product: HeatwaveAlertsConfig


def run_heat_tile(task: HeatTask) -> TileResult:
    """Daily LST, anomaly and hot flags of one tile."""
    p = task.product
    times = pd.DatetimeIndex(task.times)
    record = TileInputs()
    lst, _ = mean_lst_on_tile(
        task.reader, task.granules, task.tile.geobox, times, "1D", p.max_qa, record
    )
    days = times.values.astype("datetime64[D]")
    first, last = (np.datetime64(str(d)) for d in p.baseline)
    base = (days >= first) & (days <= last)
    mean, _ = heatwave.doy_baseline(lst, days, base, p.window_days)
    anomaly = lst - mean
    with np.errstate(invalid="ignore"):
        hot = np.where(np.isfinite(anomaly), anomaly > p.threshold_k, 255).astype(np.uint8)
    dims = ("time", "y", "x")
    data = xr.Dataset(
        {
            "lst": (dims, lst.astype(np.float32)),
            "lst_anomaly": (dims, anomaly.astype(np.float32)),
            "hot": (dims, hot),
        }
    )
    return TileResult(data, record)


def heatwave_features(store: Path, product: str, p: HeatwaveAlertsConfig, access: str) -> list:
    """GeoJSON features (polygons) of the heat-wave events after the baseline in a
    heatwave_alerts store on a lon/lat grid."""
    ds = xr.open_zarr(store, consolidated=False)
    days = ds["time"].values.astype("datetime64[D]")
    monitor = days > np.datetime64(str(p.baseline[1]))
    anomaly = ds["lst_anomaly"].values
    onset, last, peak = heatwave.onsets(anomaly, monitor, p.threshold_k, p.min_days)
    found = heatwave.events(
        onset, last, peak, ds["x"].values, ds["y"].values, days, min_pixels=p.min_pixels
    )
    out = []
    for ev in found:
        lon, lat = ev["centroid"]
        props = {
            "id": f"{product}-{ev['onset'].replace('-', '')}-{lon:.3f}-{lat:.3f}",
            "kind": "heatwave",
            "product": product,
            "time": f"{ev['onset']}T00:00:00Z",
            "onset": ev["onset"],
            "last": ev["last"],
            "duration_days": ev["duration_days"],
            "extent_km2": ev["extent_km2"],
            "peak_anomaly_k": ev["peak_anomaly_k"],
            "pixels": ev["pixels"],
            "lon": lon,
            "lat": lat,
            "threshold_k": p.threshold_k,
            "min_days": p.min_days,
            "fluxscape:access": access,
        }
        out.append({"type": "Feature", "geometry": ev["geometry"], "properties": props})
    return out


class HeatwaveAlertsStep(Step):
    kind = "heatwave_alerts"
    Config = HeatwaveAlertsConfig

    def validate(self, wf, name: str, p: HeatwaveAlertsConfig) -> None:
        if not (p.baseline[0] >= wf.period.start and p.baseline[1] < wf.period.end):
            raise ValueError(
                f"products.{name}.baseline: {[str(d) for d in p.baseline]} must lie in the "
                f"period {wf.period.start} to {wf.period.end} and end before it ends"
            )

    def plan(self, ctx: StepContext) -> Plan:
        """Daily time axis over the period; events after the last tile."""
        from fluxscape.pipeline import config as cfg

        p: HeatwaveAlertsConfig = ctx.product
        index = ctx.input_index(p.input)
        usable, ignored = select(index, giving_all("lst"))
        times = period_starts(ctx.workflow.period, "1D")
        granules = [g for g in usable if period_index(times, g.start, "1D") is not None]
        per_tile = granules_per_tile(granules, ctx.grid.tiling, ctx.grid.tiles)
        if not any(per_tile.values()):
            raise FluxscapeError(coverage_error(p.input, index, usable, granules, ctx.workflow))
        access = cfg.product_access(ctx.workflow, ctx.name)
        catalog_dir = ctx.catalog_dir()

        def make_task(tile: Tile) -> HeatTask:
            return HeatTask(tile, tuple(times.values), index.reader, tuple(per_tile[tile.id]), p)

        def finish(store: Path) -> None:
            from fluxscape.catalog.alerts import publish_alerts

            features = heatwave_features(store, ctx.name, p, access)
            batch = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            ctx.output_path("alerts", ctx.name)  # proven inside OUT
            result = publish_alerts(features, ctx.out_dir, catalog_dir, ctx.name, batch)
            log.info("%s: %d heat-wave alert(s) in %s", ctx.name, len(features), result["geojson"])

        return Plan(
            dims={"time": times.values},
            time_bounds=time_bounds(times, "1D"),
            variables=VARIABLES,
            summary=f"Daily land surface temperature ({index.reader}), its anomaly against the "
            f"{p.baseline[0]}..{p.baseline[1]} day-of-year baseline (+-{p.window_days} days) and "
            f"heat waves: >= {p.min_days} observed days above {p.threshold_k:g} K",
            make_task=make_task,
            inputs=[f for g in granules for f in g.files],
            skipped=list(index.skipped),
            ignored=ignored,
            finish=finish,
            source_attrs={"baseline_period": f"{p.baseline[0]}/{p.baseline[1]}"},
        )

    run_tile = staticmethod(run_heat_tile)


STEP = HeatwaveAlertsStep()
