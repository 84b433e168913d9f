"""Temporal compositing of several observations per period, as pure array functions.

The maximum-NDVI rule (MODIS MVC) favours the brightest residual-cloud-free observation and so
biases NDVI high when observations are noisy; a QA-weighted median is robust to both undetected
clouds (low outliers) and noise. The composite takes a real observation (the weighted median
one), so its other indices, observation day and QA come from the same acquisition.
"""

from __future__ import annotations

import numpy as np

#: Weight of an observation by its reliability (0 good, 1 marginal); others are not used.
QA_WEIGHTS = {0: 1.0, 1: 0.5}


def qa_weights(reliability, usable) -> np.ndarray:
    """Weights (float, like ``reliability``) of usable observations: 1 good, 0.5 marginal, else
    0."""
    rel = np.asarray(reliability)
    w = np.zeros(rel.shape)
    for code, weight in QA_WEIGHTS.items():
        w = np.where(rel == code, weight, w)
    return np.where(np.asarray(usable, bool), w, 0.0)


def weighted_median_index(values, weights) -> tuple[np.ndarray, np.ndarray]:
    """The observation at the weighted median of ``values`` along axis 0.

    Inputs: ``values`` (obs, ...) e.g. NDVI, ``weights`` (obs, ...) >= 0 (0 or a non-finite
    value: not used). Returns ``(index, found)`` of the trailing shape: the index along axis 0
    of the first observation, in increasing value order, at which the cumulative weight exceeds
    half the total (for an even split the upper one: residual clouds and shadows lower NDVI, so
    a tie goes to the higher value, as the maximum-NDVI rule reasons); ``found`` is False where
    no observation has weight (index 0 there)."""
    values = np.asarray(values, float)
    w = np.where(np.isfinite(values), np.asarray(weights, float), 0.0)
    w = np.where(w > 0, w, 0.0)
    order = np.argsort(np.where(w > 0, values, np.inf), axis=0, kind="stable")
    cum = np.cumsum(np.take_along_axis(w, order, axis=0), axis=0)
    total = cum[-1]
    k = np.argmax(cum > 0.5 * total, axis=0)
    index = np.take_along_axis(order, k[None], axis=0)[0]
    found = total > 0
    return np.where(found, index, 0), found


def max_ndvi_index(ndvi, usable) -> tuple[np.ndarray, np.ndarray]:
    """The maximum-value-composite pick along axis 0 (the MODIS MVC rule).

    Inputs: ``ndvi`` (obs, ...) and ``usable`` (obs, ...) bool. Returns ``(index, found)`` of
    the trailing shape: the first observation with the largest finite usable NDVI (ties go to
    the earlier one, so picking pairwise as observations arrive gives the same result);
    ``found`` is False where none is usable (index 0 there)."""
    ndvi = np.asarray(ndvi, float)
    ok = np.asarray(usable, bool) & np.isfinite(ndvi)
    index = np.argmax(np.where(ok, ndvi, -np.inf), axis=0)
    found = ok.any(axis=0)
    return np.where(found, index, 0), found


def nearest_time_index(hours, target: float, usable) -> tuple[np.ndarray, np.ndarray]:
    """The usable observation nearest a target time of day, along axis 0.

    Inputs: ``hours`` (obs, ...) time of day of each observation in hours (e.g. local solar
    time), ``target`` in hours (e.g. 12.0, noon), ``usable`` (obs, ...) bool. The distance
    wraps at midnight. Returns ``(index, found)`` as :func:`max_ndvi_index`; ties go to the
    earlier observation."""
    hours = np.asarray(hours, float)
    off = np.abs((hours - target + 12.0) % 24.0 - 12.0)
    ok = np.asarray(usable, bool) & np.isfinite(off)
    index = np.argmin(np.where(ok, off, np.inf), axis=0)
    found = ok.any(axis=0)
    return np.where(found, index, 0), found
