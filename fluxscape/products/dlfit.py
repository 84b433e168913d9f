"""Compiled weighted double-logistic fits of many seasons, with Gaussian priors on the
parameters and their posterior variances (the fit of ``method="double_logistic"``).

One season is one row: its observations at their actual days (``t``, float days), values
``y`` and QA weights ``w`` (0 = ignore), and six parameters in the order of
:data:`fluxscape.products.smoothing.DL_PARAMS` (``vmin``, ``vmax``, ``sos``, ``k1``, ``eos``,
``k2``; :func:`fluxscape.products.smoothing.double_logistic`). The fit minimises the
maximum-a-posteriori cost

    sum_i w_i (y_i - f(t_i; p))^2 / s2 + sum_k prec_k (p_k - mu_k)^2

by Levenberg-Marquardt (Marquardt's diagonal scaling, one damping factor per row, bounds by
clipping), where ``s2`` is the row's residual variance (index units^2) and ``prec`` the prior
precisions (0 = no prior on that parameter). The posterior covariance is the inverse of the
Gauss-Newton Hessian ``J^T W J / s2 + diag(prec)`` at the solution; its entries for the
inflection days and their rates (:data:`COVARIANCE`) are returned, so that the variance of
any threshold date of the curve follows by the delta method (:func:`date_sd`).

Hand-written in numba because no maintained library fits millions of small weighted,
bounded, prior-regularised least-squares problems at compiled speed: ``scipy.optimize`` fits
one problem per Python call (bench/phenology.py: about 1 ms each), and the numpy version in
:func:`fluxscape.products.smoothing.fit_double_logistic` spends most of its time in block-wide
temporaries. The rows are independent: the kernel is serial over them and releases the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_NP = 6
#: Posterior covariance entries returned per row, in this order.
COVARIANCE = ("var_sos", "cov_sos_k1", "var_k1", "var_eos", "cov_eos_k2", "var_k2")
_NCOV = 6
#: Relative cost decrease below which an iteration ends the fit.
TOLERANCE = 1e-5


@njit(**_JIT)
def _model(t, p, jac, f):
    """Double logistic ``f`` (m,) and its Jacobian ``jac`` (m, 6) at days ``t`` (m,)."""
    vmin, vmax, sos, k1, eos, k2 = p[0], p[1], p[2], p[3], p[4], p[5]
    amp = vmax - vmin
    for i in range(t.size):
        # 1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2; exp is about twice as fast as tanh and
        # saturates the same way (exp -> inf gives 0, exp -> 0 gives 1).
        rise = 1.0 / (1.0 + np.exp(-k1 * (t[i] - sos)))
        fall = 1.0 / (1.0 + np.exp(k2 * (t[i] - eos)))
        shape = rise + fall - 1.0
        drise = rise * (1.0 - rise)
        dfall = fall * (1.0 - fall)
        f[i] = vmin + amp * shape
        jac[i, 0] = 1.0 - shape
        jac[i, 1] = shape
        jac[i, 2] = -amp * k1 * drise
        jac[i, 3] = amp * (t[i] - sos) * drise
        jac[i, 4] = amp * k2 * dfall
        jac[i, 5] = -amp * (t[i] - eos) * dfall


@njit(**_JIT)
def _solve(a, b, x):
    """Solve the 6 x 6 system ``a x = b`` by Gaussian elimination with partial pivoting
    (``a`` and ``b`` are overwritten). Returns False when singular."""
    n = b.size
    for c in range(n):
        piv = c
        for r in range(c + 1, n):
            if abs(a[r, c]) > abs(a[piv, c]):
                piv = r
        if not abs(a[piv, c]) > 0.0:
            return False
        if piv != c:
            for k in range(n):
                a[c, k], a[piv, k] = a[piv, k], a[c, k]
            b[c], b[piv] = b[piv], b[c]
        for r in range(c + 1, n):
            factor = a[r, c] / a[c, c]
            for k in range(c, n):
                a[r, k] -= factor * a[c, k]
            b[r] -= factor * b[c]
    for c in range(n - 1, -1, -1):
        s = b[c]
        for k in range(c + 1, n):
            s -= a[c, k] * x[k]
        x[c] = s / a[c, c]
    return True


@njit(**_JIT)
def _normal(t, y, w, p, s2, mu, prec, jac, f, h, g):
    """Gauss-Newton Hessian ``h`` and gradient ``g`` of the MAP cost at ``p``; returns the
    cost."""
    _model(t, p, jac, f)
    cost = 0.0
    for k in range(_NP):
        g[k] = -prec[k] * (p[k] - mu[k])
        cost += prec[k] * (p[k] - mu[k]) ** 2
        for m in range(_NP):
            h[k, m] = 0.0
        h[k, k] = prec[k]
    for i in range(t.size):
        r = y[i] - f[i]
        wi = w[i] / s2
        cost += wi * r * r
        for k in range(_NP):
            jk = wi * jac[i, k]
            g[k] += jk * r
            for m in range(k, _NP):
                h[k, m] += jk * jac[i, m]
    for k in range(_NP):
        for m in range(k):
            h[k, m] = h[m, k]
    return cost


@njit(**_JIT)
def fit_rows(y, w, t, p0, lo, hi, mu, prec, s2, iterations, params, var, sse):
    """Fit every row (see the module docstring). ``y``, ``w``, ``t`` (rows, time);
    ``p0``, ``lo``, ``hi``, ``mu``, ``prec`` (rows, 6); ``s2`` (rows,). Writes the fitted
    parameters into ``params`` (rows, 6) (``p0`` clipped to the bounds where a row has fewer
    than 6 usable observations) and the posterior covariance entries of :data:`COVARIANCE`
    into ``var`` (rows, 6) (NaN where there is no fit) and the weighted sum of squared
    residuals (index units^2) into ``sse`` (rows,). Stops early when a step lowers the cost
    by less than :data:`TOLERANCE` relative to it."""
    nrow, nt = y.shape
    ts = np.empty(nt)
    ys = np.empty(nt)
    ws = np.empty(nt)
    jac = np.empty((nt, _NP))
    f = np.empty(nt)
    jac2 = np.empty((nt, _NP))
    f2 = np.empty(nt)
    h2 = np.empty((_NP, _NP))
    g2 = np.empty(_NP)
    h = np.empty((_NP, _NP))
    a = np.empty((_NP, _NP))
    g = np.empty(_NP)
    b = np.empty(_NP)
    delta = np.empty(_NP)
    trial = np.empty(_NP)
    p = np.empty(_NP)
    for r in range(nrow):
        m = 0
        for i in range(nt):
            if w[r, i] > 0.0 and np.isfinite(y[r, i]) and np.isfinite(t[r, i]):
                ts[m], ys[m], ws[m] = t[r, i], y[r, i], w[r, i]
                m += 1
        for k in range(_NP):
            p[k] = min(max(p0[r, k], lo[r, k]), hi[r, k])
        for k in range(_NCOV):
            var[r, k] = np.nan
        sse[r] = np.nan
        if m < _NP or not s2[r] > 0.0:
            params[r] = p
            continue
        tv, yv, wv = ts[:m], ys[:m], ws[:m]
        jv, fv, jv2, fv2 = jac[:m], f[:m], jac2[:m], f2[:m]
        cost = _normal(tv, yv, wv, p, s2[r], mu[r], prec[r], jv, fv, h, g)
        damping = 1e-2
        for _ in range(iterations):
            for k in range(_NP):
                for q in range(_NP):
                    a[k, q] = h[k, q]
                a[k, k] = h[k, k] * (1.0 + damping) + 1e-12
                b[k] = g[k]
            if not _solve(a, b, delta):
                damping = min(damping * 4.0, 1e7)
                continue
            for k in range(_NP):
                trial[k] = min(max(p[k] + delta[k], lo[r, k]), hi[r, k])
            # the trial's cost with its Hessian and gradient, kept if the step is taken
            new_cost = _normal(tv, yv, wv, trial, s2[r], mu[r], prec[r], jv2, fv2, h2, g2)
            if new_cost < cost:
                gain = cost - new_cost
                cost = new_cost
                p, trial = trial, p
                jv, jv2 = jv2, jv
                fv, fv2 = fv2, fv
                h, h2 = h2, h
                g, g2 = g2, g
                damping = max(damping / 3.0, 1e-7)
                if gain <= TOLERANCE * (1.0 + cost):
                    break
            else:
                damping = min(damping * 4.0, 1e7)
                if damping >= 1e7:
                    break
        params[r] = p
        sse[r] = 0.0
        for i in range(m):
            sse[r] += wv[i] * (yv[i] - fv[i]) ** 2
        # posterior covariance: columns sos, k1, eos, k2 of the Hessian's inverse
        for col in (2, 3, 4, 5):
            for k in range(_NP):
                for q in range(_NP):
                    a[k, q] = h[k, q]
                b[k] = 1.0 if k == col else 0.0
            if not _solve(a, b, delta):
                continue
            if col == 2:
                var[r, 0], var[r, 1] = delta[2], delta[3]
            elif col == 3:
                var[r, 2] = delta[3]
            elif col == 4:
                var[r, 3], var[r, 4] = delta[4], delta[5]
            else:
                var[r, 5] = delta[5]


def fit(
    values: np.ndarray,
    weights: np.ndarray,
    days: np.ndarray,
    initial: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    prior_mean: np.ndarray | None = None,
    prior_precision: np.ndarray | None = None,
    noise_var: np.ndarray | float = 1.0,
    iterations: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit one double logistic per row (module docstring): ``values``, ``weights``, ``days``
    (rows, time) in index units, 0-1 and float days; ``initial``, ``lower``, ``upper``,
    ``prior_mean``, ``prior_precision`` (rows, 6) (default: no prior); ``noise_var`` (rows,)
    or a scalar, the residual variance of the index. Returns the parameters (rows, 6), the
    posterior covariance entries of :data:`COVARIANCE` (rows, 6; days^2, days^2/day, ...)
    and the weighted sum of squared residuals (rows,; NaN where there is no fit)."""
    y = np.ascontiguousarray(values, dtype=float)
    nrow = y.shape[0]
    w = np.ascontiguousarray(np.broadcast_to(weights, y.shape), dtype=float)
    t = np.ascontiguousarray(np.broadcast_to(days, y.shape), dtype=float)

    def rows6(a, fill):
        a = np.full((nrow, _NP), fill) if a is None else a
        return np.ascontiguousarray(np.broadcast_to(a, (nrow, _NP)), dtype=float)

    mu = rows6(prior_mean, 0.0)
    prec = rows6(prior_precision, 0.0)
    s2 = np.ascontiguousarray(np.broadcast_to(noise_var, (nrow,)), dtype=float)
    params = np.empty((nrow, _NP))
    var = np.empty((nrow, _NCOV))
    sse = np.empty(nrow)
    fit_rows(
        y,
        w,
        t,
        rows6(initial, 0.0),
        rows6(lower, -np.inf),
        rows6(upper, np.inf),
        mu,
        prec,
        s2,
        int(iterations),
        params,
        var,
        sse,
    )
    return params, var, sse


def date_sd(
    params: np.ndarray, cov: np.ndarray, up_fraction: float, down_fraction: float
) -> np.ndarray:
    """Posterior s.d. (days) of the days a fitted double logistic crosses ``up_fraction`` of
    its rise and ``down_fraction`` of its fall (rows, 2), by the delta method from
    :func:`fit`'s ``params`` and ``cov``: the rise reaches f at sos - ln(1/f - 1) / k1 and the
    fall at eos + ln(1/f - 1) / k2 (a long season's dates; 0.5 gives the inflection days,
    which are also the days of fastest change)."""
    out = np.empty((params.shape[0], 2))
    # (fraction, rate parameter, var of the day, cov day-rate, var of the rate) per date
    for j, (f, rate, v_day, c, v_rate) in enumerate(
        ((up_fraction, 3, 0, 1, 2), (down_fraction, 5, 3, 4, 5))
    ):
        a = np.log(1.0 / f - 1.0) / params[:, rate] ** 2 * (1.0 if j == 0 else -1.0)
        var = cov[:, v_day] + 2 * a * cov[:, c] + a * a * cov[:, v_rate]
        out[:, j] = np.sqrt(np.where(var > 0, var, np.nan))
    return out


@njit(**_JIT)
def curves(params, grid):
    """The double logistics of ``params`` (rows, 6) on the days ``grid`` (n,): (rows, n)."""
    out = np.empty((params.shape[0], grid.size))
    for r in range(params.shape[0]):
        vmin, vmax, sos, k1, eos, k2 = params[r]
        for j in range(grid.size):
            rise = 1.0 / (1.0 + np.exp(-k1 * (grid[j] - sos)))  # as in _model
            fall = 1.0 / (1.0 + np.exp(k2 * (grid[j] - eos)))
            out[r, j] = vmin + (vmax - vmin) * (rise + fall - 1.0)
    return out
