"""Evaluation metrics: clustering of anomalous images and localization of anomalies in maps.

Submodules are private; import every metric from here, e.g. ``from blindlca.metrics import au_pro``.
"""

from blindlca.metrics._clustering import clustering_metrics, hungarian_micro_f1
from blindlca.metrics._localization import (
    au_pro,
    image_auroc,
    localization_metrics,
    pixel_auroc,
    upsample_maps,
)

__all__ = [
    "au_pro",
    "clustering_metrics",
    "hungarian_micro_f1",
    "image_auroc",
    "localization_metrics",
    "pixel_auroc",
    "upsample_maps",
]
