"""MCD64A1 burn dates as an optional reference of the ``disturbance`` product.

With ``reference: <input>`` naming MCD64A1 monthly tiles, each disturbance tile also stores the
year's MCD64A1 burned mask, first burn date and unmapped months on the target grid
(:func:`fluxscape.products.disturbance.mcd64a1_reference`), and the run scores the detections
against them (:func:`fluxscape.products.disturbance.score_detections`): the agreement goes to
``OUT/reports/<product>/mcd64a1_agreement.json`` and the store's ``mcd64a1_agreement``
attribute. MCD64A1 maps fires only, so clearings count as detections it does not confirm.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from fluxscape.errors import FluxscapeError
from fluxscape.pipeline.inputs import TileInputs, giving_all, read_onto_tile, select
from fluxscape.pipeline.steps.base import StepContext
from fluxscape.pipeline.store import VariableSpec
from fluxscape.products.burn import UNBURNED
from fluxscape.products.disturbance import mcd64a1_reference, score_detections
from fluxscape.readers.ontile import Granule

VARIABLES = [
    VariableSpec(
        "mcd64_burned",
        "uint8",
        {
            "long_name": "burned in the year according to MCD64A1",
            "units": "1",
            "flag_values": [0, 1],
            "flag_meanings": "unburned burned",
        },
        fill=255,
    ),
    VariableSpec(
        "mcd64_date",
        "float32",
        {"long_name": "day of year of the first MCD64A1 burn of the year", "units": "1"},
    ),
    VariableSpec(
        "mcd64_unmapped",
        "int16",
        {
            "long_name": "monthly MCD64A1 layers of the year without a mapping (a burn may have "
            "gone unseen); 12 where no layer covers the pixel",
            "units": "1",
        },
        fill=-1,
    ),
]


def reference_granules(ctx: StepContext, years: np.ndarray) -> tuple[list[Granule], list]:
    """The burned-area granules of the ``reference`` input in the monitored ``years`` and the
    files of the input that give no burn dates (with the reason). FluxscapeError naming the
    key when the input holds no usable month."""
    name = ctx.product.reference
    index = ctx.input_index(name)
    usable, ignored = select(index, giving_all("burn_date"))
    granules = [g for g in usable if g.start.year in set(years.tolist())]
    if not granules:
        raise FluxscapeError(
            f"{ctx.key('reference')}: none of the {len(index.files)} file(s) of input {name!r} "
            f"is a burned-area month in the monitored years {years.tolist()}"
            + (
                f" ({len(index.skipped)} unreadable, first: {index.skipped[0].reason})"
                if index.skipped
                else ""
            )
        )
    return granules, ignored


def reference_tile(
    reader: str,
    granules: tuple[Granule, ...],
    geobox: GeoBox,
    years: np.ndarray,
    record: TileInputs,
) -> xr.Dataset:
    """The tile's (year, y, x) ``mcd64_burned``, ``mcd64_date`` and ``mcd64_unmapped`` from the
    monthly granules that meet it; months without a readable granule count as unmapped."""
    layers: dict = {}  # month start -> codes; a later tile of the same month fills the gaps
    for g, out in read_onto_tile(reader, granules, geobox, {"burn_date"}, {}, record):
        month = np.datetime64(g.start, "M")
        codes = out["burn_date"]
        prev = layers.get(month)
        layers[month] = codes if prev is None else np.where(prev == -1, codes, prev)
    ny, nx = geobox.shape.yx
    months = np.arange(f"{years.min()}-01", f"{years.max() + 1}-01", dtype="datetime64[M]")
    stack = np.stack([layers.get(m, np.full((ny, nx), -1, np.int16)) for m in months])
    da = xr.DataArray(
        stack,
        dims=("time", "y", "x"),
        coords={"time": months.astype("datetime64[ns]"), "y": np.arange(ny), "x": np.arange(nx)},
    )
    ref = mcd64a1_reference(da, years)
    return xr.Dataset(
        {
            "mcd64_burned": ref.burned.where(ref.unmapped_layers < 12, 255).astype(np.uint8),
            "mcd64_date": ref.date.astype(np.float32),
            "mcd64_unmapped": ref.unmapped_layers.astype(np.int16),
        }
    ).drop_vars(["y", "x"])


def agreement(store: Path, burn_severity: bool) -> dict:
    """Per monitored year, the detections of the (not yet finalised) ``store`` scored against
    MCD64A1 on pixels mapped in every month: ``disturbed`` vs ``mcd64_burned`` (with the
    date error of the onset against the MCD64A1 burn date) and, with burn severity, breaks of
    low severity or worse (dNBR >= 0.1) vs ``mcd64_burned``."""
    out = {}
    with xr.open_zarr(store, consolidated=False) as ds:
        for year in ds.year.values:
            y = ds.sel(year=year).load()
            mask = (y.mcd64_unmapped == 0) & (y.disturbed != 255)
            scores = {
                "mapped_pixels": int(mask.sum()),
                "mcd64_burned_pixels": int(((y.mcd64_burned == 1) & mask).sum()),
                "breaks": score_detections(
                    y.disturbed == 1,
                    y.mcd64_burned == 1,
                    detected_date=y.date,
                    reference_date=y.mcd64_date,
                    mask=mask,
                ),
            }
            if burn_severity:
                burnt = (y.disturbed == 1) & (y.burn_severity > UNBURNED)
                scores["burns"] = score_detections(
                    burnt,
                    y.mcd64_burned == 1,
                    detected_date=y.date,
                    reference_date=y.mcd64_date,
                    mask=mask,
                )
            out[str(int(year))] = scores
    return json.loads(json.dumps(out, default=float).replace("NaN", "null"))
