"""QA-masked statistics along time and standardized anomalies against a baseline climatology.

Pure array functions. Arrays have time first, ``(time, ...)``, with any trailing (spatial)
shape; ``valid`` is a boolean array of the same shape that says which observations to use
(QA-good and finite). Periods of the year ("slots") are integers ``0..n_slots-1``, either one per
time step ``(time,)`` or one per observation ``(time, ...)``.

References: the standardized anomaly (z-score) against a per-period baseline climatology is the
usual drought / disturbance screening statistic, e.g. Mildrexler et al. (2009) for MODIS LST
anomalies and the MODIS NDVI anomaly products; heat-stress flags follow the same z > 2 rule.
"""

from __future__ import annotations

import numpy as np


def period_of_year(doy, period_days: int = 16) -> np.ndarray:
    """Slot index ``(doy - 1) // period_days`` of a day of year (1-366), as int; with the MODIS
    16-day convention (periods start on DOY 1, 17, ..., 353) it is the composite's index 0..22.
    Non-finite ``doy`` gives -1."""
    doy = np.asarray(doy, float)
    out = np.full(doy.shape, -1, dtype=np.int64)
    finite = np.isfinite(doy)
    out[finite] = ((doy[finite] - 1) // period_days).astype(np.int64)
    return out


def masked_median(values, use) -> np.ndarray:
    """Median along axis 0 of ``values`` where ``use`` (bool, same shape); NaN where no value is
    used. Returns the trailing shape; never warns on empty slices."""
    values = np.asarray(values, float)
    use = np.asarray(use, bool) & np.isfinite(values)
    out = np.full(values.shape[1:], np.nan)
    any_used = use.any(axis=0)
    if any_used.any():
        out[any_used] = np.nanmedian(np.where(use, values, np.nan)[:, any_used], axis=0)
    return out


def _masked_extreme(values, use, reduce, empty: float) -> np.ndarray:
    values = np.asarray(values, float)
    use = np.asarray(use, bool) & np.isfinite(values)
    out = reduce(np.where(use, values, empty), axis=0)
    return np.where(use.any(axis=0), out, np.nan)


def masked_min(values, use) -> np.ndarray:
    """Minimum along axis 0 where ``use``; NaN where nothing is used (no warnings)."""
    return _masked_extreme(values, use, np.min, np.inf)


def masked_max(values, use) -> np.ndarray:
    """Maximum along axis 0 where ``use``; NaN where nothing is used (no warnings)."""
    return _masked_extreme(values, use, np.max, -np.inf)


def along_time(a, values: np.ndarray) -> np.ndarray:
    """Broadcast ``a`` (a scalar, one value per time step ``(time,)``, or ``values``' shape) to
    ``values.shape``."""
    a = np.asarray(a)
    if a.ndim == 1 and values.ndim > 1:
        a = a.reshape(-1, *([1] * (values.ndim - 1)))
    return np.broadcast_to(a, values.shape)


def climatology(
    values,
    valid,
    slot,
    baseline,
    n_slots: int,
    *,
    min_count: int = 2,
    sd_floor: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel, per-slot mean and standard deviation over the baseline observations.

    Inputs: ``values`` (time, ...), ``valid`` (bool, same shape), ``slot`` (int, (time,) or the
    values' shape; -1 or >= n_slots ignored), ``baseline`` (bool: scalar, (time,) or the values'
    shape; which observations belong to the baseline years).
    Outputs ``(mean, sd, count)``, each ``(n_slots, ...)``: mean and sample standard deviation
    (ddof 1) in the values' units, and the number of observations used. ``mean`` is NaN where
    fewer than ``min_count`` observations exist; ``sd`` is NaN there too and at least
    ``sd_floor`` elsewhere (a floor keeps z-scores finite where the baseline is nearly constant
    or has only two or three years).
    """
    values = np.asarray(values, float)
    n_time, shape = values.shape[0], values.shape[1:]
    v = values.reshape(n_time, -1)
    n_pix = v.shape[1]
    s = along_time(slot, values).reshape(n_time, -1)
    use = (np.asarray(valid, bool) & along_time(baseline, values).astype(bool)).reshape(n_time, -1)
    use &= np.isfinite(v) & (s >= 0) & (s < n_slots)
    pix = np.broadcast_to(np.arange(n_pix), v.shape)
    flat_index = (s * n_pix + pix)[use]
    size = n_slots * n_pix
    count = np.bincount(flat_index, minlength=size).reshape(n_slots, n_pix)
    total = np.bincount(flat_index, weights=v[use], minlength=size).reshape(n_slots, n_pix)
    enough = count >= max(min_count, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(enough, total / count, np.nan)
    dev = v - np.take_along_axis(mean, np.where(use, s, 0), axis=0)
    ss = np.bincount(flat_index, weights=(dev**2)[use], minlength=size).reshape(n_slots, n_pix)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(ss / (count - 1))
    sd = np.where(enough & (count > 1), np.maximum(sd, sd_floor), np.nan)
    out_shape = (n_slots, *shape)
    return mean.reshape(out_shape), sd.reshape(out_shape), count.reshape(out_shape)


def standardized_anomaly(values, valid, slot, mean, sd) -> np.ndarray:
    """z = (value - mean[slot]) / sd[slot] for each observation.

    ``values``/``valid`` (time, ...), ``slot`` (time,) or (time, ...), ``mean``/``sd``
    (n_slots, ...) from :func:`climatology`. Returns z (time, ...), unitless, NaN where the
    observation is not valid or the slot has no climatology."""
    values = np.asarray(values, float)
    n_slots = np.asarray(mean).shape[0]
    s = along_time(slot, values)
    inside = (s >= 0) & (s < n_slots)
    idx = np.where(inside, s, 0)
    m = np.take_along_axis(np.asarray(mean, float), idx, axis=0)
    d = np.take_along_axis(np.asarray(sd, float), idx, axis=0)
    ok = np.asarray(valid, bool) & inside & np.isfinite(values) & np.isfinite(m) & (d > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, (values - m) / d, np.nan)


def annual_extreme(values, year, years, *, kind: str = "min") -> np.ndarray:
    """Per-year minimum (``kind="min"``) or maximum (``"max"``) of ``values`` (time, ...) over the
    time steps whose ``year`` ((time,) or (time, ...), int) equals each of ``years``.
    Returns (len(years), ...); NaN where a year has no finite value."""
    reduce = {"min": masked_min, "max": masked_max}[kind]
    values = np.asarray(values, float)
    year = along_time(year, values)
    return np.stack([reduce(values, year == y) for y in years])


def in_runs_of_at_least(flags, min_length: int, observed=None) -> np.ndarray:
    """Boolean (time, ...): True where ``flags`` is True within a run of at least ``min_length``
    consecutive flagged observations (e.g. heat waves of >= 3 days). Time steps that are not
    ``observed`` (bool, like ``flags``; default all) are skipped: they neither extend nor break a
    run, so a cloudy day inside a heat wave does not split it. Loops over time only."""
    flags = np.asarray(flags, bool)
    observed = np.ones_like(flags) if observed is None else np.asarray(observed, bool)
    flags = flags & observed
    if min_length <= 1:
        return flags
    n_time = flags.shape[0]
    forward = np.zeros(flags.shape, dtype=np.int32)
    backward = np.zeros(flags.shape, dtype=np.int32)
    previous = np.zeros(flags.shape[1:], dtype=np.int32)
    for i in range(n_time):
        previous = np.where(observed[i], (previous + 1) * flags[i], previous)
        forward[i] = previous
    previous[...] = 0
    for i in range(n_time - 1, -1, -1):
        previous = np.where(observed[i], (previous + 1) * flags[i], previous)
        backward[i] = previous
    return flags & (forward + backward - 1 >= min_length)


def heat_stress(
    lst,
    valid,
    slot,
    baseline,
    n_slots: int,
    *,
    threshold: float = 2.0,
    min_consecutive: int = 1,
    sd_floor: float = 0.5,
    min_count: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Heat-stress flags from land surface temperature anomalies.

    Inputs: ``lst`` (time, ...) in K, ``valid`` (bool), ``slot`` (period of year, see
    :func:`period_of_year`), ``baseline`` (bool, (time,) or like ``lst``): the climatology years.
    Returns ``(z, flag)``: z-score of LST against its per-slot baseline climatology (unitless,
    NaN where undefined) and a boolean flag where z > ``threshold`` within a run of at least
    ``min_consecutive`` consecutive valid observations (missing steps skipped). ``sd_floor``
    (K) bounds the climatological sd from below.
    """
    mean, sd, _ = climatology(
        lst, valid, slot, baseline, n_slots, min_count=min_count, sd_floor=sd_floor
    )
    z = standardized_anomaly(lst, valid, slot, mean, sd)
    observed = np.isfinite(z)
    flag = in_runs_of_at_least(observed & (np.nan_to_num(z) > threshold), min_consecutive, observed)
    return z, flag


def slot_in_year(period_start, period_days: int | None = None) -> np.ndarray:
    """Period of the year of each time step, int (time,), from the periods' first days
    ``period_start`` ((time,) datetime64): with ``period_days`` (8 or 16 for MODIS composites
    restarting on 1 January, 1 for days) the slot is ``(doy - 1) // period_days``, as
    :func:`period_of_year`; without it the calendar month (0 = January)."""
    start = np.asarray(period_start, "datetime64[D]")
    if period_days is None:
        return (start.astype("datetime64[M]").astype(int) % 12).astype(np.int64)
    doy = (start - start.astype("datetime64[Y]").astype("datetime64[D]")).astype(int) + 1
    return period_of_year(doy, period_days)


def period_mean(total, count) -> np.ndarray:
    """Mean of accumulated observations: ``total / count`` (same shapes), NaN where
    ``count`` is 0 (no warnings)."""
    total, count = np.asarray(total, float), np.asarray(count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def annual_heat_summary(flag, z, period_start, period_days, years) -> dict[str, np.ndarray]:
    """Per-year heat-stress summary of a heat-stress time series.

    Inputs: ``flag`` (time, ...) bool heat stress per period and ``z`` (time, ...) its
    standardized LST anomaly (NaN where unobserved), both from :func:`heat_stress`;
    ``period_start`` (time,) datetime64 and ``period_days`` (time,) int length of each
    period in days; ``years`` the calendar years to summarise.
    Returns, each (len(years), ...): ``heat_stress_days`` (days of the flagged periods
    starting in the year; NaN where the year has no finite z), ``lst_zscore_max`` (largest
    z of the year, NaN where none) and ``heat_onset`` (day of year of the first flagged
    period's start, NaN where none)."""
    flag = np.asarray(flag, bool)
    z = np.asarray(z, float)
    start = np.asarray(period_start, "datetime64[D]")
    year_of = start.astype("datetime64[Y]").astype(int) + 1970
    doy = (start - start.astype("datetime64[Y]").astype("datetime64[D]")).astype(float) + 1
    days = along_time(np.asarray(period_days, float), z)
    out = {"heat_stress_days": [], "lst_zscore_max": [], "heat_onset": []}
    nothing = np.full(z.shape[1:], np.nan)
    for y in years:
        sel = year_of == y
        if not sel.any():
            for values in out.values():
                values.append(nothing)
            continue
        f, zz = flag[sel], z[sel]
        observed = np.isfinite(zz).any(axis=0)
        total = np.where(f, days[sel], 0.0).sum(axis=0)
        out["heat_stress_days"].append(np.where(observed, total, np.nan))
        out["lst_zscore_max"].append(masked_max(zz, np.isfinite(zz)))
        onset = doy[sel][np.argmax(f, axis=0)]
        out["heat_onset"].append(np.where(f.any(axis=0), onset, np.nan))
    return {k: np.stack(v) if v else np.empty((0, *z.shape[1:])) for k, v in out.items()}
