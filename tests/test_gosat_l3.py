"""GOSAT L3 binning: each cell's mean is the mean of its soundings; empty cells are NaN/0."""

from __future__ import annotations

import numpy as np

from fluxscape.products.gosat_l3 import bin_statistics


def test_cell_mean_count_and_standard_error_equal_direct_computation():
    rng = np.random.default_rng(0)
    cell = rng.integers(0, 6, 200)
    values = rng.normal(415, 1.5, 200)
    mean, count, stderr = bin_statistics(cell, values, 8)
    for c in range(6):
        v = values[cell == c]
        assert count[c] == v.size
        assert np.isclose(mean[c], v.mean())
        assert np.isclose(stderr[c], v.std(ddof=1) / np.sqrt(v.size))
    assert count[6] == count[7] == 0 and np.isnan(mean[6:]).all() and np.isnan(stderr[6:]).all()


def test_nan_values_and_cells_outside_grid_are_ignored():
    mean, count, stderr = bin_statistics([0, 0, -1, 5, 1], [1.0, np.nan, 9.0, 9.0, 3.0], 2)
    assert count.tolist() == [1, 1]
    assert mean.tolist() == [1.0, 3.0]
    assert np.isnan(stderr).all()  # one sounding: no spread to estimate
