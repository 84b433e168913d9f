"""Land-surface phenology (LSP) from vegetation-index time series, as pure array functions.

Three steps, each vectorised over a (pixel, time) matrix (loops only over grid steps, fit
iterations, years and season slots, never over pixels); this numpy code is the reference
(``engine="numpy"``). The default ``engine="numba"`` runs the same Whittaker smoothing,
season division and threshold dates in compiled per-pixel kernels
(:mod:`fluxscape.products.kernels`), equal to float rounding and several times faster:

1. **Smooth** the irregular, QA-weighted observations onto a regular day grid
   (:mod:`fluxscape.products.smoothing`): ``"whittaker"`` (default), ``"savgol"``, or
   ``"double_logistic"`` (a rough Whittaker fit divides the seasons, then one double logistic
   is fitted per season, as phenofit's rough-fit / fine-fit scheme; Kong et al. 2022).
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from fluxscape.products import kernels, smoothing

Method = Literal["whittaker", "savgol", "double_logistic"]
METHODS: tuple[str, ...] = ("whittaker", "savgol", "double_logistic")
Engine = Literal["numba", "numpy"]
ENGINES: tuple[str, ...] = ("numba", "numpy")

#: MCD12Q2 transition dates: name -> (fraction of the segment amplitude, rising?).
TRANSITIONS: dict[str, tuple[float, bool]] = {
    "greenup": (0.15, True),
    "midgreenup": (0.50, True),
    "maturity": (0.90, True),
    "senescence": (0.90, False),
    "midgreendown": (0.50, False),
    "dormancy": (0.15, False),
}
DATE_VARIABLES = ("sos", "pos", "eos", *TRANSITIONS)
VARIABLES = ("sos", "pos", "eos", "los", "peak", "amplitude", "integral", "n_obs", *TRANSITIONS)

ATTRS: dict[str, dict[str, str]] = {
    "sos": {"long_name": "start of season", "units": "day of year"},
    "pos": {"long_name": "day of the seasonal maximum", "units": "day of year"},
    "eos": {"long_name": "end of season", "units": "day of year"},
    "los": {"long_name": "length of season (eos - sos)", "units": "day"},
    "peak": {"long_name": "smoothed index at the seasonal maximum", "units": "1"},
    "amplitude": {"long_name": "seasonal amplitude above the base level", "units": "1"},
    "integral": {
        "long_name": "sum of the daily smoothed index above the base level from sos to eos",
        "units": "day",
    },
    "n_obs": {"long_name": "number of usable observations from greenup to dormancy", "units": "1"},
    "greenup": {"long_name": "first day at 15 % of the rising amplitude", "units": "day of year"},
    "midgreenup": {
        "long_name": "first day at 50 % of the rising amplitude",
        "units": "day of year",
    },
    "maturity": {"long_name": "first day at 90 % of the rising amplitude", "units": "day of year"},
    "senescence": {
        "long_name": "last day at 90 % of the falling amplitude",
        "units": "day of year",
    },
    "midgreendown": {
        "long_name": "last day at 50 % of the falling amplitude",
        "units": "day of year",
    },
    "dormancy": {"long_name": "last day at 15 % of the falling amplitude", "units": "day of year"},
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
    engine: Engine = "numba",
) -> np.ndarray:
    """Quality class of estimated dates from the observations around them.

    ``dates`` (..., k) in the same float days as ``days`` (..., time), the observation days;
    ``weights`` (..., time) > 0 marks usable observations. The class is the first ``i`` for
    which at most ``max_missing[i]`` unusable observations (clouds, snow) lie between the last
    usable observation at or before the date and the first one at or after it; else
    ``len(max_missing)``, also when no usable observation lies on one side. Counting
    observations rather than days makes the classes mean the same for 8-day, 16-day or daily
    series. Returns uint8 (..., k); 255 where the date is NaN. ``engine="numba"`` runs
    :func:`fluxscape.products.kernels.date_quality`; ``"numpy"`` this reference (loops over
    ``k`` only)."""
    dates = np.asarray(dates, float)
    days = np.asarray(days, float)
    observed = np.isfinite(days)
    usable = (np.asarray(weights, float) > 0) & observed
    if engine == "numba":
        lead = days.shape[:-1]
        flat = kernels.date_quality(
            dates.reshape(-1, dates.shape[-1]),
            days.reshape(-1, days.shape[-1]),
            usable.reshape(-1, days.shape[-1]),
            max_missing,
        )
        return flat.reshape(*lead, dates.shape[-1])
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


def season_quality(
    res: Mapping[str, np.ndarray],
    days: np.ndarray,
    weights: np.ndarray,
    jan1: Sequence[float],
    engine: Engine = "numba",
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
    cls = date_quality(flat, days, weights, engine=engine).reshape(shape)
    missing = (cls == 255).all(axis=-1)
    cls = np.where(cls == 255, 3, cls).astype(np.uint16)
    detailed = np.zeros(shape[:-1], np.uint16)
    for i in range(len(QA_DATES)):
        detailed |= cls[..., i] << np.uint16(2 * i)
    return {
        "qa_overall": np.where(missing, 255, cls.max(axis=-1)).astype(np.uint8),
        "qa_detailed": np.where(missing, 65535, detailed).astype(np.uint16),
    }


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

    def value(self, pix: np.ndarray, start: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Maximum of the segment that begins at ``start`` over [start, at]."""
        return self.run[pix * self.n + at] - self.lift[pix * self.n + start]

    def first_reach(
        self, pix: np.ndarray, start: np.ndarray, stop: np.ndarray, level: np.ndarray
    ) -> np.ndarray:
        """Fractional index where the running maximum from ``start`` first reaches ``level``
        (``stop`` if it does not before), interpolated linearly between the two nodes around
        the crossing. Arguments broadcast (e.g. (N, 1) seasons against (N, m) levels)."""
        base = pix * self.n
        lo, hi, q = np.broadcast_arrays(base + start, base + stop, level + self.lift[base + start])
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
    top = fwd.value(pix, left, right - 1)
    at = np.rint(fwd.first_reach(pix, left, right - 1, top)).astype(np.int64)
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
        t_up = rise.first_reach(pix, left, at, rise.value(pix, left, at))
        t_dn = fall.first_reach(pix, rl, rev_at, fall.value(pix, rl, rev_at))
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


# --- numpy entry point ---------------------------------------------------------------------------


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
) -> np.ndarray:
    """One curve per season (season, n): a double logistic fitted to the observations of pixel
    ``pix`` between the season's troughs ``left`` and ``right`` (grid indices) of the rough
    series ``z``, started from the rough curve's dates and widths. Where the fit fails (fewer
    than 6 observations, no amplitude, or a worse fit than the rough curve) the row is the
    rough curve."""
    step = grid[1] - grid[0]
    t0, t1 = grid[left], grid[right]
    ts = t[pix]
    inside = (ts >= t0[:, None]) & (ts <= t1[:, None])
    ws = np.where(inside, w[pix], 0.0)
    troughs = np.zeros((pix.size, grid.size), dtype=bool)
    rows = np.arange(pix.size)
    troughs[rows, left] = True
    troughs[rows, right] = True
    rough_rows = z[pix]
    rough = _extract(rough_rows, troughs, rows, left, right, "amplitude", 0.5, 0.5)
    day = {k: grid[0] + step * rough[k] for k in TRANSITIONS}
    # 15 % -> 90 % of a logistic takes ln(0.85 / 0.15) + ln(0.9 / 0.1) = 3.93 / k days.
    width_up = np.clip(day["maturity"] - day["greenup"], 5.0, 300.0)
    width_dn = np.clip(day["dormancy"] - day["senescence"], 5.0, 300.0)
    vmin = np.minimum(z[pix, left], z[pix, right])
    p0 = np.stack(
        [
            vmin,
            rough["peak"],
            day["midgreenup"],
            3.93 / width_up,
            day["midgreendown"],
            3.93 / width_dn,
        ],
        axis=1,
    )
    p0 = np.where(
        np.isfinite(p0), p0, np.stack([vmin, vmin, t0, t0 * 0 + 0.1, t1, t0 * 0 + 0.1], 1)
    )
    lower = np.stack([vmin - 1, vmin - 1, t0 - 30, t0 * 0 + 0.01, t0, t0 * 0 + 0.01], axis=1)
    upper = np.stack([vmin + 1, vmin + 2, t1, t0 * 0 + 1.0, t1 + 30, t0 * 0 + 1.0], axis=1)
    params = smoothing.fit_double_logistic(
        y[pix], ws, ts, p0, lower=lower, upper=upper, iterations=iterations
    )
    curves = smoothing.double_logistic(grid[None, :], *(params[:, i : i + 1] for i in range(6)))
    # Accept a fit that explains the season's observations at least as well as the rough curve.
    j0 = np.clip(np.floor((ts - grid[0]) / step), 0, grid.size - 2).astype(np.int64)
    frac = np.clip((ts - grid[0]) / step - j0, 0, 1)
    rough_at = smoothing._at_observations(rough_rows, j0, frac)
    fit_at = smoothing.double_logistic(ts, *(params[:, i : i + 1] for i in range(6)))
    yy = np.where(ws > 0, y[pix], 0.0)
    sse_rough = np.sum(ws * (yy - rough_at) ** 2, axis=1)
    sse_fit = np.sum(ws * (yy - fit_at) ** 2, axis=1)
    ok = (
        ((ws > 0).sum(axis=1) >= 6)
        & np.all(np.isfinite(params), axis=1)
        & (params[:, 1] - params[:, 0] > 0.25 * rough["amplitude"])
        & (sse_fit <= 1.5 * sse_rough + 1e-4)
    )
    return np.where(ok[:, None], curves, rough_rows)


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
    lam: float = smoothing.DEFAULT_LAMBDA,
    envelope_iterations: int = smoothing.DEFAULT_ENVELOPE_ITERATIONS,
    envelope_scale: float = smoothing.DEFAULT_ENVELOPE_SCALE,
    savgol_window: float = 41.0,
    savgol_polyorder: int = 2,
    fit_iterations: int = 20,
    min_amplitude: float = 0.1,
    min_relative_amplitude: float = 0.15,
    min_peak_separation: float = 60.0,
    min_observations: int = 6,
    block_size: int = 8192,
    engine: Engine = "numba",
) -> dict[str, np.ndarray]:
    """Phenology metrics of many series: numpy in, numpy out (see the module docstring for the
    definitions and conventions).

    ``values``, ``weights`` (0..1; see :func:`fluxscape.products.smoothing.qa_weights`) and
    ``days`` (float days since 1 January of ``years[0]``) are (..., time). Returns a dict of
    float32 arrays (..., year, season) for :data:`VARIABLES`; dates in day of year of their
    ``year``. Series with fewer than ``min_observations`` usable observations give NaN.

    Smoothing: ``method`` with its parameters (``lam`` in day^3 and the envelope settings of
    :func:`~fluxscape.products.smoothing.whittaker`, which also makes the rough curve of
    ``"double_logistic"``; ``savgol_window`` in days and ``savgol_polyorder``;
    ``fit_iterations`` of the double-logistic fit), on a grid of ``step`` days from
    ``grid_start`` to ``grid_stop`` (default: the years' first and last days, widened to every
    observation). Dates are interpolated between grid nodes, so they are not rounded to
    ``step``; for 16-day composites an 8-day grid moves sos/eos by less than half a day
    against a daily one (tests/test_phenology.py) for a third of the cost.

    Seasons: a rise or fall smaller than ``max(min_amplitude, min_relative_amplitude x the
    series range)`` (index units) does not separate seasons; peaks closer than
    ``min_peak_separation`` days merge; at most ``seasons`` per year.

    ``engine``: ``"numba"`` (default) runs the Whittaker smoothing, season division and
    threshold dates (``sos_method="amplitude"``) in the compiled kernels of
    :mod:`fluxscape.products.kernels`, a few pixels at a time, so the working memory does not
    grow with the number of pixels; ``"numpy"`` runs the block-vectorised numpy reference,
    ``block_size`` pixels at a time (which bounds its memory; also used by the numba engine
    with the other smoothers and options). Both give the same results to float rounding
    (tests/test_kernels.py).
    """
    if method not in METHODS:
        raise ValueError(
            f"method: expected 'whittaker', 'savgol' or 'double_logistic', got {method!r}"
        )
    if sos_method not in ("amplitude", "derivative"):
        raise ValueError(f"sos_method: expected 'amplitude' or 'derivative', got {sos_method!r}")
    if seasons < 1:
        raise ValueError(f"seasons: expected >= 1, got {seasons}")
    if engine not in ENGINES:
        raise ValueError(f"engine: expected 'numba' or 'numpy', got {engine!r}")
    if method == "savgol":
        smooth = partial(
            smoothing.savgol,
            window=savgol_window,
            polyorder=savgol_polyorder,
            envelope_iterations=envelope_iterations,
            envelope_scale=envelope_scale,
        )
    else:
        # The double-logistic fit amplifies float-rounding differences of its starting curve
        # into different local optima now and then: it keeps the numpy smoother.
        fast = engine == "numba" and method == "whittaker"
        smooth = partial(
            kernels.whittaker if fast else smoothing.whittaker,
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
    kernel_path = engine == "numba" and sos_method == "amplitude" and method != "double_logistic"
    if kernel_path and method == "whittaker":
        # One pass over all pixels: the kernel holds only a few pixels' series at a time.
        res = _phenology_block_kernels(y, w, t, grid, jan1, smooth, rules, min_observations)
        return {v: a.reshape(shape + (ny, seasons)) for v, a in res.items()}
    if usable is None:
        usable = np.isfinite(y) & np.isfinite(t) & np.isfinite(w) & (w > 0)
    out = {v: np.full((y.shape[0], ny, seasons), np.nan, dtype=np.float32) for v in VARIABLES}
    good = np.flatnonzero(usable.sum(axis=1) >= min_observations)
    for b0 in range(0, good.size, block_size):
        rows = good[b0 : b0 + block_size]
        w_rows = np.where(usable[rows], w[rows], 0.0)
        if kernel_path:
            block = _phenology_block_kernels(y[rows], w_rows, t[rows], grid, jan1, smooth, rules)
        else:
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
        z = _fit_seasons(z, grid, y, w, t, pix, li, ri, rules.fit_iterations)
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


def _phenology_block_kernels(
    y: np.ndarray,
    w: np.ndarray,
    t: np.ndarray,
    grid: np.ndarray,
    jan1: np.ndarray,
    smooth: partial,
    rules: _Rules,
    min_observations: int = 0,
) -> dict[str, np.ndarray]:
    """:func:`_phenology_block` (``sos_method="amplitude"``, no fit) by the numba kernels;
    Whittaker smoothing runs inside the same kernel, which also leaves pixels with fewer than
    ``min_observations`` usable observations at NaN (other smoothers: rows already chosen)."""
    names_up = [k for k, (_, rising) in TRANSITIONS.items() if rising]
    names_dn = [k for k, (_, rising) in TRANSITIONS.items() if not rising]
    settings = {
        "seasons": rules.seasons,
        "up_fractions": [TRANSITIONS[k][0] for k in names_up] + [rules.sos_fraction],
        "down_fractions": [TRANSITIONS[k][0] for k in names_dn] + [rules.eos_fraction],
        "n_obs_window": (names_up.index("greenup"), names_dn.index("dormancy")),
        "min_amplitude": rules.min_amplitude,
        "min_relative_amplitude": rules.min_relative_amplitude,
        "min_peak_separation": rules.min_peak_separation,
    }
    if smooth.func is kernels.whittaker:
        res = kernels.phenology_rows(
            y, w, t, grid, jan1, **smooth.keywords, **settings, min_observations=min_observations
        )
    else:
        res = kernels.season_metrics(smooth(y, w, t, grid), w, t, grid, jan1, **settings)
    names = [*kernels.FIXED_OUTPUTS, *names_up, *names_dn]
    return {name: res[..., i] for i, name in enumerate(names)}


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
    starts = pd.DatetimeIndex(time.values)
    ref = pd.Timestamp(reference)
    start_day = xr.DataArray(
        np.asarray((starts - ref).days, dtype=float), dims=time.dims, coords=time.coords
    )
    start_doy = xr.DataArray(
        np.asarray(starts.day_of_year, float), dims=time.dims, coords=time.coords
    )
    year_len = xr.DataArray(
        np.where(starts.is_leap_year, 366.0, 365.0), dims=time.dims, coords=time.coords
    )
    half = (
        0.5 * float(np.median(np.diff(starts.values).astype("timedelta64[D]").astype(float)))
        if len(starts) > 1
        else 0.0
    )
    delta = doy - start_doy
    delta = xr.where(delta < -183, delta + year_len, delta)
    delta = delta.fillna(half)
    return start_day + delta


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
    ``dask="parallelized"``.
    """
    starts = pd.DatetimeIndex(ndvi["time"].values)
    years = sorted(set(starts.year)) if years is None else [int(y) for y in years]
    reference = pd.Timestamp(years[0], 1, 1)
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
    jan1_next = (pd.Timestamp(years[-1] + 1, 1, 1) - reference).days
    first_start = float((starts[0] - reference).days)
    options.setdefault("grid_start", min(0.0, first_start))
    options.setdefault(
        "grid_stop", max(jan1_next - 1.0, float((starts[-1] - reference).days) + 32.0)
    )

    jan1 = [float((pd.Timestamp(y, 1, 1) - reference).days) for y in years]
    names = (*VARIABLES, *QA_VARIABLES)

    def kernel(v, w, d):
        res = phenology_metrics(v, w, d, years, method=method, seasons=seasons, **options)
        res |= season_quality(res, d, w, jan1, options.get("engine", "numba"))
        return np.stack([res[name].astype(np.float32) for name in names], axis=-3)

    stacked = xr.apply_ufunc(
        kernel,
        ndvi,
        weights,
        days,
        input_core_dims=[["time"], ["time"], ["time"]],
        output_core_dims=[["variable", "year", "season"]],
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={
            "output_sizes": {"variable": len(names), "year": len(years), "season": seasons}
        },
    )
    space = [d for d in ndvi.dims if d != "time"]
    ds = xr.Dataset(
        {
            name: stacked.isel(variable=i)
            .transpose("year", "season", *space)
            .assign_attrs(ATTRS[name])
            for i, name in enumerate(VARIABLES)
        }
    )
    for i, name in enumerate(QA_VARIABLES, start=len(VARIABLES)):
        dtype = np.uint8 if name == "qa_overall" else np.uint16
        ds[name] = (
            stacked.isel(variable=i).transpose("year", "season", *space).astype(dtype)
        ).assign_attrs(QA_ATTRS[name])
    ds = ds.assign_coords(
        year=("year", np.asarray(years, dtype=np.int32)),
        season=("season", np.arange(1, seasons + 1, dtype=np.int32)),
    )
    keep = {k: c for k, c in ndvi.coords.items() if "time" not in c.dims}
    ds = ds.assign_coords(keep)
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
