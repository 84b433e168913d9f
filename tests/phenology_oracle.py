"""The numpy reference of the phenology kernels (the test oracle).

A block-vectorised numpy implementation of :func:`fluxscape.products.phenology.phenology_metrics`
and :func:`~fluxscape.products.phenology.date_quality` and of the Whittaker smoother
(:func:`fluxscape.products.kernels.whittaker`): every operation processes a whole
(pixel, time) block at once, with loops only over grid steps, fit iterations, years and season
slots. It was the production ``engine="numpy"`` until the numba kernels became the only
production path; it is kept here, independent of the kernels, so that tests/test_kernels.py
can check them (equal to float rounding). The double-logistic fit and the Savitzky-Golay
smoother have one implementation, in production, which this reference calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd

from fluxscape.products import phenology as ph
from fluxscape.products import smoothing as sm
from fluxscape.products.phenology import METHODS, TRANSITIONS, VARIABLES, Method

DATE_VARIABLES = ("sos", "pos", "eos", *TRANSITIONS)


# --- Whittaker smoother -------------------------------------------------------------------------


def _hold_ends(z: np.ndarray, grid: np.ndarray, t: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Hold the curve constant before the first and after the last usable observation of each
    row (no extrapolation of the fitted trend into unobserved series ends)."""
    first = np.min(np.where(usable, t, np.inf), axis=1)
    last = np.max(np.where(usable, t, -np.inf), axis=1)
    step = grid[1] - grid[0]
    i0 = np.clip(np.ceil((first - grid[0]) / step), 0, grid.size - 1).astype(np.int64)
    i1 = np.clip(np.floor((last - grid[0]) / step), 0, grid.size - 1).astype(np.int64)
    rows = np.arange(z.shape[0])
    node = np.arange(grid.size)[None, :]
    z = np.where(node < i0[:, None], z[rows, i0][:, None], z)
    return np.where(node > i1[:, None], z[rows, i1][:, None], z)


def _solve_pentadiagonal(a0: np.ndarray, a1: np.ndarray, a2: float, b: np.ndarray) -> np.ndarray:
    """Solve A x = b for symmetric positive-definite pentadiagonal systems, one per column.

    ``a0`` (n, P) is the diagonal, ``a1`` (n, P) the first super-diagonal A[i, i+1] (last row
    unused), ``a2`` the constant second super-diagonal A[i, i+2]; ``b`` (n, P). LDL^T
    factorisation with the forward substitution in one pass over n, then the backward one,
    each step vectorised over the P columns. Works in place: ``a0`` becomes 1/D, ``a1`` the
    sub-diagonal L[i+1, i] and ``b`` the solution, which is returned."""
    n, p = a0.shape
    c1 = np.empty(p)  # A[i+1, i] - L[i+1, i-1] L[i, i-1] D[i-1], i.e. L[i+1, i] D[i]
    l2 = np.empty(p)  # L[i, i-2] = a2 / D[i-2]
    tmp = np.empty(p)
    for i in range(n):
        d, yi = a0[i], b[i]
        if i >= 1:
            np.multiply(a1[i - 1], c1, out=tmp)
            d -= tmp
            np.multiply(a1[i - 1], b[i - 1], out=tmp)
            yi -= tmp
        if i >= 2:
            np.multiply(a0[i - 2], a2, out=l2)
            np.multiply(l2, a2, out=tmp)
            d -= tmp
            np.multiply(l2, b[i - 2], out=tmp)
            yi -= tmp
        np.divide(1.0, d, out=d)
        if i < n - 1:
            if i >= 1:
                np.multiply(a0[i - 1], a2 * -1.0, out=tmp)
                tmp *= c1
                np.add(a1[i], tmp, out=c1)
            else:
                np.copyto(c1, a1[0])
            np.multiply(c1, d, out=a1[i])
    b *= a0
    for i in range(n - 2, -1, -1):
        np.multiply(a1[i], b[i + 1], out=tmp)
        b[i] -= tmp
        if i < n - 2:
            np.multiply(a0[i], b[i + 2], out=tmp)
            tmp *= a2
            b[i] -= tmp
    return b


class _WhittakerSystem:
    """The normal equations of the weighted Whittaker smoother (second differences) for fixed
    observation positions on an n-node grid, in (node, pixel) layout; each observation enters
    through linear interpolation between its two neighbouring nodes. Observation arrays are
    (time, pixel) raveled: :meth:`solve` takes their weights and returns the grid values
    (node, pixel); :meth:`at_observations` interpolates those at the observations."""

    def __init__(self, y: np.ndarray, j0: np.ndarray, frac: np.ndarray, n: int, lam: float):
        npix = y.shape[0]
        self.n, self.npix, self.lam = n, npix, lam
        self.left = (j0.T * npix + np.arange(npix)).ravel()
        self.right = self.left + npix
        f = frac.T.ravel()
        self.f = f
        self.g = 1.0 - f
        self.y = y.T.ravel()

        self.penalty0 = np.full((n, 1), 6.0 * lam)
        self.penalty0[[0, -1]] = lam
        self.penalty0[[1, -2]] = 5.0 * lam
        self.penalty1 = np.full((n, 1), -4.0 * lam)
        self.penalty1[[0, -2]] = -2.0 * lam
        self.penalty1[-1] = 0.0

    def at_observations(self, z: np.ndarray) -> np.ndarray:
        flat = z.ravel()
        return flat[self.left] * self.g + flat[self.right] * self.f

    def solve(self, w: np.ndarray) -> np.ndarray:
        shape, size = (self.n, self.npix), self.n * self.npix
        wg = w * self.g
        wf = w * self.f
        a0 = np.bincount(self.left, wg * self.g, size)
        a0 += np.bincount(self.right, wf * self.f, size)
        a0 = a0.reshape(shape)
        a0 += self.penalty0
        a1 = np.bincount(self.left, wg * self.f, size).reshape(shape)
        a1 += self.penalty1
        rhs = np.bincount(self.left, wg * self.y, size)
        rhs += np.bincount(self.right, wf * self.y, size)
        return _solve_pentadiagonal(a0, a1, self.lam, rhs.reshape(shape))


def whittaker(
    values: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    grid: np.ndarray,
    *,
    lam: float = sm.DEFAULT_LAMBDA,
    envelope_iterations: int = sm.DEFAULT_ENVELOPE_ITERATIONS,
    envelope_scale: float = sm.DEFAULT_ENVELOPE_SCALE,
) -> np.ndarray:
    """Weighted Whittaker smoother of irregular series onto a regular day grid.

    Minimises sum_i w_i (y_i - z(t_i))^2 + lam' sum_j (Delta^2 z_j)^2 over the grid values z,
    where z(t_i) interpolates z linearly between the grid nodes around each observation day
    t_i, and lam' = ``lam`` / step^3 so that ``lam`` means the same smoothness (per day^3) for
    any grid step. After the first solve, ``envelope_iterations`` more solves follow, each with
    the observations below the curve down-weighted (upper envelope, TIMESAT / phenofit).

    Inputs ``values``, ``weights``, ``days`` are (..., time) (see the module docstring);
    ``grid`` is a regular 1-D array of day numbers. Returns (..., len(grid)) float64, held constant
    before the first and after the last usable observation; series with fewer than 3 usable
    observations are all NaN.
    """
    grid = np.asarray(grid, dtype=float)
    y, w0, t, shape = sm._as_matrix(values, weights, days)
    j0, frac, w0 = sm._grid_positions(t, w0, grid)
    n = grid.size
    lam_grid = lam / sm._grid_step(grid) ** 3
    usable = w0 > 0
    system = _WhittakerSystem(y, j0, frac, n, lam_grid)
    w_obs = w0.T.ravel()
    z = system.solve(w_obs)
    tp = (y.shape[1], y.shape[0])
    for _ in range(envelope_iterations):
        fitted = system.at_observations(z).reshape(tp)
        w = sm._envelope_weights(y.T, w0.T, fitted, usable.T, envelope_scale, axis=0)
        z = system.solve(w.ravel())
    z = _hold_ends(np.ascontiguousarray(z.T), grid, t, usable)
    z[usable.sum(axis=1) < 3] = np.nan
    return z.reshape(shape + (n,))


# --- quality of dates ------------------------------------------------------------------------


def date_quality(
    dates: np.ndarray,
    days: np.ndarray,
    weights: np.ndarray,
    max_missing: Sequence[int] = ph.QA_MAX_MISSING,
) -> np.ndarray:
    """Reference of :func:`fluxscape.products.phenology.date_quality`.

    Quality class of estimated dates from the observations around them.

    ``dates`` (..., k) in the same float days as ``days`` (..., time), the observation days;
    ``weights`` (..., time) > 0 marks usable observations. The class is the first ``i`` for
    which at most ``max_missing[i]`` unusable observations (clouds, snow) lie between the last
    usable observation at or before the date and the first one at or after it; else
    ``len(max_missing)``, also when no usable observation lies on one side. Counting
    observations rather than days makes the classes mean the same for 8-day, 16-day or daily
    series. Returns uint8 (..., k); 255 where the date is NaN. Loops over ``k`` only."""
    dates = np.asarray(dates, float)
    days = np.asarray(days, float)
    observed = np.isfinite(days)
    usable = (np.asarray(weights, float) > 0) & observed
    out = np.full(dates.shape, 255, np.uint8)
    for k in range(dates.shape[-1]):
        d = dates[..., k : k + 1]
        with np.errstate(invalid="ignore"):
            before = np.where(usable & (days <= d), days, -np.inf).max(axis=-1, keepdims=True)
            after = np.where(usable & (days >= d), days, np.inf).min(axis=-1, keepdims=True)
            missing = (observed & ~usable & (days > before) & (days < after)).sum(axis=-1)
        bracketed = np.isfinite(before[..., 0]) & np.isfinite(after[..., 0])
        cls = np.full(missing.shape, len(max_missing), np.uint8)
        for i in range(len(max_missing) - 1, -1, -1):
            cls = np.where(bracketed & (missing <= max_missing[i]), np.uint8(i), cls)
        out[..., k] = np.where(np.isfinite(d[..., 0]), cls, 255)
    return out


# --- season division --------------------------------------------------------------------------


def _extrema(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Alternating local extrema of each row of ``z`` (pixel, n), series ends included.

    Returns grid indices (pixel, M) (padded with 0), values, types (+1 maximum, -1 minimum, 0
    padding) and the count per row. Plateaus count once (at their right end)."""
    npix, n = z.shape
    sign = np.sign(np.diff(z, axis=1))
    # Carry the last non-zero slope over flat steps, forwards and then backwards for a flat start.
    pos = np.where(sign != 0, np.arange(n - 1), 0)
    np.maximum.accumulate(pos, axis=1, out=pos)
    sign = np.take_along_axis(sign, pos, axis=1)
    first = np.argmax(sign != 0, axis=1)
    lead = np.arange(n - 1)[None, :] < first[:, None]
    sign = np.where(lead, np.take_along_axis(sign, first[:, None], axis=1), sign)
    kind = np.zeros((npix, n), dtype=np.int8)
    kind[:, 1:-1] = np.where(
        (sign[:, :-1] > 0) & (sign[:, 1:] < 0),
        1,
        np.where((sign[:, :-1] < 0) & (sign[:, 1:] > 0), -1, 0),
    )
    kind[:, 0] = -sign[:, 0]
    kind[:, -1] = sign[:, -1]
    rows, cols = np.nonzero(kind)
    count = np.bincount(rows, minlength=npix)
    width = max(int(count.max(initial=0)), 1)
    rank = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
    idx = np.zeros((npix, width), dtype=np.int64)
    typ = np.zeros((npix, width), dtype=np.int8)
    idx[rows, rank] = cols
    typ[rows, rank] = kind[rows, cols]
    val = np.take_along_axis(z, idx, axis=1)
    return idx, val, typ, count


def _simplify_extrema(
    idx: np.ndarray,
    val: np.ndarray,
    typ: np.ndarray,
    count: np.ndarray,
    threshold: np.ndarray,
    min_separation: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Remove adjacent extremum pairs whose value difference is below ``threshold`` (per row),
    smallest first, and the lower peak (with its trough) of any two peaks closer than
    ``min_separation`` grid steps. An end point that is a maximum is removed alone (a season
    cut by the series end has no peak). Every pair whose difference is a local minimum among
    its neighbours goes in the same iteration (removing it cannot change which of the others
    is smallest next to it), and only rows that changed are revisited."""
    idx, val, typ, count = idx.copy(), val.copy(), typ.copy(), count.copy()
    active = np.flatnonzero(count >= 2)
    while active.size:
        ii, vv, tt, cc = idx[active], val[active], typ[active], count[active]
        width = ii.shape[1]
        pair = np.arange(width - 1)[None, :]
        score = np.where(pair < (cc - 1)[:, None], np.abs(np.diff(vv, axis=1)), np.inf)
        if width >= 3:
            # Interior troughs whose neighbouring peaks are too close: force the pair made of
            # the trough and the lower of the two peaks.
            j = np.arange(1, width - 1)[None, :]
            close = (
                (tt[:, 1:-1] == -1)
                & (j < (cc - 1)[:, None])
                & ((ii[:, 2:] - ii[:, :-2]) < min_separation)
            )
            rr, cj = np.nonzero(close)
            forced = np.where(vv[rr, cj] < vv[rr, cj + 2], cj, cj + 1)  # pair (j-1, j) or (j, j+1)
            score[rr, forced] = -1.0
        padded = np.pad(score, ((0, 0), (1, 1)), constant_values=np.inf)
        chosen = (
            (score < threshold[active, None]) & (score < padded[:, :-2]) & (score <= padded[:, 2:])
        )
        remove = chosen.any(axis=1)
        if not remove.any():
            break
        rows, b = np.nonzero(chosen)
        start_max = (b == 0) & (tt[rows, 0] == 1)
        end_max = (b + 1 == cc[rows] - 1) & (tt[rows, b + 1] == 1)
        keep = np.arange(width)[None, :] < cc[:, None]
        first, second = ~(end_max & ~start_max), ~(start_max & ~end_max)
        keep[rows[first], b[first]] = False
        keep[rows[second], b[second] + 1] = False
        kr, kc = np.nonzero(keep)
        new_count = keep.sum(axis=1)
        dest = np.arange(kr.size) - np.repeat(np.cumsum(new_count) - new_count, new_count)
        for arr, sub in ((idx, ii), (val, vv), (typ, tt)):
            packed = np.zeros_like(sub)
            packed[kr, dest] = sub[kr, kc]
            arr[active] = packed
        count[active] = new_count
        active = active[remove & (new_count >= 2)]
    return idx, val, typ, count


def _seasons_by_year(
    idx: np.ndarray,
    val: np.ndarray,
    typ: np.ndarray,
    count: np.ndarray,
    year_starts: np.ndarray,
    seasons: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trough-peak-trough grid indices (pixel, year, season) of the kept seasons (-1: none).

    ``year_starts`` (n_years + 1) are the grid positions of 1 January of each year and of the
    year after the last. A season belongs to the year of its peak; per year the ``seasons``
    largest amplitudes are kept and ordered by peak date."""
    npix, width = idx.shape
    ny = year_starts.size - 1
    out = np.full((3, npix, ny, seasons), -1, dtype=np.int64)
    if width < 3:
        return out[0], out[1], out[2]
    j = np.arange(1, width - 1)[None, :]
    full = (typ[:, 1:-1] == 1) & (j < (count - 1)[:, None])
    left, peak, right = idx[:, :-2], idx[:, 1:-1], idx[:, 2:]
    amp = val[:, 1:-1] - 0.5 * (val[:, :-2] + val[:, 2:])
    year = np.searchsorted(year_starts, peak, side="right") - 1
    for y in range(ny):
        cand = full & (year == y)
        score = np.where(cand, amp, -np.inf)
        top = np.argsort(-score, axis=1, kind="stable")[:, :seasons]
        ok = np.take_along_axis(cand, top, axis=1)
        top_peak = np.where(ok, np.take_along_axis(peak, top, axis=1), np.iinfo(np.int64).max)
        order = np.argsort(top_peak, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        ok = np.take_along_axis(ok, order, axis=1)
        for k, arr in enumerate((left, peak, right)):
            out[k, :, y, : top.shape[1]] = np.where(ok, np.take_along_axis(arr, top, axis=1), -1)
    return out[0], out[1], out[2]


# --- extraction --------------------------------------------------------------------------------


class _SegmentMax:
    """Running maxima of each row of x (pixel, n) that restart at every reset (the troughs).

    Segment k of a row (from its k-th reset on) is lifted by k * ``gap``, more than the range of
    x, so one ``np.maximum.accumulate`` gives every segment's running maximum. A search for
    "first index in [start, stop] where the running maximum from ``start`` reaches a level"
    is then a bisection, vectorised over all queries."""

    def __init__(self, x: np.ndarray, resets: np.ndarray):
        self.n = x.shape[1]
        self.steps = int(np.ceil(np.log2(self.n))) + 1
        gap = float(np.max(x) - np.min(x)) + 1.0
        lift = np.cumsum(resets, axis=1) * gap
        self.run = np.maximum.accumulate(x + lift, axis=1).ravel()
        self.lift = lift.ravel()

    def first_reach(
        self,
        pix: np.ndarray,
        start: np.ndarray,
        stop: np.ndarray,
        level: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fractional index where the running maximum from ``start`` first reaches ``level``
        (``stop`` if it does not before), interpolated linearly between the two nodes around
        the crossing. Arguments broadcast (e.g. (N, 1) seasons against (N, m) levels).

        ``level`` None: the segment's own maximum over [start, stop] (``start`` a reset), so
        the result is its first maximum. That level is taken from the lifted running maxima
        themselves: passing the segment maximum minus the lift instead, as the numpy engine did when
        it was production code, goes through (max - lift) + lift, which float rounding can put
        above the maximum, and the search then returns ``stop`` (seen with
        ``sos_method="derivative"`` on a fitted double logistic: eos at the peak)."""
        base = pix * self.n
        if level is None:
            q = self.run[base + stop]
        else:
            q = level + self.lift[base + start]
        lo, hi, q = np.broadcast_arrays(base + start, base + stop, q)
        lo, hi = lo.copy(), hi.copy()
        for _ in range(self.steps):
            mid = (lo + hi) >> 1
            reached = self.run[mid] >= q
            np.copyto(hi, mid, where=reached)
            np.copyto(lo, mid + 1, where=~reached)
        k = np.maximum(hi, base + 1)
        g0, g1 = self.run[k - 1], self.run[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(g1 > g0, (q - g0) / (g1 - g0), 1.0)
        return (k - base - 1) + np.clip(frac, 0.0, 1.0)


def _ranges(
    shape: tuple[int, int], pix: np.ndarray, start: np.ndarray, stop: np.ndarray
) -> np.ndarray:
    """Boolean (pixel, n) mask, True on [start, stop] (inclusive, clipped) of row ``pix``."""
    n = shape[1]
    start = np.clip(np.asarray(start), 0, n - 1).astype(np.int64)
    stop = np.clip(np.asarray(stop), 0, n - 1).astype(np.int64)
    marks = np.zeros((shape[0], n + 1), dtype=np.int32)
    np.add.at(marks, (pix, start), 1)
    np.add.at(marks, (pix, stop + 1), -1)
    return np.cumsum(marks[:, :-1], axis=1) > 0


def _vertex(z: np.ndarray, pix: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parabolic refinement of an extremum at grid index ``at``: (fractional index, value)."""
    n = z.shape[1]
    inner = (at > 0) & (at < n - 1)
    a = np.clip(at, 1, n - 2)
    zm, z0, zp = z[pix, a - 1], z[pix, a], z[pix, a + 1]
    curv = zm - 2 * z0 + zp
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(inner & (curv != 0), 0.5 * (zm - zp) / curv, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    value = np.where(inner, z0 - 0.25 * (zm - zp) * shift, z[pix, at])
    return at + shift, value


def _extract(
    z: np.ndarray,
    troughs: np.ndarray,
    pix: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    sos_method: str,
    sos_fraction: float,
    eos_fraction: float,
) -> dict[str, np.ndarray]:
    """Metrics of the seasons (pix, left, right) on grid series ``z`` (pixel, n); dates as
    fractional grid indices. ``troughs`` (pixel, n) marks every season boundary."""
    n = z.shape[1]
    fwd = _SegmentMax(z, troughs)
    # Reversed time: "last day at or above a level before the right trough" becomes "first day
    # reaching it after the right trough".
    bwd = _SegmentMax(z[:, ::-1], troughs[:, ::-1])
    rl = n - 1 - right
    at = np.rint(fwd.first_reach(pix, left, right - 1)).astype(np.int64)
    pos, peak = _vertex(z, pix, at)
    zl, zr = z[pix, left], z[pix, right]
    out = {"pos": pos, "peak": peak, "amplitude": peak - 0.5 * (zl + zr)}
    names_up = [k for k, (_, rising) in TRANSITIONS.items() if rising]
    names_dn = [k for k, (_, rising) in TRANSITIONS.items() if not rising]
    f_up = np.array([TRANSITIONS[k][0] for k in names_up] + [sos_fraction])
    f_dn = np.array([TRANSITIONS[k][0] for k in names_dn] + [eos_fraction])
    col = (slice(None), None)
    up = fwd.first_reach(pix[col], left[col], at[col], zl[col] + f_up * (peak - zl)[col])
    dn = bwd.first_reach(pix[col], rl[col], (n - 1 - at)[col], zr[col] + f_dn * (peak - zr)[col])
    dn = n - 1 - dn
    for i, name in enumerate(names_up):
        out[name] = up[:, i]
    for i, name in enumerate(names_dn):
        out[name] = dn[:, i]
    if sos_method == "derivative":
        # Fastest rise between greenup and maturity, fastest fall between senescence and
        # dormancy: wiggles on the plateau or in winter are not transitions.
        rate = np.gradient(z, axis=1)
        floor = float(np.min(rate)) - 1.0
        ok = np.isfinite(up[:, 0]) & np.isfinite(dn[:, 0])
        rising = _ranges(z.shape, pix[ok], np.floor(up[ok, 0]), np.ceil(up[ok, 2]))
        falling = _ranges(z.shape, pix[ok], np.floor(dn[ok, 0]), np.ceil(dn[ok, 2]))
        rise = _SegmentMax(np.where(rising, rate, floor), troughs)
        fall = _SegmentMax(np.where(falling, -rate, floor)[:, ::-1], troughs[:, ::-1])
        rev_at = n - 1 - at
        t_up = rise.first_reach(pix, left, at)
        # The fall is searched after the left trough: a peak on the left trough (a fitted
        # curve that only falls) would otherwise reach into the previous segment, whose lift
        # wins, and put eos at the peak (fixed here; the numpy engine did that in production).
        t_dn = fall.first_reach(pix, rl, np.minimum(rev_at, n - 2 - left))
        out["sos"] = _vertex(rate, pix, np.rint(t_up).astype(np.int64))[0]
        out["eos"] = n - 1 - _vertex(-rate[:, ::-1], pix, np.rint(t_dn).astype(np.int64))[0]
    elif sos_method == "amplitude":
        out["sos"], out["eos"] = up[:, -1], dn[:, -1]
    else:
        raise ValueError(f"sos_method: expected 'amplitude' or 'derivative', got {sos_method!r}")
    # A peak on a trough (a failed curve) or a date outside its half-season is no season.
    bad = (pos <= left) | (pos >= right)
    for name, (_, rising) in TRANSITIONS.items():
        bad |= ~(
            (out[name] >= left) & (out[name] <= pos)
            if rising
            else (out[name] >= pos) & (out[name] <= right)
        )
    for name in ("pos", "peak", "amplitude", "sos", "eos", *TRANSITIONS):
        out[name] = np.where(bad, np.nan, out[name])
    base = 0.5 * (zl + zr)
    csum = np.concatenate([np.zeros((z.shape[0], 1)), np.cumsum(z, axis=1)], axis=1)
    a = np.clip(np.ceil(np.nan_to_num(out["sos"])).astype(np.int64), 0, n)
    b = np.clip(np.floor(np.nan_to_num(out["eos"])).astype(np.int64) + 1, 0, n)
    b = np.maximum(a, b)
    integral = csum[pix, b] - csum[pix, a] - base * (b - a)
    out["integral"] = np.where(bad, np.nan, integral)
    return out


def _season_threshold(z: np.ndarray, min_amplitude: float, min_relative: float) -> np.ndarray:
    span = np.max(z, axis=1) - np.min(z, axis=1)
    return np.maximum(min_amplitude, min_relative * span)


def _fit_seasons(
    z: np.ndarray,
    grid: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    t: np.ndarray,
    pix: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    iterations: int,
    group: np.ndarray,
    year: np.ndarray,
) -> np.ndarray:
    """One curve per season (season, n): the rough dates of each season by :func:`_extract`,
    then the production fit (:func:`fluxscape.products.phenology.fit_season_curves`, the only
    implementation of the double-logistic step, its seasons pooled by ``group``)."""
    troughs = np.zeros((pix.size, grid.size), dtype=bool)
    rows = np.arange(pix.size)
    troughs[rows, left] = True
    troughs[rows, right] = True
    rough_rows = z[pix]
    rough = _extract(rough_rows, troughs, rows, left, right, "amplitude", 0.5, 0.5)
    return ph.fit_season_curves(
        rough_rows,
        grid,
        y[pix],
        w[pix],
        t[pix],
        left,
        right,
        {k: rough[k] for k in TRANSITIONS},
        rough["peak"],
        rough["amplitude"],
        iterations,
        group=group,
        year=year,
    )[0]


@dataclass(frozen=True)
class _Rules:
    """Season division and extraction settings (see :func:`phenology_metrics`)."""

    seasons: int
    sos_method: str
    sos_fraction: float
    eos_fraction: float
    min_amplitude: float
    min_relative_amplitude: float
    min_peak_separation: float
    fit_iterations: int | None  # None: no double-logistic fit


def phenology_metrics(
    values: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    years: Sequence[int],
    *,
    method: Method = "whittaker",
    seasons: int = 2,
    sos_method: Literal["amplitude", "derivative"] = "amplitude",
    sos_fraction: float = 0.5,
    eos_fraction: float = 0.5,
    step: float = 8.0,
    grid_start: float | None = None,
    grid_stop: float | None = None,
    lam: float = sm.DEFAULT_LAMBDA,
    envelope_iterations: int | None = None,
    envelope_scale: float = sm.DEFAULT_ENVELOPE_SCALE,
    savgol_window: float = 41.0,
    savgol_polyorder: int = 2,
    fit_iterations: int = 20,
    min_amplitude: float = 0.1,
    min_relative_amplitude: float = 0.15,
    min_peak_separation: float = 60.0,
    min_observations: int = 6,
    block_size: int = 8192,
) -> dict[str, np.ndarray]:
    """Reference of :func:`fluxscape.products.phenology.phenology_metrics` (same arguments
    and results): block-vectorised numpy, ``block_size`` pixels at a time, with the numpy
    Whittaker smoother :func:`whittaker`. ``envelope_iterations`` None: one for
    ``"whittaker"``, :data:`fluxscape.products.smoothing.DEFAULT_ENVELOPE_ITERATIONS` for the
    others."""
    if envelope_iterations is None:
        envelope_iterations = 1 if method == "whittaker" else sm.DEFAULT_ENVELOPE_ITERATIONS
    if method not in METHODS:
        raise ValueError(
            f"method: expected 'whittaker', 'savgol' or 'double_logistic', got {method!r}"
        )
    if sos_method not in ("amplitude", "derivative"):
        raise ValueError(f"sos_method: expected 'amplitude' or 'derivative', got {sos_method!r}")
    if seasons < 1:
        raise ValueError(f"seasons: expected >= 1, got {seasons}")
    if method == "savgol":
        smooth = partial(
            sm.savgol,
            window=savgol_window,
            polyorder=savgol_polyorder,
            envelope_iterations=envelope_iterations,
            envelope_scale=envelope_scale,
        )
    else:
        smooth = partial(
            whittaker,
            lam=lam,
            envelope_iterations=envelope_iterations,
            envelope_scale=envelope_scale,
        )
    rules = _Rules(
        seasons,
        sos_method,
        sos_fraction,
        eos_fraction,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
        fit_iterations if method == "double_logistic" else None,
    )
    years = [int(y) for y in years]
    jan1 = np.array(
        [
            (pd.Timestamp(y, 1, 1) - pd.Timestamp(years[0], 1, 1)).days
            for y in [*years, years[-1] + 1]
        ],
        dtype=float,
    )
    values = np.asarray(values, dtype=float)
    shape = values.shape[:-1]
    nt = values.shape[-1]
    y = values.reshape(-1, nt)
    w = np.broadcast_to(np.asarray(weights, dtype=float), values.shape).reshape(-1, nt)
    t = np.broadcast_to(np.asarray(days, dtype=float), values.shape).reshape(-1, nt)
    ny = len(years)
    usable = None
    if grid_start is None or grid_stop is None:
        usable = np.isfinite(y) & np.isfinite(t) & np.isfinite(w) & (w > 0)
        t_used = t[usable]
        t_lo = float(t_used.min()) if t_used.size else jan1[0]
        t_hi = float(t_used.max()) if t_used.size else jan1[-1] - 1
    start = np.floor(min(jan1[0], t_lo)) if grid_start is None else float(grid_start)
    stop = np.ceil(max(jan1[-1] - 1, t_hi)) if grid_stop is None else float(grid_stop)
    grid = start + step * np.arange(int(np.ceil((stop - start) / step)) + 1)
    if usable is None:
        usable = np.isfinite(y) & np.isfinite(t) & np.isfinite(w) & (w > 0)
    out = {v: np.full((y.shape[0], ny, seasons), np.nan, dtype=np.float32) for v in VARIABLES}
    good = np.flatnonzero(usable.sum(axis=1) >= min_observations)
    for b0 in range(0, good.size, block_size):
        rows = good[b0 : b0 + block_size]
        w_rows = np.where(usable[rows], w[rows], 0.0)
        block = _phenology_block(y[rows], w_rows, t[rows], grid, jan1, smooth, rules)
        for v in VARIABLES:
            out[v][rows] = block[v]
    return {v: a.reshape(shape + (ny, seasons)) for v, a in out.items()}


def _phenology_block(
    y: np.ndarray,
    w: np.ndarray,
    t: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    smooth: Callable[..., np.ndarray],
    rules: _Rules,
) -> dict[str, np.ndarray]:
    """:func:`phenology_metrics` of one block of series (pixel, time) with usable weights."""
    npix = y.shape[0]
    step = grid[1] - grid[0]
    z = smooth(y, w, t, grid)
    threshold = _season_threshold(z, rules.min_amplitude, rules.min_relative_amplitude)
    ext = _simplify_extrema(*_extrema(z), threshold, rules.min_peak_separation / step)
    year_starts = (jan1 - grid[0]) / step
    left, _, right = _seasons_by_year(*ext, year_starts, rules.seasons)
    troughs = np.zeros(z.shape, dtype=bool)
    idx, _, typ, count = ext
    rr, cc = np.nonzero((typ == -1) & (np.arange(idx.shape[1])[None, :] < count[:, None]))
    troughs[rr, idx[rr, cc]] = True
    pix, yi, si = np.nonzero(left >= 0)
    li, ri = left[pix, yi, si], right[pix, yi, si]
    where = pix
    if rules.fit_iterations is not None:
        # Each season is extracted on its own fitted curve (one row per season).
        z = _fit_seasons(
            z, grid, y, w, t, pix, li, ri, rules.fit_iterations, pix * rules.seasons + si, yi
        )
        where = np.arange(pix.size)
        troughs = np.zeros(z.shape, dtype=bool)
        troughs[where, li] = True
        troughs[where, ri] = True
    res = _extract(
        z, troughs, where, li, ri, rules.sos_method, rules.sos_fraction, rules.eos_fraction
    )
    out = {v: np.full((npix, len(jan1) - 1, rules.seasons), np.nan, np.float32) for v in VARIABLES}
    day = {}
    for name in DATE_VARIABLES:
        day[name] = grid[0] + step * res[name]
        out[name][pix, yi, si] = day[name] - jan1[yi] + 1.0
    out["los"][pix, yi, si] = day["eos"] - day["sos"]
    out["peak"][pix, yi, si] = res["peak"]
    out["amplitude"][pix, yi, si] = res["amplitude"]
    out["integral"][pix, yi, si] = res["integral"] * step
    inside = (t[pix] >= day["greenup"][:, None]) & (t[pix] <= day["dormancy"][:, None])
    out["n_obs"][pix, yi, si] = np.sum(inside & (w[pix] > 0), axis=1)
    return out
