"""Clustering of per-image anomaly descriptors into K groups, with canonical label numbering."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.mixture import GaussianMixture

__all__ = ["ALGORITHMS", "canonical_labels", "cluster", "number_of_clusters"]

ALGORITHMS: tuple[str, ...] = ("ward", "kmeans", "spectral", "gmm")


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber labels by order of first appearance: the first item's label becomes 0, and so on.

    Makes outputs of different algorithms and runs directly comparable and diffable.

    Args:
        labels: (N,) labels of any comparable dtype.
    Returns:
        (N,) int64 in 0..(number of distinct labels - 1).
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first), dtype=np.int64)
    return rank[inverse.ravel()]


def _ward(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    del seed  # Ward linkage is deterministic
    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x)


def _kmeans(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)


def _spectral(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    model = SpectralClustering(
        n_clusters=k,
        affinity="nearest_neighbors",
        n_neighbors=min(10, len(x) - 1),
        assign_labels="kmeans",
        random_state=seed,
    )
    return model.fit_predict(x)


def _gmm(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    # reg_covar above sklearn's 1e-6: near-duplicate descriptors would otherwise collapse a
    # diagonal variance to zero and abort the fit.
    model = GaussianMixture(
        n_components=k, covariance_type="diag", n_init=1, reg_covar=1e-4, random_state=seed
    )
    return model.fit(x).predict(x)


_FITTERS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "ward": _ward,
    "kmeans": _kmeans,
    "spectral": _spectral,
    "gmm": _gmm,
}


def cluster(
    descriptors: np.ndarray, n_clusters: int, *, algorithm: str = "ward", seed: int = 42
) -> np.ndarray:
    """Cluster descriptors into ``n_clusters`` groups and number them canonically.

    ward: agglomerative, Ward linkage. kmeans: 10 restarts. spectral: k-nearest-neighbour graph
    (k = min(10, N - 1)), k-means label assignment. gmm: diagonal-covariance Gaussian mixture. All run in
    float64. Labels are renumbered by first appearance (see `canonical_labels`); spectral and gmm may
    leave a cluster empty, in which case fewer than ``n_clusters`` labels occur.

    Args:
        descriptors: (N, D) finite values, one row per image.
        n_clusters: K, 1 <= K <= N.
        algorithm: one of `ALGORITHMS`.
        seed: random state of kmeans, spectral and gmm.
    Returns:
        (N,) int64 labels in 0..K-1.
    """
    if algorithm not in _FITTERS:
        raise ValueError(f"unknown clustering algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    x = np.asarray(descriptors, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(
            f"descriptors must be a 2-D (N, D) array, got shape {x.shape}; stack one descriptor row per image"
        )
    n = x.shape[0]
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer):
        raise ValueError(f"n_clusters must be an integer, got {n_clusters!r}")
    if n_clusters < 1:
        raise ValueError(f"n_clusters={n_clusters} must be at least 1")
    if n_clusters > n:
        raise ValueError(
            f"n_clusters={n_clusters} exceeds the number of descriptors N={n}; "
            f"use at most {n} clusters or cluster more images"
        )
    bad_rows = ~np.isfinite(x).all(axis=1)
    if bad_rows.any():
        raise ValueError(
            f"{int(bad_rows.sum())} of {n} descriptor rows contain NaN or inf (first at row "
            f"{int(np.flatnonzero(bad_rows)[0])}); fix or drop those images before clustering"
        )
    # The trivial cases skip sklearn, which rejects or warns about them for some algorithms.
    if n_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    if n_clusters == n:
        return np.arange(n, dtype=np.int64)
    return canonical_labels(_FITTERS[algorithm](x, int(n_clusters), seed))


def number_of_clusters(
    setting: str | int,
    classes: Sequence[str],
    descriptors: np.ndarray | None = None,
    *,
    k_rule: str = "silhouette",
    k_max: int = 10,
    seed: int = 42,
) -> int:
    """K from the `clustering.n_clusters` setting.

    `labels` counts the distinct classes (the paper's protocol, "good" included); `auto` chooses K from
    the descriptors alone with `k_rule` (see blindlca.kselect); an integer is used as it is.
    """
    if setting == "labels":
        if not any(classes):
            raise ValueError(
                "clustering.n_clusters is 'labels' but the images have no classes (a plain folder, not MVTec "
                "layout): set clustering.n_clusters to auto or to a number"
            )
        return len(set(classes))
    if setting == "auto":
        if descriptors is None:
            raise ValueError("clustering.n_clusters auto needs the descriptors")
        from blindlca.kselect import select_k  # imported here: only auto needs it

        return select_k(descriptors, k_max=k_max, rule=k_rule, seed=seed)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(
            f"clustering.n_clusters must be 'labels', 'auto' or a positive integer, got {setting!r}"
        )
    return setting
