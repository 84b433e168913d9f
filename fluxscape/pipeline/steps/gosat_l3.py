"""The ``gosat_l3`` product: monthly XCO2/XCH4 on a coarse grid from quality-passed GOSAT
soundings (mean, count, standard error per cell and month).

Soundings are point tables (NIES HDF5 or ACOS Lite NetCDF); each tile task reads the files of
the period (a GOSAT day file holds a few hundred soundings in a region: small), keeps those
inside its tile that passed screening, and bins them with
:func:`fluxscape.products.gosat_l3.bin_statistics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.config import Period, Region
from fluxscape.pipeline.grid import TargetGrid, Tile, target_grid
from fluxscape.pipeline.sources import Skipped, expand_paths
from fluxscape.pipeline.steps.base import Plan, StepContext
from fluxscape.pipeline.store import VariableSpec, write_tile
from fluxscape.pipeline.timeaxis import period_index, period_starts
from fluxscape.products.gosat_l3 import bin_statistics
from fluxscape.readers import gosat

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
                },
            ),
            VariableSpec(
                f"{gas}_count",
                "int32",
                {"long_name": f"number of quality-passed {name} soundings", "units": "1"},
                fill=-1,
            ),
            VariableSpec(
                f"{gas}_stderr",
                "float32",
                {"long_name": f"standard error of the monthly mean {name} column", "units": units},
            ),
        ]
    return out


def grid(region: Region, product, tile_size: int) -> TargetGrid:
    """The product's coarse grid: the region at the product's own resolution."""
    return target_grid(region.model_copy(update={"resolution": product.resolution}), tile_size)


@dataclass(frozen=True)
class GosatTileTask:
    store: str
    tile_id: str
    geobox: GeoBox
    rows: slice
    cols: slice
    times: tuple
    files: tuple[tuple[str, str], ...]  # (reader name, path)
    gases: tuple[str, ...]


def _open(reader: str, path: str) -> xr.Dataset:
    if reader == "gosat_nies":
        return gosat.open_gosat_nies(path)
    return gosat.open_gosat_acos(path)


def run_gosat_tile(task: GosatTileTask) -> dict:
    """Bin one tile's soundings by cell and month, write it, return skipped files."""
    times = pd.DatetimeIndex(task.times)
    ny, nx = task.geobox.shape.yx
    n_cells = len(times) * ny * nx
    cells: dict[str, list[np.ndarray]] = {g: [] for g in task.gases}
    values: dict[str, list[np.ndarray]] = {g: [] for g in task.gases}
    skipped = []
    inv = ~task.geobox.affine
    to_grid = None
    if not task.geobox.crs.geographic:
        to_grid = Transformer.from_crs("EPSG:4326", task.geobox.crs.to_wkt(), always_xy=True)
    first = times[0]
    for reader, path in task.files:
        try:
            ds = _open(reader, path)
        except Exception as exc:
            skipped.append(Skipped(path, str(exc).replace(f"{path}: ", "")).to_json())
            continue
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
    write_tile(Path(task.store), xr.Dataset(data), task.rows, task.cols)
    return {"tile": task.tile_id, "skipped": skipped}


def _file_date(reader: str, path: str):
    meta = gosat.parse_nies_name(path) if reader == "gosat_nies" else gosat.parse_acos_name(path)
    return meta["date"] if meta else None


def plan(ctx: StepContext) -> Plan:
    """Monthly periods, the GOSAT files of the period, one task per coarse tile."""
    product = ctx.product
    wf = ctx.workflow
    times = period_starts(Period(start=wf.period.start, end=wf.period.end, step="1M"))
    files, skipped = [], []
    for name in product.inputs:
        inp = wf.inputs[name]
        if inp.reader not in ("gosat_nies", "gosat_acos"):
            raise FluxscapeError(
                f"products.{ctx.name}.inputs: {name} uses reader "
                f"{inp.reader!r}; gosat_l3 needs gosat_nies or gosat_acos"
            )
        for path in expand_paths(inp.paths):
            date = _file_date(inp.reader, path)
            if date is None:
                skipped.append(Skipped(path, "file name carries no observation date"))
            elif period_index(times, date) is not None:
                files.append((inp.reader, path))

    def make_task(tile: Tile) -> GosatTileTask:
        return GosatTileTask(
            str(ctx.store),
            tile.id,
            tile.geobox,
            tile.rows,
            tile.cols,
            tuple(times.values),
            tuple(files),
            tuple(product.variables),
        )

    return Plan(
        dims={"time": times.values},
        variables=variables(product.variables),
        summary="Monthly gridded GOSAT XCO2/XCH4: mean, count and standard error of the "
        "quality-passed soundings in each cell",
        make_task=make_task,
        run_tile=run_gosat_tile,
        inputs=[p for _, p in files],
        skipped=skipped,
    )
