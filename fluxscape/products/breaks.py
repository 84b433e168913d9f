"""Break detection in vegetation-index time series in the spirit of BFAST Monitor.

A season-trend model (intercept, optional linear trend, 1-3 harmonics of the year) is fitted by
least squares to a stable history period of each pixel; the residuals of the following
monitoring period are accumulated in a moving sum (OLS-MOSUM) or a cumulative sum (OLS-CUSUM)
of standardized residuals and compared with a boundary; the first crossing is the break.

Pure numpy functions, vectorised over pixels. Time series arrays are ``(time, ...)`` with any
trailing (spatial) shape; ``t`` is the observation time in decimal years (see
:func:`decimal_year`), either shared ``(time,)`` or per observation ``(time, ...)`` (for
composites whose observation day differs per pixel); ``valid`` (bool) marks the observations
to use (QA-good, finite). Every pixel gets its own weights, so pixels with different cloud masks
are solved together through batched normal equations.

References:
- Verbesselt, J., Zeileis, A., Herold, M. (2012) Near real-time disturbance detection using
  satellite image time series. Remote Sens. Environ. 123:98-108 (BFAST Monitor).
- Chu, C.-S. J., Stinchcombe, M., White, H. (1996) Monitoring structural change.
  Econometrica 64:1045-1065 (CUSUM monitoring boundary).
- Leisch, F., Hornik, K., Kuan, C.-M. (2000) Monitoring structural changes with the generalized
  fluctuation test. Econometric Theory 16:835-854; Zeileis, A. et al. (2005) J. Appl.
  Econometrics 20:99-121 (MOSUM monitoring, critical values of R ``strucchange``'s
  ``monitorMECritvalTable`` used by R ``bfast::bfastmonitor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from fluxscape.products.anomaly import masked_median

Process = Literal["mosum", "cusum"]
Direction = Literal["both", "negative", "positive"]

#: OLS-MOSUM monitoring critical values lambda (functional "max") by window h (fraction of the
#: history size), monitoring period ``period`` (end of monitoring / history size) and level
#: alpha, from ``strucchange::monitorMECritvalTable`` (Zeileis et al.; simulated boundary-
#: crossing quantiles). The boundary is lambda * sqrt(2 * logplus(k / n)).
MOSUM_CRITICAL_VALUES: dict[tuple[float, float], dict[int, float]] = {
    (0.25, 0.05): {2: 1.228, 4: 1.336, 6: 1.341, 8: 1.342, 10: 1.342},
    (0.25, 0.025): {2: 1.323, 4: 1.420, 6: 1.424, 8: 1.424, 10: 1.424},
    (0.25, 0.01): {2: 1.433, 4: 1.520, 6: 1.522, 8: 1.522, 10: 1.522},
    (0.5, 0.05): {2: 1.687, 4: 1.886, 6: 1.900, 8: 1.901, 10: 1.902},
    (0.5, 0.025): {2: 1.842, 4: 2.034, 6: 2.043, 8: 2.044, 10: 2.044},
    (0.5, 0.01): {2: 2.031, 4: 2.201, 6: 2.209, 8: 2.209, 10: 2.209},
    (1.0, 0.05): {2: 2.224, 4: 2.704, 6: 2.737, 8: 2.743, 10: 2.746},
    (1.0, 0.025): {2: 2.483, 4: 2.955, 6: 2.977, 8: 2.979, 10: 2.980},
    (1.0, 0.01): {2: 2.800, 4: 3.253, 6: 3.274, 8: 3.275, 10: 3.277},
}


def decimal_year(dates) -> np.ndarray:
    """Calendar year plus the elapsed fraction of it (``2022.0`` = 1 January 2022 00:00) for a
    datetime64 array of any shape; NaN where NaT."""
    dates = np.asarray(dates, dtype="datetime64[s]")
    year = dates.astype("datetime64[Y]")
    start = year.astype("datetime64[s]")
    length = ((year + 1).astype("datetime64[s]") - start).astype(float)
    out = year.astype(float) + 1970.0 + (dates - start).astype(float) / length
    return np.where(np.isnat(dates), np.nan, out)


def harmonic_design(t, *, order: int = 3, trend: bool = True, t_ref: float = 0.0) -> np.ndarray:
    """Design matrix of the season-trend model for times ``t`` (decimal years, any shape).

    Columns, last axis: 1, [t - t_ref], cos(2 pi j t), sin(2 pi j t) for j = 1..order.
    Returns ``t.shape + (p,)`` with p = 1 + trend + 2 order."""
    if not 1 <= order <= 6:
        raise ValueError(f"harmonic order must be 1..6, got {order}")
    t = np.asarray(t, float)
    first = 1 + int(trend)
    out = np.empty(t.shape + (first + 2 * order,))
    out[..., 0] = 1.0
    if trend:
        out[..., 1] = t - t_ref
    cos1, sin1 = np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)
    cos_j, sin_j = cos1, sin1
    for j in range(order):  # angle addition: two trigonometric calls for all harmonics
        if j:
            cos_j, sin_j = cos_j * cos1 - sin_j * sin1, sin_j * cos1 + cos_j * sin1
        out[..., first + 2 * j] = cos_j
        out[..., first + 2 * j + 1] = sin_j
    return out


@dataclass(frozen=True)
class HarmonicFit:
    """Per-pixel least-squares fit of the season-trend model (trailing shape ``...``).

    ``coef`` (..., p): intercept, [trend per year], cos/sin amplitudes (y units);
    ``sigma`` (...): residual standard deviation sqrt(SSR / (n - p)); ``n_obs`` (...): history
    observations used; ``ok`` (...): the fit is defined (enough observations, well conditioned).
    """

    coef: np.ndarray
    sigma: np.ndarray
    n_obs: np.ndarray
    ok: np.ndarray
    order: int
    trend: bool
    t_ref: float

    def predict(self, t) -> np.ndarray:
        """Model values at ``t`` ((time,) or (time, ...)); returns (time, ...), NaN where the
        pixel's fit is not ok."""
        t = np.asarray(t, float)
        design = harmonic_design(t, order=self.order, trend=self.trend, t_ref=self.t_ref)
        coef = np.where(self.ok[..., None], self.coef, 0.0)
        subscripts = "tp,...p->t..." if t.ndim == 1 else "t...p,...p->t..."
        pred = np.einsum(subscripts, design, coef)
        return np.where(self.ok, pred, np.nan)


def _times_2d(t, n_time: int, n_pix: int) -> np.ndarray:
    t = np.asarray(t, float)
    if t.ndim == 1:
        return np.broadcast_to(t[:, None], (n_time, n_pix))
    return t.reshape(n_time, n_pix)


def _solve_fit(
    design: np.ndarray, y: np.ndarray, w: np.ndarray, min_obs: int, max_condition: float
) -> tuple[np.ndarray, ...]:
    """Batched weighted least squares. ``design`` (pixel, time, p), ``y`` and ``w`` (pixel,
    time). Returns coef (pixel, p), sigma, n_obs, ok (pixel,) and the fitted values (pixel,
    time) at every time."""
    p = design.shape[-1]
    weighted = design * w[..., None]
    xtx = np.matmul(weighted.transpose(0, 2, 1), design)
    xty = np.matmul(weighted.transpose(0, 2, 1), np.where(w, y, 0.0)[..., None])[..., 0]
    n_obs = w.sum(axis=1)
    ok = n_obs >= min_obs
    if ok.any():
        eig = np.linalg.eigvalsh(xtx[ok])  # ascending; X'WX is symmetric positive semidefinite
        ok[ok] = eig[:, 0] > eig[:, -1] / max_condition
    xtx[~ok] = np.eye(p)
    xty[~ok] = 0.0
    coef = np.linalg.solve(xtx, xty[..., None])[..., 0]
    fitted = np.matmul(design, coef[..., None])[..., 0]
    resid = np.where(w, y - fitted, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt((resid**2).sum(axis=1) / (n_obs - p))
    ok &= sigma > 0
    return np.where(ok[:, None], coef, np.nan), np.where(ok, sigma, np.nan), n_obs, ok, fitted


def fit_harmonic(
    y,
    t,
    valid,
    *,
    order: int = 3,
    trend: bool = True,
    t_ref: float | None = None,
    min_obs: int | None = None,
    max_condition: float = 1e10,
) -> HarmonicFit:
    """Weighted least-squares fit of the season-trend model to every pixel at once.

    Inputs: ``y`` (time, ...), ``t`` (time,) or (time, ...) decimal years, ``valid`` (bool,
    like ``y``): observations to fit (e.g. the QA-good history). Solves the batched normal
    equations (X' W X) b = X' W y with W the per-pixel 0/1 mask. ``t_ref`` (decimal year)
    centres the trend term (default: the earliest valid time). Pixels with fewer than
    ``min_obs`` observations (default 2 p) or an ill-conditioned X' W X (eigenvalue ratio above
    ``max_condition``) are not ok (NaN coef and sigma).
    """
    y = np.asarray(y, float)
    n_time, shape = y.shape[0], y.shape[1:]
    yf = y.reshape(n_time, -1)
    tf = _times_2d(t, n_time, yf.shape[1])
    w = np.asarray(valid, bool).reshape(n_time, -1) & np.isfinite(yf) & np.isfinite(tf)
    if t_ref is None:
        t_ref = float(np.min(np.where(w, tf, np.inf))) if w.any() else 0.0
    design = harmonic_design(np.where(w, tf, 0.0).T, order=order, trend=trend, t_ref=t_ref)
    p = design.shape[-1]
    min_obs = 2 * p if min_obs is None else max(min_obs, p + 1)
    coef, sigma, n_obs, ok, _ = _solve_fit(design, yf.T, w.T, min_obs, max_condition)
    return HarmonicFit(
        coef=coef.reshape(*shape, p),
        sigma=sigma.reshape(shape),
        n_obs=n_obs.reshape(shape),
        ok=ok.reshape(shape),
        order=order,
        trend=trend,
        t_ref=t_ref,
    )


def mosum_critical_value(h: float = 0.25, alpha: float = 0.05, period: int = 10) -> float:
    """Critical value lambda of the OLS-MOSUM monitoring boundary from the literature table
    (:data:`MOSUM_CRITICAL_VALUES`): ``h`` in {0.25, 0.5, 1}, ``alpha`` in {0.05, 0.025, 0.01},
    ``period`` (monitoring end / history size) in {2, 4, 6, 8, 10}; R ``bfastmonitor``'s
    defaults are h 0.25, alpha 0.05, period (its ``end``) 10, giving 1.342."""
    try:
        return MOSUM_CRITICAL_VALUES[(float(h), float(alpha))][int(period)]
    except KeyError:
        raise ValueError(
            f"no tabulated MOSUM critical value for h={h}, alpha={alpha}, period={period}; "
            f"tabulated (h, alpha): {sorted(MOSUM_CRITICAL_VALUES)}, periods 2, 4, 6, 8, 10 "
            "(or use simulate_mosum_critical_value)"
        ) from None


def cusum_critical_value(alpha: float = 0.05) -> float:
    """Critical value lambda of the OLS-CUSUM monitoring boundary of Chu et al. (1996):
    the root of 2 - 2 (Phi(a) - a phi(a)) = alpha (2.795 for alpha 0.05, 3.368 for 0.01)."""
    from scipy import optimize, stats  # here: scipy.stats takes ~0.5 s to import

    def size(a: float) -> float:
        return 2 - 2 * (stats.norm.cdf(a) - a * stats.norm.pdf(a)) - alpha

    return float(optimize.brentq(size, 0.1, 10.0))


def _logplus(x: np.ndarray) -> np.ndarray:
    return np.where(x <= np.e, 1.0, np.log(np.maximum(x, np.e)))


def monitoring_boundary(k_over_n, critval: float, process: Process = "mosum") -> np.ndarray:
    """Boundary of the monitoring process at observation k (1-based, counted from the start of
    the history) for history size n: MOSUM lambda sqrt(2 logplus(k/n)) (logplus(x) = 1 for
    x <= e, else log x); CUSUM sqrt(x (x - 1) (lambda^2 + log(x / (x - 1)))) with x = k/n > 1."""
    x = np.asarray(k_over_n, float)
    if process == "mosum":
        return critval * np.sqrt(2 * _logplus(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(x * (x - 1) * (critval**2 + np.log(x / (x - 1))))


def simulate_mosum_critical_value(
    n_history: int,
    n_monitor: int,
    *,
    h: float = 0.25,
    alpha: float = 0.05,
    direction: Direction = "both",
    n_sim: int = 4000,
    seed: int = 0,
) -> float:
    """Monte-Carlo critical value of the OLS-MOSUM monitoring test for a finite design.

    Simulates iid N(0, 1) series of ``n_history`` + ``n_monitor`` observations, fits the
    intercept on the history (harmonic regressors with zero mean over whole years do not change
    the limiting process, Chu et al. 1996), and returns the 1 - alpha quantile of
    max_k |MOSUM_k| / sqrt(2 logplus(k/n)) over the monitoring observations (one-sided for
    ``direction`` "negative"/"positive"). For large n and n_monitor = 9 n it reproduces the
    tabulated values (e.g. 1.34 for h 0.25, alpha 0.05); for short designs it is the exact
    level under iid errors and is smaller than the asymptotic table (less conservative).
    """
    rng = np.random.default_rng(seed)
    n = n_history
    window = max(int(np.floor(h * n)), 1)
    e = rng.standard_normal((n_sim, n + n_monitor))
    hist = e[:, :n]
    resid = e - hist.mean(axis=1, keepdims=True)
    sigma = hist.std(axis=1, ddof=1, keepdims=True)
    csum = np.concatenate([np.zeros((n_sim, 1)), np.cumsum(resid, axis=1)], axis=1)
    k = np.arange(n + 1, n + n_monitor + 1)
    proc = (csum[:, k] - csum[:, k - window]) / (sigma * np.sqrt(n))
    shape = np.sqrt(2 * _logplus(k / n))
    signed = {"both": np.abs(proc), "negative": -proc, "positive": proc}[direction]
    return float(np.quantile((signed / shape).max(axis=1), 1 - alpha))


@dataclass(frozen=True)
class MonitorResult:
    """Per-pixel outcome of :func:`monitor_breaks` (trailing shape ``...`` of the input).

    ``has_break`` (bool): the process crossed the boundary in the monitoring period.
    ``onset_index`` / ``detection_index`` (int, -1 where none): time index (into the input's
    first axis) of the estimated break onset and of the boundary crossing (the BFAST Monitor
    break date, which lags the onset while the moving sum accumulates).
    ``onset_time`` / ``detection_time``: the same as decimal years (NaN where none).
    ``magnitude``: median residual from the onset to the end of monitoring (y units, NaN where
    no break); ``sign``: +1 / -1 direction of the crossing (0 where none).
    ``statistic``: max over the monitoring period of |process| / boundary (unitless, > 1 means a
    break; NaN where the fit failed). ``fit``: the history fit (coef, sigma, n_obs, ok).
    """

    has_break: np.ndarray
    onset_index: np.ndarray
    onset_time: np.ndarray
    detection_index: np.ndarray
    detection_time: np.ndarray
    magnitude: np.ndarray
    sign: np.ndarray
    statistic: np.ndarray
    fit: HarmonicFit


def monitor_breaks(
    y,
    t,
    valid,
    history: tuple[float, float],
    monitor: tuple[float, float],
    *,
    order: int = 3,
    trend: bool = True,
    process: Process = "mosum",
    h: float = 0.25,
    alpha: float = 0.05,
    period: int = 10,
    critval: float | None = None,
    direction: Direction = "both",
    min_history_obs: int | None = None,
    block_size: int = 8192,
) -> MonitorResult:
    """BFAST Monitor-style break detection for every pixel at once.

    Inputs: ``y`` (time, ...) e.g. NDVI; ``t`` (time,) or (time, ...) observation times in
    decimal years; ``valid`` (bool, like ``y``); ``history`` and ``monitor``: half-open
    [start, end) intervals in decimal years, the history before the monitoring period.

    Method: the season-trend model (``order`` harmonics, optional ``trend``) is fitted by OLS to
    the valid history observations of each pixel (n of them, residual sd sigma; at least
    ``min_history_obs``, default 2 p). The valid observations are then taken in time order; for
    monitoring observation k (counted from the first history observation) the OLS-MOSUM process
    is the sum of the last floor(h n) residuals / (sigma sqrt(n)) (the window reaches back into
    the history at first), the OLS-CUSUM process the sum of monitoring residuals up to k /
    (sigma sqrt(n)). A break is the first k where the process crosses
    :func:`monitoring_boundary` (``direction``: both signs, or only drops / rises). ``critval``
    defaults to the tabulated value for (h, alpha, period) (:func:`mosum_critical_value`) or
    :func:`cusum_critical_value` (alpha).

    Dating: because the moving sum needs several post-break residuals to cross, the crossing
    lags the change; the onset is estimated as the start j (not before monitoring, not more than
    the window before the crossing k) that maximises the signed mean-shift likelihood ratio
    sum(r_j..r_k) / sqrt(k - j + 1) of a shift from the model (pre-break mean 0).
    Magnitude: the median residual from the onset to the end of monitoring (BFAST Monitor's
    magnitude is the median over the whole monitoring period).

    Pixels are processed in blocks of ``block_size`` to bound memory (the design matrix is
    pixels x time x p).
    """
    if history[1] > monitor[0]:
        raise ValueError(f"history {history} must end before monitoring {monitor} starts")
    if critval is None:
        critval = (
            mosum_critical_value(h, alpha, period)
            if process == "mosum"
            else cusum_critical_value(alpha)
        )
    y = np.asarray(y, float)
    n_time, shape = y.shape[0], y.shape[1:]
    yf = y.reshape(n_time, -1)
    n_pix = yf.shape[1]
    tf = _times_2d(t, n_time, n_pix)
    ok_obs = np.asarray(valid, bool).reshape(n_time, -1) & np.isfinite(yf) & np.isfinite(tf)
    p = harmonic_design(0.0, order=order, trend=trend).shape[-1]
    settings = {
        "history": history,
        "monitor": monitor,
        "order": order,
        "trend": trend,
        "process": process,
        "h": h,
        "critval": critval,
        "direction": direction,
        "min_obs": 2 * p if min_history_obs is None else max(min_history_obs, p + 1),
    }
    blocks = [
        _monitor_block(
            yf[:, i : i + block_size],
            tf[:, i : i + block_size],
            ok_obs[:, i : i + block_size],
            **settings,
        )
        for i in range(0, max(n_pix, 1), block_size)
    ]
    out = {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}
    return MonitorResult(
        has_break=out["has_break"].reshape(shape),
        onset_index=out["onset_index"].reshape(shape),
        onset_time=out["onset_time"].reshape(shape),
        detection_index=out["detection_index"].reshape(shape),
        detection_time=out["detection_time"].reshape(shape),
        magnitude=out["magnitude"].reshape(shape),
        sign=out["sign"].reshape(shape),
        statistic=out["statistic"].reshape(shape),
        fit=HarmonicFit(
            coef=out["coef"].reshape(*shape, p),
            sigma=out["sigma"].reshape(shape),
            n_obs=out["n_obs"].reshape(shape),
            ok=out["ok"].reshape(shape),
            order=order,
            trend=trend,
            t_ref=history[0],
        ),
    )


def _monitor_block(
    y: np.ndarray,
    t: np.ndarray,
    ok_obs: np.ndarray,
    *,
    history: tuple[float, float],
    monitor: tuple[float, float],
    order: int,
    trend: bool,
    process: Process,
    h: float,
    critval: float,
    direction: Direction,
    min_obs: int,
) -> dict[str, np.ndarray]:
    """:func:`monitor_breaks` on (time, pixel) arrays; returns flat per-pixel arrays."""
    n_time, n_pix = y.shape
    in_hist = ok_obs & (t >= history[0]) & (t < history[1])
    in_mon = ok_obs & (t >= monitor[0]) & (t < monitor[1])
    use = in_hist | in_mon
    design = harmonic_design(
        np.where(use, t, history[0]).T, order=order, trend=trend, t_ref=history[0]
    )
    coef, sigma, n, ok, fitted = _solve_fit(design, y.T, in_hist.T, min_obs, 1e10)
    m = in_mon.sum(axis=0)
    window = np.floor(h * n).astype(np.int64)
    if process == "mosum":
        ok = ok & (window >= 2)

    # Compact each pixel's usable observations in time order: history first, then monitoring.
    order_idx = np.argsort(np.where(use, t, np.inf), axis=0, kind="stable")
    r = np.take_along_axis(np.where(use & ok, y - fitted.T, 0.0), order_idx, axis=0)
    csum = np.concatenate([np.zeros((1, n_pix)), np.cumsum(r, axis=0)])
    pos = np.arange(n_time)[:, None]
    monitoring = (pos >= n) & (pos < n + m) & ok
    scale = np.where(ok, sigma * np.sqrt(np.maximum(n, 1)), np.inf)
    if process == "mosum":
        start = np.take_along_axis(csum, np.clip(pos + 1 - window, 0, None), axis=0)
    else:
        start = np.take_along_axis(csum, n[None], axis=0)
    proc = (csum[1:] - start) / scale
    bound = monitoring_boundary((pos + 1) / np.maximum(n, 1), critval, process)
    signed = {"both": np.abs(proc), "negative": -proc, "positive": proc}[direction]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(monitoring, signed / bound, -np.inf)
    crossed = ratio > 1
    has_break = crossed.any(axis=0)
    detect = np.where(has_break, np.argmax(crossed, axis=0), 0)
    sign = np.where(has_break, np.sign(np.take_along_axis(proc, detect[None], 0)[0]), 0)
    statistic = np.where(monitoring.any(axis=0), ratio.max(axis=0), np.nan)

    onset = _onset(csum, detect, n, window if process == "mosum" else detect - n + 1, sign)
    onset = np.where(has_break, onset, 0)
    magnitude = masked_median(r, (pos >= onset) & (pos < n + m) & has_break)

    def time_index(compact: np.ndarray) -> np.ndarray:
        return np.where(has_break, np.take_along_axis(order_idx, compact[None], 0)[0], -1)

    def time_at(index: np.ndarray) -> np.ndarray:
        value = np.take_along_axis(t, np.maximum(index, 0)[None], 0)[0]
        return np.where(index >= 0, value, np.nan)

    onset_index, detection_index = time_index(onset), time_index(detect)
    return {
        "has_break": has_break,
        "onset_index": onset_index,
        "onset_time": time_at(onset_index),
        "detection_index": detection_index,
        "detection_time": time_at(detection_index),
        "magnitude": magnitude,
        "sign": sign.astype(np.int8),
        "statistic": statistic,
        "coef": coef,
        "sigma": sigma,
        "n_obs": n,
        "ok": ok,
    }


def _onset(csum, detect, n, span, sign) -> np.ndarray:
    """Compact index j in [max(n, detect - span + 1), detect] maximising
    sign * sum(r_j..r_detect) / sqrt(detect - j + 1)."""
    span = np.clip(span, 1, None)
    offsets = np.arange(max(int(span.max()), 1))[:, None]
    start = detect[None] - offsets
    allowed = (offsets < span[None]) & (start >= n[None])
    total = np.take_along_axis(csum, detect[None] + 1, 0) - np.take_along_axis(
        csum, np.clip(start, 0, None), 0
    )
    score = np.where(allowed, sign * total / np.sqrt(offsets + 1), -np.inf)
    return detect - np.argmax(score, axis=0)
