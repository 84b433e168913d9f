"""GOSAT Level 3: monthly gridded means of quality-passed soundings (pure array functions)."""

from __future__ import annotations

import numpy as np


def bin_statistics(
    cell: np.ndarray, values: np.ndarray, n_cells: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, count and standard error of ``values`` per cell.

    ``cell`` holds each value's flat cell index in [0, n_cells) (negative = outside the grid,
    ignored); NaN values are ignored. Returns float64 ``mean`` (NaN where count is 0), int64
    ``count`` and float64 ``stderr`` = sample sd (ddof 1) / sqrt(count) (NaN where count < 2),
    each of length ``n_cells``.
    """
    cell = np.asarray(cell, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    keep = (cell >= 0) & (cell < n_cells) & np.isfinite(values)
    cell, values = cell[keep], values[keep]
    count = np.bincount(cell, minlength=n_cells)
    total = np.bincount(cell, weights=values, minlength=n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
        # second pass around the mean: numerically safer than sum of squares
        dev2 = np.bincount(cell, weights=(values - mean[cell]) ** 2, minlength=n_cells)
        sd = np.sqrt(dev2 / (count - 1))
        stderr = np.where(count >= 2, sd / np.sqrt(count), np.nan)
    return mean, count, stderr
