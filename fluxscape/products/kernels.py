"""Numba kernels of the phenology product: the only production path of its Whittaker smoother,
season division and transition dates, a few pixels at a time.

Each kernel is a compiled loop over pixels with O(n) work per pixel and no block-wide
temporaries. A block-vectorised numpy implementation of the same definitions (the former
``engine="numpy"``) is kept in the tests as their reference (tests/phenology_oracle.py; they
agree to float rounding, tests/test_kernels.py):

- :func:`whittaker`: the QA-weighted Whittaker smoother with upper-envelope iterations; the
  pentadiagonal normal equations are factorised by LDL^T in O(n), :data:`LANES` pixels side
  by side to overlap their recurrences.
- :func:`season_metrics`: season division (extrema, their simplification by the amplitude and
  peak-separation rules, at most ``seasons`` per year) and the MCD12Q2 threshold dates of
  :func:`fluxscape.products.phenology.phenology_metrics` (``sos_method`` ``"amplitude"`` or
  ``"derivative"``) on already smoothed series (``method="savgol"``).
- :func:`phenology_rows`: both in one pass (the smoothed series never leaves the kernel;
  ``method="whittaker"``, the default).
- :func:`season_bounds` and :func:`bounded_metrics`: the two halves of ``season_metrics``
  around the double-logistic fit of ``method="double_logistic"``: the seasons of the rough
  curve in grid units, then the dates of each season on its own fitted curve.
- :func:`date_quality`: the quality class of each date (``qa_detailed``).
- :func:`phenology_tile`: the whole ``method="whittaker"`` product of a tile from the ``vi``
  variables as stored (time first: index, QA codes, day of year), i.e. the observation days,
  QA weights, :func:`phenology_rows` and :func:`date_quality` in one compiled pass.

Hand-written because no maintained library offers a weighted, irregularly sampled Whittaker
smoother with envelope reweighting or the MCD12Q2 season rules as compiled array kernels.

The first three go through one compiled entry point, ``_run`` (``phenology_tile``: ``_tile``);
each entry point is compiled on first use (``_run`` takes some 10-20 s of CPU) and cached on
disk (``cache=True``, next to this file or in the user's cache), so later processes load it in
well under a second. Kernels release the GIL (``nogil=True``), so Dask's threads run tiles in
parallel; they are serial over pixels: the work is spread over cores by Dask, one tile per
task.
``error_model="numpy"``: a singular system (a pixel without usable observations) gives NaN
rather than an exception.

Output layout of :func:`season_metrics` / :func:`phenology_rows` (and of
:func:`bounded_metrics`, one row per season): one float32 array (pixel, year, season,
variable), NaN where there is no season; the variables are
:data:`FIXED_OUTPUTS` followed by the rising transition dates (one per entry of
``up_fractions`` except the last, which is ``sos``) and then the falling ones (``down_fractions``
except the last, ``eos``). Dates are days of year of the season's year, as in
:mod:`fluxscape.products.phenology`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fluxscape.products.smoothing import (
    DEFAULT_ENVELOPE_ITERATIONS,
    DEFAULT_ENVELOPE_SCALE,
    DEFAULT_LAMBDA,
    _grid_step,
)

#: The first variables of the output array, in this order.
FIXED_OUTPUTS = ("sos", "pos", "eos", "los", "peak", "amplitude", "integral", "n_obs")

_SOS, _POS, _EOS, _LOS, _PEAK, _AMP, _INT, _NOBS = range(8)
_N_FIXED = len(FIXED_OUTPUTS)

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


# --- Whittaker smoother -----------------------------------------------------------------------


#: Pixels smoothed together: the banded solve runs over this many independent systems at
#: once, whose interleaved recurrences hide each other's division latency. At 32 lanes LLVM
#: vectorises the lane loops (8 lanes stay scalar code): about 4 % less CPU per tile than 8
#: (bench/phenology.py; a solve alone: 0.7x).
LANES = 32

#: Pixels of a tile turned from the stored (time, pixel) order into (pixel, time) rows
#: together by :func:`_tile` (its work arrays: 3 x BLOCK x time float64, in the L2 cache).
BLOCK = 256


@njit(**_JIT)
def _solve(oy, ow, ij, of, m, lam, a, c1):
    """Weighted Whittaker solves on an n-node grid for the :data:`LANES` pixels of a group.

    Observations of lane l: values ``oy[l, :m[l]]``, weights ``ow``, left node ``ij``, fraction
    ``of`` towards the right node; ``lam`` per grid step^3. Builds the pentadiagonal normal
    equations (second differences: diagonal ``a[0]``, first super-diagonal ``a[1]``, second
    super-diagonal ``lam``; ``a`` is (3, n, LANES)) and solves them by LDL^T with the forward
    substitution in the same pass; the solutions are left in ``a[2]`` (n, LANES). ``c1``
    (LANES,) is work space. Lanes with fewer than 3 observations give non-finite values."""
    a0, a1, b = a[0], a[1], a[2]
    n = a0.shape[0]
    # D'D of second differences: diagonal lam (1, 5, 6, ..., 6, 5, 1), first off-diagonal
    # lam (-2, -4, ..., -4, -2, 0), second off-diagonal lam.
    for i in range(n):
        p0 = 6.0 * lam
        p1 = -4.0 * lam
        if i == 0 or i == n - 1:
            p0 = lam
        elif i == 1 or i == n - 2:
            p0 = 5.0 * lam
        if i == 0 or i == n - 2:
            p1 = -2.0 * lam
        elif i == n - 1:
            p1 = 0.0
        for lane in range(LANES):
            a0[i, lane] = p0
            a1[i, lane] = p1
            b[i, lane] = 0.0
    for lane in range(LANES):
        for k in range(m[lane]):
            j = ij[lane, k]
            f = of[lane, k]
            g = 1.0 - f
            wg = ow[lane, k] * g
            wf = ow[lane, k] * f
            a0[j, lane] += wg * g
            a0[j + 1, lane] += wf * f
            a1[j, lane] += wg * f
            b[j, lane] += wg * oy[lane, k]
            b[j + 1, lane] += wf * oy[lane, k]
    a2 = lam
    # Forward: a0 becomes 1/D, a1 the sub-diagonal L[i+1, i], b the forward solution;
    # c1 = L[i+1, i] D[i].
    for lane in range(LANES):
        a0[0, lane] = 1.0 / a0[0, lane]
        c1[lane] = a1[0, lane]
        a1[0, lane] = c1[lane] * a0[0, lane]
    for lane in range(LANES):
        a0[1, lane] = 1.0 / (a0[1, lane] - a1[0, lane] * c1[lane])
        b[1, lane] -= a1[0, lane] * b[0, lane]
        c1[lane] = a1[1, lane] + (a0[0, lane] * -a2) * c1[lane]
        a1[1, lane] = c1[lane] * a0[1, lane]
    for i in range(2, n):
        for lane in range(LANES):
            l2 = a0[i - 2, lane] * a2
            d = a0[i, lane] - a1[i - 1, lane] * c1[lane] - l2 * a2
            b[i, lane] = b[i, lane] - a1[i - 1, lane] * b[i - 1, lane] - l2 * b[i - 2, lane]
            a0[i, lane] = 1.0 / d
        if i < n - 1:
            for lane in range(LANES):
                c1[lane] = a1[i, lane] + (a0[i - 1, lane] * -a2) * c1[lane]
                a1[i, lane] = c1[lane] * a0[i, lane]
    for lane in range(LANES):
        b[n - 1, lane] *= a0[n - 1, lane]
        b[n - 2, lane] = b[n - 2, lane] * a0[n - 2, lane] - a1[n - 2, lane] * b[n - 1, lane]
    for i in range(n - 3, -1, -1):
        for lane in range(LANES):
            b[i, lane] = b[i, lane] * a0[i, lane] - (
                a1[i, lane] * b[i + 1, lane] + a0[i, lane] * b[i + 2, lane] * a2
            )


@njit(**_JIT)
def _middle_pair_sum(a, m):
    """Sum of the ((m - 1) // 2)-th and (m // 2)-th smallest of the finite values ``a[:m]``
    (twice the median). Each candidate's rank is counted against all the others: O(m^2)
    compares, but in branch-free loops the compiler vectorises, about twice as fast as
    quickselect's unpredictable branches for the 20-50 residuals of a series."""
    k = (m - 1) // 2
    k2 = m // 2
    lower = np.nan
    upper = np.nan
    found = 0
    for i in range(m):
        x = a[i]
        below = 0
        at_most = 0
        for j in range(m):
            below += a[j] < x
            at_most += a[j] <= x
        if below <= k < at_most:
            lower = x
            found |= 1
        if below <= k2 < at_most:
            upper = x
            found |= 2
        if found == 3:
            break
    return lower + upper


@njit(**_JIT)
def _whittaker_group(y, w, t, p0, grid0, step, lam, iterations, scale_min, ws, z):
    """Smooth the pixels p0 .. p0 + LANES - 1 (those that exist) of ``y``, ``w``, ``t``
    (pixel, time) onto the grid ``grid0 + step * k`` (k < n) into the rows of ``z``
    (LANES, n), as :func:`whittaker` does (``lam`` per grid
    step^3): rows with fewer than 3 usable observations are NaN. ``ws`` is the work space of
    :func:`_whittaker_work`; after the call, ``ws[0][4]`` (LANES, time) holds the weights of
    the usable observations (finite value, day and weight > 0; 0 elsewhere) and ``ws[2][1]``
    (LANES,) their number."""
    obs, ij, counts, span, a, c1, absr = ws
    oy, ow0, ow, of, wu = obs[0], obs[1], obs[2], obs[3], obs[4]
    m = counts[0]
    npix, nt = y.shape
    n = z.shape[1]
    for lane in range(LANES):
        p = p0 + lane
        count = 0
        usable = 0
        first = np.inf
        last = -np.inf
        if p < npix:
            # Branch-free: every observation is written at the next free slot, which only
            # advances for a usable one on the grid (clouds fall at random: a branch on them
            # is mispredicted a third of the time).
            for k in range(nt):
                yk = y[p, k]
                wk = w[p, k]
                tk = t[p, k]
                ok = np.isfinite(yk) & np.isfinite(tk) & np.isfinite(wk) & (wk > 0.0)
                wu[lane, k] = wk if ok else 0.0
                usable += ok
                u = (tk - grid0) / step
                ok = ok & (u >= 0.0) & (u <= n - 1)
                u = u if ok else 0.0
                j = min(max(np.floor(u), 0.0), n - 2.0)
                oy[lane, count] = yk
                ow0[lane, count] = wk
                ij[lane, count] = int(j)
                of[lane, count] = u - j
                first = min(first, tk) if ok else first
                last = max(last, tk) if ok else last
                count += ok
        m[lane] = count
        counts[1, lane] = usable
        span[0, lane] = first
        span[1, lane] = last
    _solve(oy, ow0, ij, of, m, lam, a, c1)
    zt = a[2]
    for _ in range(iterations):
        # Upper envelope: bisquare weights on negative residuals, scale 6 median |residual|.
        for lane in range(LANES):
            mm = m[lane]
            if mm < 3:
                continue
            for k in range(mm):
                j = ij[lane, k]
                f = of[lane, k]
                r = oy[lane, k] - (zt[j, lane] * (1.0 - f) + zt[j + 1, lane] * f)
                ow[lane, k] = r
                absr[k] = abs(r)
            scale = max(3.0 * _middle_pair_sum(absr, mm), scale_min)
            for k in range(mm):
                r = ow[lane, k]
                bis = max(1.0 - (r / scale) ** 2, 0.0)
                ow[lane, k] = ow0[lane, k] * (bis * bis if r < 0.0 else 1.0)
        _solve(oy, ow, ij, of, m, lam, a, c1)
    for lane in range(LANES):
        if m[lane] < 3:
            z[lane, :] = np.nan
            continue
        # Hold the curve constant outside the observed span.
        i0 = int(min(max(np.ceil((span[0, lane] - grid0) / step), 0.0), n - 1.0))
        i1 = int(min(max(np.floor((span[1, lane] - grid0) / step), 0.0), n - 1.0))
        for i in range(n):
            z[lane, i] = zt[i, lane]
        for i in range(i0):
            z[lane, i] = z[lane, i0]
        for i in range(i1 + 1, n):
            z[lane, i] = z[lane, i1]


@njit(**_JIT)
def _whittaker_work(n, nt):
    """Work space of :func:`_whittaker_group` for n grid nodes and nt observations."""
    return (
        np.zeros((5, LANES, nt)),
        np.zeros((LANES, nt), dtype=np.int64),
        np.zeros((2, LANES), dtype=np.int64),
        np.zeros((2, LANES)),
        np.zeros((3, n, LANES)),
        np.zeros(LANES),
        np.zeros(nt),
    )


def _grid(grid: np.ndarray) -> tuple[float, float, int]:
    """First day, step and length of a regular day grid (validated as the numpy path does)."""
    step = _grid_step(grid)
    grid = np.asarray(grid, dtype=float)
    return float(grid[0]), step, int(grid.size)


def _rows(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(pixel, time) C-contiguous float64 view or copy of ``a`` broadcast to ``shape``."""
    a = np.broadcast_to(np.asarray(a, dtype=float), shape)
    return np.ascontiguousarray(a.reshape(-1, shape[-1]))


def whittaker(
    values: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    grid: np.ndarray,
    *,
    lam: float = DEFAULT_LAMBDA,
    envelope_iterations: int = DEFAULT_ENVELOPE_ITERATIONS,
    envelope_scale: float = DEFAULT_ENVELOPE_SCALE,
) -> np.ndarray:
    """Weighted Whittaker smoother of irregular series onto a regular day grid.

    Minimises sum_i w_i (y_i - z(t_i))^2 + lam' sum_j (Delta^2 z_j)^2 over the grid values z,
    where z(t_i) interpolates z linearly between the grid nodes around each observation day
    t_i, and lam' = ``lam`` / step^3 so that ``lam`` means the same smoothness (per day^3) for
    any grid step. After the first solve, ``envelope_iterations`` more solves follow, each with
    the observations below the curve down-weighted (upper envelope, TIMESAT / phenofit: a
    bisquare of their residual over max(6 median absolute residuals, ``envelope_scale``)).

    ``values``, ``weights``, ``days`` (..., time) as in :mod:`fluxscape.products.smoothing`;
    ``grid`` a regular 1-D array of day numbers. Returns (..., len(grid)) float64, held
    constant before the first and after the last usable observation; series with fewer than 3
    usable observations are all NaN. Equal to float rounding to the numpy reference
    (tests/phenology_oracle.py)."""
    grid0, step, n = _grid(grid)
    values = np.asarray(values, dtype=float)
    y = _rows(values, values.shape)
    w = _rows(weights, values.shape)
    t = _rows(days, values.shape)
    z = np.empty((y.shape[0], n))
    smooth = np.array([n, lam / step**3, int(envelope_iterations), envelope_scale, 0.0])
    settings = np.zeros(12)
    settings[:2] = grid0, step
    none = np.zeros(2)
    _run(SMOOTH, y, w, t, z, smooth, settings, none, none, none, _output(0, 1, 1, 2))
    return z.reshape(values.shape[:-1] + (n,))


# --- season division ------------------------------------------------------------------------------


@njit(**_JIT)
def _extrema(z, n, idx, val, typ):
    """Alternating local extrema of ``z`` (series ends included; plateaus count once, at their
    right end) into ``idx``/``val``/``typ`` (+1 maximum, -1 minimum); returns their count.
    Flat steps carry the previous slope (a flat start the first one), as
    the reference's ``_extrema`` (tests/phenology_oracle.py)."""
    first = 0
    for i in range(n - 1):
        d = z[i + 1] - z[i]
        if d != 0:
            first = 1 if d > 0 else -1
            break
    if first == 0:
        return 0
    idx[0] = 0
    val[0] = z[0]
    typ[0] = -first
    count = 1
    prev = first
    for i in range(1, n - 1):
        d = z[i + 1] - z[i]
        s = 1 if d > 0 else (-1 if d < 0 else prev)
        if s != prev:
            idx[count] = i
            val[count] = z[i]
            typ[count] = prev  # +1 after a rise (a maximum), -1 after a fall
            count += 1
            prev = s
    idx[count] = n - 1
    val[count] = z[n - 1]
    typ[count] = prev
    return count + 1


@njit(**_JIT)
def _simplify(idx, val, typ, count, threshold, min_separation, score, remove):
    """Remove extremum pairs as the reference's ``_simplify_extrema`` does for one row (in place);
    returns the new count."""
    cc = count
    while cc >= 2:
        lowest = np.inf
        for p in range(cc - 1):
            score[p] = abs(val[p + 1] - val[p])
            if score[p] < lowest:
                lowest = score[p]
        for j in range(1, cc - 1):
            if typ[j] == -1 and (idx[j + 1] - idx[j - 1]) < min_separation:
                score[j - 1 if val[j - 1] < val[j + 1] else j] = -1.0
                lowest = -1.0
        if not lowest < threshold:
            break  # no pair to remove (the usual last pass, without its selection loop)
        for p in range(cc):
            remove[p] = 0
        any_chosen = False
        for p in range(cc - 1):
            s = score[p]
            before = score[p - 1] if p > 0 else np.inf
            after = score[p + 1] if p < cc - 2 else np.inf
            if s < threshold and s < before and s <= after:
                any_chosen = True
                start_max = p == 0 and typ[0] == 1
                end_max = p + 1 == cc - 1 and typ[p + 1] == 1
                if not (end_max and not start_max):
                    remove[p] = 1
                if not (start_max and not end_max):
                    remove[p + 1] = 1
        if not any_chosen:
            break
        kept = 0
        for p in range(cc):
            if remove[p] == 0:
                idx[kept] = idx[p]
                val[kept] = val[p]
                typ[kept] = typ[p]
                kept += 1
        cc = kept
    return cc


@njit(**_JIT)
def _select_seasons(idx, val, typ, count, year_starts, seasons, chosen):
    """Seasons (trough-peak-trough positions j-1, j, j+1 in the extrema list) per year, as
    the reference's ``_seasons_by_year``: ``chosen`` (year, season) gets the list position j of each
    season's peak, -1 where none."""
    ny = year_starts.size - 1
    for yi in range(ny):
        for s in range(seasons):
            chosen[yi, s] = -1
    for yi in range(ny):
        nsel = 0
        for _ in range(seasons):
            best = -1
            best_amp = 0.0
            for j in range(1, count - 1):
                if typ[j] != 1:
                    continue
                year = -1
                for k in range(ny + 1):
                    if year_starts[k] <= idx[j]:
                        year = k
                if year != yi:
                    continue
                taken = False
                for q in range(nsel):
                    if chosen[yi, q] == j:
                        taken = True
                if taken:
                    continue
                amp = val[j] - 0.5 * (val[j - 1] + val[j + 1])
                if best < 0 or amp > best_amp:
                    best = j
                    best_amp = amp
            if best < 0:
                break
            chosen[yi, nsel] = best
            nsel += 1
        for a in range(1, nsel):  # by peak date
            v = chosen[yi, a]
            b = a - 1
            while b >= 0 and chosen[yi, b] > v:
                chosen[yi, b + 1] = chosen[yi, b]
                b -= 1
            chosen[yi, b + 1] = v


# --- extraction ------------------------------------------------------------------------------


@njit(**_JIT)
def _first_reach(z, n, forward, start, stop, levels, order, out):
    """For each level, the fractional index where the running maximum of ``x`` from ``start``
    first reaches it within [start, stop] (``stop`` if it does not), interpolated between the
    running maxima of the two nodes around the crossing, as the reference's
    ``_SegmentMax.first_reach``; into ``out``. ``x`` is ``z`` (``forward``) or ``z`` reversed,
    and indices are in that orientation. ``order`` (work space) gets the levels' ascending
    order, so one pass over [start, stop] serves them all.

    ``start`` is a season boundary: a level equal to the boundary value gives ``start``; a
    level below it (a boundary above the peak, which a fitted double logistic can have) gives
    ``start - 1``, a date outside the season (the reference interpolates it into the
    neighbouring segment); except at the series start, where the reference interpolates
    towards node 1."""
    nl = levels.size
    for i in range(nl):  # insertion sort of the level indices by level
        order[i] = i
        j = i
        while j > 0 and levels[order[j - 1]] > levels[i]:
            order[j] = order[j - 1]
            j -= 1
        order[j] = i
    x0 = z[start] if forward else z[n - 1 - start]
    p = start  # scan position, running maxima at p and p - 1
    mk = x0
    mprev = x0
    for q in range(nl):
        level = levels[order[q]]
        while mk < level and p < stop:
            p += 1
            xp = z[p] if forward else z[n - 1 - p]
            mprev = mk
            if xp > mk:
                mk = xp
        k = p  # first reached at p, or not reached: p == stop
        if k == 0:
            x1 = z[1] if forward else z[n - 2]
            g0 = x0
            g1 = max(x0, x1)
        elif k == start:
            out[order[q]] = start if level >= x0 else start - 1
            continue
        else:
            g0 = mprev
            g1 = mk
        frac = (level - g0) / (g1 - g0) if g1 > g0 else 1.0
        out[order[q]] = (k - 1) + min(max(frac, 0.0), 1.0)


@njit(**_JIT)
def _rate(z, n, i):
    """``np.gradient(z)[i]`` (unit spacing: central differences inside, one-sided at the ends)."""
    if i == 0:
        return z[1] - z[0]
    if i == n - 1:
        return z[n - 1] - z[n - 2]
    return (z[i + 1] - z[i - 1]) / 2.0


@njit(**_JIT)
def _rate_vertex(z, n, at, sign):
    """Parabolic refinement of an extremum of ``sign`` x the rate at grid index ``at``: the
    shift (within +-0.5) towards the vertex, in the orientation of the search (``sign`` -1:
    reversed time, as the fall is searched)."""
    if not (0 < at < n - 1):
        return 0.0
    zm = sign * _rate(z, n, at - sign)
    z0 = sign * _rate(z, n, at)
    zp = sign * _rate(z, n, at + sign)
    curv = zm - 2 * z0 + zp
    shift = 0.5 * (zm - zp) / curv if curv != 0 else 0.0
    return min(max(shift, -0.5), 0.5)


#: Rates within this fraction of the fastest one count as equally fast (a straight stretch of
#: the curve, e.g. across a gap between observations, has equal rates up to float rounding).
RATE_TIE = 1e-9


@njit(**_JIT)
def _fastest(z, n, first, last, sign):
    """The first node from ``first`` towards ``last`` (either direction) with the largest
    ``sign`` x rate, ties within :data:`RATE_TIE` going to the earliest in that direction."""
    step = 1 if last >= first else -1
    top = sign * _rate(z, n, first)
    for i in range(first + step, last + step, step):
        top = max(top, sign * _rate(z, n, i))
    floor = top - RATE_TIE * abs(top)
    for i in range(first, last + step, step):
        if sign * _rate(z, n, i) >= floor:
            return i
    return first


@njit(**_JIT)
def _rate_dates(z, n, left, at, right, green, mature, senesce, dormant):
    """``sos_method="derivative"``: the fractional grid indices of the fastest rise between
    greenup and maturity (within [left, at]) and of the fastest fall between senescence and
    dormancy (within [at, right], after the left trough), each refined by a parabola through
    the rate around it; the rise is the first maximum of the rate, the fall the last minimum
    (the reference scans the fall in reversed time)."""
    r_lo = min(max(int(np.floor(green)), 0), n - 1)
    r_hi = min(max(int(np.ceil(mature)), 0), n - 1)
    best = _fastest(z, n, max(r_lo, left), max(min(r_hi, at), max(r_lo, left)), 1)
    if best == 0 and not (r_lo <= 1 <= r_hi and _rate(z, n, 1) > _rate(z, n, 0)):
        best = 1  # the reference's interpolation at the series start
    sos = best + _rate_vertex(z, n, best, 1)
    f_lo = min(max(int(np.floor(senesce)), 0), n - 1)
    f_hi = min(max(int(np.ceil(dormant)), 0), n - 1)
    last = min(max(f_lo, at, left + 1), min(f_hi, right))
    best = _fastest(z, n, min(f_hi, right), last, -1)
    if best == n - 1 and not (f_lo <= n - 2 <= f_hi and _rate(z, n, n - 2) < _rate(z, n, n - 1)):
        best = n - 2  # the same at the series end (reversed time)
    eos = (n - 1) - ((n - 1 - best) + _rate_vertex(z, n, best, -1))
    return sos, eos


@njit(**_JIT)
def _season(z, n, left, right, up_fractions, down_fractions, windows, levels, order, res):
    """Metrics of the season (troughs at grid indices ``left``, ``right``) of ``z``, dates as
    fractional grid indices, as the reference's ``_extract``: ``res`` = [pos, peak, amplitude,
    integral, rising dates (last: sos), falling dates (last: eos)]. ``windows`` = (greenup,
    maturity) indices of the rising and (senescence, dormancy) of the falling fractions and a
    flag: 1 = ``sos_method="derivative"`` (sos/eos = fastest rise/fall between those dates),
    0 = sos/eos at the last fractions. ``levels``, ``order`` are work space. Returns False
    (and leaves ``res`` undefined) where the season is not valid."""
    # The first maximum over [left, right - 1].
    at = left
    top = z[left]
    for i in range(left + 1, right):
        if z[i] > top:
            top = z[i]
            at = i
    if at == 0 and z[1] <= z[0]:
        at = 1  # the reference's interpolation at the series start
    z0 = z[at]
    if 0 < at < n - 1:
        zm = z[at - 1]
        zp = z[at + 1]
        curv = zm - 2 * z0 + zp
        shift = 0.5 * (zm - zp) / curv if curv != 0 else 0.0
        shift = min(max(shift, -0.5), 0.5)
        peak = z0 - 0.25 * (zm - zp) * shift
    else:
        shift = 0.0
        peak = z0
    pos = at + shift
    if not (left < pos < right):
        return False
    zl = z[left]
    zr = z[right]
    nu = up_fractions.size
    nd = down_fractions.size
    for i in range(nu):
        levels[i] = zl + up_fractions[i] * (peak - zl)
    _first_reach(z, n, True, left, at, levels[:nu], order, res[4:])
    for i in range(nu - 1):
        if not (left <= res[4 + i] <= pos):
            return False
    for i in range(nd):
        levels[i] = zr + down_fractions[i] * (peak - zr)
    _first_reach(z, n, False, n - 1 - right, n - 1 - at, levels[:nd], order, res[4 + nu :])
    for i in range(nd):
        res[4 + nu + i] = n - 1 - res[4 + nu + i]
        if i < nd - 1 and not (pos <= res[4 + nu + i] <= right):
            return False
    if windows[4]:
        sos, eos = _rate_dates(
            z,
            n,
            left,
            at,
            right,
            res[4 + windows[0]],
            res[4 + windows[1]],
            res[4 + nu + windows[2]],
            res[4 + nu + windows[3]],
        )
        res[4 + nu - 1] = sos
        res[4 + nu + nd - 1] = eos
    base = 0.5 * (zl + zr)
    sos = res[4 + nu - 1]
    eos = res[4 + nu + nd - 1]
    a = min(max(np.ceil(sos), 0.0), float(n))
    b = max(min(max(np.floor(eos) + 1.0, 0.0), float(n)), a)
    total = 0.0
    for i in range(int(a), int(b)):
        total += z[i]
    res[0] = pos
    res[1] = peak
    res[2] = peak - base
    res[3] = total - base * (b - a)
    return True


@njit(**_JIT)
def _windows(settings):
    """The ``windows`` of :func:`_season` from ``settings`` (see :func:`_row_metrics`)."""
    return (
        int(settings[7]),
        int(settings[8]),
        int(settings[9]),
        int(settings[10]),
        int(settings[11]),
    )


@njit(**_JIT)
def _fill(z, left, right, w, t, jan1y, settings, fractions, work, iwork, o):
    """Metrics of the season of ``z`` between the troughs ``left`` and ``right`` (grid
    indices) into ``o`` (variable,): dates as days of year from ``jan1y``, the day number of
    1 January of the season's year; ``w``, ``t`` (nt,) the series' observation weights and
    days (for ``n_obs``). An invalid season leaves ``o`` NaN but ``n_obs`` 0."""
    n = z.size
    grid0, step = settings[0], settings[1]
    n_up, n_down = int(settings[5]), int(settings[6])
    res, levels = work[3], work[4]
    order = iwork[2]
    up = fractions[:n_up]
    down = fractions[n_up : n_up + n_down]
    win = _windows(settings)
    if not _season(z, n, left, right, up, down, win, levels, order, res):
        o[_NOBS] = 0.0
        return
    sos = grid0 + step * res[4 + n_up - 1]
    eos = grid0 + step * res[4 + n_up + n_down - 1]
    o[_SOS] = sos - jan1y + 1.0
    o[_EOS] = eos - jan1y + 1.0
    o[_POS] = grid0 + step * res[0] - jan1y + 1.0
    o[_LOS] = eos - sos
    o[_PEAK] = res[1]
    o[_AMP] = res[2]
    o[_INT] = res[3] * step
    for i in range(n_up - 1):
        o[8 + i] = grid0 + step * res[4 + i] - jan1y + 1.0
    for i in range(n_down - 1):
        o[7 + n_up + i] = grid0 + step * res[4 + n_up + i] - jan1y + 1.0
    green = grid0 + step * res[4 + win[0]]
    dormant = grid0 + step * res[4 + n_up + win[3]]
    nobs = 0
    for k in range(t.size):
        nobs += (w[k] > 0) & (green <= t[k]) & (t[k] <= dormant)
    o[_NOBS] = nobs


@njit(**_JIT)
def _divide(z, settings, year_starts, work, iwork, chosen):
    """Season division of one smoothed series ``z`` (n,): its extrema simplified by the
    amplitude and peak-separation rules (left in ``work[0]`` (indices) and ``iwork[0]``
    (types)), and in ``chosen`` (year, season) the extrema-list position of each kept
    season's peak (-1: none). Returns False for a series with non-finite values (no season)."""
    n = z.size
    lo = z[0]
    hi = z[0]
    for i in range(n):
        if not np.isfinite(z[i]):
            for yi in range(chosen.shape[0]):
                for s in range(chosen.shape[1]):
                    chosen[yi, s] = -1
            return False  # not smoothed (too few observations): no season
        lo = min(lo, z[i])
        hi = max(hi, z[i])
    idx, val, score = work[0], work[1], work[2]
    typ, remove = iwork[0], iwork[1]
    count = _extrema(z, n, idx, val, typ)
    threshold = max(settings[2], settings[3] * (hi - lo))
    count = _simplify(idx, val, typ, count, threshold, settings[4], score, remove)
    _select_seasons(idx, val, typ, count, year_starts, chosen.shape[1], chosen)
    return True


@njit(**_JIT)
def _row_metrics(z, w, t, p, settings, fractions, jan1, year_starts, work, iwork, chosen, out):
    """Season division and metrics of one smoothed series ``z`` (n,) into ``out[p]``;
    ``w``, ``t`` (nt,) are the series' observation weights and days (for ``n_obs``).
    ``settings`` = [grid0, step, min_amplitude, min_relative_amplitude, min_separation (grid
    steps), n_up, n_down, greenup and maturity indices among the rising fractions, senescence
    and dormancy indices among the falling ones, derivative flag (sos/eos by the fastest
    rise/fall)]; ``fractions`` = the n_up rising then n_down falling fractions (the last of
    each: sos, eos)."""
    if not _divide(z, settings, year_starts, work, iwork, chosen):
        return
    idx = work[0]
    for yi in range(year_starts.size - 1):
        for s in range(chosen.shape[1]):
            j = chosen[yi, s]
            if j < 0:
                break
            left, right = int(idx[j - 1]), int(idx[j + 1])
            _fill(z, left, right, w, t, jan1[yi], settings, fractions, work, iwork, out[p, yi, s])


@njit(**_JIT)
def _work(n, n_years, seasons):
    """Work space of :func:`_row_metrics` for series of n nodes."""
    work = np.empty((5, n + 8))
    iwork = np.empty((3, n + 8), dtype=np.int64)
    chosen = np.empty((n_years, seasons), dtype=np.int64)
    return work, iwork, chosen


#: Modes of :func:`_run`.
SMOOTH, METRICS, BOTH = 0, 1, 2


@njit(**_JIT)
def _run(mode, y, w, t, z, smooth, settings, fractions, jan1, year_starts, out):
    """The one compiled entry point of the Whittaker and season-metrics paths (a single
    compilation per environment serves them all).

    ``mode`` :data:`SMOOTH`: Whittaker-smooth ``y``, ``w``, ``t`` (pixel, time) into ``z``
    (pixel, n). :data:`METRICS`: season metrics of the smoothed ``z`` (``w`` holding the
    usable observations' weights, 0 elsewhere) into ``out`` (pixel, year, season, variable).
    :data:`BOTH`: smoothing then metrics per pixel, into ``out``, skipping pixels with fewer
    than ``smooth[4]`` usable observations. ``smooth`` = [n, lam per grid step^3, envelope
    iterations, envelope scale, min_observations]; ``settings``, ``fractions``: see
    :func:`_row_metrics`."""
    npix, nt = w.shape
    n = int(smooth[0])
    grid0, step = settings[0], settings[1]
    work, iwork, chosen = _work(n + fractions.size, year_starts.size - 1, out.shape[2])
    if mode == METRICS:
        for p in range(npix):
            _row_metrics(
                z[p],
                w[p],
                t[p],
                p,
                settings,
                fractions,
                jan1,
                year_starts,
                work,
                iwork,
                chosen,
                out,
            )
        return
    ws = _whittaker_work(n, nt)
    zg = np.empty((LANES, n))
    for p0 in range(0, npix, LANES):
        _whittaker_group(y, w, t, p0, grid0, step, smooth[1], int(smooth[2]), smooth[3], ws, zg)
        for lane in range(min(LANES, npix - p0)):
            p = p0 + lane
            if mode == SMOOTH:
                z[p] = zg[lane]
                continue
            if ws[2][1, lane] < smooth[4]:
                continue
            _row_metrics(
                zg[lane],
                ws[0][4, lane],
                t[p],
                p,
                settings,
                fractions,
                jan1,
                year_starts,
                work,
                iwork,
                chosen,
                out,
            )


@njit(**_JIT)
def _bounds(z, settings, fractions, year_starts, bounds, res):
    """Season division of each row of ``z`` (pixel, n) and each kept season's troughs into
    ``bounds`` (pixel, year, season, 2) (grid indices; -1 where none) and its
    :func:`_season` result in grid units into ``res`` (pixel, year, season, 4 + fractions)
    (NaN where the season is not valid)."""
    npix, n = z.shape
    work, iwork, chosen = _work(n + fractions.size, year_starts.size - 1, bounds.shape[2])
    n_up, n_down = int(settings[5]), int(settings[6])
    up = fractions[:n_up]
    down = fractions[n_up : n_up + n_down]
    win = _windows(settings)
    idx = work[0]
    for p in range(npix):
        if not _divide(z[p], settings, year_starts, work, iwork, chosen):
            continue
        for yi in range(chosen.shape[0]):
            for s in range(chosen.shape[1]):
                j = chosen[yi, s]
                if j < 0:
                    break
                left, right = int(idx[j - 1]), int(idx[j + 1])
                bounds[p, yi, s, 0] = left
                bounds[p, yi, s, 1] = right
                if _season(z[p], n, left, right, up, down, win, work[4], iwork[2], work[3]):
                    res[p, yi, s, :] = work[3][: res.shape[3]]


@njit(**_JIT)
def _bounded(z, left, right, year, w, t, settings, fractions, jan1, out):
    """Metrics of one season per row of ``z`` (row, n) between the troughs ``left[row]`` and
    ``right[row]``, of the year ``year[row]``, into ``out`` (row, variable); ``w``, ``t``
    (row, nt) the observations of each row's pixel."""
    nrow, n = z.shape
    work, iwork, _ = _work(n + fractions.size, 1, 1)
    for r in range(nrow):
        _fill(
            z[r],
            left[r],
            right[r],
            w[r],
            t[r],
            jan1[year[r]],
            settings,
            fractions,
            work,
            iwork,
            out[r],
        )


def _settings(
    grid: np.ndarray,
    jan1: np.ndarray,
    up_fractions: np.ndarray,
    down_fractions: np.ndarray,
    windows: tuple[int, int, int, int],
    sos_method: str,
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    grid0, step, _ = _grid(grid)
    up = np.asarray(up_fractions, dtype=float).ravel()
    down = np.asarray(down_fractions, dtype=float).ravel()
    if up.size < 2 or down.size < 2:
        raise ValueError("up_fractions, down_fractions: expected at least two fractions each")
    if sos_method not in ("amplitude", "derivative"):
        raise ValueError(f"sos_method: expected 'amplitude' or 'derivative', got {sos_method!r}")
    g, m, s, d = (int(i) for i in windows)
    if not (0 <= g <= m < up.size - 1 and 0 <= s <= d < down.size - 1):
        raise ValueError(f"windows: expected indices of rising and falling dates, got {windows}")
    settings = np.array(
        [
            grid0,
            step,
            min_amplitude,
            min_relative_amplitude,
            min_peak_separation / step,
            up.size,
            down.size,
            g,
            m,
            s,
            d,
            sos_method == "derivative",
        ],
        dtype=float,
    )
    jan1 = np.asarray(jan1, dtype=float)
    return settings, np.concatenate([up, down]), jan1, (jan1 - grid0) / step


def season_metrics(
    z: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    *,
    seasons: int,
    up_fractions: np.ndarray,
    down_fractions: np.ndarray,
    windows: tuple[int, int, int, int],
    sos_method: str = "amplitude",
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
) -> np.ndarray:
    """Season division and metrics of smoothed series (``phenology_metrics`` after its
    smoothing step).

    ``z`` (pixel, len(grid)): the smoothed series on the regular day ``grid`` (days since
    1 January of the first year); ``weights``, ``days`` (pixel, time): the observations'
    weights (0 = unusable) and days, for ``n_obs``; ``jan1`` (n_years + 1): day numbers of
    1 January of each year and of the year after the last. Rows with non-finite values have
    no season. ``up_fractions``: fractions of the rising amplitude of the rising transition
    dates, the last one giving ``sos``; ``down_fractions`` likewise for the falling ones and
    ``eos``; ``windows``: the (greenup, maturity) indices among the rising dates and the
    (senescence, dormancy) ones among the falling dates: observations are counted (``n_obs``)
    from greenup to dormancy, and ``sos_method="derivative"`` puts sos/eos at the fastest
    rise/fall between greenup and maturity / senescence and dormancy instead of at the last
    fractions. ``min_peak_separation`` in days, amplitudes in index units. Returns the float32
    array (pixel, year, season, variable) described in the module docstring."""
    settings, fractions, jan1, year_starts = _settings(
        grid,
        jan1,
        up_fractions,
        down_fractions,
        windows,
        sos_method,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
    )
    z = np.ascontiguousarray(z, dtype=float)
    out = _output(z.shape[0], jan1.size - 1, seasons, fractions.size)
    w = _rows(weights, np.shape(weights))
    t = _rows(days, np.shape(days))
    smooth = np.array([z.shape[1], 0.0, 0.0, 0.0, 0.0])
    _run(METRICS, w, w, t, z, smooth, settings, fractions, jan1, year_starts, out)
    return out


def phenology_rows(
    values: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    *,
    lam: float,
    envelope_iterations: int,
    envelope_scale: float,
    seasons: int,
    up_fractions: np.ndarray,
    down_fractions: np.ndarray,
    windows: tuple[int, int, int, int],
    sos_method: str = "amplitude",
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
    min_observations: int = 0,
) -> np.ndarray:
    """:func:`whittaker` then :func:`season_metrics`, one pixel at a time (the smoothed series
    stay inside the kernel). ``values``, ``weights``, ``days``: (pixel, time); the other
    arguments as in those two functions. Pixels with fewer than ``min_observations`` usable
    observations (finite value and day, weight > 0) are all NaN, ``n_obs`` included."""
    settings, fractions, jan1, year_starts = _settings(
        grid,
        jan1,
        up_fractions,
        down_fractions,
        windows,
        sos_method,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
    )
    values = np.asarray(values, dtype=float)
    y = _rows(values, values.shape)
    step = settings[1]
    smooth = np.array(
        [np.size(grid), lam / step**3, int(envelope_iterations), envelope_scale, min_observations],
        dtype=float,
    )
    out = _output(y.shape[0], jan1.size - 1, seasons, fractions.size)
    w = _rows(weights, values.shape)
    t = _rows(days, values.shape)
    _run(BOTH, y, w, t, np.empty((0, 1)), smooth, settings, fractions, jan1, year_starts, out)
    return out


def season_bounds(
    z: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    *,
    seasons: int,
    up_fractions: np.ndarray,
    down_fractions: np.ndarray,
    windows: tuple[int, int, int, int],
    sos_method: str = "amplitude",
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The seasons of smoothed series as :func:`season_metrics` divides them, in grid units
    (the rough step of the double-logistic method, whose seasons are then fitted one by one
    and measured by :func:`bounded_metrics`).

    Returns ``bounds`` int64 (pixel, year, season, 2): the grid indices of each season's left
    and right troughs, -1 where there is no season; and ``res`` float64 (pixel, year, season,
    4 + len(up_fractions) + len(down_fractions)): [pos, peak, amplitude, integral (index x
    grid step), the rising dates, the falling dates], dates as fractional grid indices, NaN
    where the season is not valid. Arguments as in :func:`season_metrics`."""
    settings, fractions, jan1, year_starts = _settings(
        grid,
        jan1,
        up_fractions,
        down_fractions,
        windows,
        sos_method,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
    )
    z = np.ascontiguousarray(z, dtype=float)
    shape = (z.shape[0], jan1.size - 1, seasons)
    bounds = np.full((*shape, 2), -1, np.int64)
    res = np.full((*shape, 4 + fractions.size), np.nan)
    _bounds(z, settings, fractions, year_starts, bounds, res)
    return bounds, res


def bounded_metrics(
    z: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    year: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    *,
    up_fractions: np.ndarray,
    down_fractions: np.ndarray,
    windows: tuple[int, int, int, int],
    sos_method: str = "amplitude",
    min_amplitude: float = 0.0,
    min_relative_amplitude: float = 0.0,
    min_peak_separation: float = 0.0,
) -> np.ndarray:
    """Metrics of one given season per row: ``z`` (row, len(grid)) a curve, ``left``,
    ``right`` (row,) the grid indices of its troughs, ``year`` (row,) the index into ``jan1``
    of the season's year, ``weights``, ``days`` (row, time) the observations of the row's
    pixel. Returns float32 (row, variable) as one (year, season) cell of
    :func:`season_metrics`; no season division (the amplitude rules are not used)."""
    settings, fractions, jan1, _ = _settings(
        grid,
        jan1,
        up_fractions,
        down_fractions,
        windows,
        sos_method,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
    )
    z = np.ascontiguousarray(z, dtype=float)
    out = _output(z.shape[0], 1, 1, fractions.size)[:, 0, 0]
    _bounded(
        z,
        np.ascontiguousarray(left, np.int64),
        np.ascontiguousarray(right, np.int64),
        np.ascontiguousarray(year, np.int64),
        _rows(weights, np.shape(weights)),
        _rows(days, np.shape(days)),
        settings,
        fractions,
        jan1,
        out,
    )
    return out


def _output(npix: int, n_years: int, seasons: int, n_fractions: int) -> np.ndarray:
    return np.full(
        (npix, n_years, seasons, len(FIXED_OUTPUTS) + n_fractions - 2), np.nan, np.float32
    )


@njit(**_JIT)
def _dq_gaps(days, usable, vals, flags, udays, gaps):
    """One series' observations for :func:`_dq_class`: ``days`` (time,) float, ``usable``
    (time,) bool. Leaves the usable days in ascending order in ``udays`` and in ``gaps[u]``
    the number of unusable observations strictly between ``udays[u]`` and ``udays[u + 1]``
    (by day, as the reference counts them); ``vals``, ``flags`` are work space. Returns the
    number of usable observations."""
    nt = days.size
    rising = 0
    for t in range(1, nt):
        rising += days[t] > days[t - 1]  # False at a NaN
    if rising == nt - 1 and not np.isnan(days[0]):
        # Strictly increasing days (as the stored composites give): no sort, no ties, and
        # no branch on which observations are usable (a third of them, in random places).
        nu = 0
        unusable = 0
        for t in range(nt):
            udays[nu] = days[t]
            gaps[nu] = unusable  # unusable observations before this usable one
            nu += usable[t]
            unusable += 1 - usable[t]
        for u in range(nu - 1):
            gaps[u] = gaps[u + 1] - gaps[u]
        return nu
    m = 0
    for t in range(nt):
        if not np.isnan(days[t]):
            vals[m] = days[t]
            flags[m] = usable[t]
            m += 1
    # insertion sort: composites come in time order, so this is O(time) in practice
    for i in range(1, m):
        v, f = vals[i], flags[i]
        j = i - 1
        while j >= 0 and vals[j] > v:
            vals[j + 1], flags[j + 1] = vals[j], flags[j]
            j -= 1
        vals[j + 1], flags[j + 1] = v, f
    nu = 0
    run = 0  # unusable observations after the last usable one, later than its day
    tail = 0  # of which those on the latest unusable day
    last = np.nan
    for i in range(m):
        if flags[i]:
            if nu > 0:
                gaps[nu - 1] = run - (tail if last == vals[i] else 0)
            udays[nu] = vals[i]
            nu += 1
            run = 0
            tail = 0
        elif nu > 0 and vals[i] > udays[nu - 1]:
            tail = tail + 1 if vals[i] == last else 1
            last = vals[i]
            run += 1
    return nu


@njit(**_JIT)
def _dq_class(d, udays, gaps, nu, max_missing):
    """Quality class of the date ``d`` (not NaN) from :func:`_dq_gaps`'s arrays."""
    n_classes = max_missing.shape[0]
    # The usable days at or before d, counted without branches (vectorised): cheaper than a
    # search's unpredictable branches over a series' few dozen observations.
    count = 0
    for u in range(nu):
        count += udays[u] <= d
    if count == 0:
        return n_classes  # no usable observation at or before d
    b = count - 1
    if udays[b] == d:
        missing = 0
    elif count == nu:
        return n_classes  # none at or after d
    else:
        missing = gaps[b]
    cls = n_classes
    for i in range(n_classes - 1, -1, -1):
        if missing <= max_missing[i]:
            cls = i
    return cls


@njit(**_JIT)
def _date_quality(dates, days, usable, max_missing, out):
    n_pix, n_dates = dates.shape
    n_time = days.shape[1]
    vals = np.empty(n_time)
    flags = np.empty(n_time, np.bool_)
    udays = np.empty(n_time)
    gaps = np.empty(n_time, np.int64)
    for p in range(n_pix):
        nu = _dq_gaps(days[p], usable[p], vals, flags, udays, gaps)
        for k in range(n_dates):
            d = dates[p, k]
            if np.isnan(d):
                out[p, k] = 255
                continue
            out[p, k] = _dq_class(d, udays, gaps, nu, max_missing)


def date_quality(dates, days, usable, max_missing) -> np.ndarray:
    """:func:`fluxscape.products.phenology.date_quality` as a compiled loop: ``dates``
    (n, k), ``days`` (n, time) float, ``usable`` (n, time) bool, ``max_missing`` (classes,)
    int. Returns uint8 (n, k). Per pixel one walk over its observations (sorted in place
    unless their days strictly increase) and a count over its usable days per date, no
    (n, time) temporaries."""
    dates = np.ascontiguousarray(dates, np.float64)
    out = np.empty(dates.shape, np.uint8)
    _date_quality(
        dates,
        np.ascontiguousarray(days, np.float64),
        np.ascontiguousarray(usable, np.bool_),
        np.asarray(max_missing, np.int64),
        out,
    )
    return out


# --- one pass from the vi variables to the stacked product ------------------------------------


@njit(**_JIT)
def _tile(v, q, doy, table, tinfo, smooth, settings, fractions, jan1, year_starts, qa, out):
    """The whole ``method="whittaker"`` product of a tile in one pass, :data:`LANES` pixels
    at a time: observation days and QA weights, the Whittaker smoothing, season division and
    dates (as :func:`_run` in mode :data:`BOTH`) and the per-date quality classes (as
    :func:`_date_quality`), written straight into the stacked output.

    ``v`` (time, pixel) float32 index values, ``q`` (time, pixel) uint8 QA codes, ``doy``
    (time, pixel) float32 days of year (NaN: the period's middle); ``table`` (256,) the weight
    of each QA code; ``tinfo`` (4, time): each period start's day number, its day of year and
    its year's length, and in ``tinfo[3, 0]`` half the period (the day offset of a NaN
    ``doy``). ``smooth``, ``settings``, ``fractions``, ``jan1``, ``year_starts`` as in
    :func:`_run`. ``qa`` (int64): the 7 variable indices of the dates graded by
    ``qa_detailed`` (2 bits each, in this order), the planes of ``qa_overall`` and
    ``qa_detailed``, then the most unusable observations of each quality class. ``out``
    (plane, year, season, pixel) float32, NaN-filled: the variables of the module docstring
    in planes 0, 1, ...; the two quality planes 255 / 65535 where a season does not exist."""
    nt, npix = v.shape
    n = int(smooth[0])
    grid0, step = settings[0], settings[1]
    ny = year_starts.size - 1
    ns = out.shape[2]
    nm = _N_FIXED + fractions.size - 2
    i_overall, i_detailed = qa[7], qa[8]
    max_missing = qa[9:]
    work, iwork, chosen = _work(n + fractions.size, ny, ns)
    ws = _whittaker_work(n, nt)
    zg = np.empty((LANES, n))
    # A block of pixels at a time, turned to (pixel, time) rows first and its outputs kept
    # until the block is done: the stored (time, pixel) order read and written a row of
    # BLOCK pixels at a time (sequential), not LANES pixels of 46 rows (as many streams).
    yb = np.empty((BLOCK, nt))
    wb = np.empty((BLOCK, nt))
    tb = np.empty((BLOCK, nt))
    qb = np.empty((BLOCK, nt), np.bool_)
    ob = np.empty((BLOCK, ny, ns, nm + 2), np.float32)
    vals = np.empty(nt)
    flags = np.empty(nt, np.bool_)
    udays = np.empty(nt)
    gaps = np.empty(nt, np.int64)
    half = tinfo[3, 0]
    for b0 in range(0, npix, BLOCK):
        nb = min(BLOCK, npix - b0)
        for k in range(nt):
            start, start_doy, year_len = tinfo[0, k], tinfo[1, k], tinfo[2, k]
            for j in range(nb):
                p = b0 + j
                d = np.float64(doy[k, p])
                if np.isnan(d):
                    tk = start + half
                else:
                    delta = d - start_doy
                    if delta < -183.0:  # a composite crossing 31 December
                        delta += year_len
                    tk = start + delta
                wk = table[q[k, p]]
                yb[j, k] = v[k, p]
                wb[j, k] = wk
                tb[j, k] = tk
                qb[j, k] = wk > 0.0 and np.isfinite(tk)
        ob[:nb] = np.nan
        for g0 in range(0, nb, LANES):
            _whittaker_group(
                yb[:nb],
                wb[:nb],
                tb[:nb],
                g0,
                grid0,
                step,
                smooth[1],
                int(smooth[2]),
                smooth[3],
                ws,
                zg,
            )
            for lane in range(min(LANES, nb - g0)):
                j = g0 + lane
                o = ob[j : j + 1]  # _row_metrics writes its first nm variables
                if ws[2][1, lane] < smooth[4]:
                    for yi in range(ny):
                        for s in range(ns):
                            ob[j, yi, s, nm] = 255.0
                            ob[j, yi, s, nm + 1] = 65535.0
                    continue
                _row_metrics(
                    zg[lane],
                    ws[0][4, lane],
                    tb[j],
                    0,
                    settings,
                    fractions,
                    jan1,
                    year_starts,
                    work,
                    iwork,
                    chosen,
                    o,
                )
                nu = _dq_gaps(tb[j], qb[j], vals, flags, udays, gaps)
                for yi in range(ny):
                    offset = jan1[yi] - 1.0  # day of year -> day number
                    for s in range(ns):
                        worst = 0
                        detailed = 0
                        missing = True
                        for i in range(7):
                            x = ob[j, yi, s, qa[i]]
                            cls = 3
                            if not np.isnan(x):
                                missing = False
                                cls = _dq_class(
                                    np.float64(x) + offset, udays, gaps, nu, max_missing
                                )
                            worst = max(worst, cls)
                            detailed |= cls << (2 * i)
                        if missing:
                            ob[j, yi, s, nm] = 255.0
                            ob[j, yi, s, nm + 1] = 65535.0
                        else:
                            ob[j, yi, s, nm] = worst
                            ob[j, yi, s, nm + 1] = detailed
        for yi in range(ny):
            for s in range(ns):
                for i in range(nm):
                    for j in range(nb):
                        out[i, yi, s, b0 + j] = ob[j, yi, s, i]
                for j in range(nb):
                    out[i_overall, yi, s, b0 + j] = ob[j, yi, s, nm]
                    out[i_detailed, yi, s, b0 + j] = ob[j, yi, s, nm + 1]


def phenology_tile(
    values: np.ndarray,
    codes: np.ndarray,
    doy: np.ndarray,
    table: np.ndarray,
    tinfo: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    *,
    planes: int,
    qa_dates: tuple[int, ...],
    qa_planes: tuple[int, int],
    max_missing: tuple[int, ...],
    lam: float,
    envelope_iterations: int,
    envelope_scale: float,
    seasons: int,
    up_fractions: np.ndarray,
    down_fractions: np.ndarray,
    windows: tuple[int, int, int, int],
    sos_method: str = "amplitude",
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
    min_observations: int = 0,
) -> np.ndarray:
    """:func:`phenology_rows` and the per-date quality of
    :func:`fluxscape.products.phenology.season_quality` in one compiled pass over a tile's
    ``vi`` variables as stored (time first), without (pixel, time) temporaries.

    ``values`` (time, pixel) float32 index; ``codes`` (time, pixel) uint8 QA codes, weighted by
    ``table`` (256,) float64; ``doy`` (time, pixel) float32 day of year of each observation,
    NaN = the period's middle; ``tinfo`` (4, time) float64: the period starts as day numbers
    (days since 1 January of the first year), their day of year, their year's length, and
    ``tinfo[3, 0]`` half the period in days (see
    :func:`fluxscape.products.phenology.observation_days`). ``qa_dates``: the 7 output
    variable indices graded by ``qa_detailed``; ``qa_planes`` the planes of ``qa_overall`` and
    ``qa_detailed``; ``max_missing`` the quality classes' limits. The other arguments as in
    :func:`phenology_rows`. Returns float32 (``planes``, year, season, pixel): the variables of
    the module docstring in the first planes, the quality classes in ``qa_planes`` (255 /
    65535 where no season), every other plane NaN."""
    settings, fractions, jan1, year_starts = _settings(
        grid,
        jan1,
        up_fractions,
        down_fractions,
        windows,
        sos_method,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
    )
    values = np.asarray(values)
    codes = np.asarray(codes)
    doy = np.asarray(doy)
    if values.dtype != np.float32 or codes.dtype != np.uint8 or doy.dtype != np.float32:
        raise TypeError(
            "phenology_tile: expected float32 values, uint8 codes and float32 doy, got "
            f"{values.dtype}, {codes.dtype}, {doy.dtype}"
        )
    if not (values.ndim == 2 and values.shape == codes.shape == doy.shape):
        raise ValueError(
            f"phenology_tile: values, codes, doy: expected equal (time, pixel) shapes, got "
            f"{values.shape}, {codes.shape}, {doy.shape}"
        )
    if len(qa_dates) != 7 or len(qa_planes) != 2:
        raise ValueError("phenology_tile: expected 7 qa_dates and 2 qa_planes")
    step = settings[1]
    smooth = np.array(
        [np.size(grid), lam / step**3, int(envelope_iterations), envelope_scale, min_observations],
        dtype=float,
    )
    out = np.full((planes, jan1.size - 1, seasons, values.shape[1]), np.nan, np.float32)
    qa = np.array([*qa_dates, *qa_planes, *max_missing], np.int64)
    _tile(
        np.ascontiguousarray(values),
        np.ascontiguousarray(codes),
        np.ascontiguousarray(doy),
        np.ascontiguousarray(table, np.float64),
        np.ascontiguousarray(tinfo, np.float64),
        smooth,
        settings,
        fractions,
        jan1,
        year_starts,
        qa,
        out,
    )
    return out
