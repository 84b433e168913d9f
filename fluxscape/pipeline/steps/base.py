"""The step contract: what every product kind gives the runner.

A step (one module per product kind, registered in :mod:`fluxscape.pipeline.steps`) is a
:class:`Step` subclass with:

- ``kind`` and ``Config``: its product kind and pydantic config model (the workflow's product
  union is built from the registered steps); fields naming inputs or other products are typed
  references (:class:`~fluxscape.pipeline.schema.InputRef`,
  :class:`~fluxscape.pipeline.schema.ProductRef`);
- ``validate(workflow, name, product)``: cross-checks against the rest of the workflow
  (raise ValueError starting with the key: ``products.<name>.<key>: ...``);
- ``check(ctx)``: checks of the files it will use, run for every product before the first
  product runs (e.g. a tower site list's layout);
- ``grid(workflow, product)``: its output grid (default: the workflow's region and tiles);
- ``plan(ctx) -> Plan``: dims, variables, summary and one typed task per tile (each task has
  a ``tile`` field, the shared :class:`~fluxscape.pipeline.grid.Tile` reference);
- ``run_tile(task) -> TileResult``: runs on a worker and returns the tile's Dataset; the
  runner alone writes the store region and the manifest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr
from pydantic import BaseModel

from fluxscape.pipeline.grid import TargetGrid, Tile, target_grid
from fluxscape.pipeline.inputs import InputIndex, Skipped, TileInputs, index_input
from fluxscape.pipeline.store import VariableSpec

if TYPE_CHECKING:
    from fluxscape.pipeline.config import Workflow


@dataclass(frozen=True)
class StepContext:
    """What a step may look at: the resolved workflow and its digest, the product's name and
    config, the target grid, the store it writes, the run's output folder and the index of
    every raster input of the workflow (built once, before the first product runs).
    ``reuse_model``: set by ``fluxscape update``: an upscaling product predicts with its
    saved model when that model's targets and features are the ones asked for, even though
    the training table grew (no retraining unless ``update --retrain``). ``client``: a
    callable giving the run's Dask client, set by the runner."""

    workflow: Workflow
    name: str
    product: Any
    grid: TargetGrid
    store: Path | str  # the building store: a folder, or a URL when OUT is on object storage
    out_dir: Path
    inputs: dict[str, InputIndex] = field(default_factory=dict)
    digest: str = ""
    reuse_model: bool = False
    #: the run's Dask client getter (starts the cluster on first call), for work a step does
    #: before its tiles on the workers (cross-validation folds); None: work in this process
    client: Callable[[], Any] | None = None

    def output_path(self, *parts: str) -> Path:
        """``OUT/<parts...>`` for a file or folder the step writes, proven to lie inside OUT
        (:func:`fluxscape.pipeline.outdir.inside`)."""
        from fluxscape.pipeline.outdir import inside

        return inside(self.out_dir, self.out_dir.joinpath(*parts))

    def catalog_dir(self) -> Path:
        """The catalog folder this run publishes into."""
        from fluxscape.pipeline.config import catalog_dir

        return catalog_dir(self.workflow, self.out_dir)

    def product_store(self, name: str) -> Path:
        """The published store of another product of this run (on object storage: the URL of
        the version its pointer names, or of the pointer when none is published)."""
        from fluxscape.pipeline.outstore import Outputs

        outputs = Outputs.of(self.workflow.output.dir)
        if outputs.remote:
            return outputs.published(name) or outputs.pointer(name)
        return self.out_dir / "products" / f"{name}.zarr"

    def input_index(self, name: str) -> InputIndex:
        """The run's index of input ``name``; indexed here when the context was made without
        it (a step used from Python rather than by the runner)."""
        index = self.inputs.get(name)
        if index is None:
            inp = self.workflow.inputs[name]
            index = index_input(name, inp.reader, inp.paths)
        return index

    def key(self, field_name: str) -> str:
        """``products.<name>.<field>``, for messages."""
        return f"products.{self.name}.{field_name}"


@dataclass
class TileResult:
    """What a tile task returns: the tile's data (dims ``(*plan dims, y, x)``) and what it
    read (:class:`~fluxscape.pipeline.inputs.TileInputs`)."""

    data: xr.Dataset
    inputs: TileInputs = field(default_factory=TileInputs)


@dataclass
class Plan:
    """A product's layout and tasks.

    ``dims``: the non-spatial dimensions in order with their coordinate values;
    ``make_task(tile)``: the picklable task of one tile (with a ``tile`` field);
    ``inputs``: the input files the product may read (provenance keeps those that gave data);
    ``skipped``: files refused before any tile ran (unreadable); ``ignored``: files of its
    inputs that hold nothing this product uses (e.g. MOD11 tiles for a vi); ``used``: files
    the driver itself used (e.g. a flux product's tower and meteorology files), counted in the
    provenance beside those that gave usable values to the tiles;
    ``finish(store)``: runs in the driver after the last tile (e.g. regional totals);
    ``time_bounds``: for a ``time`` dimension, each period's start and exclusive end
    (``(n, 2)`` datetime64, :func:`fluxscape.pipeline.timeaxis.time_bounds`), written to the
    store as the CF bounds variable ``time_bnds``."""

    dims: dict[str, np.ndarray]
    variables: list[VariableSpec]
    summary: str
    make_task: Callable[[Tile], Any]
    inputs: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[Skipped] = field(default_factory=list)
    source_attrs: dict = field(default_factory=dict)
    used: list[str] = field(default_factory=list)
    finish: Callable[[Path], None] | None = None
    time_bounds: np.ndarray | None = None


class Step(ABC):
    """One product kind (see the module docstring for the contract)."""

    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    def validate(self, workflow: Workflow, name: str, product: BaseModel) -> None:
        """Cross-checks against the workflow; ValueError naming the key."""
        return None

    def check(self, ctx: StepContext) -> None:
        """Checks of the files the product will use, before any product runs."""
        return None

    def grid(self, workflow: Workflow, product: BaseModel) -> TargetGrid:
        """The product's grid: the workflow's region cut into its tiles."""
        return target_grid(workflow.region, workflow.tile_size)

    @abstractmethod
    def plan(self, ctx: StepContext) -> Plan:
        """Layout and tasks (runs in the driver)."""

    @staticmethod
    @abstractmethod
    def run_tile(task: Any) -> TileResult:
        """One tile's data (runs on a worker)."""
