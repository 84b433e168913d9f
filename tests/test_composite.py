"""QA-weighted median compositing (the vi step's ``composite: median``)."""

from __future__ import annotations

import numpy as np

from fluxscape.products.composite import qa_weights, weighted_median_index


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
