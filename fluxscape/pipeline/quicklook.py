"""Quicklook PNG maps: one per product variable and year, written next to the products.

For ``(time, y, x)`` stores each map is the variable's mean over the year's periods; for
``(year[, season], y, x)`` stores it is the year's value (first season). Large regions are
block-averaged to at most :data:`MAX_PIXELS` per side before reading, and reading goes chunk by
chunk through dask, so memory stays bounded however large the region is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

from fluxscape.colours import MATPLOTLIB, colour_range, label

log = logging.getLogger(__name__)
MAX_PIXELS = 800
SKIP = {"qa", "doy", "n_obs", "qa_overall", "qa_detailed"}


def _coarse(da: xr.DataArray) -> xr.DataArray:
    factor = int(np.ceil(max(da.sizes["y"], da.sizes["x"]) / MAX_PIXELS))
    if factor > 1:
        da = da.coarsen(y=factor, x=factor, boundary="trim").mean()
    return da


def _yearly(da: xr.DataArray) -> dict[int, xr.DataArray]:
    if "season" in da.dims:
        da = da.isel(season=0)
    if "year" in da.dims:
        return {int(y): da.sel(year=y) for y in da["year"].values}
    years = da["time"].dt.year
    return {
        int(y): da.where(years == y, drop=True).mean("time", skipna=True)
        for y in np.unique(years.values)
    }


def quicklook_variables(store: Path) -> list[str]:
    """The store's variables that get quicklooks: float, on (y, x), not QA or counts."""
    with xr.open_zarr(store, consolidated=True) as ds:
        return [
            name
            for name, var in ds.data_vars.items()
            if name not in SKIP and var.dtype.kind == "f" and {"y", "x"} <= set(var.dims)
        ]


def write_quicklooks(
    store: Path, out_dir: Path, product: str, variables: list[str] | None = None
) -> list[Path]:
    """PNG maps ``out_dir/<product>/<variable>_<year>.png`` for the store's float variables
    (only ``variables`` when given); returns the paths written (each written to a temporary
    name, then renamed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = xr.open_zarr(store, consolidated=True)
    folder = out_dir / product
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, var in ds.data_vars.items():
        if name in SKIP or var.dtype.kind != "f" or not {"y", "x"} <= set(var.dims):
            continue
        if variables is not None and name not in variables:
            continue
        for year, data in _yearly(_coarse(var)).items():
            values = data.values  # computed chunk by chunk by dask (threaded scheduler)
            if not np.isfinite(values).any():
                continue
            lo, hi = (float(v) for v in np.nanpercentile(values, [2, 98]))
            cmap, lo, hi = colour_range(var.attrs, lo, hi)
            fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
            x, y = data["x"].values, data["y"].values
            mesh = ax.pcolormesh(
                x, y, values, shading="nearest", vmin=lo, vmax=hi, cmap=MATPLOTLIB[cmap]
            )
            fig.colorbar(mesh, ax=ax, label=label(name, var.attrs))
            what = "annual mean of " if "time" in var.dims else ""
            ax.set_title(f"{product}: {what}{var.attrs.get('long_name', name)}, {year}", fontsize=9)
            geographic = ds["x"].attrs.get("units") == "degrees_east"
            ax.set_xlabel("longitude (°E)" if geographic else "x (m)")
            ax.set_ylabel("latitude (°N)" if geographic else "y (m)")
            # A degree of longitude is cos(latitude) of a degree of latitude: keep shapes true.
            ax.set_aspect(1 / np.cos(np.radians(float(np.mean(y)))) if geographic else "equal")
            path = folder / f"{name}_{year}.png"
            tmp = path.with_name(path.name + ".tmp.png")
            fig.savefig(tmp, bbox_inches="tight")
            plt.close(fig)
            os.replace(tmp, path)
            written.append(path)
    return written


def draw_quicklooks(
    store: Path, out_dir: Path, product: str, variables: list[str] | None = None
) -> list[Path]:
    """:func:`write_quicklooks` as a task on a Dask worker (the runner submits it when a
    product is published, so the maps are drawn while the next product runs): the store's
    chunks are read in the worker's own thread (dask's synchronous scheduler), not sent back
    through the cluster; matplotlib draws with its Agg backend. The runner submits one task
    per variable (``variables``), so no worker is tied up by a product's maps for long."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        return write_quicklooks(store, out_dir, product, variables)
