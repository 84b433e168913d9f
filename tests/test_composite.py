"""Compositing rules of the vi step: maximum NDVI, QA-weighted median, nearest time, and the
Compositor that applies them as observations arrive."""

from __future__ import annotations

import numpy as np
import pytest

from fluxscape.pipeline.compositing import Compositor
from fluxscape.products.composite import (
    max_ndvi_index,
    nearest_time_index,
    qa_weights,
    weighted_median_index,
)


def test_weighted_median_picks_the_middle_usable_observation():
    values = np.array([[0.2, 0.5, np.nan], [0.9, 0.1, 0.4], [0.6, 0.3, 0.7], [0.05, 0.8, 0.5]])
    weights = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0], [0, 1, 1]], float)
    index, found = weighted_median_index(values, weights)
    # column 0: 0.2, 0.9, 0.6 (0.05 has no weight) -> 0.6; column 1: 0.1 0.3 0.5 0.8 -> upper
    # median 0.5; column 2: 0.4, 0.5 (NaN and zero weight skipped) -> upper 0.5
    assert index.tolist() == [2, 0, 3] and found.all()


def test_weights_move_the_median_and_no_weight_means_not_found():
    values = np.array([[0.1, 0.3], [0.5, 0.6], [0.9, 0.2]])
    heavy_last = np.array([[1, 0], [1, 0], [3, 0]], float)
    index, found = weighted_median_index(values, heavy_last)
    assert index[0] == 2 and not found[1]


def test_median_composite_is_robust_to_an_undetected_cloud_and_unbiased_by_noise():
    rng = np.random.default_rng(0)
    truth = 0.7
    obs = truth + rng.normal(0, 0.03, size=(9, 5000))
    obs[0] = 0.1  # an undetected cloud in each pixel's first observation
    rel = np.zeros(obs.shape, int)
    index, _ = weighted_median_index(obs, qa_weights(rel, np.ones(obs.shape, bool)))
    picked = np.take_along_axis(obs, index[None], 0)[0]
    maximum = obs.max(axis=0)
    assert abs(np.median(picked) - truth) < 0.01  # the 5th of 9: the 4th of the 8 clear ones
    assert np.median(maximum) - truth > 0.04  # the maximum-NDVI rule is biased high


def test_qa_weights_good_one_marginal_half_others_zero():
    rel = np.array([0, 1, 2, 3, -1, 0])
    usable = np.array([1, 1, 1, 1, 1, 0], bool)
    assert qa_weights(rel, usable).tolist() == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]


def test_max_ndvi_index_takes_the_first_largest_usable_value():
    ndvi = np.array([[0.5, 0.2, np.nan], [0.7, 0.2, 0.3], [0.7, 0.9, 0.1]])
    usable = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], bool)
    index, found = max_ndvi_index(ndvi, usable)
    assert index.tolist() == [1, 0, 0] and found.tolist() == [True, True, False]


def test_nearest_time_index_wraps_at_midnight_and_skips_unusable_scenes():
    hours = np.array([[11.0, 23.5, 12.0], [12.5, 1.0, 9.0], [13.9, 20.0, 15.1]])
    usable = np.array([[0, 1, 0], [1, 1, 1], [1, 1, 1]], bool)
    index, found = nearest_time_index(hours, 12.0, usable)
    assert index.tolist() == [1, 2, 1] and found.all()  # 12.5 h; 20 h; 9 h before 15.1 h
    index, found = nearest_time_index(hours, 0.0, usable)
    assert index[1] == 0  # 23.5 h is 0.5 h from midnight, 1.0 h is 1 h


@pytest.mark.parametrize("rule", ["max_ndvi", "nearest_time", "median"])
def test_compositor_pairwise_pick_equals_the_pick_over_the_whole_period(rule):
    """Observations fed one at a time give the composite of the whole stack: the same pick,
    values taken from that observation, qa its reliability or the best one seen."""
    rng = np.random.default_rng(3)
    n, shape = 9, (30, 40)
    obs = []
    for _ in range(n):
        rel = rng.choice([-1, 0, 1, 3], size=shape, p=[0.1, 0.5, 0.1, 0.3])
        obs.append(
            {
                "ndvi": np.round(rng.uniform(0, 1, shape), 2).astype(np.float32),
                "doy": np.full(shape, rng.integers(1, 366), np.float32),
                "solar_time": rng.uniform(8, 16, shape).astype(np.float32),
                "reliability": rel,
                "usable": (rel >= 0) & (rel <= 1),
            }
        )
    comp = Compositor(2, shape, ("ndvi", "doy", "solar_time"), rule, solar_time=12.0)
    for o in obs:
        comp.add(1, o)
    out = comp.result()
    assert np.isnan(out["ndvi"][0]).all() and (out["qa"][0] == 255).all()
    ndvi = np.stack([o["ndvi"] for o in obs])
    rel = np.stack([o["reliability"] for o in obs])
    usable = np.stack([o["usable"] for o in obs])
    if rule == "max_ndvi":
        index, found = max_ndvi_index(ndvi, usable)
    elif rule == "nearest_time":
        hours = np.stack([o["solar_time"] for o in obs])
        index, found = nearest_time_index(hours, 12.0, usable)
    else:
        index, found = weighted_median_index(ndvi, qa_weights(rel, usable))
    for name in ("ndvi", "doy", "solar_time"):
        stack = np.stack([o[name] for o in obs])
        expected = np.where(found, np.take_along_axis(stack, index[None], 0)[0], np.nan)
        np.testing.assert_array_equal(out[name][1], expected.astype(np.float32))
    seen = np.where(rel >= 0, rel, 255).min(axis=0)
    expected_qa = np.where(found, np.take_along_axis(rel, index[None], 0)[0], seen)
    np.testing.assert_array_equal(out["qa"][1], expected_qa)
    assert 0 < found.mean() < 1 and (out["qa"][1] == 3).any()
