"""select_k / k_scores: true K on separated blobs, determinism, the candidate range, errors, tiny N."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blindlca.kselect import RULES, k_scores, select_k


def _blobs(k: int, *, per: int = 12, dim: int = 6, seed: int = 0) -> np.ndarray:
    """k tight Gaussian blobs (sd 0.5), centres 10+ apart on distinct axes, shuffled; (k * per, dim)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((k, dim))
    centres[np.arange(k), np.arange(k) % dim] = 10.0 * (1 + np.arange(k) // dim)
    x = np.repeat(centres, per, axis=0) + rng.normal(scale=0.5, size=(k * per, dim))
    return x[rng.permutation(len(x))].astype(np.float32)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_every_rule_finds_separated_blobs(rule, k):
    assert select_k(_blobs(k), rule=rule) == k


def test_default_rule_is_one_of_rules():
    x = _blobs(3)
    assert select_k(x) in range(2, 11)
    assert select_k(x) == 3


@pytest.mark.parametrize("rule", RULES)
def test_deterministic_for_a_seed(rule):
    x = _blobs(4, seed=1) + np.random.default_rng(5).normal(scale=3.0, size=(48, 6)).astype(np.float32)
    assert k_scores(x, rule=rule, seed=7) == k_scores(x, rule=rule, seed=7)
    assert select_k(x, rule=rule, seed=7) == select_k(x, rule=rule, seed=7)


@pytest.mark.parametrize("rule", RULES)
def test_scores_cover_the_clamped_range(rule):
    x = _blobs(3, per=3)  # N = 9: k_max 10 is clamped to 8
    scores = k_scores(x, rule=rule, k_min=3, k_max=10)
    assert list(scores) == list(range(3, 9))
    assert all(isinstance(v, float) and math.isfinite(v) for v in scores.values())
    assert list(k_scores(x, rule=rule, k_min=2, k_max=4)) == [2, 3, 4]
    assert 3 <= select_k(x, rule=rule, k_min=3, k_max=10) <= 8


@pytest.mark.parametrize("rule", RULES)
def test_four_points_work(rule):
    x = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    assert list(k_scores(x, rule=rule)) == [2, 3]
    assert select_k(x, rule=rule) in (2, 3)


def test_dendrogram_gap_by_hand():
    # Ward merges 0+1 and 10+11 at height 1, then the pairs at sqrt(2 * 2 * 2 / 4) * 10 = 10 sqrt(2).
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    scores = k_scores(x, rule="dendrogram_gap")
    assert scores[2] == pytest.approx(10 * math.sqrt(2) - 1)
    assert scores[3] == pytest.approx(0.0)
    assert select_k(x, rule="dendrogram_gap") == 2


def test_duplicate_descriptors_stay_finite():
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0]]), 4, axis=0)
    for rule in ("dendrogram_gap", "calinski_harabasz", "gap_statistic"):
        scores = k_scores(x, rule=rule, k_max=4)
        assert not any(math.isnan(v) for v in scores.values()), rule


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rule": "elbow"}, "elbow"),
        ({"k_min": 1}, "k_min=1"),
        ({"k_min": 8, "k_max": 20}, "k_min=8"),
        ({"k_min": 5, "k_max": 4}, "k_max=4"),
        ({"k_max": 2.5}, "2.5"),
    ],
)
def test_bad_options(kwargs, match):
    x = _blobs(2, per=3)  # N = 6
    with pytest.raises(ValueError, match=match):
        select_k(x, **kwargs)
    with pytest.raises(ValueError, match=match):
        k_scores(x, **{"rule": "silhouette", **kwargs})


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((2, 3)), "N=2"),
        (np.zeros(10), r"shape \(10,\)"),
        (np.zeros((5, 0)), r"shape \(5, 0\)"),
        (np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0], [2.0, 2.0]]), "NaN"),
    ],
)
def test_bad_descriptors(x, match):
    with pytest.raises(ValueError, match=match):
        select_k(x)
