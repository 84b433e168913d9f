"""What every product step gives the runner: a store layout and one task per tile.

A step module (``steps/vi.py``, ...) exposes ``plan(ctx) -> Plan``. The runner creates the
store from ``Plan.dims``/``Plan.variables``, submits ``Plan.run_tile(task)`` for each tile the
manifest does not list, and records ``Plan.inputs``/``Plan.skipped`` as provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fluxscape.pipeline.config import Workflow
from fluxscape.pipeline.grid import TargetGrid, Tile
from fluxscape.pipeline.sources import Skipped
from fluxscape.pipeline.store import VariableSpec


@dataclass(frozen=True)
class StepContext:
    """What a step may look at: the resolved workflow, the product's name and settings, the
    target grid, the store it writes and the run's output folder."""

    workflow: Workflow
    name: str
    product: Any
    grid: TargetGrid
    store: Path
    out_dir: Path

    def product_store(self, name: str) -> Path:
        """The store of another product of this run."""
        return self.out_dir / "products" / f"{name}.zarr"


@dataclass
class Plan:
    """A product's layout and tasks.

    ``dims``: the non-spatial dimensions in order with their coordinate values;
    ``make_task(tile)``: the picklable task of one tile; ``run_tile(task)``: runs on a worker,
    writes the tile and returns ``{"tile": id, "skipped": [...], ...}``.
    """

    dims: dict[str, np.ndarray]
    variables: list[VariableSpec]
    summary: str
    make_task: Callable[[Tile], Any]
    run_tile: Callable[[Any], dict]
    inputs: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    source_attrs: dict = field(default_factory=dict)
    #: Run in the driver once every tile is written (e.g. regional totals), before the store
    #: is finalised and published; gets the store path.
    finish: Callable[[Path], None] | None = None
