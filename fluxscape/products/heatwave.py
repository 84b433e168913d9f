"""Heat waves from daily land surface temperature: the anomaly against a per-day-of-year
baseline, the onset of runs of hot days per pixel and the events they make.

Pure array functions. ``lst`` is ``(time, y, x)`` in K with NaN where no clear observation;
``dates`` the days (datetime64[D]) of the time axis.

* Baseline (:func:`doy_baseline`): per pixel and day of year, the mean and standard deviation
  of the baseline years' observations within +-``window`` days of that day of year (a
  moving-window climatology, as the per-calendar-day baselines of heat-wave indices, e.g.
  Perkins & Alexander 2013, J. Climate 26, 4500-4517, who use a 15-day window of the
  90th percentile; here the mean plus a fixed excess, since satellite LST records are short).
* Hot day: anomaly ``lst - baseline_mean > threshold_k``. Onset (:func:`onsets`): the first
  day of the first run of at least ``min_days`` hot observed days (a day without a clear
  observation neither breaks nor extends a run, as clouds hide the surface, not the heat).
* Events (:func:`events`): 8-connected clusters of pixels with an onset (scipy.ndimage
  labels), each with its onset (the earliest pixel onset), last hot day, extent (km2), peak
  anomaly and the outline of its pixels (shapely union of the pixel squares).
"""

from __future__ import annotations

import numpy as np


def doy_baseline(
    lst: np.ndarray, dates: np.ndarray, baseline: np.ndarray, window: int = 7, min_count: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Per-day baseline mean and sd (K), shape of ``lst``: for each day, the baseline days
    (``baseline``: bool per time step) whose day of year lies within +-``window`` days
    (circular); NaN where fewer than ``min_count`` baseline observations."""
    doy = (dates.astype("datetime64[D]") - dates.astype("datetime64[Y]")).astype(int) + 1
    base_idx = np.nonzero(baseline)[0]
    mean = np.full(lst.shape, np.nan, np.float32)
    sd = np.full(lst.shape, np.nan, np.float32)
    for d in np.unique(doy):
        dist = np.abs(doy[base_idx] - d)
        dist = np.minimum(dist, 366 - dist)
        use = base_idx[dist <= window]
        if use.size == 0:
            continue
        stack = lst[use]
        n = np.isfinite(stack).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.nansum(stack, axis=0) / n
            v = np.nansum((stack - m) ** 2, axis=0) / np.maximum(n - 1, 1)
        ok = n >= min_count
        mean[doy == d] = np.where(ok, m, np.nan)
        sd[doy == d] = np.where(ok, np.sqrt(v), np.nan)
    return mean, sd


def onsets(
    anomaly: np.ndarray, monitor: np.ndarray, threshold_k: float, min_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: the index of the first day of the first run of >= ``min_days`` hot observed
    days (anomaly > ``threshold_k``) among the ``monitor`` days (bool per time step), -1 if
    none; the index of the run's last hot day; and the peak anomaly of the run (K)."""
    nt = anomaly.shape[0]
    shape = anomaly.shape[1:]
    onset = np.full(shape, -1, np.int64)
    last = np.full(shape, -1, np.int64)
    peak = np.full(shape, np.nan, np.float32)
    run_start = np.full(shape, -1, np.int64)
    run_len = np.zeros(shape, np.int64)
    run_peak = np.full(shape, -np.inf)
    done = np.zeros(shape, bool)  # the first qualifying run has ended
    for t in range(nt):
        if not monitor[t]:
            continue
        a = anomaly[t]
        seen = np.isfinite(a)
        with np.errstate(invalid="ignore"):
            hot = seen & (a > threshold_k)
        cool = seen & ~hot
        # a cool observed day ends a run
        qualified = onset >= 0
        done |= cool & qualified
        reset = cool & ~qualified
        run_start[reset], run_len[reset], run_peak[reset] = -1, 0, -np.inf
        grow = hot & ~done
        run_start[grow & (run_len == 0)] = t
        run_len[grow] += 1
        run_peak[grow] = np.maximum(run_peak[grow], a[grow])
        newly = grow & (run_len >= min_days) & (onset < 0)
        onset[newly] = run_start[newly]
        inrun = grow & (onset >= 0)
        last[inrun] = t
        peak[inrun] = run_peak[inrun]
    return onset, last, peak


def events(
    onset: np.ndarray,
    last: np.ndarray,
    peak: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    dates: np.ndarray,
    min_pixels: int = 4,
) -> list[dict]:
    """Heat-wave events from per-pixel onsets on a lon/lat grid (pixel centres ``x``, ``y``
    in degrees, regular): 8-connected clusters of >= ``min_pixels`` pixels. Each: ``onset``
    and ``last`` (ISO dates), ``duration_days``, ``extent_km2`` (WGS84 cell areas),
    ``peak_anomaly_k``, ``pixels``, ``geometry`` (GeoJSON Polygon/MultiPolygon of the pixel
    squares), ``centroid``."""
    from scipy import ndimage
    from shapely.geometry import mapping

    from fluxscape.zonal import cell_area_m2, pixel_outline

    labels, n = ndimage.label(onset >= 0, structure=np.ones((3, 3)))
    dx = float(abs(x[1] - x[0])) if x.size > 1 else 0.01
    dy = float(abs(y[1] - y[0])) if y.size > 1 else 0.01
    area_km2 = np.broadcast_to(
        np.asarray(cell_area_m2(y - dy / 2, y + dy / 2, dx), float).reshape(-1, 1) / 1e6,
        onset.shape,
    )
    out = []
    for k in range(1, n + 1):
        rr, cc = np.nonzero(labels == k)
        if rr.size < min_pixels:
            continue
        first = int(onset[rr, cc].min())
        end = int(last[rr, cc].max())
        shape = pixel_outline(rr, cc, x, y, dx, dy)
        centre = shape.centroid
        out.append(
            {
                "onset": str(dates[first])[:10],
                "last": str(dates[end])[:10],
                "duration_days": int(
                    (dates[end] - dates[first]).astype("timedelta64[D]").astype(int)
                )
                + 1,
                "extent_km2": round(float(area_km2[rr, cc].sum()), 1),
                "peak_anomaly_k": round(float(np.nanmax(peak[rr, cc])), 2),
                "pixels": int(rr.size),
                "geometry": mapping(shape),
                "centroid": (round(centre.x, 5), round(centre.y, 5)),
            }
        )
    return out
