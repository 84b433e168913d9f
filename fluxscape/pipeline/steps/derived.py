"""Products derived from another product's store on the same grid (phenology, disturbance):
each tile task reads its own region of the source store and writes its region of the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.steps.base import StepContext


@dataclass(frozen=True)
class DerivedTileTask:
    """One tile of a derived product: source store and variables, target store, settings."""

    source: str
    store: str
    tile_id: str
    rows: slice
    cols: slice
    variables: tuple[str, ...]
    settings: dict


def source_store(ctx: StepContext, name: str | None = None) -> Path:
    """The finished store of the product ``name`` (default: ``ctx.product.source``)."""
    name = name or ctx.product.source
    store = ctx.product_store(name)
    state = ctx.out_dir / ".fluxscape" / f"{name}.manifest.jsonl"
    complete = state.exists() and '"complete": true' in state.read_text()
    if not store.exists() or not complete:
        raise FluxscapeError(
            f"products.{ctx.name}: the {name!r} store it reads is not complete "
            f"({store}); its run must finish first"
        )
    return store


def read_source_tile(task: DerivedTileTask) -> xr.Dataset:
    """The tile's region of the source store (loaded: one tile, all times)."""
    ds = xr.open_zarr(task.source, consolidated=True)
    return ds[list(task.variables)].isel(y=task.rows, x=task.cols).load()


def derived_task(ctx: StepContext, source: Path, variables: list[str], settings: dict):
    """A ``make_task(tile)`` for a derived product."""

    def make_task(tile: Tile) -> DerivedTileTask:
        return DerivedTileTask(
            str(source), str(ctx.store), tile.id, tile.rows, tile.cols, tuple(variables), settings
        )

    return make_task
