"""Budgets before work: what a workflow asks for (tiles, time steps, bytes, memory per tile),
estimated from its region and period alone, and refused beyond ``limits`` with a hint.

The estimates need no tile list and no input: a continental region at 0.0001 degrees is
refused in milliseconds instead of making millions of tile objects first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dask.utils import format_bytes, parse_bytes

from fluxscape.errors import WorkflowError
from fluxscape.pipeline.grid import region_geobox
from fluxscape.pipeline.timeaxis import STEP_DAYS

#: Assumed float32 variables per product and working copies of a tile's cube (inputs,
#: intermediate and output arrays) in the estimates: deliberately generous.
VARIABLES_PER_PRODUCT = 4
WORKING_COPIES = 3
BYTES_PER_VALUE = 4


@dataclass(frozen=True)
class Budget:
    """The estimate: grid shape (rows, cols), tiles, time steps per product, total store
    bytes and the largest tile task's memory (bytes)."""

    shape: tuple[int, int]
    tiles: int
    time_steps: dict[str, int]
    output_bytes: int
    tile_bytes: int

    def summary(self) -> str:
        return (
            f"{self.shape[0]} x {self.shape[1]} pixels in {self.tiles} tile(s); up to "
            f"{max(self.time_steps.values(), default=1)} time steps; about "
            f"{format_bytes(self.output_bytes)} of stores, {format_bytes(self.tile_bytes)} per tile"
        )


def time_steps(period, step: str | None) -> int:
    """Number of time steps of ``step`` (default ``period.step``) in the period (estimate)."""
    step = step or period.step
    days = (period.end - period.start).days + 1
    per = 365.25 / 12 if step == "1M" else STEP_DAYS[step]
    return max(1, math.ceil(days / per))


def estimate(wf) -> Budget:
    """The :class:`Budget` of a resolved workflow (no input read, no tile made); a product
    with its own ``resolution`` (e.g. ``gosat_l3``) is counted on its own grid."""
    ts = wf.tile_size
    values = VARIABLES_PER_PRODUCT * BYTES_PER_VALUE
    shape = region_geobox(wf.region).shape.yx
    tiles, output, tile, steps = 0, 0, 0, {}
    for name, p in wf.products.items():
        res = getattr(p, "resolution", None) or wf.region.resolution
        region = wf.region.model_copy(update={"resolution": res})
        ny, nx = shape if res == wf.region.resolution else region_geobox(region).shape.yx
        steps[name] = time_steps(wf.period, getattr(p, "step", None))
        tiles = max(tiles, math.ceil(ny / ts) * math.ceil(nx / ts))
        output += ny * nx * steps[name] * values
        tile = max(tile, min(ts, ny) * min(ts, nx) * steps[name] * values * WORKING_COPIES)
    return Budget(shape, tiles, steps, output, tile)


def check_budget(wf) -> Budget:
    """The workflow's :class:`Budget`, or a WorkflowError naming the limit it exceeds and
    what to change (resolution, bbox, tile size, period, or the ``limits`` key)."""
    limits = wf.limits
    b = estimate(wf)
    if b.tiles > limits.max_tiles:
        raise WorkflowError(
            f"region: {b.shape[0]} x {b.shape[1]} pixels make {b.tiles} tiles of {wf.tile_size}, "
            f"more than limits.max_tiles {limits.max_tiles}; hint: a coarser region.resolution "
            f"(now {wf.region.resolution:g}), a smaller bbox, a larger tile_size, or raise "
            "limits.max_tiles"
        )
    name, steps = max(b.time_steps.items(), key=lambda kv: kv[1])
    if steps > limits.max_time_steps:
        raise WorkflowError(
            f"products.{name}: {steps} time steps from {wf.period.start} to {wf.period.end}, "
            f"more than limits.max_time_steps {limits.max_time_steps}; hint: a shorter period "
            "(run it as several workflows) or a coarser step"
        )
    if b.output_bytes > limits.max_output_gib * 2**30:
        raise WorkflowError(
            f"region: the stores would take about {format_bytes(b.output_bytes)}, more than "
            f"limits.max_output_gib {limits.max_output_gib:g}; hint: a smaller bbox, a "
            "coarser resolution or a shorter period"
        )
    try:
        worker = parse_bytes(wf.dask.memory_limit)
    except (ValueError, TypeError):  # "auto": the cluster decides; nothing to compare with
        return b
    if b.tile_bytes > limits.max_tile_memory_share * worker:
        raise WorkflowError(
            f"tile_size: a tile task of {wf.tile_size} x {wf.tile_size} pixels and {steps} time "
            f"steps needs about {format_bytes(b.tile_bytes)}, more than "
            f"{limits.max_tile_memory_share:.0%} of a worker's dask.memory_limit "
            f"{wf.dask.memory_limit}; hint: a smaller tile_size or more memory per worker"
        )
    return b
