"""Clustering metrics: NMI, ARI and micro F1 after Hungarian matching of clusters to classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = ["clustering_metrics", "hungarian_micro_f1"]


def _as_label_arrays(
    classes: Sequence[str] | np.ndarray, clusters: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    classes_arr, clusters_arr = np.asarray(classes), np.asarray(clusters)
    if classes_arr.ndim != 1 or clusters_arr.ndim != 1:
        raise ValueError(
            f"classes and clusters must be 1-D label lists, got shapes {classes_arr.shape} and "
            f"{clusters_arr.shape}; pass one label per image"
        )
    if len(classes_arr) != len(clusters_arr):
        raise ValueError(
            f"got {len(classes_arr)} classes but {len(clusters_arr)} cluster labels; "
            "pass exactly one class and one cluster per image, in the same order"
        )
    if len(classes_arr) == 0:
        raise ValueError("got 0 classes and 0 cluster labels; clustering metrics need at least one image")
    return classes_arr, clusters_arr


def hungarian_micro_f1(classes: Sequence[str] | np.ndarray, clusters: Sequence[int] | np.ndarray) -> float:
    """Micro F1 of a clustering after matching clusters one-to-one to classes.

    The (clusters x classes) contingency table is matched with the Hungarian algorithm to maximise the
    number of images whose cluster is matched to their class (TP). Each image in a matched cluster is
    predicted as that cluster's class; images in unmatched clusters (only when K > number of classes)
    get no prediction. Then P = TP / (images in matched clusters), R = TP / N and F1 = 2PR / (P + R),
    or 0 when TP = 0. With K <= number of classes every image gets a prediction, so P = R = F1 is the
    accuracy after matching.

    Args:
        classes: (N,) ground-truth class per image, any hashable labels.
        clusters: (N,) cluster id per image.
    Returns:
        F1 in [0, 1].
    """
    classes_arr, clusters_arr = _as_label_arrays(classes, clusters)
    _, class_idx = np.unique(classes_arr, return_inverse=True)
    _, cluster_idx = np.unique(clusters_arr, return_inverse=True)
    table = np.zeros((cluster_idx.max() + 1, class_idx.max() + 1), dtype=np.int64)
    np.add.at(table, (cluster_idx.ravel(), class_idx.ravel()), 1)

    rows, cols = linear_sum_assignment(table, maximize=True)
    tp = int(table[rows, cols].sum())
    if tp == 0:
        return 0.0
    precision = tp / int(table[rows].sum())
    recall = tp / len(classes_arr)
    return 2.0 * precision * recall / (precision + recall)


def clustering_metrics(
    classes: Sequence[str] | np.ndarray, clusters: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """NMI (arithmetic normalisation), ARI and Hungarian micro F1 of a clustering.

    Args:
        classes: (N,) ground-truth class per image.
        clusters: (N,) cluster id per image.
    Returns:
        ``{"nmi": ..., "ari": ..., "f1": ...}`` as Python floats.
    """
    classes_arr, clusters_arr = _as_label_arrays(classes, clusters)
    return {
        "nmi": float(normalized_mutual_info_score(classes_arr, clusters_arr, average_method="arithmetic")),
        "ari": float(adjusted_rand_score(classes_arr, clusters_arr)),
        "f1": hungarian_micro_f1(classes_arr, clusters_arr),
    }
