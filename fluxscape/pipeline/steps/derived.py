"""Products derived from another product's store on the same grid (phenology, disturbance,
vi composites of a finer vi): each tile task reads its own region of the source store."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.steps.base import StepContext


def source_store(ctx: StepContext, name: str) -> Path | str:
    """The finished store of the product ``name``, which ``ctx``'s product reads (a URL when
    the output is on object storage)."""
    from fluxscape.pipeline.outstore import Outputs

    outputs = Outputs.of(ctx.workflow.output.dir)
    if outputs.remote:  # object storage: the version its pointer names
        found = outputs.published(name)
        store = found or outputs.pointer(name)
        complete = found is not None and outputs.manifest(name).read()["complete"]
        if not complete:
            raise FluxscapeError(
                f"products.{ctx.name}: the {name!r} store it reads is not complete "
                f"({store}); its run must finish first"
            )
        return store
    store = ctx.product_store(name)
    state = ctx.out_dir / ".fluxscape" / f"{name}.manifest.jsonl"
    complete = state.exists() and '"complete": true' in state.read_text()
    if not store.exists() or not complete:
        raise FluxscapeError(
            f"products.{ctx.name}: the {name!r} store it reads is not complete "
            f"({store}); its run must finish first"
        )
    return store


def read_source_tile(source: str | Path, variables, tile: Tile) -> xr.Dataset:
    """The tile's region of a source store (loaded: one tile, all leading dims)."""
    ds = xr.open_zarr(source, consolidated=True)
    return ds[list(variables)].isel(y=tile.rows, x=tile.cols).load()
