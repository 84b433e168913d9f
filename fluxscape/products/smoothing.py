"""QA-weighted smoothing of irregularly sampled vegetation-index series, as pure array functions.

Every smoother takes three arrays of the same shape ``(..., time)``:

- ``values``: the index (e.g. NDVI, unitless); NaN = no observation;
- ``weights``: observation weights in [0, 1] (see :func:`qa_weights`); 0 = ignore;
- ``days``: the day number of each observation, as float days since any fixed reference (for
  example days since 1 January of the first year, 0 = that day); NaN = no observation;

and a regular output ``grid`` of day numbers (1-D, constant step, same reference), and returns
the smoothed series on that grid, shape ``(..., len(grid))``. Observations outside the grid are
ignored. Pixels are processed together as a ``(pixel, time)`` matrix: there is no loop over
pixels, only over envelope or fit iterations.

Methods and sources:

- :func:`fluxscape.products.kernels.whittaker` (compiled, per pixel): the weighted Whittaker
  smoother (Eilers 2003, Anal. Chem. 75:3631) on a regular grid, with iterative
  upper-envelope reweighting of the observations that fall below the curve (bisquare weights
  on negative residuals, as phenofit's ``wBisquare``; Kong et al. 2022, phenofit; the
  upper-envelope idea is TIMESAT's, Jönsson & Eklundh 2004, Comput. Geosci. 30:833). Its
  parameters' defaults are here (:data:`DEFAULT_LAMBDA`, ...).
- :func:`savgol`: the Savitzky-Golay filter of TIMESAT (Chen et al. 2004, RSE 91:332) applied
  to the usable observations linearly interpolated onto the grid, with the same upper-envelope
  iterations.
- :func:`fit_double_logistic`: the double logistic of Beck et al. (2006, RSE 100:321) / TIMESAT
  "DL", fitted by a Levenberg-Marquardt iteration vectorised over all series at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

#: Weight of each MODIS VI pixel-reliability / ``vi.qa`` code: 0 good, 1 marginal, 2 snow/ice,
#: 3 cloudy; any other code (255 = no observation) gets 0.
DEFAULT_QA_WEIGHTS: dict[int, float] = {0: 1.0, 1: 0.5, 2: 0.0, 3: 0.0}

#: Whittaker smoothing parameter for second differences on a daily grid (its unit is day^3),
#: chosen on synthetic 16-day composites (tests/test_phenology.py): 100-200 recover single
#: seasons equally well, 300 and more start to fill the ~35-day valley between two crops.
DEFAULT_LAMBDA = 150.0

#: Upper-envelope iterations and the smallest residual scale (index units) of their bisquare
#: weights: residuals within about this size of the curve keep most of their weight, so that
#: noise and the valley between two crops are not mistaken for cloud.
DEFAULT_ENVELOPE_ITERATIONS = 2
DEFAULT_ENVELOPE_SCALE = 0.05

#: Double-logistic parameter order of :func:`double_logistic` and :func:`fit_double_logistic`.
DL_PARAMS = ("vmin", "vmax", "sos", "k1", "eos", "k2")


def qa_weights(qa: np.ndarray, mapping: Mapping[int, float] | None = None) -> np.ndarray:
    """Observation weights (float64, same shape as ``qa``) from integer QA codes.

    ``mapping`` maps code -> weight (default :data:`DEFAULT_QA_WEIGHTS`); unlisted codes and NaN
    get weight 0."""
    mapping = DEFAULT_QA_WEIGHTS if mapping is None else mapping
    qa = np.asarray(qa)
    if qa.dtype.kind == "u" and qa.dtype.itemsize <= 2:  # a lookup table: one pass
        table = np.zeros(2 ** (8 * qa.dtype.itemsize))
        for code, weight in mapping.items():
            if 0 <= code < table.size:
                table[code] = weight
        return table[qa]
    out = np.zeros(qa.shape, dtype=float)
    codes = np.where(np.isfinite(qa), qa, -1).astype(np.int64) if qa.dtype.kind == "f" else qa
    for code, weight in mapping.items():
        out[codes == code] = weight
    return out


def _as_matrix(
    values: ArrayLike, weights: ArrayLike, days: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """(pixel, time) float64 copies with unusable observations at weight 0, value 0, day 0."""
    values = np.asarray(values, dtype=float)
    shape = values.shape[:-1]
    nt = values.shape[-1]
    y = values.reshape(-1, nt)
    w = np.broadcast_to(np.asarray(weights, dtype=float), values.shape).reshape(-1, nt)
    t = np.broadcast_to(np.asarray(days, dtype=float), values.shape).reshape(-1, nt)
    ok = np.isfinite(y) & np.isfinite(t) & np.isfinite(w) & (w > 0)
    return np.where(ok, y, 0.0), np.where(ok, w, 0.0), np.where(ok, t, 0.0), shape


def _grid_step(grid: np.ndarray) -> float:
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size < 4:
        raise ValueError(f"grid: expected a 1-D array of at least 4 day numbers, got {grid.shape}")
    step = np.diff(grid)
    if not np.allclose(step, step[0]) or step[0] <= 0:
        raise ValueError("grid: expected regularly spaced, increasing day numbers")
    return float(step[0])


def _grid_positions(
    t: np.ndarray, w: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left node index (int), fraction towards the right node, and weights with observations
    outside the grid set to 0."""
    step = _grid_step(grid)
    u = (t - grid[0]) / step
    inside = (u >= 0) & (u <= grid.size - 1)
    w = np.where(inside, w, 0.0)
    j0 = np.clip(np.floor(u), 0, grid.size - 2).astype(np.int64)
    frac = np.where(inside, u - j0, 0.0)
    return j0, frac, w


def _at_observations(z: np.ndarray, j0: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Grid series ``z`` (pixel, grid) linearly interpolated at the observation positions."""
    left = np.take_along_axis(z, j0, axis=1)
    right = np.take_along_axis(z, j0 + 1, axis=1)
    return left + frac * (right - left)


def _envelope_weights(
    y: np.ndarray,
    w0: np.ndarray,
    fitted: np.ndarray,
    usable: np.ndarray,
    scale_min: float,
    axis: int = 1,
) -> np.ndarray:
    """Upper-envelope reweighting: observations below the curve lose weight by a bisquare of
    their residual over max(6 median absolute residuals, ``scale_min``) (phenofit
    ``wBisquare``); those above keep their QA weight. ``axis`` is the time axis."""
    r = y - fitted
    absr = np.where(usable, np.abs(r), np.inf)
    absr = np.sort(np.ascontiguousarray(np.moveaxis(absr, axis, -1)), axis=-1)
    count = np.moveaxis(usable, axis, -1).sum(axis=-1, keepdims=True)
    lo = np.take_along_axis(absr, np.maximum(count - 1, 0) // 2, axis=-1)
    hi = np.take_along_axis(absr, np.minimum(count // 2, absr.shape[-1] - 1), axis=-1)
    scale = np.moveaxis(np.where(count > 0, 3.0 * (lo + hi), scale_min), -1, axis)
    scale = np.maximum(scale, scale_min)
    bisquare = np.clip(1.0 - (r / scale) ** 2, 0.0, None) ** 2
    return np.where(r < 0, w0 * bisquare, w0)


def interpolate_rows(x: np.ndarray, y: np.ndarray, valid: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Per-row linear interpolation: each row p of (x, y) (pixel, time), restricted to
    ``valid[p]`` and sorted by x, evaluated at the common query points ``xq`` (1-D); constant
    beyond the first / last valid point; NaN for rows with no valid point. Returns
    (pixel, len(xq))."""
    npix, nt = x.shape
    big = np.abs(xq).max() + np.abs(np.where(valid, x, 0)).max() + 1.0
    key = np.where(valid, x, big + np.arange(nt))  # invalid points sorted to the end, increasing
    order = np.argsort(key, axis=1, kind="stable")
    xs = np.take_along_axis(key, order, axis=1)
    ys = np.take_along_axis(np.where(valid, y, 0.0), order, axis=1)
    count = valid.sum(axis=1)
    # One increasing array across rows: row p is shifted by p * span.
    span = 2 * big + nt + 1.0
    shift = (np.arange(npix) * span)[:, None]
    flat = (xs + shift).ravel()
    pos = np.searchsorted(flat, (xq[None, :] + shift).ravel(), side="right").reshape(npix, -1)
    pos -= (np.arange(npix) * nt)[:, None]
    last = np.maximum(count - 1, 0)[:, None]
    right = np.clip(pos, 0, last)
    left = np.clip(pos - 1, 0, last)
    x0 = np.take_along_axis(xs, left, axis=1)
    x1 = np.take_along_axis(xs, right, axis=1)
    y0 = np.take_along_axis(ys, left, axis=1)
    y1 = np.take_along_axis(ys, right, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(x1 > x0, (xq[None, :] - x0) / (x1 - x0), 0.0)
    out = y0 + np.clip(a, 0, 1) * (y1 - y0)
    out[count == 0] = np.nan
    return out


def savgol(
    values: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    grid: np.ndarray,
    *,
    window: float = 41.0,
    polyorder: int = 2,
    envelope_iterations: int = DEFAULT_ENVELOPE_ITERATIONS,
    envelope_scale: float = DEFAULT_ENVELOPE_SCALE,
    min_weight: float = 0.25,
) -> np.ndarray:
    """Savitzky-Golay smoothing of irregular series onto a regular day grid (TIMESAT SG).

    The observations with weight >= ``min_weight`` are linearly interpolated onto ``grid``
    (irregular dates -> regular series), then filtered by a Savitzky-Golay polynomial of order
    ``polyorder`` over ``window`` days. Each of the ``envelope_iterations`` repeats the
    interpolation and filter after down-weighting the observations below the curve (as in
    the Whittaker smoother), so that those that fall under ``min_weight`` drop out.

    Inputs and output as in the module docstring; series with fewer than 3 usable observations
    are all NaN.
    """
    grid = np.asarray(grid, dtype=float)
    step = _grid_step(grid)
    y, w0, t, shape = _as_matrix(values, weights, days)
    j0, frac, w0 = _grid_positions(t, w0, grid)
    usable = w0 > 0
    shortest = polyorder + 1 + polyorder % 2  # odd and longer than the polynomial order
    length = max(int(round(window / step)) // 2 * 2 + 1, shortest)
    w = w0
    z = None
    for _ in range(envelope_iterations + 1):
        if z is not None:
            w = _envelope_weights(y, w0, _at_observations(z, j0, frac), usable, envelope_scale)
        keep = w >= min_weight
        dense = interpolate_rows(t, y, keep, grid)
        dense = np.where(np.isfinite(dense), dense, 0.0)
        from scipy.signal import savgol_filter  # here: scipy.signal takes ~0.25 s to import

        z = savgol_filter(dense, length, polyorder, axis=1, mode="interp")
    z[usable.sum(axis=1) < 3] = np.nan
    return z.reshape(shape + (grid.size,))


def double_logistic(
    t: ArrayLike,
    vmin: ArrayLike,
    vmax: ArrayLike,
    sos: ArrayLike,
    k1: ArrayLike,
    eos: ArrayLike,
    k2: ArrayLike,
) -> np.ndarray:
    """Double logistic (Beck et al. 2006; the sample world's truth model):
    vmin + (vmax - vmin) (1 / (1 + exp(-k1 (t - sos))) + 1 / (1 + exp(k2 (t - eos))) - 1).

    ``t`` in days; ``sos``/``eos`` are the inflection days (50 % of the amplitude when the
    season is long), ``k1``/``k2`` the rates (1/day). Arguments broadcast."""
    rise = 0.5 * (1.0 + np.tanh(0.5 * k1 * (t - sos)))
    fall = 0.5 * (1.0 - np.tanh(0.5 * k2 * (t - eos)))
    return vmin + (vmax - vmin) * (rise + fall - 1.0)


def _dl_and_jacobian(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model (N, T) and Jacobian (N, T, 6) of :func:`double_logistic` for parameters (N, 6)."""
    vmin, vmax, sos, k1, eos, k2 = (p[:, i : i + 1] for i in range(6))
    amp = vmax - vmin
    rise = 0.5 * (1.0 + np.tanh(0.5 * k1 * (t - sos)))
    fall = 0.5 * (1.0 - np.tanh(0.5 * k2 * (t - eos)))
    shape = rise + fall - 1.0
    drise = rise * (1.0 - rise)
    dfall = fall * (1.0 - fall)
    jac = np.stack(
        [
            1.0 - shape,
            shape,
            -amp * k1 * drise,
            amp * (t - sos) * drise,
            amp * k2 * dfall,
            -amp * (t - eos) * dfall,
        ],
        axis=-1,
    )
    return vmin + amp * shape, jac


def fit_double_logistic(
    values: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    initial: np.ndarray,
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    iterations: int = 25,
) -> np.ndarray:
    """Weighted least-squares fit of :func:`double_logistic` to many series at once.

    ``values``, ``weights``, ``days``: (..., time) as in the module docstring; ``initial``,
    ``lower``, ``upper``: (..., 6) parameters in the order of :data:`DL_PARAMS` (bounds are
    enforced by clipping each step; default: none). Levenberg-Marquardt with Marquardt's
    diagonal scaling, one damping factor per series, ``iterations`` steps, all series in one
    batched 6 x 6 solve per step. Returns the fitted parameters (..., 6); series with fewer than
    6 usable observations keep ``initial``.
    """
    y, w, t, shape = _as_matrix(values, weights, days)
    p = np.asarray(initial, dtype=float).reshape(-1, 6).copy()
    lo = np.full_like(p, -np.inf) if lower is None else np.asarray(lower, float).reshape(-1, 6)
    hi = np.full_like(p, np.inf) if upper is None else np.asarray(upper, float).reshape(-1, 6)
    p = np.clip(p, lo, hi)
    enough = (w > 0).sum(axis=1) >= 6
    mu = np.full(p.shape[0], 1e-2)
    f, jac = _dl_and_jacobian(t, p)
    r = y - f
    cost = np.sum(w * r * r, axis=1)
    eye = np.eye(6)
    for _ in range(iterations):
        jw = jac * w[..., None]
        h = np.einsum("ntk,ntl->nkl", jw, jac)
        g = np.einsum("ntk,nt->nk", jw, r)
        hd = np.diagonal(h, axis1=1, axis2=2)
        damped = h + (mu[:, None] * (hd + 1e-9))[:, :, None] * eye
        delta = np.linalg.solve(damped, g[..., None])[..., 0]
        trial = np.clip(p + delta, lo, hi)
        f_new, jac_new = _dl_and_jacobian(t, trial)
        r_new = y - f_new
        cost_new = np.sum(w * r_new * r_new, axis=1)
        better = (cost_new < cost) & enough & np.all(np.isfinite(trial), axis=1)
        p = np.where(better[:, None], trial, p)
        r = np.where(better[:, None], r_new, r)
        jac = np.where(better[:, None, None], jac_new, jac)
        cost = np.where(better, cost_new, cost)
        mu = np.clip(np.where(better, mu / 3.0, mu * 4.0), 1e-7, 1e7)
    return p.reshape(shape + (6,))
