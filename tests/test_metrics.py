"""Clustering metrics on literal labels with hand-worked answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blindlca.metrics import clustering_metrics, hungarian_micro_f1


def test_f1_simple_case():
    # table (clusters x classes a,b,c): c0 = [2,0,0], c1 = [1,2,0], c2 = [0,0,1]
    # matching c0-a, c1-b, c2-c: TP = 2 + 2 + 1 = 5 of N = 6; K == classes, so F1 = accuracy = 5/6
    assert hungarian_micro_f1(list("aaabbc"), [0, 0, 1, 1, 1, 2]) == pytest.approx(5 / 6, abs=1e-15)


def test_permuted_perfect_clustering():
    classes = ["x", "y", "y", "z", "x", "z"]
    clusters = [7, 3, 3, 0, 7, 0]
    assert clustering_metrics(classes, clusters) == pytest.approx({"nmi": 1.0, "ari": 1.0, "f1": 1.0})


def test_more_clusters_than_classes():
    classes = ["a", "a", "a", "b"] + ["b", "b", "b"] + ["a", "b"]
    clusters = [0, 0, 0, 0, 1, 1, 1, 2, 2]
    # table: c0 = [a3, b1], c1 = [a0, b3], c2 = [a1, b1]
    # best matching c0-a, c1-b: TP = 3 + 3 = 6; c2 is unmatched, its 2 images get no prediction
    # P = 6 / (4 + 3) = 6/7, R = 6/9 = 2/3, F1 = 2 * (6/7)(2/3) / (6/7 + 2/3) = (24/21) / (32/21) = 3/4
    assert hungarian_micro_f1(classes, clusters) == pytest.approx(0.75, abs=1e-15)


def test_fewer_clusters_than_classes():
    # everything in one cluster: matched to a (3 images), TP = 3, every image predicted, F1 = 3/6
    assert hungarian_micro_f1(list("aaabbc"), [5] * 6) == pytest.approx(0.5, abs=1e-15)


def test_hungarian_beats_greedy():
    # table: c0 = [a4, b3], c1 = [a3, b0]
    # greedy takes the largest cell c0-a (4), leaving c1-b (0): TP = 4, F1 = 0.4
    # Hungarian takes c0-b + c1-a = 3 + 3 = 6: F1 = 6/10
    classes = ["a"] * 4 + ["b"] * 3 + ["a"] * 3
    clusters = [0] * 7 + [1] * 3
    assert hungarian_micro_f1(classes, clusters) == pytest.approx(0.6, abs=1e-15)


def test_label_types_only_compared_for_equality():
    # TP >= 1 whenever N >= 1 (some cell of the table is non-zero), so F1 is never 0 here
    assert hungarian_micro_f1(["a"], ["k"]) == 1.0
    assert hungarian_micro_f1(np.array(["a", "b"]), np.array([0, 1])) == 1.0


def test_nmi_ari_by_hand():
    classes = list("aaabbb")
    clusters = [0, 0, 1, 1, 1, 1]
    # table: c0 = [a2, b0], c1 = [a1, b3]; N = 6
    # MI = sum p_ij ln(p_ij / (p_i p_j)), p(c0) = 1/3, p(c1) = 2/3, p(a) = p(b) = 1/2
    #    = (2/6) ln((2/6)/(1/6)) + (1/6) ln((1/6)/(1/3)) + (3/6) ln((3/6)/(1/3))
    #    = (1/3) ln 2 - (1/6) ln 2 + (1/2) ln(3/2)
    mi = math.log(2) / 3 - math.log(2) / 6 + math.log(1.5) / 2
    h_classes = math.log(2)
    h_clusters = -(1 / 3) * math.log(1 / 3) - (2 / 3) * math.log(2 / 3)
    nmi = mi / ((h_classes + h_clusters) / 2)
    # ARI pair counts: sum C(n_ij, 2) = C(2,2) + C(3,2) = 4; clusters: C(2,2) + C(4,2) = 7;
    # classes: C(3,2) + C(3,2) = 6; expected = 7 * 6 / C(6,2) = 2.8; max = (7 + 6) / 2 = 6.5
    # ARI = (4 - 2.8) / (6.5 - 2.8) = 12/37
    ari = 12 / 37
    out = clustering_metrics(classes, clusters)
    assert out["nmi"] == pytest.approx(nmi, abs=1e-12)
    assert out["ari"] == pytest.approx(ari, abs=1e-12)
    # matching c0-a + c1-b = 2 + 3 = 5 of 6
    assert out["f1"] == pytest.approx(5 / 6, abs=1e-15)
    assert all(type(v) is float for v in out.values())


@pytest.mark.parametrize("fn", [hungarian_micro_f1, clustering_metrics])
def test_length_mismatch(fn):
    with pytest.raises(ValueError, match=r"3 classes but 2 cluster"):
        fn(["a", "b", "c"], [0, 1])


@pytest.mark.parametrize("fn", [hungarian_micro_f1, clustering_metrics])
def test_empty(fn):
    with pytest.raises(ValueError, match="0 classes and 0 cluster"):
        fn([], [])


def test_not_1d():
    with pytest.raises(ValueError, match="1-D"):
        hungarian_micro_f1(np.zeros((2, 2)), np.zeros((2, 2)))
