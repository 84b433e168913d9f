"""Land-surface phenology (LSP) from vegetation-index time series, as pure array functions.

Three steps, the same for every option: the smoothing of ``method="whittaker"`` and every
season division and date run in the compiled per-pixel kernels of
:mod:`fluxscape.products.kernels`; ``"savgol"`` smooths in numpy
(:mod:`fluxscape.products.smoothing`) and ``"double_logistic"`` fits in the compiled kernels of
:mod:`fluxscape.products.dlfit`, a block of pixels at a time. A block-vectorised numpy
implementation of the same definitions is kept in the tests as the reference the kernels are
checked against (tests/phenology_oracle.py, tests/test_kernels.py):

1. **Smooth** the irregular, QA-weighted observations onto a regular day grid
   (:mod:`fluxscape.products.smoothing`): ``"whittaker"`` (this function's default),
   ``"savgol"``, or ``"double_logistic"`` (the workflow's default: a rough Whittaker fit
   divides the seasons, then one double logistic is fitted per season at the observation
   days, as phenofit's rough-fit / fine-fit scheme, Kong et al. 2022; fitted again with the
   rates and levels of the pixel's other years as priors, :func:`fit_season_curves`, which
   also gives each date's standard deviation, ``sos_sd``/``eos_sd``).
2. **Divide seasons**: the local extrema of the smoothed series are simplified by removing the
   peak-trough pair with the smallest difference until every remaining rise and fall exceeds
   ``max(min_amplitude, min_relative_amplitude * series range)`` and neighbouring peaks are at
   least ``min_peak_separation`` days apart (the amplitude rule of MCD12Q2 C6, Gray et al.
   2019 ATBD, and TIMESAT's season parameter, Jönsson & Eklundh 2004). A season is a
   trough-peak-trough triple; it belongs to the calendar year of its peak; at most
   ``seasons`` per year are kept (the largest amplitudes), numbered by peak date.
3. **Extract** per season (MCD12Q2 definitions): ``greenup``/``midgreenup``/``maturity`` are
   the first days the curve reaches 15/50/90 % of the rising amplitude (peak minus left
   trough) after the left trough; ``senescence``/``midgreendown``/``dormancy`` the last days
   it is at or above 90/50/15 % of the falling amplitude (peak minus right trough) before the
   right trough. Dates are linearly interpolated between grid nodes.

Conventions of the outputs (per year and season):

- Dates are **day of year** relative to 1 January of the season's ``year`` (1.0 = 1 January
  00:00, fractional); a season may start before 1 January (values < 1) or end after
  31 December (values > 365/366). NaN where there is no such season.
- ``sos``/``eos``: by default (``sos_method="amplitude"``, fractions 0.5) the
  ``midgreenup``/``midgreendown`` dates, i.e. the inflection points of a double logistic.
  ``sos_fraction``/``eos_fraction`` choose other fractions of the rising/falling amplitude
  (e.g. 0.15 = ``greenup``/``dormancy``); ``sos_method="derivative"`` gives the days of the
  maximum rate of increase / decrease instead (TIMESAT / phenofit "DER").
- ``pos`` day of the maximum, ``peak`` the smoothed value there; ``amplitude`` = peak minus
  the base level, the mean of the two troughs (TIMESAT); ``los`` = eos - sos (days);
  ``integral`` = sum over days from sos to eos of (smoothed value - base) (index x day,
  TIMESAT's small integral); ``n_obs`` = usable observations (weight > 0, i.e. good or
  marginal QA by default) from greenup to dormancy.

Inputs follow :mod:`fluxscape.products.smoothing`: values, weights, and observation days as
float days since 1 January of the first year (day 0 = 1 January 00:00).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.products import smoothing


def _lazy(name: str):
    """Module ``name``, executed on first attribute access (``importlib.util.LazyLoader``):
    the numba kernels are needed where tiles are computed, not in a driver that only plans
    the product from this module's tables (numba's import is over a second)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


dlfit = _lazy("fluxscape.products.dlfit")
kernels = _lazy("fluxscape.products.kernels")

Method = Literal["whittaker", "savgol", "double_logistic"]
METHODS: tuple[str, ...] = ("whittaker", "savgol", "double_logistic")

#: MCD12Q2 transition dates: name -> (fraction of the segment amplitude, rising?).
TRANSITIONS: dict[str, tuple[float, bool]] = {
    "greenup": (0.15, True),
    "midgreenup": (0.50, True),
    "maturity": (0.90, True),
    "senescence": (0.90, False),
    "midgreendown": (0.50, False),
    "dormancy": (0.15, False),
}
#: Per-date uncertainty (``method="double_logistic"``; NaN for the other methods).
UNCERTAINTY = ("sos_sd", "eos_sd")
VARIABLES = (
    "sos",
    "pos",
    "eos",
    "los",
    "peak",
    "amplitude",
    "integral",
    "n_obs",
    *TRANSITIONS,
    *UNCERTAINTY,
)

ATTRS: dict[str, dict[str, str]] = {
    "sos": {"long_name": "start of season (day of year)", "units": "1"},
    "pos": {"long_name": "day of year of the seasonal maximum", "units": "1"},
    "eos": {"long_name": "end of season (day of year)", "units": "1"},
    "los": {"long_name": "length of season (eos - sos)", "units": "day"},
    "peak": {"long_name": "smoothed index at the seasonal maximum", "units": "1"},
    "amplitude": {"long_name": "seasonal amplitude above the base level", "units": "1"},
    "integral": {
        "long_name": "sum of the daily smoothed index above the base level from sos to eos",
        "units": "day",
    },
    "n_obs": {"long_name": "number of usable observations from greenup to dormancy", "units": "1"},
    "greenup": {
        "long_name": "first day at 15 % of the rising amplitude (day of year)",
        "units": "1",
    },
    "midgreenup": {
        "long_name": "first day at 50 % of the rising amplitude (day of year)",
        "units": "1",
    },
    "maturity": {
        "long_name": "first day at 90 % of the rising amplitude (day of year)",
        "units": "1",
    },
    "senescence": {
        "long_name": "last day at 90 % of the falling amplitude (day of year)",
        "units": "1",
    },
    "midgreendown": {
        "long_name": "last day at 50 % of the falling amplitude (day of year)",
        "units": "1",
    },
    "dormancy": {
        "long_name": "last day at 15 % of the falling amplitude (day of year)",
        "units": "1",
    },
    "sos_sd": {
        "long_name": "standard deviation of the start of season (posterior of the "
        "double-logistic fit)",
        "units": "day",
    },
    "eos_sd": {
        "long_name": "standard deviation of the end of season (posterior of the "
        "double-logistic fit)",
        "units": "day",
    },
}


#: MCD12Q2 ``QA_Detailed`` order: two bits per date, lowest bits first.
QA_DATES = ("greenup", "midgreenup", "maturity", "pos", "senescence", "midgreendown", "dormancy")
#: Most unusable observations between the two usable ones that bracket a date, per QA class:
#: 0 best (none: the neighbouring composites both saw the ground), 1 good, 2 fair; more, or no
#: usable observation on one side, is 3 poor.
QA_MAX_MISSING = (0, 1, 2)
QA_VARIABLES = ("qa_overall", "qa_detailed")
QA_ATTRS: dict[str, dict] = {
    "qa_overall": {
        "long_name": "overall quality of the season's dates (worst of qa_detailed)",
        "units": "1",
        "flag_values": [0, 1, 2, 3],
        "flag_meanings": "best good fair poor",
    },
    "qa_detailed": {
        "long_name": "quality of each date, 2 bits each from bit 0: greenup, midgreenup, "
        "maturity, peak, senescence, midgreendown, dormancy (0 best 1 good 2 fair 3 poor: "
        "0, 1, 2 or more unusable observations between the usable ones around the date)",
        "units": "1",
    },
}


def date_quality(
    dates: np.ndarray,
    days: np.ndarray,
    weights: np.ndarray,
    max_missing: Sequence[int] = QA_MAX_MISSING,
) -> np.ndarray:
    """Quality class of estimated dates from the observations around them.

    ``dates`` (..., k) in the same float days as ``days`` (..., time), the observation days;
    ``weights`` (..., time) > 0 marks usable observations. The class is the first ``i`` for
    which at most ``max_missing[i]`` unusable observations (clouds, snow) lie between the last
    usable observation at or before the date and the first one at or after it; else
    ``len(max_missing)``, also when no usable observation lies on one side. Counting
    observations rather than days makes the classes mean the same for 8-day, 16-day or daily
    series. Returns uint8 (..., k); 255 where the date is NaN. Runs
    :func:`fluxscape.products.kernels.date_quality`."""
    dates = np.asarray(dates, float)
    days = np.asarray(days, float)
    usable = (np.asarray(weights, float) > 0) & np.isfinite(days)
    lead = days.shape[:-1]
    flat = kernels.date_quality(
        dates.reshape(-1, dates.shape[-1]),
        days.reshape(-1, days.shape[-1]),
        usable.reshape(-1, days.shape[-1]),
        max_missing,
    )
    return flat.reshape(*lead, dates.shape[-1])


def season_quality(
    res: Mapping[str, np.ndarray],
    days: np.ndarray,
    weights: np.ndarray,
    jan1: Sequence[float],
) -> dict[str, np.ndarray]:
    """MCD12Q2-style ``qa_detailed`` (uint16, 2 bits per date of :data:`QA_DATES`) and
    ``qa_overall`` (uint8, the worst date's class) per year and season.

    ``res``: :func:`phenology_metrics` output ((..., year, season) dates in day of year),
    ``days``/``weights`` its inputs (..., time), ``jan1`` the float day of 1 January of each
    year in the same day count. Fill: 255 / 65535 where the season does not exist."""
    offset = np.asarray(jan1, float)[:, None] - 1.0  # day of year -> day count, per year
    stacked = np.stack([np.asarray(res[n], float) + offset for n in QA_DATES], axis=-1)
    shape = stacked.shape  # (..., year, season, 7)
    flat = stacked.reshape(*days.shape[:-1], -1)
    cls = date_quality(flat, days, weights).reshape(shape)
    missing = (cls == 255).all(axis=-1)
    cls = np.where(cls == 255, 3, cls).astype(np.uint16)
    detailed = np.zeros(shape[:-1], np.uint16)
    for i in range(len(QA_DATES)):
        detailed |= cls[..., i] << np.uint16(2 * i)
    return {
        "qa_overall": np.where(missing, 255, cls.max(axis=-1)).astype(np.uint8),
        "qa_detailed": np.where(missing, 65535, detailed).astype(np.uint16),
    }


# --- double-logistic fit ----------------------------------------------------------------------

#: The rising and falling transitions of :data:`TRANSITIONS`, in their order.
RISING = tuple(k for k, (_, rising) in TRANSITIONS.items() if rising)
FALLING = tuple(k for k, (_, rising) in TRANSITIONS.items() if not rising)


#: Prior standard deviations of the second fit (:func:`fit_season_curves`) around the
#: median of the same pixel's and season number's first fits in the other years: rates
#: (relative), base and peak levels (index units). Dates get no prior.
PRIOR_RATE_SD = 0.2
PRIOR_VMIN_SD = 0.03
PRIOR_VMAX_SD = 0.05
#: A fit is kept when its residual r.m.s. is at most twice the rough curve's (which follows
#: the noise more closely), or at most this (index units).
ACCEPT_RMS = 0.04
#: Most pixels fitted together by ``method="double_logistic"``: its per-season arrays (a
#: dozen (season, time or grid) float64 arrays) stay near 40 MiB.
FIT_BLOCK_SIZE = 2048
#: Largest date s.d. reported (days): beyond it the date is unknown within its season.
MAX_DATE_SD = 100.0
#: Smallest residual s.d. (index units) a season's fit is credited with.
MIN_NOISE_SD = 0.005


def _pooled(
    values: np.ndarray, group: np.ndarray, year: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the median of ``values`` (rows, k) over the accepted rows (``ok``) of its
    ``group`` (one row per group and ``year``), and how many accepted rows the group has."""
    uniq, inv = np.unique(group, return_inverse=True)
    if not uniq.size:
        return np.zeros(values.shape), np.zeros(len(values), np.int64)
    table = np.full((uniq.size, int(year.max()) + 1, values.shape[1]), np.nan)
    table[inv[ok], year[ok]] = values[ok]
    count = np.isfinite(table[..., 0]).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups: no prior
        med = np.nanmedian(table, axis=1)
    return med[inv], count[inv]


def fit_season_curves(
    rough: np.ndarray,
    grid: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    t: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    dates: Mapping[str, np.ndarray],
    peak: np.ndarray,
    amplitude: np.ndarray,
    iterations: int,
    group: np.ndarray | None = None,
    year: np.ndarray | None = None,
    fractions: tuple[float, float] = (0.5, 0.5),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One curve per season (season, n) for ``method="double_logistic"``: a double logistic
    fitted to the observations ``y``, ``w``, ``t`` (season, time: the rows of each season's
    pixel, at their actual days with their QA weights) between the season's troughs ``left``
    and ``right`` (grid indices) of its rough curve ``rough`` (season, n), started from the
    rough curve's transition ``dates`` (:data:`TRANSITIONS` as fractional grid indices),
    ``peak`` and ``amplitude`` (NaN where the rough season is not valid).

    Two fits (:mod:`fluxscape.products.dlfit`): each season alone, then again with Gaussian
    priors on its rates and levels around the medians of the first fits of the seasons of its
    ``group`` (the same pixel and season number in the other years, ``year`` the row's year
    index; :data:`PRIOR_RATE_SD`, ...) and its residual variance set to theirs: a season's
    shape varies less from year to year than its few observations on the rise or the fall
    can tell, so the years lend each
    other their shape and each keeps its own dates. Where the fit fails (fewer than 6
    observations, no amplitude, or a residual r.m.s. above twice the rough curve's and
    :data:`ACCEPT_RMS`) the row is the rough curve. Returns the curves (season, n), the s.d.
    (days) of the sos and eos dates (season, 2: the days the curve crosses ``fractions`` of
    its rise and fall; the posterior s.d. of the fit by :func:`fluxscape.products.dlfit.date_sd`,
    or where the row is the rough curve the residual s.d. over the curve's slope at the
    rough 50 % dates: one observation's worth of information) and the residual s.d. of the
    observations around the row's curve (season,)."""
    step = grid[1] - grid[0]
    t0, t1 = grid[left], grid[right]
    inside = (t >= t0[:, None]) & (t <= t1[:, None])
    ws = np.where(inside, w, 0.0)
    ts = np.where(np.isfinite(t), t, grid[0])  # weight 0 there: any day will do
    day = {k: grid[0] + step * dates[k] for k in TRANSITIONS}
    # 15 % -> 90 % of a logistic takes ln(0.85 / 0.15) + ln(0.9 / 0.1) = 3.93 / k days.
    width_up = np.clip(day["maturity"] - day["greenup"], 5.0, 300.0)
    width_dn = np.clip(day["dormancy"] - day["senescence"], 5.0, 300.0)
    vmin = np.minimum(rough[np.arange(left.size), left], rough[np.arange(left.size), right])
    p0 = np.stack(
        [vmin, peak, day["midgreenup"], 3.93 / width_up, day["midgreendown"], 3.93 / width_dn],
        axis=1,
    )
    p0 = np.where(
        np.isfinite(p0), p0, np.stack([vmin, vmin, t0, t0 * 0 + 0.1, t1, t0 * 0 + 0.1], 1)
    )
    lower = np.stack([vmin - 1, vmin - 1, t0 - 30, t0 * 0 + 0.01, t0, t0 * 0 + 0.01], axis=1)
    upper = np.stack([vmin + 1, vmin + 2, t1, t0 * 0 + 1.0, t1 + 30, t0 * 0 + 1.0], axis=1)
    yy = np.where(ws > 0, y, 0.0)
    n_used = (ws > 0).sum(axis=1)
    j0 = np.clip(np.floor((ts - grid[0]) / step), 0, grid.size - 2).astype(np.int64)
    frac = np.clip((ts - grid[0]) / step - j0, 0, 1)
    sse_rough = np.sum(ws * (yy - smoothing._at_observations(rough, j0, frac)) ** 2, axis=1)

    def accepted(params: np.ndarray, sse_fit: np.ndarray) -> np.ndarray:
        return (
            (n_used >= 6)
            & np.all(np.isfinite(params), axis=1)
            & np.isfinite(sse_fit)
            & (params[:, 1] - params[:, 0] > 0.25 * amplitude)
            & (sse_fit <= np.maximum(4.0 * sse_rough, ACCEPT_RMS**2 * n_used))
        )

    params, _, sse = dlfit.fit(yy, ws, ts, p0, lower, upper, iterations=iterations)
    ok = accepted(params, sse)
    noise = np.maximum(np.nan_to_num(sse) / np.maximum(n_used - 6, 1), MIN_NOISE_SD**2)
    if group is not None:
        # shape of the other years: medians of the first fits (vmin, vmax, k1, k2, noise)
        stats = np.column_stack([params[:, [0, 1, 3, 5]], noise])
        med, count = _pooled(stats, group, year, ok)
        has = count >= 2
        mu = np.zeros_like(params)
        prec = np.zeros_like(params)
        mu[:, [0, 1, 3, 5]] = np.where(has[:, None], med[:, :4], 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec[:, 0] = np.where(has, PRIOR_VMIN_SD**-2, 0.0)
            prec[:, 1] = np.where(has, PRIOR_VMAX_SD**-2, 0.0)
            prec[:, 3] = np.where(has, (PRIOR_RATE_SD * med[:, 2]) ** -2, 0.0)
            prec[:, 5] = np.where(has, (PRIOR_RATE_SD * med[:, 3]) ** -2, 0.0)
        prec = np.where(np.isfinite(prec), prec, 0.0)
        noise = np.where(has, np.maximum(med[:, 4], MIN_NOISE_SD**2), noise)
        start = np.where(ok[:, None], params, p0)
        params, var, sse = dlfit.fit(
            yy,
            ws,
            ts,
            start,
            lower,
            upper,
            prior_mean=mu,
            prior_precision=prec,
            noise_var=noise,
            iterations=iterations,
        )
    else:
        _, var, _ = dlfit.fit(yy, ws, ts, params, lower, upper, noise_var=noise, iterations=0)
    ok = accepted(params, sse)
    curves = dlfit.curves(np.ascontiguousarray(params), np.asarray(grid, float))
    # the rough curve's rows: residual s.d. over its slope at its 50 % dates
    rough_sd = np.sqrt(sse_rough / np.maximum(n_used - 1, 1))
    slope = np.stack(
        [np.abs(_slope_at(rough, dates[k])) / step for k in ("midgreenup", "midgreendown")], 1
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        fallback = rough_sd[:, None] / slope
    sd = np.where(ok[:, None], dlfit.date_sd(params, var, *fractions), fallback)
    sd = np.where(np.isfinite(sd), np.minimum(sd, MAX_DATE_SD), np.nan)
    resid_sd = np.where(ok, np.sqrt(sse / np.maximum(n_used - 6, 1)), rough_sd)
    return np.where(ok[:, None], curves, rough), sd, resid_sd


def _slope_at(curve: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Per row, the change of ``curve`` (rows, n) per grid step around fractional grid index
    ``at`` (rows,); NaN where ``at`` is NaN."""
    n = curve.shape[1]
    j = np.clip(np.floor(np.where(np.isfinite(at), at, 0)), 0, n - 2).astype(np.int64)
    rows = np.arange(curve.shape[0])
    out = curve[rows, j + 1] - curve[rows, j]
    return np.where(np.isfinite(at), out, np.nan)


def _double_logistic_block(
    y: np.ndarray,
    w: np.ndarray,
    t: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    seasons: int,
    smooth: Mapping[str, Any],
    rules: Mapping[str, Any],
    iterations: int,
) -> np.ndarray:
    """:func:`phenology_metrics` with ``method="double_logistic"`` of one block of series
    (pixel, time) with usable weights (0 elsewhere): a rough Whittaker curve divides the
    seasons, a double logistic is fitted per season and each season is measured on its own
    curve. Returns the kernels' array (pixel, year, season, variable) followed by
    :data:`UNCERTAINTY` (s.d. of the sos and eos dates, days)."""
    if rules["sos_method"] == "derivative":  # a double logistic changes fastest at 50 %
        fractions = (0.5, 0.5)
    else:
        fractions = (rules["up_fractions"][-1], rules["down_fractions"][-1])
    rough = kernels.whittaker(y, w, t, grid, **smooth)
    first_pass = dict(rules, sos_method="amplitude")
    first_pass["up_fractions"] = [*first_pass["up_fractions"][:-1], 0.5]
    first_pass["down_fractions"] = [*first_pass["down_fractions"][:-1], 0.5]
    bounds, res = kernels.season_bounds(rough, grid, jan1, seasons=seasons, **first_pass)
    pix, yi, si = np.nonzero(bounds[..., 0] >= 0)
    left, right = bounds[pix, yi, si, 0], bounds[pix, yi, si, 1]
    res = res[pix, yi, si]
    nu = len(RISING) + 1
    dates = {k: res[:, 4 + i] for i, k in enumerate(RISING)}
    dates |= {k: res[:, 4 + nu + i] for i, k in enumerate(FALLING)}
    curves, sd, _ = fit_season_curves(
        rough[pix],
        grid,
        y[pix],
        w[pix],
        t[pix],
        left,
        right,
        dates,
        res[:, 1],
        res[:, 2],
        iterations,
        group=pix * seasons + si,
        year=yi,
        fractions=fractions,
    )
    metrics = kernels.bounded_metrics(curves, left, right, yi, w[pix], t[pix], grid, jan1, **rules)
    n_out = metrics.shape[-1] + len(UNCERTAINTY)
    out = np.full((y.shape[0], len(jan1) - 1, seasons, n_out), np.nan, np.float32)
    out[pix, yi, si] = np.concatenate([metrics, sd.astype(np.float32)], axis=1)
    return out


#: Upper-envelope iterations of each method by default (``envelope_iterations=None``): one for
#: ``"whittaker"`` (a second one moved sos / eos further from the truth on the sample worlds
#: of bench/phenology.py and bench/phenology_skill.py and costs a quarter of the method's
#: time, issue #18), two for the others (their rough or smoothed curves).
ENVELOPE_ITERATIONS: dict[str, int] = {
    "whittaker": 1,
    "savgol": smoothing.DEFAULT_ENVELOPE_ITERATIONS,
    "double_logistic": smoothing.DEFAULT_ENVELOPE_ITERATIONS,
}


def _resolve(
    method: str,
    years: Sequence[int],
    *,
    seasons: int,
    sos_method: str,
    sos_fraction: float,
    eos_fraction: float,
    lam: float,
    envelope_iterations: int | None,
    envelope_scale: float,
    min_amplitude: float,
    min_relative_amplitude: float,
    min_peak_separation: float,
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """Checked options of :func:`phenology_metrics`: the season rules and Whittaker settings
    of the kernels, and ``jan1`` (day numbers of 1 January of each year and the next)."""
    if method not in METHODS:
        raise ValueError(
            f"method: expected 'whittaker', 'savgol' or 'double_logistic', got {method!r}"
        )
    if sos_method not in ("amplitude", "derivative"):
        raise ValueError(f"sos_method: expected 'amplitude' or 'derivative', got {sos_method!r}")
    if seasons < 1:
        raise ValueError(f"seasons: expected >= 1, got {seasons}")
    rules = {
        "up_fractions": [*(TRANSITIONS[k][0] for k in RISING), sos_fraction],
        "down_fractions": [*(TRANSITIONS[k][0] for k in FALLING), eos_fraction],
        "windows": (
            RISING.index("greenup"),
            RISING.index("maturity"),
            FALLING.index("senescence"),
            FALLING.index("dormancy"),
        ),
        "sos_method": sos_method,
        "min_amplitude": min_amplitude,
        "min_relative_amplitude": min_relative_amplitude,
        "min_peak_separation": min_peak_separation,
    }
    if envelope_iterations is None:
        envelope_iterations = ENVELOPE_ITERATIONS[method]
    whittaker = {
        "lam": lam,
        "envelope_iterations": int(envelope_iterations),
        "envelope_scale": envelope_scale,
    }
    years = [int(y) for y in years]
    jan1 = np.array(
        [
            (pd.Timestamp(y, 1, 1) - pd.Timestamp(years[0], 1, 1)).days
            for y in [*years, years[-1] + 1]
        ],
        dtype=float,
    )
    return rules, whittaker, jan1


# --- numpy entry point ---------------------------------------------------------------------------


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
    lam: float = smoothing.DEFAULT_LAMBDA,
    envelope_iterations: int | None = None,
    envelope_scale: float = smoothing.DEFAULT_ENVELOPE_SCALE,
    savgol_window: float = 41.0,
    savgol_polyorder: int = 2,
    fit_iterations: int = 10,
    min_amplitude: float = 0.1,
    min_relative_amplitude: float = 0.15,
    min_peak_separation: float = 60.0,
    min_observations: int = 6,
    block_size: int = 8192,
) -> dict[str, np.ndarray]:
    """Phenology metrics of many series: numpy in, numpy out (see the module docstring for the
    definitions and conventions).

    ``values``, ``weights`` (0..1; see :func:`fluxscape.products.smoothing.qa_weights`) and
    ``days`` (float days since 1 January of ``years[0]``) are (..., time). Returns a dict of
    float32 arrays (..., year, season) for :data:`VARIABLES`; dates in day of year of their
    ``year``. Series with fewer than ``min_observations`` usable observations give NaN.

    Smoothing: ``method`` with its parameters (``lam`` in day^3 and the envelope settings of
    :func:`~fluxscape.products.kernels.whittaker`, which also makes the rough curve of
    ``"double_logistic"``; ``envelope_iterations`` None = the method's default,
    :data:`ENVELOPE_ITERATIONS`; ``savgol_window`` in days and ``savgol_polyorder``;
    ``fit_iterations`` of the double-logistic fit), on a grid of ``step`` days from
    ``grid_start`` to ``grid_stop`` (default: the years' first and last days, widened to every
    observation). Dates are interpolated between grid nodes, so they are not rounded to
    ``step``; for 16-day composites an 8-day grid moves sos/eos by less than half a day
    against a daily one (tests/test_phenology.py) for a third of the cost.

    Seasons: a rise or fall smaller than ``max(min_amplitude, min_relative_amplitude x the
    series range)`` (index units) does not separate seasons; peaks closer than
    ``min_peak_separation`` days merge; at most ``seasons`` per year.

    Season division and dates run in the compiled kernels of
    :mod:`fluxscape.products.kernels`; with ``"whittaker"`` the smoothing too, in the same
    pass, a few pixels at a time, so the working memory does not grow with the number of
    pixels. ``"savgol"`` and ``"double_logistic"`` smooth (and fit) ``block_size`` pixels at a
    time (at most :data:`FIT_BLOCK_SIZE` for the fit), which bounds their memory.
    """
    rules, whittaker, jan1 = _resolve(
        method,
        years,
        seasons=seasons,
        sos_method=sos_method,
        sos_fraction=sos_fraction,
        eos_fraction=eos_fraction,
        lam=lam,
        envelope_iterations=envelope_iterations,
        envelope_scale=envelope_scale,
        min_amplitude=min_amplitude,
        min_relative_amplitude=min_relative_amplitude,
        min_peak_separation=min_peak_separation,
    )
    years = [int(y) for y in years]
    values = np.asarray(values)
    shape = values.shape[:-1]
    nt = values.shape[-1]
    # One C-ordered float64 copy each at most (inputs often arrive as transposed views).
    y = np.ascontiguousarray(values, dtype=float).reshape(-1, nt)
    w = _pixel_rows(weights, values.shape)
    t = _pixel_rows(days, values.shape)
    ny = len(years)
    usable = None  # (pixel, time) temporaries only where needed
    if grid_start is None or grid_stop is None:
        usable = np.isfinite(y) & np.isfinite(t) & np.isfinite(w) & (w > 0)
        t_used = t[usable]
        t_lo = float(t_used.min()) if t_used.size else jan1[0]
        t_hi = float(t_used.max()) if t_used.size else jan1[-1] - 1
    start = np.floor(min(jan1[0], t_lo)) if grid_start is None else float(grid_start)
    stop = np.ceil(max(jan1[-1] - 1, t_hi)) if grid_stop is None else float(grid_stop)
    grid = start + step * np.arange(int(np.ceil((stop - start) / step)) + 1)
    names = [*kernels.FIXED_OUTPUTS, *RISING, *FALLING, *UNCERTAINTY]
    if method == "whittaker":
        # One pass over all pixels: the kernel holds only a few pixels' series at a time.
        res = kernels.phenology_rows(
            y,
            w,
            t,
            grid,
            jan1,
            **whittaker,
            **rules,
            seasons=seasons,
            min_observations=min_observations,
        )
        res = np.concatenate(
            [res, np.full(res.shape[:-1] + (len(UNCERTAINTY),), np.nan, res.dtype)], axis=-1
        )
    else:
        if usable is None:
            usable = np.isfinite(y) & np.isfinite(t) & np.isfinite(w) & (w > 0)
        res = np.full((y.shape[0], ny, seasons, len(names)), np.nan, dtype=np.float32)
        good = np.flatnonzero(usable.sum(axis=1) >= min_observations)
        size = min(block_size, FIT_BLOCK_SIZE) if method == "double_logistic" else block_size
        for b0 in range(0, good.size, size):
            rows = good[b0 : b0 + size]
            w_rows = np.where(usable[rows], w[rows], 0.0)
            if method == "savgol":
                z = smoothing.savgol(
                    y[rows],
                    w_rows,
                    t[rows],
                    grid,
                    window=savgol_window,
                    polyorder=savgol_polyorder,
                    envelope_iterations=whittaker["envelope_iterations"],
                    envelope_scale=envelope_scale,
                )
                block = kernels.season_metrics(
                    z, w_rows, t[rows], grid, jan1, seasons=seasons, **rules
                )
                block = np.concatenate(
                    [block, np.full(block.shape[:-1] + (len(UNCERTAINTY),), np.nan, block.dtype)],
                    axis=-1,
                )
            else:
                block = _double_logistic_block(
                    y[rows],
                    w_rows,
                    t[rows],
                    grid,
                    jan1,
                    seasons,
                    whittaker,
                    rules,
                    fit_iterations,
                )
            res[rows] = block
    return {name: res[..., i].reshape(shape + (ny, seasons)) for i, name in enumerate(names)}


def _pixel_rows(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` broadcast to ``shape`` (..., time) as a C-ordered float64 (pixel, time) array,
    copied once at most."""
    a = np.asarray(a)
    if a.shape == tuple(shape):
        return np.ascontiguousarray(a, dtype=float).reshape(-1, shape[-1])
    return np.ascontiguousarray(np.broadcast_to(a.astype(float, copy=False), shape)).reshape(
        -1, shape[-1]
    )


#: Options of :func:`phenology_metrics` with their defaults (the fused path resolves them the
#: same way).
_METRIC_DEFAULTS = {
    k: p.default
    for k, p in inspect.signature(phenology_metrics).parameters.items()
    if p.default is not inspect.Parameter.empty
}


def _qa_table(qa_weights: Mapping[int, float] | None) -> np.ndarray:
    """The weight of each QA code 0..255 (:func:`fluxscape.products.smoothing.qa_weights`)."""
    return smoothing.qa_weights(np.arange(256, dtype=np.uint8), mapping=qa_weights)


def _fused(
    method: str,
    ndvi: xr.DataArray,
    qa,
    doy,
    options: Mapping[str, Any],
    qa_weights: Mapping[int, float] | None = None,
) -> bool:
    """Whether :func:`phenology` takes the one-pass kernel
    (:func:`fluxscape.products.kernels.phenology_tile`): ``method="whittaker"`` on the ``vi``
    store's types (float32 index; QA codes as uint8, or as integers or floats, NaN = missing,
    as a masked uint8 store variable decodes, while some code 0..255 has weight 0 to stand for
    the others and no code outside 0..255 has a weight; float32 or integer day of year;
    ``qa``/``doy`` may be None) and a given grid."""
    unknown = set(options) - set(_METRIC_DEFAULTS)
    if unknown:
        raise TypeError(f"phenology: unexpected options {sorted(unknown)}")
    qa_ok = qa is None or qa.dtype == np.uint8
    if not qa_ok and qa.dtype.kind in "iuf":
        mapping = smoothing.DEFAULT_QA_WEIGHTS if qa_weights is None else qa_weights
        qa_ok = bool((_qa_table(qa_weights) == 0).any()) and all(
            0 <= code <= 255 for code, weight in mapping.items() if weight != 0
        )
    return (
        method == "whittaker"
        and ndvi.dtype == np.float32
        and qa_ok
        and (doy is None or doy.dtype == np.float32 or doy.dtype.kind in "iu")
        and options.get("grid_start") is not None
        and options.get("grid_stop") is not None
    )


def _qa_codes(qa: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 QA codes of ``qa`` (any integer or float type) with the weights of
    :func:`fluxscape.products.smoothing.qa_weights`: a code is the value truncated to an
    integer; NaN and codes outside 0..255 (weight 0 there) become a code of weight 0."""
    if qa.dtype == np.uint8:
        return qa
    zero = int(np.flatnonzero(table == 0)[0])
    if qa.dtype.kind == "f":
        qa = np.where(np.isfinite(qa), np.clip(qa, -1.0, 256.0), -1.0)
    codes = qa.astype(np.int64)
    return np.where((codes >= 0) & (codes <= 255), codes, zero).astype(np.uint8)


def _fused_product(
    ndvi: xr.DataArray,
    qa: xr.DataArray | None,
    doy: xr.DataArray | None,
    years: list[int],
    seasons: int,
    qa_weights: Mapping[int, float] | None,
    options: Mapping[str, Any],
    output: dict[str, Any],
) -> xr.DataArray:
    """The stacked (..., variable, year, season) output of :func:`phenology` for
    ``method="whittaker"`` from one compiled pass per block
    (:func:`fluxscape.products.kernels.phenology_tile`): the same observation days, QA
    weights, metrics and quality layers as the general path, without its (pixel, time)
    float64 copies."""
    opts = {**_METRIC_DEFAULTS, **options}
    rules, whittaker, jan1 = _resolve(
        "whittaker",
        years,
        seasons=seasons,
        **{
            k: opts[k]
            for k in (
                "sos_method",
                "sos_fraction",
                "eos_fraction",
                "lam",
                "envelope_iterations",
                "envelope_scale",
                "min_amplitude",
                "min_relative_amplitude",
                "min_peak_separation",
            )
        },
    )
    start, stop, step = float(opts["grid_start"]), float(opts["grid_stop"]), float(opts["step"])
    grid = start + step * np.arange(int(np.ceil((stop - start) / step)) + 1)
    starts = pd.DatetimeIndex(ndvi["time"].values)
    reference = pd.Timestamp(years[0], 1, 1)
    half = (
        0.5 * float(np.median(np.diff(starts.values).astype("timedelta64[D]").astype(float)))
        if len(starts) > 1
        else 0.0
    )
    tinfo = np.zeros((4, len(starts)))
    tinfo[0] = (starts - reference).days
    tinfo[1] = starts.day_of_year
    tinfo[2] = np.where(starts.is_leap_year, 366.0, 365.0)
    tinfo[3, 0] = half
    if qa is None:
        table = np.zeros(256)
        table[0] = 1.0
        qa = xr.zeros_like(ndvi, dtype=np.uint8)
    else:
        table = _qa_table(qa_weights)
    if doy is None:
        doy = xr.full_like(ndvi, np.nan, dtype=np.float32)
    names = (*VARIABLES, *QA_VARIABLES)
    fixed = {
        "planes": len(names),
        "qa_dates": tuple(names.index(n) for n in QA_DATES),
        "qa_planes": tuple(names.index(n) for n in QA_VARIABLES),
        "max_missing": QA_MAX_MISSING,
        "seasons": seasons,
        "min_observations": opts["min_observations"],
        **whittaker,
        **rules,
    }

    def kernel(v, q, d):
        # (..., time) views of (time, ...) blocks: back to time first, a view when contiguous.
        lead, nt = v.shape[:-1], v.shape[-1]

        def rows(a, dtype):
            return np.moveaxis(a, -1, 0).reshape(nt, -1).astype(dtype, copy=False)

        out = kernels.phenology_tile(
            rows(v, np.float32),
            _qa_codes(rows(q, q.dtype), table),
            rows(d, np.float32),
            table,
            tinfo,
            grid,
            jan1,
            **fixed,
        )
        out = out.reshape(out.shape[:3] + lead)
        return np.moveaxis(out, (0, 1, 2), (-3, -2, -1))

    return xr.apply_ufunc(
        kernel, ndvi, qa, doy, input_core_dims=[["time"], ["time"], ["time"]], **output
    )


# --- xarray entry point ----------------------------------------------------------------------


def observation_days(
    time: xr.DataArray, doy: xr.DataArray, reference: str | pd.Timestamp
) -> xr.DataArray:
    """Float days since ``reference`` (a date; day 0 = its 00:00) of each observation.

    ``time`` (time,) holds the composite period starts, ``doy`` (..., time) the day of year of
    each composite's observation (MODIS ``composite_day_of_the_year``, the ``vi.doy``
    variable). A ``doy`` smaller than the period start's day of year by more than half a year
    belongs to the next year (composites that cross 31 December). Where ``doy`` is NaN the
    period's middle is used (half the median spacing of ``time`` after its start)."""
    time = xr.DataArray(time) if not isinstance(time, xr.DataArray) else time
    doy = xr.DataArray(doy) if not isinstance(doy, xr.DataArray) else doy
    starts = pd.DatetimeIndex(time.values)
    ref = pd.Timestamp(reference)
    half = (
        0.5 * float(np.median(np.diff(starts.values).astype("timedelta64[D]").astype(float)))
        if len(starts) > 1
        else 0.0
    )
    # On Variables (broadcast by dimension name, no index alignment: the per-tile fixed cost
    # of aligning the time index several times was most of this function's time).
    start_day = xr.Variable(time.dims, np.asarray((starts - ref).days, dtype=float))
    start_doy = xr.Variable(time.dims, np.asarray(starts.day_of_year, float))
    year_len = xr.Variable(time.dims, np.where(starts.is_leap_year, 366.0, 365.0))
    delta = doy.variable - start_doy
    delta = xr.where(delta < -183, delta + year_len, delta)
    days = start_day + delta.fillna(half)
    coords = {**doy.coords, **time.coords}
    return xr.DataArray(
        days, coords={k: c for k, c in coords.items() if set(c.dims) <= set(days.dims)}
    )


def phenology(
    ndvi: xr.DataArray,
    qa: xr.DataArray | None = None,
    doy: xr.DataArray | None = None,
    *,
    method: Method = "whittaker",
    seasons: int = 2,
    years: Sequence[int] | None = None,
    qa_weights: Mapping[int, float] | None = None,
    **options: Any,
) -> xr.Dataset:
    """The ``phenology`` product: per-year, per-season dates and metrics of a VI series.

    ``ndvi`` (time, y, x): NDVI, or any vegetation index on the same scale (EVI2, ...), NaN
    where missing; ``time`` = composite period starts (datetime64), as in the ``vi`` store.
    ``qa`` (same dims): ``vi.qa`` codes, turned into weights by ``qa_weights`` (default
    :data:`fluxscape.products.smoothing.DEFAULT_QA_WEIGHTS`: good 1, marginal 0.5, snow and
    cloudy 0); None = all weight 1. ``doy`` (same dims): ``vi.doy``, the actual day of year of
    each observation; None = period middles. ``years``: the years to report (default: every
    year in ``time``). ``options`` go to :func:`phenology_metrics` (``sos_method``,
    ``sos_fraction``, ``step``, ``lam``, ``min_amplitude``, ...).

    Returns a Dataset with :data:`VARIABLES` on dims (year, season, y, x) (season = 1, 2, ...
    numbered by peak date within the year), float32, NaN where there is no season; dates are
    days of year of their ``year`` (see the module docstring). Works lazily on Dask arrays
    chunked in space (``time`` must be one chunk): it is one ``xarray.apply_ufunc`` with
    ``dask="parallelized"``. With ``method="whittaker"`` on the ``vi`` store's types (float32
    index, uint8 ``qa`` or None, float32 or integer ``doy`` or None) each block is one compiled
    pass from these variables to the output (:func:`fluxscape.products.kernels.phenology_tile`:
    observation days, weights, smoothing, dates and quality layers, no (pixel, time) float64
    copies); other types take the general path, with the same results.
    """
    starts = pd.DatetimeIndex(ndvi["time"].values)
    years = sorted(set(starts.year)) if years is None else [int(y) for y in years]
    reference = pd.Timestamp(years[0], 1, 1)
    jan1_next = (pd.Timestamp(years[-1] + 1, 1, 1) - reference).days
    first_start = float((starts[0] - reference).days)
    options.setdefault("grid_start", min(0.0, first_start))
    options.setdefault(
        "grid_stop", max(jan1_next - 1.0, float((starts[-1] - reference).days) + 32.0)
    )
    names = (*VARIABLES, *QA_VARIABLES)
    output = {
        "output_core_dims": [["variable", "year", "season"]],
        "dask": "parallelized",
        "output_dtypes": [np.float32],
        "dask_gufunc_kwargs": {
            "output_sizes": {"variable": len(names), "year": len(years), "season": seasons}
        },
    }
    if _fused(method, ndvi, qa, doy, options, qa_weights):
        stacked = _fused_product(ndvi, qa, doy, years, seasons, qa_weights, options, output)
    else:
        if doy is None:
            doy = xr.full_like(ndvi, np.nan, dtype=float)
        days = observation_days(ndvi["time"], doy, reference)
        if qa is None:
            weights = xr.ones_like(ndvi, dtype=float)
        else:
            weights = xr.apply_ufunc(
                smoothing.qa_weights,
                qa,
                kwargs={"mapping": qa_weights},
                dask="parallelized",
                output_dtypes=[float],
            )
        jan1 = [float((pd.Timestamp(y, 1, 1) - reference).days) for y in years]

        def kernel(v, w, d):
            # apply_ufunc hands (..., time) transposed views: copy weights and days once,
            # C-ordered, for both phenology_metrics and season_quality.
            w = np.ascontiguousarray(w, dtype=float)
            d = np.ascontiguousarray(d, dtype=float)
            res = phenology_metrics(v, w, d, years, method=method, seasons=seasons, **options)
            res |= season_quality(res, d, w, jan1)
            # One float32 copy into the output (no per-variable astype then stack).
            first = res[names[0]]
            out = np.empty(first.shape[:-2] + (len(names),) + first.shape[-2:], np.float32)
            for i, name in enumerate(names):
                out[..., i, :, :] = res[name]
            return out

        stacked = xr.apply_ufunc(
            kernel,
            ndvi,
            weights,
            days,
            input_core_dims=[["time"], ["time"], ["time"]],
            **output,
        )
    space = [d for d in ndvi.dims if d != "time"]
    # One transpose, then the variables as views of it (no per-variable alignment).
    data = stacked.transpose("variable", "year", "season", *space).data
    dims = ("year", "season", *space)
    variables = {
        name: xr.Variable(dims, data[i], dict(ATTRS[name])) for i, name in enumerate(VARIABLES)
    }
    for i, name in enumerate(QA_VARIABLES, start=len(VARIABLES)):
        dtype = np.uint8 if name == "qa_overall" else np.uint16
        variables[name] = xr.Variable(dims, data[i].astype(dtype), dict(QA_ATTRS[name]))
    coords = {k: c for k, c in ndvi.coords.items() if "time" not in c.dims}
    coords["year"] = ("year", np.asarray(years, dtype=np.int32))
    coords["season"] = ("season", np.arange(1, seasons + 1, dtype=np.int32))
    ds = xr.Dataset(variables, coords=coords)
    ds["season"].attrs["long_name"] = "season number within the year, by peak date"
    ds["year"].attrs["long_name"] = "calendar year of the seasonal peak"
    if "grid_mapping" in ndvi.attrs:
        for name in (*VARIABLES, *QA_VARIABLES):
            ds[name].attrs["grid_mapping"] = ndvi.attrs["grid_mapping"]
    if options.get("sos_method") == "derivative":
        sos_rule = "days of the maximum rate of increase / decrease"
    else:
        sos_rule = (
            f"first day at {options.get('sos_fraction', 0.5):g} of the rising amplitude / "
            f"last day at {options.get('eos_fraction', 0.5):g} of the falling amplitude"
        )
    ds.attrs["phenology_method"] = method
    ds.attrs["phenology_conventions"] = (
        "dates are days of year of 'year' (1.0 = 1 January 00:00; < 1 or > 365 lie in the "
        f"previous or next year); sos/eos = {sos_rule}; MCD12Q2 thresholds 15/50/90 %"
    )
    return ds
