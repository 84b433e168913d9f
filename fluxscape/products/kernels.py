"""Numba kernels of the default phenology method, one pixel at a time.

The numpy implementations in :mod:`fluxscape.products.smoothing` and
:mod:`fluxscape.products.phenology` process a whole block of pixels per operation; they are the
reference. The kernels here compute the same results (to float rounding) with a compiled loop
over pixels and O(n) work per pixel, without the block-wide temporaries:

- :func:`whittaker`: :func:`fluxscape.products.smoothing.whittaker` (QA-weighted Whittaker
  smoother with upper-envelope iterations; the pentadiagonal normal equations are factorised
  per pixel, LDL^T in one pass).
- :func:`season_metrics`: season division (extrema, their simplification by the amplitude and
  peak-separation rules, at most ``seasons`` per year) and the MCD12Q2 threshold dates of
  :func:`fluxscape.products.phenology.phenology_metrics` (``sos_method="amplitude"``) on
  already smoothed series.
- :func:`phenology_rows`: both in one pass (the smoothed series never leaves the kernel).

Hand-written because no maintained library offers a weighted, irregularly sampled Whittaker
smoother with envelope reweighting or the MCD12Q2 season rules as compiled array kernels.

Functions are compiled on first use and cached on disk (``cache=True``); they release the GIL
(``nogil=True``), so Dask's threads run tiles in parallel. They are serial over pixels: the
work is spread over cores by Dask, one tile per task.

Output layout of :func:`season_metrics` / :func:`phenology_rows`: one float32 array
(variable, pixel, year, season), NaN where there is no season; the variables are
:data:`FIXED_OUTPUTS` followed by the rising transition dates (one per entry of
``up_fractions`` except the last, which is ``sos``) and then the falling ones (``down_fractions``
except the last, ``eos``). Dates are days of year of the season's year, as in
:mod:`fluxscape.products.phenology`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: The first variables of the output array, in this order.
FIXED_OUTPUTS = ("sos", "pos", "eos", "los", "peak", "amplitude", "integral", "n_obs")

_SOS, _POS, _EOS, _LOS, _PEAK, _AMP, _INT, _NOBS = range(8)

_JIT = {"cache": True, "nogil": True}


# --- Whittaker smoother -----------------------------------------------------------------------


@njit(**_JIT)
def _solve(oy, ww, oj, of, m, n, lam, a0, a1, b):
    """Weighted Whittaker solve on an n-node grid for m observations (values ``oy``, weights
    ``ww``, left node ``oj``, fraction ``of`` towards the right node); ``lam`` per grid step^3.
    Builds the pentadiagonal normal equations (second differences: diagonal ``a0``, first
    super-diagonal ``a1``, second super-diagonal ``lam``) and solves them by LDL^T; the
    solution is left in ``b``."""
    for i in range(n):
        a0[i] = 0.0
        a1[i] = 0.0
        b[i] = 0.0
    for k in range(m):
        j = oj[k]
        f = of[k]
        g = 1.0 - f
        wg = ww[k] * g
        wf = ww[k] * f
        a0[j] += wg * g
        a0[j + 1] += wf * f
        a1[j] += wg * f
        b[j] += wg * oy[k]
        b[j + 1] += wf * oy[k]
    # D'D of second differences: diagonal lam (1, 5, 6, ..., 6, 5, 1), first off-diagonal
    # lam (-2, -4, ..., -4, -2), second off-diagonal lam.
    for i in range(n):
        a0[i] += 6.0 * lam
        a1[i] += -4.0 * lam
    a0[0] += -5.0 * lam
    a0[n - 1] += -5.0 * lam
    a0[1] += -1.0 * lam
    a0[n - 2] += -1.0 * lam
    a1[0] += 2.0 * lam
    a1[n - 2] += 2.0 * lam
    a1[n - 1] = 0.0
    a2 = lam
    # Forward: a0 becomes 1/D, a1 the sub-diagonal L[i+1, i], b the forward solution.
    c1 = 0.0  # L[i+1, i] D[i] before division
    for i in range(n):
        d = a0[i]
        yi = b[i]
        if i >= 1:
            d -= a1[i - 1] * c1
            yi -= a1[i - 1] * b[i - 1]
        if i >= 2:
            l2 = a0[i - 2] * a2
            d -= l2 * a2
            yi -= l2 * b[i - 2]
        a0[i] = 1.0 / d
        b[i] = yi
        if i < n - 1:
            if i >= 1:
                c1 = a1[i] + (a0[i - 1] * -a2) * c1
            else:
                c1 = a1[0]
            a1[i] = c1 * a0[i]
    for i in range(n):
        b[i] *= a0[i]
    for i in range(n - 2, -1, -1):
        b[i] -= a1[i] * b[i + 1]
        if i < n - 2:
            b[i] -= a0[i] * b[i + 2] * a2


@njit(**_JIT)
def _whittaker_row(y, w, t, grid0, step, n, lam, iterations, scale_min, scratch, ij, z):
    """Smooth one series (``y``, ``w``, ``t`` of length nt) onto the grid ``grid0 + step * k``
    (k < n) into ``z``, as :func:`fluxscape.products.smoothing.whittaker` does for one row
    (``lam`` per grid step^3). ``scratch`` (8, max(n, nt)) and ``ij`` (nt,) are work space.
    Returns the number of usable observations; ``z`` is NaN when it is below 3."""
    oy, ow0, ow, of, ot, absr, a0, a1 = (
        scratch[0],
        scratch[1],
        scratch[2],
        scratch[3],
        scratch[4],
        scratch[5],
        scratch[6],
        scratch[7],
    )
    m = 0
    first = np.inf
    last = -np.inf
    for k in range(y.size):
        yk = y[k]
        wk = w[k]
        tk = t[k]
        if not (np.isfinite(yk) and np.isfinite(tk) and np.isfinite(wk) and wk > 0.0):
            continue
        u = (tk - grid0) / step
        if u < 0.0 or u > n - 1:
            continue
        j = min(max(np.floor(u), 0.0), n - 2.0)
        oy[m] = yk
        ow0[m] = wk
        ij[m] = int(j)
        of[m] = u - j
        ot[m] = tk
        first = min(first, tk)
        last = max(last, tk)
        m += 1
    if m < 3:
        for i in range(n):
            z[i] = np.nan
        return m
    _solve(oy, ow0, ij, of, m, n, lam, a0, a1, z)
    for _ in range(iterations):
        # Upper envelope: bisquare weights on negative residuals, scale 6 median |residual|.
        for k in range(m):
            j = ij[k]
            ow[k] = oy[k] - (z[j] * (1.0 - of[k]) + z[j + 1] * of[k])
            absr[k] = abs(ow[k])
        absr[:m].sort()
        scale = max(3.0 * (absr[(m - 1) // 2] + absr[m // 2]), scale_min)
        for k in range(m):
            r = ow[k]
            if r < 0.0:
                bis = max(1.0 - (r / scale) ** 2, 0.0)
                ow[k] = ow0[k] * bis * bis
            else:
                ow[k] = ow0[k]
        _solve(oy, ow, ij, of, m, n, lam, a0, a1, z)
    # Hold the curve constant outside the observed span.
    i0 = int(min(max(np.ceil((first - grid0) / step), 0.0), n - 1.0))
    i1 = int(min(max(np.floor((last - grid0) / step), 0.0), n - 1.0))
    for i in range(i0):
        z[i] = z[i0]
    for i in range(i1 + 1, n):
        z[i] = z[i1]
    return m


@njit(**_JIT)
def _whittaker_rows(y, w, t, grid0, step, n, lam, iterations, scale_min):
    npix, nt = y.shape
    z = np.empty((npix, n))
    scratch = np.empty((8, max(n, nt)))
    ij = np.empty(nt, dtype=np.int64)
    for p in range(npix):
        _whittaker_row(
            y[p], w[p], t[p], grid0, step, n, lam, iterations, scale_min, scratch, ij, z[p]
        )
    return z


def _grid(grid: np.ndarray) -> tuple[float, float, int]:
    grid = np.asarray(grid, dtype=float)
    if grid.ndim != 1 or grid.size < 4:
        raise ValueError(f"grid: expected a 1-D array of at least 4 day numbers, got {grid.shape}")
    step = np.diff(grid)
    if not np.allclose(step, step[0]) or step[0] <= 0:
        raise ValueError("grid: expected regularly spaced, increasing day numbers")
    return float(grid[0]), float(step[0]), int(grid.size)


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
    lam: float,
    envelope_iterations: int,
    envelope_scale: float,
) -> np.ndarray:
    """:func:`fluxscape.products.smoothing.whittaker` (same arguments, same result to float
    rounding): ``values``, ``weights``, ``days`` (..., time); ``grid`` regular day numbers;
    returns (..., len(grid)) float64."""
    grid0, step, n = _grid(grid)
    values = np.asarray(values, dtype=float)
    y = _rows(values, values.shape)
    w = _rows(weights, values.shape)
    t = _rows(days, values.shape)
    z = _whittaker_rows(
        y, w, t, grid0, step, n, lam / step**3, int(envelope_iterations), envelope_scale
    )
    return z.reshape(values.shape[:-1] + (n,))


# --- season division ------------------------------------------------------------------------------


@njit(**_JIT)
def _extrema(z, n, sgn, idx, val, typ):
    """Alternating local extrema of ``z`` (series ends included; plateaus count once, at their
    right end) into ``idx``/``val``/``typ`` (+1 maximum, -1 minimum); returns their count."""
    last = 0
    first = 0
    for i in range(n - 1):
        d = z[i + 1] - z[i]
        s = 1 if d > 0 else (-1 if d < 0 else 0)
        if s != 0:
            if last == 0:
                first = s
            last = s
        sgn[i] = s if s != 0 else last
    for i in range(n - 1):  # a flat start takes the first slope
        if sgn[i] != 0:
            break
        sgn[i] = first
    count = 0
    for i in range(n):
        if i == 0:
            kind = -sgn[0]
        elif i == n - 1:
            kind = sgn[n - 2]
        elif sgn[i - 1] > 0 and sgn[i] < 0:
            kind = 1
        elif sgn[i - 1] < 0 and sgn[i] > 0:
            kind = -1
        else:
            kind = 0
        if kind != 0:
            idx[count] = i
            val[count] = z[i]
            typ[count] = kind
            count += 1
    return count


@njit(**_JIT)
def _simplify(idx, val, typ, count, threshold, min_separation, score, remove):
    """Remove extremum pairs as ``phenology._simplify_extrema`` does for one row (in place);
    returns the new count."""
    cc = count
    while cc >= 2:
        for p in range(cc - 1):
            score[p] = abs(val[p + 1] - val[p])
        for j in range(1, cc - 1):
            if typ[j] == -1 and (idx[j + 1] - idx[j - 1]) < min_separation:
                score[j - 1 if val[j - 1] < val[j + 1] else j] = -1.0
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
    ``phenology._seasons_by_year``: ``chosen`` (year, season) gets the list position j of each
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
def _first_reach(z, n, forward, start, stop, level):
    """Fractional index where the running maximum of ``x`` from ``start`` first reaches
    ``level`` within [start, stop] (``stop`` if it does not), interpolated between the running
    maxima of the two nodes around the crossing, as ``phenology._SegmentMax.first_reach``.
    ``x`` is ``z`` (``forward``) or ``z`` reversed, and indices are in that orientation.
    ``start`` is a season boundary: a level reached at ``start`` itself (only a level equal to
    the boundary value, for fractions in [0, 1]) gives ``start``, except at the series start,
    where the reference interpolates towards node 1."""
    x0 = z[start] if forward else z[n - 1 - start]
    mk = x0
    mprev = x0
    k = -1
    if x0 >= level:
        k = start
    else:
        for p in range(start + 1, stop + 1):
            xp = z[p] if forward else z[n - 1 - p]
            mprev = mk
            if xp > mk:
                mk = xp
            if mk >= level:
                k = p
                break
        if k < 0:
            k = stop
    if k == 0:
        x1 = z[1] if forward else z[n - 2]
        g0 = x0
        g1 = max(x0, x1)
    elif k == start:
        return float(start)
    else:
        g0 = mprev
        g1 = mk
    frac = (level - g0) / (g1 - g0) if g1 > g0 else 1.0
    return (k - 1) + min(max(frac, 0.0), 1.0)


@njit(**_JIT)
def _season(z, n, left, right, up_fractions, down_fractions, res):
    """Metrics of the season (troughs at grid indices ``left``, ``right``) of ``z``, dates as
    fractional grid indices, as ``phenology._extract`` (``sos_method="amplitude"``): ``res`` =
    [pos, peak, amplitude, integral, rising dates (last: sos), falling dates (last: eos)].
    Returns False (and leaves ``res`` undefined) where the season is not valid."""
    top = z[left]
    for i in range(left, right):
        if z[i] > top:
            top = z[i]
    at = int(np.rint(_first_reach(z, n, True, left, right - 1, top)))
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
        d = _first_reach(z, n, True, left, at, zl + up_fractions[i] * (peak - zl))
        if i < nu - 1 and not (left <= d <= pos):
            return False
        res[4 + i] = d
    for i in range(nd):
        rev = _first_reach(
            z, n, False, n - 1 - right, n - 1 - at, zr + down_fractions[i] * (peak - zr)
        )
        d = n - 1 - rev
        if i < nd - 1 and not (pos <= d <= right):
            return False
        res[4 + nu + i] = d
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
def _row_metrics(z, w, t, p, settings, fractions, jan1, year_starts, work, iwork, chosen, out):
    """Season division and metrics of one smoothed series ``z`` (n,) into ``out[:, p]``;
    ``w``, ``t`` (nt,) are the series' observation weights and days (for ``n_obs``).
    ``settings`` = [grid0, step, min_amplitude, min_relative_amplitude, min_separation (grid
    steps), n_up, n_down, n_obs first rising index, n_obs last falling index]; ``fractions``
    = the n_up rising then n_down falling fractions (the last of each: sos, eos)."""
    n = z.size
    grid0, step = settings[0], settings[1]
    n_up, n_down = int(settings[5]), int(settings[6])
    lo = z[0]
    hi = z[0]
    for i in range(n):
        if not np.isfinite(z[i]):
            return  # not smoothed (too few observations): no season
        lo = min(lo, z[i])
        hi = max(hi, z[i])
    idx, val, score, res = work[0], work[1], work[2], work[3]
    sgn, typ, remove = iwork[0], iwork[1], iwork[2]
    count = _extrema(z, n, sgn, idx, val, typ)
    threshold = max(settings[2], settings[3] * (hi - lo))
    count = _simplify(idx, val, typ, count, threshold, settings[4], score, remove)
    seasons = chosen.shape[1]
    _select_seasons(idx, val, typ, count, year_starts, seasons, chosen)
    up = fractions[:n_up]
    down = fractions[n_up : n_up + n_down]
    sos_at, eos_at = 4 + n_up - 1, 4 + n_up + n_down - 1
    green_at, dormant_at = 4 + int(settings[7]), 4 + n_up + int(settings[8])
    for yi in range(year_starts.size - 1):
        for s in range(seasons):
            j = chosen[yi, s]
            if j < 0:
                break
            if not _season(z, n, int(idx[j - 1]), int(idx[j + 1]), up, down, res):
                out[_NOBS, p, yi, s] = 0.0
                continue
            sos = grid0 + step * res[sos_at]
            eos = grid0 + step * res[eos_at]
            out[_SOS, p, yi, s] = sos - jan1[yi] + 1.0
            out[_EOS, p, yi, s] = eos - jan1[yi] + 1.0
            out[_POS, p, yi, s] = grid0 + step * res[0] - jan1[yi] + 1.0
            out[_LOS, p, yi, s] = eos - sos
            out[_PEAK, p, yi, s] = res[1]
            out[_AMP, p, yi, s] = res[2]
            out[_INT, p, yi, s] = res[3] * step
            for i in range(n_up - 1):
                out[8 + i, p, yi, s] = grid0 + step * res[4 + i] - jan1[yi] + 1.0
            for i in range(n_down - 1):
                out[7 + n_up + i, p, yi, s] = grid0 + step * res[4 + n_up + i] - jan1[yi] + 1.0
            green = grid0 + step * res[green_at]
            dormant = grid0 + step * res[dormant_at]
            nobs = 0
            for k in range(t.size):
                if w[k] > 0 and green <= t[k] <= dormant:
                    nobs += 1
            out[_NOBS, p, yi, s] = nobs


@njit(**_JIT)
def _work(n, n_years, seasons):
    """Work space of :func:`_row_metrics` for series of n nodes."""
    work = np.empty((4, n + 8))
    iwork = np.empty((3, n + 8), dtype=np.int64)
    chosen = np.empty((n_years, seasons), dtype=np.int64)
    return work, iwork, chosen


@njit(**_JIT)
def _season_metrics_rows(z, w, t, settings, fractions, jan1, year_starts, out):
    npix, n = z.shape
    work, iwork, chosen = _work(n + fractions.size, year_starts.size - 1, out.shape[3])
    for p in range(npix):
        _row_metrics(
            z[p], w[p], t[p], p, settings, fractions, jan1, year_starts, work, iwork, chosen, out
        )


@njit(**_JIT)
def _phenology_rows(y, w, t, smooth, settings, fractions, jan1, year_starts, out):
    npix, nt = y.shape
    grid0, step = settings[0], settings[1]
    n = int(smooth[0])
    scratch = np.empty((8, max(n, nt)))
    ij = np.empty(nt, dtype=np.int64)
    z = np.empty(n)
    work, iwork, chosen = _work(n + fractions.size, year_starts.size - 1, out.shape[3])
    for p in range(npix):
        _whittaker_row(
            y[p], w[p], t[p], grid0, step, n, smooth[1], int(smooth[2]), smooth[3], scratch, ij, z
        )
        _row_metrics(
            z, w[p], t[p], p, settings, fractions, jan1, year_starts, work, iwork, chosen, out
        )


def _settings(
    grid: np.ndarray,
    jan1: np.ndarray,
    up_fractions: np.ndarray,
    down_fractions: np.ndarray,
    n_obs_window: tuple[int, int],
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    grid0, step, _ = _grid(grid)
    up = np.asarray(up_fractions, dtype=float).ravel()
    down = np.asarray(down_fractions, dtype=float).ravel()
    if up.size < 2 or down.size < 2:
        raise ValueError("up_fractions, down_fractions: expected at least two fractions each")
    settings = np.array(
        [
            grid0,
            step,
            min_amplitude,
            min_relative_amplitude,
            min_peak_separation / step,
            up.size,
            down.size,
            n_obs_window[0],
            n_obs_window[1],
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
    n_obs_window: tuple[int, int],
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
) -> np.ndarray:
    """Season division and metrics of smoothed series (``phenology_metrics`` after its
    smoothing step, ``sos_method="amplitude"``).

    ``z`` (pixel, len(grid)): the smoothed series on the regular day ``grid`` (days since
    1 January of the first year); ``weights``, ``days`` (pixel, time): the observations'
    weights (0 = unusable) and days, for ``n_obs``; ``jan1`` (n_years + 1): day numbers of
    1 January of each year and of the year after the last. ``up_fractions``: fractions of the
    rising amplitude of the rising transition dates, the last one giving ``sos``;
    ``down_fractions`` likewise for the falling ones and ``eos``; ``n_obs_window``: the
    (rising, falling) transition indices between which observations are counted.
    ``min_peak_separation`` in days, amplitudes in index units. Rows with non-finite values
    have no season. Returns the float32 array (variable, pixel, year, season) described in the
    module docstring."""
    settings, fractions, jan1, year_starts = _settings(
        grid,
        jan1,
        up_fractions,
        down_fractions,
        n_obs_window,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
    )
    z = np.ascontiguousarray(z, dtype=float)
    out = _output(z.shape[0], jan1.size - 1, seasons, fractions.size)
    w = _rows(weights, np.shape(weights))
    t = _rows(days, np.shape(days))
    _season_metrics_rows(z, w, t, settings, fractions, jan1, year_starts, out)
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
    n_obs_window: tuple[int, int],
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
) -> np.ndarray:
    """:func:`whittaker` then :func:`season_metrics`, one pixel at a time (the smoothed series
    stay inside the kernel). ``values``, ``weights``, ``days``: (pixel, time); the other
    arguments as in those two functions."""
    settings, fractions, jan1, year_starts = _settings(
        grid,
        jan1,
        up_fractions,
        down_fractions,
        n_obs_window,
        min_amplitude,
        min_relative_amplitude,
        min_peak_separation,
    )
    values = np.asarray(values, dtype=float)
    y = _rows(values, values.shape)
    step = settings[1]
    smooth = np.array(
        [np.size(grid), lam / step**3, int(envelope_iterations), envelope_scale], dtype=float
    )
    out = _output(y.shape[0], jan1.size - 1, seasons, fractions.size)
    _phenology_rows(
        y,
        _rows(weights, values.shape),
        _rows(days, values.shape),
        smooth,
        settings,
        fractions,
        jan1,
        year_starts,
        out,
    )
    return out


def _output(npix: int, n_years: int, seasons: int, n_fractions: int) -> np.ndarray:
    return np.full(
        (len(FIXED_OUTPUTS) + n_fractions - 2, npix, n_years, seasons), np.nan, np.float32
    )
