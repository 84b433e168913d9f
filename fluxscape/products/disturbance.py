"""The ``disturbance`` product: vegetation breaks, NDVI anomalies, burn severity, MCD64A1.

xarray in, xarray out; no I/O and no cluster code, so each function runs on one tile (inside
``xarray.map_blocks`` or a tile task) with time unchunked. The numerical work lives in
:mod:`~fluxscape.products.breaks` (BFAST Monitor-style breaks), :mod:`~.anomaly` (climatology,
z-scores, heat flags) and :mod:`~.burn` (dNBR/RdNBR/RBR, MCD64A1). Heat stress is computed by
the ``lst`` step (:func:`~fluxscape.products.anomaly.heat_stress`); the disturbance step only
summarises that store per year.

Conventions:
- Inputs are the ``vi`` product's variables: dims ``(time, y, x)`` (any spatial dims after
  ``time``), ``time`` = start of each compositing period, ``doy`` = actual day of year of each
  pixel's observation (NaN where none), ``qa`` = MODIS pixel reliability (0 good, 1 marginal,
  2 snow/ice, 3 cloudy, 255 none). An observation is used when finite and ``qa <= max_qa``.
- Periods (``history``, ``monitor``, ``pre``, ``post``) are inclusive
  ``(first, last)`` dates (anything ``numpy.datetime64`` accepts, e.g. ``"2021-12-31"``).
- Outputs: annual variables on ``(year, y, x)`` (DESIGN section 5): ``disturbed`` uint8 0/1,
  ``date`` float32 day of year (NaN where none), ``magnitude`` (NDVI units, negative = loss;
  NaN where none), ``zscore_min``; spatial coordinates and ``spatial_ref`` are carried over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import xarray as xr

from fluxscape.products import anomaly, breaks, burn, drops

DateLike = str | np.datetime64
Period = tuple[DateLike, DateLike]
Method = Literal["auto", "season_trend", "drop"]
#: Shortest history (years) on which ``auto`` fits the season-trend model.
MIN_SEASON_TREND_YEARS = 2.0

log = logging.getLogger(__name__)

_ONE_DAY = np.timedelta64(1, "D")


def _period(period: Period) -> tuple[np.datetime64, np.datetime64]:
    first, last = (np.datetime64(p, "D") for p in period)
    if last < first:
        raise ValueError(f"period {period} ends before it starts")
    return first, last


def _decimal_period(period: Period) -> tuple[float, float]:
    """Inclusive (first, last) dates -> half-open [start, end) in decimal years."""
    first, last = _period(period)
    return float(breaks.decimal_year(first)), float(breaks.decimal_year(last + _ONE_DAY))


def _previous_valid(valid: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per pixel, the last time index before ``index`` (..., -1 where none) at which
    ``valid`` (time, ...) holds; -1 where none."""
    steps = np.arange(valid.shape[0]).reshape((-1,) + (1,) * (valid.ndim - 1))
    last = np.maximum.accumulate(np.where(valid, steps, -1), axis=0)
    prior = np.take_along_axis(last, np.maximum(index - 1, 0)[None], axis=0)[0]
    return np.where(index > 0, prior, -1)


def break_method(method: Method, history: Period) -> str:
    """The break test :func:`detect_disturbance` runs for ``method`` on the inclusive
    ``history`` dates (see :func:`choose_method`)."""
    return choose_method(method, _decimal_period(history))


def choose_method(method: Method, history: tuple[float, float]) -> str:
    """The break test for a history [start, end) in decimal years: ``auto`` -> ``drop`` below
    :data:`MIN_SEASON_TREND_YEARS` years of history, else ``season_trend``; a season-trend
    model asked for on a shorter history is kept, with a warning."""
    years = history[1] - history[0]
    if method == "auto":
        return "drop" if years < MIN_SEASON_TREND_YEARS else "season_trend"
    if method == "season_trend" and years < MIN_SEASON_TREND_YEARS:
        log.warning(
            "disturbance: a history of %.1f year(s) is short for the season-trend model "
            "(it follows that year's noise and phenology and flags many undisturbed pixels); "
            "method: drop (or auto) holds with one year",
            years,
        )
    return method


def day_of_year(dates) -> np.ndarray:
    """Day of year (1-366, float) of a datetime64 array; NaN where NaT."""
    dates = np.asarray(dates, "datetime64[D]")
    doy = (dates - dates.astype("datetime64[Y]").astype("datetime64[D]")).astype(float) + 1
    return np.where(np.isnat(dates), np.nan, doy)


def observation_dates(period_start, doy=None, *, period_days: int = 16) -> np.ndarray:
    """Observation dates of composites, datetime64[D] (time, ...).

    ``period_start`` (time,) datetime64: the composite periods' first days; ``doy`` (time, ...)
    the day of year of each pixel's observation (MODIS "composite day of the year"). A DOY more
    than half a year before the period's start belongs to the next year (a late-December period
    that reaches into January). Where ``doy`` is NaN or absent the period's middle is used."""
    start = np.asarray(period_start, "datetime64[D]")
    if doy is None:
        return start + np.timedelta64(period_days // 2, "D")
    doy = np.asarray(doy, float)
    start = start.reshape(start.shape[0], *([1] * (doy.ndim - 1)))
    start_doy = day_of_year(start)
    offset = doy - start_doy
    year_days = day_of_year(start.astype("datetime64[Y]") + 1 - _ONE_DAY)  # 365 or 366
    offset = np.where(offset < -183, offset + year_days, offset)
    offset = np.where(np.isfinite(offset), offset, period_days // 2)
    return start + offset.astype(np.int64).astype("timedelta64[D]")


def usable(values, qa=None, *, max_qa: int = 1) -> np.ndarray:
    """Boolean mask of observations to use: finite values with ``qa <= max_qa`` (0 good,
    1 marginal, 2 snow/ice, 3 cloudy, 255 none); all finite values when ``qa`` is None."""
    ok = np.isfinite(np.asarray(values, float))
    if qa is not None:
        ok &= np.asarray(qa) <= max_qa
    return ok


def _spatial(da: xr.DataArray) -> tuple[list[str], dict]:
    dims = [d for d in da.dims if d != "time"]
    coords = {name: c for name, c in da.coords.items() if "time" not in c.dims}
    return dims, coords


def _values(da: xr.DataArray | None, dims: list[str]) -> np.ndarray | None:
    return None if da is None else np.asarray(da.transpose("time", *dims).values)


def _grid_mapping(da: xr.DataArray) -> dict:
    if "grid_mapping" in da.attrs:
        return {"grid_mapping": da.attrs["grid_mapping"]}
    return {"grid_mapping": "spatial_ref"} if "spatial_ref" in da.coords else {}


def detect_disturbance(
    ndvi: xr.DataArray,
    qa: xr.DataArray | None = None,
    doy: xr.DataArray | None = None,
    *,
    history: Period,
    monitor: Period,
    max_qa: int = 1,
    order: int = 3,
    trend: bool = True,
    process: breaks.Process = "mosum",
    h: float = 0.25,
    alpha: float = 0.05,
    period: int = 10,
    critval: float | None = None,
    min_magnitude: float = 0.05,
    min_history_obs: int | None = None,
    period_days: int = 16,
    sd_floor: float = 0.02,
    method: Method = "auto",
) -> xr.Dataset:
    """Annual vegetation disturbance from an NDVI composite series (the ``disturbance`` store).

    ``method``: ``season_trend`` (below), ``drop`` (confirmed drops below the same time of the
    history years, :func:`fluxscape.products.drops.monitor_drops`: holds with one year of
    history) or ``auto``: ``drop`` when the history spans less than
    :data:`MIN_SEASON_TREND_YEARS` years, else ``season_trend``. Asking for ``season_trend``
    on a shorter history logs a warning: fitted on one year, its harmonics follow that year's
    noise and phenology (46 % of undisturbed pixels flagged on a test world).

    Inputs: ``ndvi`` (time, y, x) unitless, ``qa`` and ``doy`` as in the ``vi`` product (see
    the module conventions); ``history`` / ``monitor``: inclusive date ranges, the stable
    history before the monitoring period.

    Breaks (:func:`~fluxscape.products.breaks.monitor_breaks`): season-trend model with
    ``order`` harmonics (+ ``trend``) fitted on the history; one-sided OLS-MOSUM (or
    ``process="cusum"``) monitoring of drops with window ``h`` times the history size and the
    tabulated critical value for (h, ``alpha``, ``period``) unless ``critval`` is given. A pixel
    is disturbed when a drop is detected and its magnitude (median residual after the onset) is
    at most ``-min_magnitude`` (NDVI units): the MOSUM test assumes independent residuals, while
    NDVI residuals carry phenology shifts and autocorrelation that the moving sum also sees, so
    the magnitude rule keeps short, small departures (a late spring) from counting as
    disturbance. Critical value: the default is R ``bfastmonitor``'s (h 0.25, alpha 0.05,
    period 10: 1.342), which is conservative for one monitoring year after a few history years;
    the exact iid level for such a design
    (:func:`~fluxscape.products.breaks.simulate_mosum_critical_value`, about 0.88 one-sided for
    72 history and 18 monitoring observations) flags 15 % of the undisturbed pixels of the
    synthetic test cube without the magnitude rule, because NDVI residuals are neither
    independent nor free of phenology shifts.

    Anomalies (:mod:`~fluxscape.products.anomaly`): per pixel and ``period_days`` slot of the
    year, mean and sd (floored at ``sd_floor``) of the valid history observations; z-scores of
    the monitoring observations; ``zscore_min`` = the year's minimum.

    Returns a Dataset on (year, y, x) with one year per calendar year of ``monitor``:
    ``disturbed`` (uint8 0/1; the break's onset falls in that year), ``date`` (day of year of
    the onset, float32, NaN where none), ``break_date`` (datetime64, NaT where none),
    ``magnitude`` (NDVI, NaN where none), ``zscore_min`` (unitless, NaN without valid
    monitoring data), ``detection_date`` (day of year at which the boundary was crossed),
    ``history_sigma`` (residual sd of the history fit, NDVI) and ``n_history`` (valid history
    observations); the last two repeat across years.
    """
    dims, coords = _spatial(ndvi)
    values = _values(ndvi, dims).astype(float)
    qa_values, doy_values = _values(qa, dims), _values(doy, dims)
    period_start = np.asarray(ndvi["time"].values, "datetime64[D]")
    obs = observation_dates(period_start, doy_values, period_days=period_days)
    dates = np.broadcast_to(obs.reshape(obs.shape + (1,) * (values.ndim - obs.ndim)), values.shape)
    t = breaks.decimal_year(dates)
    valid = usable(values, qa_values, max_qa=max_qa)
    hist, mon = _decimal_period(history), _decimal_period(monitor)
    method = choose_method(method, hist)

    if method == "drop":
        result = drops.monitor_drops(
            values,
            t,
            day_of_year(dates),
            valid,
            hist,
            mon,
            min_magnitude=min_magnitude,
            sd_floor=sd_floor,
        )
        sigma, n_history = result.sigma, result.n_obs
    else:
        result = breaks.monitor_breaks(
            values,
            t,
            valid,
            hist,
            mon,
            order=order,
            trend=trend,
            process=process,
            h=h,
            alpha=alpha,
            period=period,
            critval=critval,
            direction="negative",
            min_history_obs=min_history_obs,
        )
        sigma, n_history = result.fit.sigma, result.fit.n_obs
    disturbed = result.has_break & (result.magnitude <= -min_magnitude)

    def date_at(index: np.ndarray) -> np.ndarray:
        flat = np.take_along_axis(dates, np.maximum(index, 0)[None], axis=0)[0]
        return np.where(index >= 0, flat, np.datetime64("NaT"))

    # The break began after the last usable observation before its first departing one and by
    # that one: dated midway (the first departing observation alone is on average half a
    # revisit late: +8.6 days on the 16-day test cube).
    first_off = date_at(result.onset_index)
    previous = _previous_valid(valid, result.onset_index)
    before = date_at(previous)
    midway = np.where(previous >= 0, before + (first_off - before) // 2, first_off)
    midway = np.maximum(midway, _period(monitor)[0])  # not before monitoring began
    onset_date = np.where(disturbed, midway, np.datetime64("NaT"))
    detection_date = np.where(disturbed, date_at(result.detection_index), np.datetime64("NaT"))
    onset_year = np.where(disturbed, onset_date.astype("datetime64[Y]").astype(float) + 1970, 0)

    slot = anomaly.period_of_year(day_of_year(period_start), period_days)
    n_slots = -(-366 // period_days)
    in_hist = valid & (t >= hist[0]) & (t < hist[1])
    in_mon = valid & (t >= mon[0]) & (t < mon[1])
    mean, sd, _ = anomaly.climatology(values, in_hist, slot, True, n_slots, sd_floor=sd_floor)
    z = anomaly.standardized_anomaly(values, in_mon, slot, mean, sd)
    first, last = _period(monitor)
    years = np.arange(
        first.astype("datetime64[Y]").astype(int) + 1970,
        last.astype("datetime64[Y]").astype(int) + 1971,
    )
    obs_year = dates.astype("datetime64[Y]").astype(int) + 1970
    zscore_min = anomaly.annual_extreme(z, obs_year, years, kind="min")

    in_year = np.stack([disturbed & (onset_year == y) for y in years])
    doy_onset = day_of_year(onset_date)
    ydims = ("year", *dims)

    def per_year(a: np.ndarray, fill, dtype) -> np.ndarray:
        return np.where(in_year, a[None], fill).astype(dtype)

    grid = _grid_mapping(ndvi)
    data = {
        "disturbed": (
            ydims,
            in_year.astype(np.uint8),
            {
                "long_name": "vegetation disturbance (NDVI drop) with onset in the year",
                "units": "1",
                "flag_values": np.array([0, 1], np.uint8),
                "flag_meanings": "undisturbed disturbed",
                **grid,
            },
        ),
        "date": (
            ydims,
            per_year(doy_onset, np.nan, np.float32),
            {"long_name": "day of year of the disturbance onset", "units": "1", **grid},
        ),
        "break_date": (
            ydims,
            per_year(onset_date, np.datetime64("NaT"), "datetime64[ns]"),
            {"long_name": "date of the disturbance onset", **grid},
        ),
        "magnitude": (
            ydims,
            per_year(result.magnitude, np.nan, np.float32),
            {
                "long_name": "median NDVI residual from the disturbance onset to the end of "
                "monitoring (negative: loss)",
                "units": "1",
                **grid,
            },
        ),
        "zscore_min": (
            ydims,
            zscore_min.astype(np.float32),
            {
                "long_name": "minimum standardized NDVI anomaly of the year against the history "
                "climatology",
                "units": "1",
                **grid,
            },
        ),
        "detection_date": (
            ydims,
            per_year(day_of_year(detection_date), np.nan, np.float32),
            {
                "long_name": "day of year at which the monitoring process crossed its boundary",
                "units": "1",
                **grid,
            },
        ),
        "history_sigma": (
            ydims,
            np.broadcast_to(sigma, in_year.shape).astype(np.float32),
            {
                "long_name": "residual scale of the history (sd of the season-trend fit, or "
                "robust sd of the drop test's same-time-of-year residuals)",
                "units": "1",
                **grid,
            },
        ),
        "n_history": (
            ydims,
            np.broadcast_to(n_history, in_year.shape).astype(np.int16),
            {"long_name": "number of valid history observations", "units": "1", **grid},
        ),
    }
    attrs = {
        "title": "vegetation disturbance",
        "summary": (
            "Confirmed NDVI drops below the same time of the history years (a test that holds "
            "with one year of history)"
            if method == "drop"
            else "BFAST Monitor-style breaks (harmonic season-trend model fitted on a stable "
            "history, OLS-MOSUM/CUSUM monitoring of NDVI residuals)"
        )
        + " and standardized NDVI anomalies against the history climatology",
        "break_method": method,
        "references": "Verbesselt et al. 2012 RSE 123:98-108; Chu et al. 1996 Econometrica "
        "64:1045-1065",
        "history_period": f"{_period(history)[0]}/{_period(history)[1]}",
        "monitoring_period": f"{first}/{last}",
        "method_parameters": (
            f"method={method} process={process} order={order} trend={trend} h={h} alpha={alpha} "
            f"period={period} critval={critval} min_magnitude={min_magnitude} "
            f"max_qa={max_qa} period_days={period_days} sd_floor={sd_floor}"
        ),
    }
    out_coords = {
        "year": ("year", years.astype(np.int32), {"long_name": "calendar year"}),
        **coords,
    }
    return xr.Dataset(data, coords=out_coords, attrs=attrs)


def burn_severity_of_breaks(
    nbr: xr.DataArray,
    onset: xr.DataArray,
    qa: xr.DataArray | None = None,
    doy: xr.DataArray | None = None,
    *,
    history: Period,
    max_qa: int = 1,
    order: int = 3,
    trend: bool = True,
    post_days: int = 48,
    period_days: int = 16,
    min_abs_pre: float = 0.001,
) -> xr.Dataset:
    """Burn severity of each vegetation break from an NBR composite series.

    Inputs: ``nbr`` (time, y, x) unitless with ``qa``/``doy`` as in the ``vi`` product;
    ``onset`` (y, x) datetime64, the break onset (e.g. ``break_date`` of
    :func:`detect_disturbance`, NaT where none); ``history``: the stable period (inclusive
    dates) on which the NBR season-trend model (``order`` harmonics, ``trend``) is fitted.

    The pre-fire NBR is what that model expects at the onset; dNBR is the median, over the
    valid observations from the onset to ``post_days`` after it, of expected minus observed
    NBR: the expectation follows the season, so a fixed pre/post window's phenology change
    does not count as burn (fixed windows: :func:`assess_burn_severity`).
    Returns (y, x): ``nbr_pre`` (modelled), ``dnbr``, ``rdnbr`` (Miller & Thode 2007), all
    unitless and NaN where there is no onset or no valid post-onset observation, and
    ``burn_severity`` (uint8 USGS / Key & Benson class, 0 = none).
    """
    dims, coords = _spatial(nbr)
    values = _values(nbr, dims).astype(float)
    period_start = np.asarray(nbr["time"].values, "datetime64[D]")
    dates = observation_dates(period_start, _values(doy, dims), period_days=period_days)
    dates = np.broadcast_to(
        dates.reshape(dates.shape + (1,) * (values.ndim - dates.ndim)), values.shape
    )
    t = breaks.decimal_year(dates)
    valid = usable(values, _values(qa, dims), max_qa=max_qa)
    hist = _decimal_period(history)
    in_hist = valid & (t >= hist[0]) & (t < hist[1])
    fit = breaks.fit_harmonic(values, t, in_hist, order=order, trend=trend, t_ref=hist[0])
    start = np.asarray(onset.transpose(*dims).values, "datetime64[D]")
    has = ~np.isnat(start)
    end = start + np.timedelta64(post_days, "D")
    window = valid & has & (dates >= start) & (dates < end)
    resid = values - fit.predict(t)
    d = -anomaly.masked_median(resid, window)
    t_onset = breaks.decimal_year(np.where(has, start, np.datetime64("2000-01-01")))
    pre = np.where(has, fit.predict(t_onset[None])[0], np.nan)
    d = np.where(np.isfinite(pre), d, np.nan)
    grid = _grid_mapping(nbr)
    data = {
        "nbr_pre": (
            dims,
            pre.astype(np.float32),
            {"long_name": "modelled NBR at the onset", "units": "1", **grid},
        ),
        "dnbr": (
            dims,
            d.astype(np.float32),
            {
                "long_name": "dNBR after the break (modelled minus observed NBR)",
                "units": "1",
                **grid,
            },
        ),
        "rdnbr": (
            dims,
            burn.rdnbr(d, pre, min_abs_pre=min_abs_pre).astype(np.float32),
            {"long_name": "relative dNBR dNBR/sqrt(|NBR_pre|)", "units": "1", **grid},
        ),
        "burn_severity": (
            dims,
            burn.severity_class(d),
            {
                "long_name": "burn severity class of the break (USGS, Key & Benson 2006)",
                "units": "1",
                "flag_values": np.array(burn.SEVERITY_FLAG_VALUES, np.uint8),
                "flag_meanings": burn.SEVERITY_FLAG_MEANINGS,
                "_FillValue": np.uint8(0),
                **grid,
            },
        ),
    }
    return xr.Dataset(data, coords=coords, attrs={"title": "burn severity of vegetation breaks"})


def assess_burn_severity(
    nbr: xr.DataArray,
    qa: xr.DataArray | None = None,
    doy: xr.DataArray | None = None,
    *,
    pre: Period,
    post: Period,
    max_qa: int = 1,
    min_abs_pre: float = 0.001,
    period_days: int = 16,
) -> xr.Dataset:
    """Burn severity of one fire season from an NBR composite series.

    Inputs: ``nbr`` (time, y, x) unitless, ``qa``/``doy`` as in the ``vi`` product; ``pre`` and
    ``post`` inclusive date windows (matched against each pixel's observation date).
    Returns a Dataset on (y, x): ``nbr_pre``/``nbr_post`` (QA-masked medians), ``dnbr``,
    ``rdnbr`` (Miller & Thode 2007), ``rbr`` (Parks et al. 2014), all unitless, NaN where a
    window has no valid observation, and ``burn_severity`` (uint8 USGS/Key & Benson classes,
    0 = no data; see :data:`~fluxscape.products.burn.SEVERITY_FLAG_MEANINGS`).
    """
    dims, coords = _spatial(nbr)
    values = _values(nbr, dims).astype(float)
    period_start = np.asarray(nbr["time"].values, "datetime64[D]")
    doy_values = _values(doy, dims)
    dates = observation_dates(period_start, doy_values, period_days=period_days)
    out = burn.burn_severity(
        values,
        usable(values, _values(qa, dims), max_qa=max_qa),
        dates,
        _period(pre),
        _period(post),
        min_abs_pre=min_abs_pre,
    )
    grid = _grid_mapping(nbr)
    names = {
        "nbr_pre": "pre-fire normalized burn ratio (median)",
        "nbr_post": "post-fire normalized burn ratio (median)",
        "dnbr": "differenced normalized burn ratio (pre - post)",
        "rdnbr": "relative differenced normalized burn ratio dNBR/sqrt(|NBR_pre|)",
        "rbr": "relativized burn ratio dNBR/(NBR_pre + 1.001)",
    }
    data = {
        name: (dims, out[name].astype(np.float32), {"long_name": long, "units": "1", **grid})
        for name, long in names.items()
    }
    data["burn_severity"] = (
        dims,
        out["severity"],
        {
            "long_name": "burn severity class (USGS, Key & Benson 2006, from dNBR)",
            "units": "1",
            "flag_values": np.array(burn.SEVERITY_FLAG_VALUES, np.uint8),
            "flag_meanings": burn.SEVERITY_FLAG_MEANINGS,
            "_FillValue": np.uint8(0),
            **grid,
        },
    )
    first, last = _period(pre)
    post_first, post_last = _period(post)
    return xr.Dataset(
        data,
        coords=coords,
        attrs={
            "title": "burn severity",
            "pre_fire_window": f"{first}/{last}",
            "post_fire_window": f"{post_first}/{post_last}",
            "references": "Key & Benson 2006 RMRS-GTR-164-CD; Miller & Thode 2007 RSE 109:66-80; "
            "Parks et al. 2014 Remote Sens. 6:1827-1844",
        },
    )


def mcd64a1_reference(burn_date: xr.DataArray, years: Sequence[int] | None = None) -> xr.Dataset:
    """Per-year burned mask and date from MCD64A1 "Burn Date" layers (time, y, x), one layer per
    month with ``time`` in the month; see :func:`~fluxscape.products.burn.mcd64a1_annual`.
    Returns (year, y, x): ``burned`` (uint8 0/1), ``date`` (day of year of the first burn,
    NaN where none), ``unmapped_layers`` (int16), ``water`` (uint8)."""
    dims, coords = _spatial(burn_date)
    layer_years = np.asarray(burn_date["time"].values, "datetime64[Y]").astype(int) + 1970
    out = burn.mcd64a1_annual(_values(burn_date, dims), layer_years, years)
    years_out = np.unique(layer_years) if years is None else np.asarray(years)
    ydims = ("year", *dims)
    return xr.Dataset(
        {
            "burned": (
                ydims,
                out["burned"].astype(np.uint8),
                {"long_name": "burned in the year (MCD64A1)", "units": "1"},
            ),
            "date": (
                ydims,
                out["date"],
                {"long_name": "day of year of the first burn (MCD64A1)", "units": "1"},
            ),
            "unmapped_layers": (
                ydims,
                out["unmapped_layers"].astype(np.int16),
                {"long_name": "monthly layers without a mapping", "units": "1"},
            ),
            "water": (
                ydims,
                out["water"].astype(np.uint8),
                {"long_name": "water in any layer of the year", "units": "1"},
            ),
        },
        coords={"year": ("year", years_out.astype(np.int32)), **coords},
    )


def score_detections(
    detected,
    reference,
    *,
    detected_date=None,
    reference_date=None,
    mask=None,
) -> dict[str, float]:
    """Pixel-wise agreement of detections with a reference (truth or MCD64A1).

    ``detected``/``reference``: boolean-like arrays of one shape; ``mask`` (optional, bool) the
    pixels to score; ``detected_date``/``reference_date``: day of year (or any date number in
    days) for the date error on true positives.
    Returns ``tp``, ``fp``, ``fn``, ``tn``, ``precision``, ``recall``, ``f1``,
    ``false_alarm_rate`` (fp / reference negatives) and ``median_abs_date_error`` (days, NaN
    without dates or true positives)."""
    det = np.asarray(detected).astype(bool)
    ref = np.asarray(reference).astype(bool)
    m = np.ones(det.shape, bool) if mask is None else np.asarray(mask, bool)
    tp = int((det & ref & m).sum())
    fp = int((det & ~ref & m).sum())
    fn = int((~det & ref & m).sum())
    tn = int((~det & ~ref & m).sum())
    precision = tp / (tp + fp) if tp + fp else np.nan
    recall = tp / (tp + fn) if tp + fn else np.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan
    date_error = np.nan
    if detected_date is not None and reference_date is not None:
        both = det & ref & m
        err = np.abs(np.asarray(detected_date, float) - np.asarray(reference_date, float))[both]
        err = err[np.isfinite(err)]
        date_error = float(np.median(err)) if err.size else np.nan
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alarm_rate": fp / (fp + tn) if fp + tn else np.nan,
        "median_abs_date_error": date_error,
    }
