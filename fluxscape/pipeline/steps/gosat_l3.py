"""The ``gosat_l3`` product: monthly XCO2/XCH4 on a coarse grid from quality-passed GOSAT
soundings (mean, count, standard error per cell and month).

Soundings are point tables (sources giving ``xco2``/``xch4``: NIES HDF5 or ACOS Lite NetCDF,
opened through their source); each tile task reads the files of
the period (a GOSAT day file holds a few hundred soundings in a region: small), keeps those
inside its tile that passed screening, and bins them with
:func:`fluxscape.products.gosat_l3.bin_statistics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field
from pyproj import Transformer

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline import remote
from fluxscape.pipeline.grid import TargetGrid, Tile, target_grid
from fluxscape.pipeline.inputs import READ_ERRORS, TileInputs, select, skipped_from
from fluxscape.pipeline.schema import Period, StrictModel, input_ref
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.store import VariableSpec
from fluxscape.pipeline.timeaxis import period_index, period_starts, time_bounds
from fluxscape.products.gosat_l3 import bin_statistics
from fluxscape.readers.registry import get_reader

GASES = {
    "xco2": ("ppm", "mole_fraction_of_carbon_dioxide_in_air", "carbon dioxide"),
    "xch4": ("ppb", "mole_fraction_of_methane_in_air", "methane"),
}


def variables(gases: list[str]) -> list[VariableSpec]:
    """``<gas>``, ``<gas>_count``, ``<gas>_stderr`` for each gas."""
    out = []
    for gas in gases:
        units, _, name = GASES[gas]
        out += [
            VariableSpec(
                gas,
                "float32",
                {
                    "long_name": f"column-averaged dry-air mole fraction of {name}, monthly mean "
                    "of quality-passed soundings",
                    "units": units,
                    "cell_methods": "area: time: mean",
                },
            ),
            VariableSpec(
                f"{gas}_count",
                "int32",
                {
                    "long_name": f"number of quality-passed {name} soundings",
                    "units": "1",
                    "cell_methods": "area: time: sum",
                },
                fill=-1,
            ),
            VariableSpec(
                f"{gas}_stderr",
                "float32",
                {"long_name": f"standard error of the monthly mean {name} column", "units": units},
            ),
        ]
    return out


class GosatL3Config(StrictModel):
    """The ``gosat_l3`` product: monthly XCO2/XCH4 mean, count and standard error of the
    quality-passed soundings of its inputs (sources giving xco2 or xch4 soundings), on a
    coarse grid of ``resolution`` (CRS units)."""

    kind: Literal["gosat_l3"]
    inputs: Annotated[
        list[str], Field(min_length=1), input_ref({"xco2"}, {"xch4"}, what="GOSAT soundings")
    ]
    variables: list[Literal["xco2", "xch4"]] = ["xco2", "xch4"]
    resolution: Annotated[float, Field(gt=0)] = 0.25


@dataclass(frozen=True)
class GosatTask:
    """One coarse tile: the monthly axis and the sounding files (reader, path) to bin."""

    tile: Tile
    times: tuple
    files: tuple[tuple[str, str], ...]
    gases: tuple[str, ...]


def run_gosat_tile(task: GosatTask) -> TileResult:
    """Bin one tile's quality-passed soundings by cell and month."""
    times = pd.DatetimeIndex(task.times)
    geobox = task.tile.geobox
    ny, nx = geobox.shape.yx
    n_cells = len(times) * ny * nx
    cells: dict[str, list[np.ndarray]] = {g: [] for g in task.gases}
    values: dict[str, list[np.ndarray]] = {g: [] for g in task.gases}
    record = TileInputs()
    inv = ~geobox.affine
    to_grid = None
    if not geobox.crs.geographic:
        to_grid = Transformer.from_crs("EPSG:4326", geobox.crs.to_wkt(), always_xy=True)
    first = times[0]
    for reader, path in task.files:
        try:
            ds = get_reader(reader).open(remote.local(path))  # a URL: its staged copy
        except READ_ERRORS as exc:
            record.skipped.append(skipped_from(path, exc))
            continue
        record.opened.add(path)
        x, y = ds["lon"].values, ds["lat"].values
        if to_grid is not None:
            x, y = to_grid.transform(x, y)
        col, row = inv * (x, y)
        col = np.floor(np.nan_to_num(col, nan=-1)).astype(np.int64)
        row = np.floor(np.nan_to_num(row, nan=-1)).astype(np.int64)
        when = pd.DatetimeIndex(ds["time"].values)
        t = (when.year - first.year) * 12 + (when.month - first.month)
        t = np.asarray(t, dtype=np.int64)
        inside = (row >= 0) & (row < ny) & (col >= 0) & (col < nx) & (t >= 0) & (t < len(times))
        passed = ds["quality_pass"].values.astype(bool)
        for gas in task.gases:
            if gas not in ds:
                continue
            keep = inside & passed & np.isfinite(ds[gas].values)
            if keep.any():
                record.used.add(path)
                record.observations += int(keep.sum())
            cells[gas].append((t[keep] * ny + row[keep]) * nx + col[keep])
            values[gas].append(ds[gas].values[keep])
    data = {}
    for gas in task.gases:
        cell = np.concatenate(cells[gas]) if cells[gas] else np.empty(0, np.int64)
        vals = np.concatenate(values[gas]) if values[gas] else np.empty(0)
        mean, count, stderr = bin_statistics(cell, vals, n_cells)
        shape = (len(times), ny, nx)
        data[gas] = (("time", "y", "x"), mean.reshape(shape).astype("float32"))
        data[f"{gas}_count"] = (("time", "y", "x"), count.reshape(shape).astype("int32"))
        data[f"{gas}_stderr"] = (("time", "y", "x"), stderr.reshape(shape).astype("float32"))
    return TileResult(xr.Dataset(data), record)


class GosatL3Step(Step):
    kind = "gosat_l3"
    Config = GosatL3Config

    def validate(self, wf, name: str, product: GosatL3Config) -> None:
        if product.resolution < wf.region.resolution:
            raise ValueError(
                f"products.{name}.resolution: {product.resolution:g} is finer than "
                f"region.resolution {wf.region.resolution:g} (both in units of region.crs "
                f"{wf.region.crs}); the GOSAT grid is a coarse one, e.g. 25 x the region's"
            )

    def grid(self, wf, product: GosatL3Config) -> TargetGrid:
        """The product's coarse grid: the region at the product's own resolution."""
        region = wf.region.model_copy(update={"resolution": product.resolution})
        return target_grid(region, wf.tile_size)

    def plan(self, ctx: StepContext) -> Plan:
        """Monthly periods, the sounding files of the period, one task per coarse tile."""
        p: GosatL3Config = ctx.product
        wf = ctx.workflow
        times = period_starts(Period(start=wf.period.start, end=wf.period.end, step="1M"))
        files, skipped, ignored = [], [], []
        wanted = frozenset(p.variables)
        for name in p.inputs:
            index = ctx.input_index(name)
            usable, other = select(index, lambda have: wanted & have or None)
            skipped += index.skipped
            ignored += other
            files += [
                (index.reader, f)
                for g in usable
                if period_index(times, g.start) is not None
                for f in g.files
            ]
        if not files:
            raise FluxscapeError(
                f"products.{ctx.name}.inputs: no sounding file of {p.inputs} gives "
                f"{'/'.join(p.variables)} in the period {wf.period.start} to {wf.period.end}"
            )

        return Plan(
            dims={"time": times.values},
            time_bounds=time_bounds(times, "1M"),
            variables=variables(p.variables),
            summary="Monthly gridded GOSAT XCO2/XCH4: mean, count and standard error of the "
            "quality-passed soundings in each cell",
            make_task=lambda tile: GosatTask(
                tile, tuple(times.values), tuple(files), tuple(p.variables)
            ),
            inputs=[f for _, f in files],
            skipped=skipped,
            ignored=ignored,
        )

    run_tile = staticmethod(run_gosat_tile)


STEP = GosatL3Step()
