"""cluster(): recovery of separated blobs, canonical numbering, a hand-worked Ward case, errors."""

from __future__ import annotations

import numpy as np
import pytest

from blindlca.clustering import ALGORITHMS, canonical_labels, cluster

# Separated blobs make a disconnected k-NN graph on purpose; sklearn warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:Graph is not fully connected:UserWarning")


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three tight, far-apart Gaussian blobs of 20 points in 5-D, shuffled; returns (x, true labels)."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 5, [20.0, 0, 0, 0, 0], [0, -20.0, 0, 20.0, 0]])
    truth = np.repeat(np.arange(3), 20)
    x = centres[truth] + rng.normal(scale=0.5, size=(60, 5))
    order = rng.permutation(60)
    return x[order].astype(np.float32), truth[order]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_recovers_blobs(blobs, algorithm):
    x, truth = blobs
    labels = cluster(x, 3, algorithm=algorithm)
    assert labels.dtype == np.int64 and labels.shape == (60,)
    np.testing.assert_array_equal(labels, canonical_labels(truth))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deterministic(blobs, algorithm):
    x, _ = blobs
    np.testing.assert_array_equal(cluster(x, 4, algorithm=algorithm), cluster(x, 4, algorithm=algorithm))


def test_canonical_labels_literal():
    np.testing.assert_array_equal(canonical_labels(np.array([5, 5, 2, 9, 2, 0])), [0, 0, 1, 2, 1, 3])
    np.testing.assert_array_equal(canonical_labels(np.array(["b", "a", "b"])), [0, 1, 0])
    assert canonical_labels(np.array([], dtype=int)).shape == (0,)


def test_ward_by_hand():
    # points 0, 1, 10, 11, 30. Ward merge cost of clusters A, B: |A||B| / (|A|+|B|) * (mean_A - mean_B)^2
    # singletons: {0}+{1} = 0.5 and {10}+{11} = 0.5 merge first -> {0,1}, {10,11}, {30}  (K = 3)
    # then {0,1}+{10,11} = 2*2/4 * 10^2 = 100, {10,11}+{30} = 2/3 * 19.5^2 = 253.5,
    #      {0,1}+{30} = 2/3 * 29.5^2 = 580.2 -> {0,1,10,11}, {30}  (K = 2)
    x = np.array([[0.0], [1.0], [10.0], [11.0], [30.0]])
    np.testing.assert_array_equal(cluster(x, 3), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(cluster(x, 2), [0, 0, 0, 0, 1])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_trivial_k(algorithm):
    x = np.arange(12, dtype=float).reshape(4, 3)
    np.testing.assert_array_equal(cluster(x, 1, algorithm=algorithm), [0, 0, 0, 0])
    np.testing.assert_array_equal(cluster(x, 4, algorithm=algorithm), [0, 1, 2, 3])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"algorithm": "dbscan"}, "'dbscan'.*ward, kmeans, spectral, gmm"),
        ({"n_clusters": 0}, "n_clusters=0 must be at least 1"),
        ({"n_clusters": 7}, "n_clusters=7 exceeds the number of descriptors N=5"),
        ({"n_clusters": 2.0}, "must be an integer"),
        ({"descriptors": np.zeros(5)}, r"2-D.*\(5,\)"),
        ({"descriptors": np.zeros((5, 2, 1))}, "2-D"),
    ],
)
def test_errors(kwargs, match):
    args = {"descriptors": np.zeros((5, 2)), "n_clusters": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        cluster(args.pop("descriptors"), args.pop("n_clusters"), **args)


def test_non_finite_rows_counted():
    x = np.zeros((6, 3))
    x[2, 0] = np.nan
    x[4, 1] = np.inf
    x[4, 2] = np.nan
    with pytest.raises(ValueError, match="2 of 6 descriptor rows contain NaN or inf.*row 2"):
        cluster(x, 2)
