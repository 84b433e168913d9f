"""The ``budget`` product: bottom-up NEE of a ``flux`` product against top-down (inversion)
land fluxes, per region polygon and month (:mod:`fluxscape.ml.budget`).

Store: the top-down fluxes on the workflow's grid, monthly (``topdown_land``, and
``topdown_land_sd`` / ``topdown_fire`` when the input gives them; gC m-2 d-1, positive to
the atmosphere; each pixel takes the value of the inversion cell holding its centre), so the
top-down field is a gridded, catalogued product beside the bottom-up ``flux`` store. The
comparison itself is a table: :meth:`Plan.finish` writes ``OUT/reports/<name>/budget.csv``
(totals over the polygons on each side's own grid, TgC; columns in
:data:`fluxscape.ml.budget.COLUMNS`), and the run report plots each region's two monthly
series with +-sd bands. With ``fire`` (a ``disturbance`` product), the bottom-up side adds
the fire carbon of its burned pixels (:func:`fluxscape.ml.budget.fire_carbon`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

from fluxscape.errors import FluxscapeError, ReaderError
from fluxscape.ml.budget import budget_table, fire_carbon
from fluxscape.pipeline import remote
from fluxscape.pipeline.grid import Tile
from fluxscape.pipeline.inputs import Skipped, TileInputs, expand_paths
from fluxscape.pipeline.schema import ProductRef, StrictModel, input_ref
from fluxscape.pipeline.steps.base import Plan, Step, StepContext, TileResult
from fluxscape.pipeline.steps.derived import source_store
from fluxscape.pipeline.store import VariableSpec
from fluxscape.pipeline.timeaxis import store_period_ends
from fluxscape.readers.topdown import open_topdown_files

#: File name of the comparison table under ``OUT/reports/<product>/``.
TABLE = "budget.csv"
UNITS = "g m-2 d-1"
STORE_VARIABLES = {
    "land": ("topdown_land", "top-down land biosphere flux (positive: to the atmosphere)"),
    "land_sd": ("topdown_land_sd", "top-down land biosphere flux uncertainty (1 sigma)"),
    "fire": ("topdown_fire", "top-down fire emissions (positive: to the atmosphere)"),
}


class BudgetConfig(StrictModel):
    """The ``budget`` product: per region polygon and month, the bottom-up NEE of the
    ``source`` flux product (TgC, with its ensemble sd) against the top-down land flux of the
    ``topdown`` input (an input of the ``topdown`` reader; its ``variables`` map and
    ``relative_error`` choose the variables and the uncertainty), their difference
    (top-down - bottom-up), the combined sd and whether the difference is within ``k`` of it.
    With ``fire`` (a ``disturbance`` product), the bottom-up side is NEE + fire carbon (burned
    pixels x ``fire_consumption``) and the top-down side its land + fire fluxes."""

    kind: Literal["budget"]
    source: Annotated[str, ProductRef(("flux",))]
    topdown: Annotated[str, input_ref({"topdown_flux"}, what="top-down inversion fluxes")]
    regions: str  # GeoJSON of the polygons compared (lon/lat)
    region_name: str = "name"  # the polygons' property that names them
    k: Annotated[float, Field(gt=0)] = 2.0  # within: |diff| <= k x combined sd (2: ~95 %)
    fire: Annotated[str | None, ProductRef(("disturbance",))] = None
    fire_consumption: Annotated[float, Field(gt=0)] = 1000.0  # gC released per m2 burned
    fire_relative_error: Annotated[float, Field(ge=0)] = 0.5  # 1-sigma of fire, share of it


@dataclass(frozen=True)
class BudgetTask:
    """One tile: the top-down files, the variable map and the months of the product."""

    tile: Tile
    files: tuple[str, ...]
    variables: tuple[tuple[str, str], ...] | None
    relative_error: float | None
    times: tuple


def _open(files, variables, relative_error) -> xr.Dataset:
    local = [remote.local(f) for f in files]  # URLs: their staged copies
    return open_topdown_files(local, dict(variables) if variables else None, relative_error)


def _lonlat(tile: Tile) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat (degrees) of the tile's pixel centres, (ny, nx) each."""
    box = tile.geobox
    ny, nx = box.shape
    cols, rows = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5)
    x, y = box.affine * (cols, rows)
    if box.crs.geographic:
        return np.asarray(x), np.asarray(y)
    from pyproj import Transformer

    tr = Transformer.from_crs(box.crs.to_wkt(), "EPSG:4326", always_xy=True)
    return tr.transform(x, y)


def _cell_index(centres: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the cell (regular ascending ``centres``) holding each value, and whether the
    value lies on the grid."""
    step = float(centres[1] - centres[0]) if centres.size > 1 else 1.0
    i = np.floor((values - (centres[0] - step / 2)) / step).astype(int)
    ok = (i >= 0) & (i < centres.size)
    return np.clip(i, 0, centres.size - 1), ok


def run_budget_tile(task: BudgetTask) -> TileResult:
    """The top-down variables on one tile (nearest inversion cell), months of the product."""
    ds = _open(task.files, task.variables, task.relative_error)
    ds = ds.reindex(time=pd.DatetimeIndex(task.times))
    lon, lat = _lonlat(task.tile)
    ix, okx = _cell_index(ds["lon"].values, lon)
    iy, oky = _cell_index(ds["lat"].values, lat)
    ny, nx = lon.shape
    out = {}
    for role, (name, _) in STORE_VARIABLES.items():
        if role not in ds:
            continue
        vals = ds[role].values[:, iy, ix]
        vals = np.where(okx & oky, vals, np.nan).astype("float32")
        out[name] = (("time", "y", "x"), vals.reshape(len(task.times), ny, nx))
    data = xr.Dataset(out)
    record = TileInputs(observations=int(np.isfinite(data["topdown_land"].values).any()))
    return TileResult(data, record)


def _report_dir(ctx: StepContext) -> Path:
    path = ctx.output_path("reports", ctx.name)
    path.mkdir(parents=True, exist_ok=True)
    return path


class BudgetStep(Step):
    kind = "budget"
    Config = BudgetConfig

    def validate(self, wf, name: str, p: BudgetConfig) -> None:
        """The top-down input states an uncertainty: a ``land_sd`` variable in its map or a
        ``relative_error`` (a comparison needs both sides' errors)."""
        inp = wf.inputs.get(p.topdown)
        if inp is None:
            return
        if not (inp.variables or {}).get("land_sd") and inp.relative_error is None:
            raise ValueError(
                f"products.{name}.topdown: input {p.topdown!r} states no uncertainty; map its "
                "land_sd variable (inputs.<name>.variables) or give inputs.<name>.relative_error"
            )

    def check(self, ctx: StepContext) -> None:
        """The top-down files read (variables, units) and the polygons load, before any
        product runs (a bad unit fails in seconds, not after the flux models are trained)."""
        from fluxscape.ml.regional import load_polygons

        p: BudgetConfig = ctx.product
        inp = ctx.workflow.inputs[p.topdown]
        variables = tuple(sorted(inp.variables.items())) if inp.variables else None
        try:
            _open(expand_paths(inp.paths), variables, inp.relative_error)
        except (ReaderError, OSError) as exc:  # OSError: a URL whose object is gone
            raise FluxscapeError(f"{ctx.key('topdown')}: {exc}") from None
        try:
            load_polygons(remote.local(p.regions), p.region_name)
        except FluxscapeError as exc:
            raise FluxscapeError(f"{ctx.key('regions')}: {exc}") from None

    def plan(self, ctx: StepContext) -> Plan:
        """Read the top-down files (all of them: monthly grids are small), keep the months of
        the workflow's period; one task per tile; the table in ``finish``."""
        p: BudgetConfig = ctx.product
        inp = ctx.workflow.inputs[p.topdown]
        files = expand_paths(inp.paths)
        variables = tuple(sorted(inp.variables.items())) if inp.variables else None
        try:
            td = _open(files, variables, inp.relative_error)
        except (ReaderError, OSError) as exc:  # OSError: a URL whose object is gone
            raise FluxscapeError(f"{ctx.key('topdown')}: {exc}") from None
        period = ctx.workflow.period
        first = pd.Timestamp(period.start).to_period("M").to_timestamp()
        times = pd.DatetimeIndex(td["time"].values)
        times = times[(times >= first) & (times <= pd.Timestamp(period.end))]
        if times.empty:
            raise FluxscapeError(
                f"{ctx.key('topdown')}: the files of input {p.topdown!r} hold no month of the "
                f"period {period.start} to {period.end}"
            )
        ends = times + pd.DateOffset(months=1)
        roles = [r for r in STORE_VARIABLES if r in td]
        specs = [
            VariableSpec(
                STORE_VARIABLES[r][0],
                "float32",
                {"units": UNITS, "long_name": f"{STORE_VARIABLES[r][1]}, as carbon"},
            )
            for r in roles
        ]
        source = source_store(ctx, p.source)
        fire_store = source_store(ctx, p.fire) if p.fire else None

        def finish(store: Path) -> None:
            fire = None
            if fire_store is not None:
                with xr.open_zarr(fire_store, consolidated=True) as dist:
                    try:
                        fire = fire_carbon(dist.load(), times, p.fire_consumption)
                    except FluxscapeError as exc:
                        raise FluxscapeError(f"{ctx.key('fire')}: {exc}") from None
            with xr.open_zarr(source, consolidated=True) as flux:
                end = store_period_ends(flux)[-1]
                table = budget_table(
                    flux,
                    td.sel(time=times),
                    remote.local(p.regions),
                    p.region_name,
                    p.k,
                    end,
                    fire=fire,
                    fire_relative_error=p.fire_relative_error,
                )
            table.to_csv(_report_dir(ctx) / TABLE, index=False, float_format="%.6g")

        skipped: list[Skipped] = []
        fire_attrs = {"fire_product": p.fire, "fire_consumption_g_m2": p.fire_consumption}
        fire_attrs = fire_attrs if p.fire else {}
        return Plan(
            dims={"time": times.values},
            time_bounds=np.stack([times.values, ends.values], axis=1),
            variables=specs,
            summary=f"Top-down land flux of input {p.topdown} (monthly, gC m-2 d-1, positive "
            f"to the atmosphere) on the grid; per region and month against the bottom-up NEE "
            f"of {p.source}"
            + (f" + fire of {p.fire} ({p.fire_consumption:g} gC m-2 burned)" if p.fire else "")
            + f" (TgC, within {p.k:g} combined sd) in reports/{ctx.name}/{TABLE}",
            make_task=lambda tile: BudgetTask(
                tile, tuple(files), variables, inp.relative_error, tuple(times.values)
            ),
            inputs=list(files),
            used=list(files),
            skipped=skipped,
            finish=finish,
            source_attrs={"source_product": p.source, "k": p.k} | fire_attrs,
        )

    run_tile = staticmethod(run_budget_tile)


STEP = BudgetStep()
