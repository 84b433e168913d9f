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
Gauss-Newton Hessian ``J^T W J / s2 + diag(prec)`` at the solution; its sos and eos
diagonal entries are returned as the variances (days^2) of the two inflection days.

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


@njit(**_JIT)
def _model(t, p, jac, f):
    """Double logistic ``f`` (m,) and its Jacobian ``jac`` (m, 6) at days ``t`` (m,)."""
    vmin, vmax, sos, k1, eos, k2 = p[0], p[1], p[2], p[3], p[4], p[5]
    amp = vmax - vmin
    for i in range(t.size):
        rise = 0.5 * (1.0 + np.tanh(0.5 * k1 * (t[i] - sos)))
        fall = 0.5 * (1.0 - np.tanh(0.5 * k2 * (t[i] - eos)))
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
def fit_rows(y, w, t, p0, lo, hi, mu, prec, s2, iterations, params, var):
    """Fit every row (see the module docstring). ``y``, ``w``, ``t`` (rows, time);
    ``p0``, ``lo``, ``hi``, ``mu``, ``prec`` (rows, 6); ``s2`` (rows,). Writes the fitted
    parameters into ``params`` (rows, 6) (``p0`` clipped to the bounds where a row has fewer
    than 6 usable observations) and the posterior variances of sos and eos into ``var``
    (rows, 2) (NaN where there is no fit)."""
    nrow, nt = y.shape
    ts = np.empty(nt)
    ys = np.empty(nt)
    ws = np.empty(nt)
    jac = np.empty((nt, _NP))
    f = np.empty(nt)
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
        var[r, 0] = np.nan
        var[r, 1] = np.nan
        if m < _NP or not s2[r] > 0.0:
            params[r] = p
            continue
        tv, yv, wv = ts[:m], ys[:m], ws[:m]
        jv, fv = jac[:m], f[:m]
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
            new_cost = _objective(tv, yv, wv, trial, s2[r], mu[r], prec[r], fv)
            if new_cost < cost:
                for k in range(_NP):
                    p[k] = trial[k]
                cost = _normal(tv, yv, wv, p, s2[r], mu[r], prec[r], jv, fv, h, g)
                damping = max(damping / 3.0, 1e-7)
            else:
                damping = min(damping * 4.0, 1e7)
        params[r] = p
        # posterior variances: the sos and eos columns of the Hessian's inverse
        for col, out in ((2, 0), (4, 1)):
            for k in range(_NP):
                for q in range(_NP):
                    a[k, q] = h[k, q]
                b[k] = 1.0 if k == col else 0.0
            if _solve(a, b, delta):
                var[r, out] = delta[col] if delta[col] > 0.0 else np.nan


@njit(**_JIT)
def _objective(t, y, w, p, s2, mu, prec, f):
    """The MAP cost at ``p`` (``f`` is work space)."""
    vmin, vmax, sos, k1, eos, k2 = p[0], p[1], p[2], p[3], p[4], p[5]
    amp = vmax - vmin
    cost = 0.0
    for k in range(_NP):
        cost += prec[k] * (p[k] - mu[k]) ** 2
    for i in range(t.size):
        rise = 0.5 * (1.0 + np.tanh(0.5 * k1 * (t[i] - sos)))
        fall = 0.5 * (1.0 - np.tanh(0.5 * k2 * (t[i] - eos)))
        r = y[i] - (vmin + amp * (rise + fall - 1.0))
        cost += w[i] * r * r / s2
    return cost


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
    or a scalar, the residual variance of the index. Returns the parameters (rows, 6) and the
    posterior variances (days^2) of sos and eos (rows, 2)."""
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
    var = np.empty((nrow, 2))
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
    )
    return params, var
