"""A disturbance test that holds with one year of history: confirmed drops below the same
time of the previous year(s) (issue #15).

The season-trend model of :mod:`fluxscape.products.breaks` needs several stable years: fitted
on one, its harmonics follow that year's noise and phenology, and a monitored year whose
spring comes a week later looks broken (46 % of the undisturbed pixels of a test world). This
test asks less of the history. For each monitoring observation, the *reference* is the median
of the history observations within ``window`` days of the same day of the year (any history
year); the *residual* is the observation minus its reference. The history's own residuals
(each history observation against the others near its day of the year) give a robust noise
scale ``sigma`` (1.4826 x the median absolute residual, at least ``sd_floor``). An observation
*drops* when its residual is below ``-max(k * sigma, min_magnitude)``. A break is the first
drop that the next ``confirm`` usable observations confirm (they drop too), so a single
cloudy or shadowed composite that QA missed is not a break; it began after the last usable
observation that did not drop and by the first that did (the onset is dated midway by
:func:`fluxscape.products.disturbance.detect_disturbance`), and it was detected at the last
confirming one. The magnitude is the median
residual from the onset to the end of monitoring, as in the season-trend monitor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DropResult:
    """Per-pixel outcome of :func:`monitor_drops` (trailing shape ``...`` of the input):
    ``has_break`` (bool), ``onset_index`` / ``detection_index`` (time index, -1 where none),
    ``magnitude`` (median residual from the onset, y units, NaN where none), ``sigma`` (the
    history's robust residual scale, y units) and ``n_obs`` (usable history observations)."""

    has_break: np.ndarray
    onset_index: np.ndarray
    detection_index: np.ndarray
    magnitude: np.ndarray
    sigma: np.ndarray
    n_obs: np.ndarray


def _circular_days(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in days between days of the year ``a`` and ``b`` around the year's end."""
    d = np.abs(a - b) % 365.25
    return np.minimum(d, 365.25 - d)


def _reference(values, doy, use, target_doy, window: float, exclude=None) -> np.ndarray:
    """Median of ``values`` (n, P) where ``use`` within ``window`` days of the year of
    ``target_doy`` (P); NaN where none. ``exclude`` (n, P) bool leaves observations out."""
    near = use & (_circular_days(doy, target_doy[None]) <= window)
    if exclude is not None:
        near &= ~exclude
    picked = np.where(near, values, np.nan)
    with np.errstate(all="ignore"):
        counts = near.sum(axis=0)
        out = np.full(target_doy.shape, np.nan)
        has = counts > 0
        if has.any():
            out[has] = np.nanmedian(picked[:, has], axis=0)
    return out


def monitor_drops(
    y: np.ndarray,
    t: np.ndarray,
    doy: np.ndarray,
    valid: np.ndarray,
    history: tuple[float, float],
    monitor: tuple[float, float],
    *,
    window: float = 24.0,
    k: float = 3.0,
    min_magnitude: float = 0.05,
    confirm: int = 2,
    sd_floor: float = 0.02,
) -> DropResult:
    """Confirmed drops (see the module docstring) in ``y`` (time, ...) observed at decimal
    years ``t`` and days of the year ``doy`` (same shape), ``valid`` marking usable
    observations; ``history`` / ``monitor``: [start, end) in decimal years."""
    shape = y.shape[1:]
    n = y.shape[0]
    y2 = y.reshape(n, -1).astype(float)
    t2 = np.broadcast_to(t, y.shape).reshape(n, -1)
    d2 = np.broadcast_to(doy, y.shape).reshape(n, -1).astype(float)
    v2 = np.broadcast_to(valid, y.shape).reshape(n, -1) & np.isfinite(y2) & np.isfinite(d2)
    in_hist = v2 & (t2 >= history[0]) & (t2 < history[1])
    in_mon = v2 & (t2 >= monitor[0]) & (t2 < monitor[1])
    hist_idx = np.flatnonzero(in_hist.any(axis=1))
    mon_idx = np.flatnonzero(in_mon.any(axis=1))
    n_pix = y2.shape[1]

    hy, hd, hu = y2[hist_idx], d2[hist_idx], in_hist[hist_idx]
    resid_h = np.full(hy.shape, np.nan)
    for j in range(len(hist_idx)):
        own = np.zeros(hy.shape, bool)
        own[j] = True
        ref = _reference(hy, hd, hu, hd[j], window, exclude=own)
        resid_h[j] = np.where(hu[j], hy[j] - ref, np.nan)
    with np.errstate(all="ignore"):
        mad = np.nanmedian(np.abs(resid_h), axis=0) if len(hist_idx) else np.full(n_pix, np.nan)
    sigma = np.maximum(np.nan_to_num(1.4826 * mad, nan=sd_floor), sd_floor)
    threshold = np.maximum(k * sigma, min_magnitude)

    resid = np.full((len(mon_idx), n_pix), np.nan)
    for i, ti in enumerate(mon_idx):
        ref = _reference(hy, hd, hu, d2[ti], window)
        resid[i] = np.where(in_mon[ti], y2[ti] - ref, np.nan)
    usable = np.isfinite(resid)
    drop = usable & (resid < -threshold[None])

    # the rank of each usable observation among the pixel's usable ones, to find the next
    # `confirm` usable observations after a drop whatever gaps lie between them
    rank = np.cumsum(usable, axis=0) - 1
    n_usable = usable.sum(axis=0)
    onset = np.full(n_pix, -1)
    detection = np.full(n_pix, -1)
    for i in range(len(mon_idx)):
        candidate = drop[i] & (onset < 0) & (rank[i] + confirm < n_usable)
        if not candidate.any():
            continue
        confirmed = candidate.copy()
        last = np.full(n_pix, -1)
        for step in range(1, confirm + 1):
            target = rank[i] + step
            at = usable & (rank == target[None]) & drop
            hit = at[i + 1 :].any(axis=0) if i + 1 < len(mon_idx) else np.zeros(n_pix, bool)
            confirmed &= hit
            pos = np.argmax(at[i + 1 :], axis=0) + i + 1 if i + 1 < len(mon_idx) else last
            last = np.where(hit, pos, last)
        onset = np.where(confirmed, i, onset)
        detection = np.where(confirmed, last, detection)

    has = onset >= 0
    after = np.arange(len(mon_idx))[:, None] >= np.where(has, onset, len(mon_idx))[None]
    magnitude = np.full(n_pix, np.nan)
    if has.any():
        with np.errstate(all="ignore"):
            picked = np.where(after & usable, resid, np.nan)[:, has]
            magnitude[has] = np.nanmedian(picked, axis=0)
    to_time = np.append(mon_idx, -1)
    return DropResult(
        has_break=has.reshape(shape),
        onset_index=np.where(has, to_time[onset], -1).reshape(shape),
        detection_index=np.where(has, to_time[detection], -1).reshape(shape),
        magnitude=magnitude.reshape(shape),
        sigma=sigma.reshape(shape),
        n_obs=in_hist.sum(axis=0).reshape(shape),
    )
