"""The phenology kernels against the output of the implementation they replaced (issue #18):
``phenology()`` on a cube with gaps (NaN values and days), QA-weighted points (good, marginal,
cloudy), all-NaN pixels, pixels with too few usable observations, single and double seasons,
compared with ``tests/data/phenology_golden.npz``, written by the previous implementation
(commit 8827faf: per-pixel LDL^T Whittaker smoother and season kernels of
``fluxscape.products.kernels``, ``fluxscape.products.dlfit``) from the same cube.

Issue #18 changed ``method="whittaker"`` on purpose: one upper-envelope iteration by default
instead of two, and ``phenology()`` computes it in one compiled pass from the ``vi`` variables
(``kernels.phenology_tile``). Its keys ``whittaker/...`` were rewritten then; the earlier
ones are kept as ``whittaker2/...`` and still checked with ``envelope_iterations=2``.

Regenerate only on purpose (an intended change of results):
``PYTHONPATH=. python tests/test_phenology_fused.py [label ...]`` rewrites the given labels
(default: all of :data:`RUNS`) and keeps the others' stored arrays."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from fluxscape.products import phenology as ph
from fluxscape.products import smoothing as sm

GOLDEN = Path(__file__).parent / "data" / "phenology_golden.npz"
SIZE = 24
#: Golden label -> (method, options of ``phenology()``).
RUNS = {
    "whittaker": ("whittaker", {}),
    "whittaker2": ("whittaker", {"envelope_iterations": 2}),
    "double_logistic": ("double_logistic", {}),
}
METHODS = tuple(RUNS)
#: Dates and metrics agree to this (days, index units): float rounding of reordered sums
#: moves a threshold crossing by far less.
ATOL = 1e-3
#: Share of the cells per variable allowed to differ by more (or in being NaN): none for the
#: Whittaker kernels; for the double-logistic fits the logistic is now evaluated through exp
#: instead of tanh (equal to rounding), which can end an ill-conditioned fit one iteration
#: earlier or later: the day of a flat-topped peak then moves to the neighbouring grid node,
#: or the s.d. of a near-singular fit becomes NaN (at most 11 of 2304 cells on this cube).
MAX_DIFFERENT = {"whittaker": 0.0, "whittaker2": 0.0, "double_logistic": 0.005}


def cube(seed: int = 18, size: int = SIZE) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """(ndvi, qa, doy) of ``size`` x ``size`` pixels, two years of 16-day composites: single
    seasons, double cropping and flat noise; 25 % cloudy (QA 3, low values), 10 % marginal
    (QA 1); 2 % NaN values, 1 % NaN days; the first 10 pixels all NaN, the next 10 with only
    two good observations."""
    rng = np.random.default_rng(seed)
    starts = pd.DatetimeIndex(
        [
            pd.Timestamp(y, 1, 1) + pd.Timedelta(days=d)
            for y in (2021, 2022)
            for d in range(0, 365, 16)
        ]
    )
    npix, nt = size * size, starts.size
    start_doy = starts.day_of_year.to_numpy()
    doy = (start_doy + rng.random((npix, nt)) * np.minimum(16, 366 - start_doy)).astype(int)
    kind = rng.integers(0, 3, (npix, 1))
    one = sm.double_logistic(
        doy,
        0,
        rng.uniform(0.2, 0.7, (npix, 1)),
        rng.uniform(90, 170, (npix, 1)),
        rng.uniform(0.04, 0.15, (npix, 1)),
        rng.uniform(230, 300, (npix, 1)),
        rng.uniform(0.04, 0.15, (npix, 1)),
    )
    two = sm.double_logistic(doy, 0, 0.45, 80, 0.1, 152, 0.1) + sm.double_logistic(
        doy, 0, 0.55, 192, 0.09, 265, 0.07
    )
    ndvi = rng.uniform(0.1, 0.3, (npix, 1)) + np.where(kind == 0, one, np.where(kind == 1, two, 0))
    ndvi = ndvi + rng.normal(0, np.where(kind == 2, 0.08, 0.015), ndvi.shape)
    roll = rng.random(ndvi.shape)
    cloudy, marginal = roll < 0.25, (roll >= 0.25) & (roll < 0.35)
    ndvi = np.where(cloudy, rng.uniform(-0.05, 0.2, ndvi.shape), ndvi)
    qa = np.where(cloudy, 3, np.where(marginal, 1, 0))
    ndvi[rng.random(ndvi.shape) < 0.02] = np.nan
    doy = doy.astype(float)
    doy[rng.random(doy.shape) < 0.01] = np.nan
    ndvi[:10] = np.nan
    qa[10:20] = 3
    qa[10:20, 20:22] = 0

    def arr(a: np.ndarray, dtype) -> xr.DataArray:
        return xr.DataArray(
            a.T.reshape(nt, size, size).astype(dtype),
            dims=("time", "y", "x"),
            coords={
                "time": starts,
                "y": np.arange(size, dtype=float),
                "x": np.arange(size, dtype=float),
            },
        )

    return arr(ndvi, np.float32), arr(qa, np.uint8), arr(doy, np.float32)


def outputs(label: str) -> dict[str, np.ndarray]:
    method, options = RUNS[label]
    ndvi, qa, doy = cube()
    ds = ph.phenology(ndvi, qa, doy, method=method, **options)
    return {f"{label}/{name}": ds[name].values for name in ds.data_vars}


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return dict(data)


def test_cube_has_the_cases_it_claims():
    ndvi, qa, doy = cube()
    values = ndvi.values.reshape(ndvi.shape[0], -1)
    assert np.isnan(values[:, :10]).all()
    assert ((qa.values == 1).mean() > 0.05) and ((qa.values == 3).mean() > 0.2)
    assert np.isnan(values[:, 20:]).any() and np.isnan(doy.values).any()


@pytest.mark.parametrize("method", METHODS)
def test_equals_previous_implementation(golden, method):
    now = outputs(method)
    assert set(now) == {k for k in golden if k.startswith(f"{method}/")}
    for key, old in golden.items():
        if not key.startswith(f"{method}/"):
            continue
        new = now[key]
        assert new.dtype == old.dtype and new.shape == old.shape, key
        if new.dtype.kind == "f":
            same_nan = np.isnan(new) == np.isnan(old)
            close = np.isclose(new, old, rtol=0, atol=ATOL, equal_nan=True)
        else:
            same_nan = close = new == old
        allowed = MAX_DIFFERENT[method] * new.size
        assert (~same_nan).sum() <= allowed, f"{key}: {(~same_nan).sum()} NaN differences"
        assert (~close).sum() <= allowed, f"{key}: {(~close).sum()} cells differ by > {ATOL}"
    sos = now[f"{method}/sos"]
    # All-NaN pixels have no season; the rest mostly do.
    assert np.isnan(sos.reshape(*sos.shape[:2], -1)[..., :20]).all()
    assert np.isfinite(sos[:, 0]).mean() > 0.5


if __name__ == "__main__":
    labels = sys.argv[1:] or list(RUNS)
    GOLDEN.parent.mkdir(exist_ok=True)
    kept = {}
    if GOLDEN.exists():
        with np.load(GOLDEN) as data:
            kept = {k: data[k] for k in data.files if k.split("/")[0] not in labels}
    np.savez_compressed(GOLDEN, **kept, **{k: v for m in labels for k, v in outputs(m).items()})
    print(f"wrote {labels} to {GOLDEN}", file=sys.stderr)


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert list(a.data_vars) == list(b.data_vars)
    for name in a.data_vars:
        x, y = a[name].values, b[name].values
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype.kind == "f":
            assert np.array_equal(np.isnan(x), np.isnan(y)), name
            assert np.allclose(x, y, rtol=0, atol=ATOL, equal_nan=True), name
        else:
            assert np.array_equal(x, y), name


@pytest.mark.parametrize(
    "case",
    [
        {},
        {"sos_method": "derivative", "envelope_iterations": 2, "seasons": 1},
        {"sos_fraction": 0.15, "eos_fraction": 0.3, "min_observations": 3},
        {"qa": None},
        {"doy": None},
        {"doy": "int16"},
        {"qa_weights": {0: 1.0, 1: 0.3, 3: 0.1}},
        {"qa": "float32"},
        {"qa": "int16", "qa_weights": {0: 1.0, 1: 0.5, 300: 0.0, -2: 0.0}},
    ],
)
def test_fused_whittaker_equals_the_general_path(case):
    """``phenology(method="whittaker")`` on the vi store's types goes through the one-pass
    kernel; on float64 values through ``phenology_metrics`` and ``season_quality``: the same
    dates, metrics and quality layers."""
    ndvi, qa, doy = cube(seed=5, size=16)
    options = dict(case)
    qa = {"float32": _masked(qa), "int16": _odd_codes(qa), None: None}.get(options.pop("qa", 0), qa)
    if options.pop("doy", "") == "int16":
        doy = doy.fillna(100).astype(np.int16)
    elif "doy" in case:
        doy = None
    assert ph._fused("whittaker", ndvi, qa, doy, {"grid_start": 0.0, "grid_stop": 760.0})
    fused = ph.phenology(ndvi, qa, doy, method="whittaker", **options)
    general = ph.phenology(ndvi.astype(np.float64), qa, doy, method="whittaker", **options)
    _same(fused, general)
    assert np.isfinite(fused["sos"].values).sum() > 100
    assert (fused["qa_overall"].values < 255).sum() > 100


def _masked(qa: xr.DataArray) -> xr.DataArray:
    """QA as a masked uint8 store variable decodes: float32, NaN where missing."""
    out = qa.astype(np.float32)
    return out.where(np.random.default_rng(1).random(qa.shape) > 0.05)


def _odd_codes(qa: xr.DataArray) -> xr.DataArray:
    """int16 QA with codes outside 0..255 (weight 0 in the fused kernel's table)."""
    roll = np.random.default_rng(2).random(qa.shape)
    return qa.astype(np.int16).where(roll > 0.05, 300).where(roll > 0.02, -2)


def test_fused_path_needs_a_code_of_weight_zero_for_non_uint8_qa():
    ndvi, qa, doy = cube(size=4)
    grid = {"grid_start": 0.0, "grid_stop": 760.0}
    assert ph._fused("whittaker", ndvi, qa.astype(np.float32), doy, grid)
    every = {code: 1.0 for code in range(256)}
    assert not ph._fused("whittaker", ndvi, qa.astype(np.float32), doy, grid, every)
    assert ph._fused("whittaker", ndvi, qa, doy, grid, every)  # uint8: no other code exists
    wide = {0: 1.0, 300: 0.5}
    assert not ph._fused("whittaker", ndvi, qa.astype(np.int16), doy, grid, wide)
    assert not ph._fused("double_logistic", ndvi, qa, doy, grid)


def test_fused_whittaker_on_dask_blocks_equals_one_block():
    pytest.importorskip("dask")
    ndvi, qa, doy = cube(seed=6, size=16)
    whole = ph.phenology(ndvi, qa, doy, method="whittaker")
    chunks = {"y": 8, "x": 5}
    lazy = ph.phenology(ndvi.chunk(chunks), qa.chunk(chunks), doy.chunk(chunks), method="whittaker")
    _same(lazy.compute(), whole)
