"""Quicklook PNG maps: one per product variable and year, written next to the products.

For ``(time, y, x)`` stores each map is the variable's mean over the year's periods; for
``(year[, season], y, x)`` stores it is the year's value (first season). Large regions are
block-averaged to at most :data:`MAX_PIXELS` per side before reading, and reading goes chunk by
chunk through dask, so memory stays bounded however large the region is.
"""

from __future__ import annotations

import logging
import os
import textwrap
import threading
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


#: the quicklook's frame, inches: margins for tick and axis labels, the colour bar
LEFT, BOTTOM, TOP, TITLE_LINE = 0.95, 0.6, 0.2, 0.19
BAR_GAP, BAR_WIDTH, BAR_TICKS, BAR_LINE = 0.15, 0.2, 0.75, 0.2
MAP_SIDE = 4.0  # the map's longer side


class _MapFigure:
    """One quicklook figure (map, colour bar, title, axis labels) for a grid, redrawn for
    every map of that grid: the image data, colours, title and colour-bar label are
    replaced, the figure, axes, ticks and colour bar are not built again (building them and
    the ``bbox_inches="tight"`` second draw cost most of a PNG's time). The frame is laid out
    by hand around the map's true shape (in inches), so no layout engine runs; the title is
    wrapped to the figure's width. Not thread-safe: one per thread (:func:`_map_figure`)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, geographic: bool):
        from matplotlib.figure import Figure

        dx = float(x[1] - x[0]) if len(x) > 1 else 1.0
        dy = float(y[1] - y[0]) if len(y) > 1 else -1.0
        # pixel edges: each value drawn over its cell, as pcolormesh(shading="nearest")
        extent = (x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2)
        # A degree of longitude is cos(latitude) of a degree of latitude: keep shapes true.
        aspect = 1 / np.cos(np.radians(float(np.mean(y)))) if geographic else 1.0
        shape = abs(extent[3] - extent[2]) * aspect / abs(extent[1] - extent[0])
        self.width = float(np.clip(MAP_SIDE / max(shape, 1.0), 1.0, MAP_SIDE * 1.5))
        self.height = float(np.clip(self.width * shape, 1.0, MAP_SIDE * 1.5))
        self.fig = Figure(dpi=100)
        ax = self.fig.add_axes((0, 0, 1, 1))
        self.image = ax.imshow(
            np.zeros((len(y), len(x))), extent=extent, origin="upper", interpolation="nearest"
        )
        ax.set_aspect(aspect)
        ax.set_xlabel("longitude (°E)" if geographic else "x (m)")
        ax.set_ylabel("latitude (°N)" if geographic else "y (m)")
        self.bar_ax = self.fig.add_axes((0, 0, 1, 1))
        self.colorbar = self.fig.colorbar(self.image, cax=self.bar_ax)
        self.ax = ax
        # the title centred on the figure (the map's axes may be narrower than it)
        self.title = self.fig.text(0.5, 1.0, "", ha="center", va="top", fontsize=9)
        self.lines = (-1, -1)

    def _layout(self, title_lines: int, bar_lines: int) -> None:
        """Figure size and axes positions for a title and a colour-bar label of so many
        lines (the figure grows to hold them: nothing is cut off)."""
        if (title_lines, bar_lines) == self.lines:
            return
        fig_height = BOTTOM + self.height + TOP + title_lines * TITLE_LINE
        w, h = self._fig_width(bar_lines), fig_height
        self.fig.set_size_inches(w, h)
        self.ax.set_position((LEFT / w, BOTTOM / h, self.width / w, self.height / h))
        self.bar_ax.set_position(
            ((LEFT + self.width + BAR_GAP) / w, BOTTOM / h, BAR_WIDTH / w, self.height / h)
        )
        self.title.set_y(1 - 0.08 / h)
        self.lines = (title_lines, bar_lines)

    def _fig_width(self, bar_lines: int) -> float:
        """The figure's width (inches) with a colour-bar label of ``bar_lines`` lines."""
        return LEFT + self.width + BAR_GAP + BAR_WIDTH + BAR_TICKS + bar_lines * BAR_LINE

    def save(
        self, values: np.ndarray, lo: float, hi: float, cmap: str, bar: str, title: str, path
    ) -> None:
        """Draw ``values`` (rows in the grid's ``y`` order) with ``cmap`` over ``lo``..``hi``
        and write the PNG ``path``."""
        # about 10 characters of 10-point text per inch along the bar, 13 of the 9-point title
        bar = textwrap.fill(bar, width=max(int(self.height * 10), 30))
        bar_lines = bar.count("\n") + 1
        wrapped = textwrap.fill(title, width=max(int(self._fig_width(bar_lines) * 13), 30))
        self._layout(wrapped.count("\n") + 1, bar_lines)
        self.image.set_data(values)
        self.image.set_cmap(cmap)
        self.image.set_clim(lo, hi)
        self.colorbar.set_label(bar)
        self.title.set_text(wrapped)
        self.fig.savefig(path, format="png")


_FIGURES = threading.local()


def _map_figure(x: np.ndarray, y: np.ndarray, geographic: bool) -> _MapFigure:
    """This thread's figure for the grid ``x``/``y`` (the last grid drawn is kept, so the
    maps of one product, on one worker, share a figure)."""
    key = (x.tobytes(), y.tobytes(), geographic)
    cached = getattr(_FIGURES, "figure", None)
    if cached is None or cached[0] != key:
        cached = (key, _MapFigure(x, y, geographic))
        _FIGURES.figure = cached
    return cached[1]


def write_quicklooks(
    store: Path, out_dir: Path, product: str, variables: list[str] | None = None
) -> list[Path]:
    """PNG maps ``out_dir/<product>/<variable>_<year>.png`` for the store's float variables
    (only ``variables`` when given); returns the paths written (each written to a temporary
    name, then renamed). Drawn with matplotlib's Agg canvas (no pyplot state)."""
    ds = xr.open_zarr(store, consolidated=True)
    folder = out_dir / product
    folder.mkdir(parents=True, exist_ok=True)
    geographic = ds["x"].attrs.get("units") == "degrees_east"
    written = []
    for name, var in ds.data_vars.items():
        if name in SKIP or var.dtype.kind != "f" or not {"y", "x"} <= set(var.dims):
            continue
        if variables is not None and name not in variables:
            continue
        for year, data in _yearly(_coarse(var)).items():
            data = data.transpose("y", "x")
            values = data.values  # computed chunk by chunk by dask (threaded scheduler)
            if not np.isfinite(values).any():
                continue
            lo, hi = (float(v) for v in np.nanpercentile(values, [2, 98]))
            cmap, lo, hi = colour_range(var.attrs, lo, hi)
            figure = _map_figure(data["x"].values, data["y"].values, geographic)
            what = "annual mean of " if "time" in var.dims else ""
            path = folder / f"{name}_{year}.png"
            tmp = path.with_name(path.name + ".tmp.png")
            figure.save(
                values,
                lo,
                hi,
                MATPLOTLIB[cmap],
                label(name, var.attrs),
                f"{product}: {what}{var.attrs.get('long_name', name)}, {year}",
                tmp,
            )
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
