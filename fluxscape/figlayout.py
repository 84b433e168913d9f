"""Fixed figure margins in inches: the layout of the run report's and the cross-validation
report's plots, set once instead of matplotlib's ``tight_layout`` / ``bbox_inches="tight"``
(each of which measures every text of the figure in an extra draw: most of a small plot's
drawing time). matplotlib's ``subplots_adjust`` takes fractions of the figure; this module
converts margins and gaps given in inches, so a figure of any size keeps room for its labels.
Imports no stage (any stage may use it)."""

from __future__ import annotations


def set_margins(
    fig,
    left: float,
    right: float,
    bottom: float,
    top: float,
    wgap: float = 0.0,
    hgap: float = 0.0,
) -> None:
    """Place ``fig``'s grid of subplots (a matplotlib Figure made by ``subplots``) with
    ``left``/``right``/``bottom``/``top`` margins and ``wgap``/``hgap`` gaps between
    columns/rows, all in inches."""
    width, height = fig.get_size_inches()
    axes = [a for a in fig.axes if a.get_subplotspec() is not None]
    nrow, ncol = axes[0].get_subplotspec().get_gridspec().get_geometry() if axes else (1, 1)
    inner_w = width - left - right
    inner_h = height - bottom - top
    cell_w = (inner_w - wgap * (ncol - 1)) / ncol
    cell_h = (inner_h - hgap * (nrow - 1)) / nrow
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wgap / cell_w if cell_w > 0 else 0.2,
        hspace=hgap / cell_h if cell_h > 0 else 0.2,
    )
