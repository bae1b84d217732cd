"""The method variants of METHOD.md ("Ablations") as data: where alpha and the descriptors come from.

alpha sources: `fca-residuals` (FCA on VAE residuals), `fca-features` (FCA on scaled backbone
features), `l1-residuals` (mean |R| over channels), or None (no anomaly map).
descriptor sources: `head` (contrastive projections H(F)), `backbone` (raw backbone features) or
`mean` (spatial mean of raw backbone features, no weighting), `anomaly_clustering` (Sohn et al.'s
weighted mean of raw backbone features).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    alpha: str | None
    descriptor: str


METHODS: dict[str, Method] = {
    "ours": Method(alpha="fca-residuals", descriptor="head"),
    "ours_wide": Method(alpha="fca-features", descriptor="head"),
    "residuals_fca": Method(alpha="fca-residuals", descriptor="backbone"),
    "just_fca": Method(alpha="fca-features", descriptor="backbone"),
    "just_vae": Method(alpha="l1-residuals", descriptor="backbone"),
    # Baseline: uniform weights reduce step 4 to zero (blur minus mean), so it pools the raw mean.
    "mean_pool": Method(alpha=None, descriptor="mean"),
    # Peer method: Sohn et al., "Anomaly Clustering", WACV 2023 (unsupervised patch weighting).
    "anomaly_clustering": Method(alpha=None, descriptor="anomaly_clustering"),
}
ALPHA_SOURCES = ("fca-residuals", "fca-features", "l1-residuals")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]
