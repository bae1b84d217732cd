"""Clustering metrics of one category against the ground-truth classes.

Inputs:  clusters CSV (image, class, cluster)
Outputs: metrics  JSON {nmi, ari, f1, n_images, n_classes, k, backbone_weights}
Params:  backbone_weights
"""

from blindlca.io import read_csv, save_json
from blindlca.metrics import clustering_metrics
from blindlca.workflow import run


def main(*, clusters: str, metrics: str, backbone_weights: str) -> None:
    rows = read_csv(clusters)
    classes = [r["class"] for r in rows]
    labels = [int(r["cluster"]) for r in rows]
    result = clustering_metrics(classes, labels)
    result.update(n_images=len(rows), n_classes=len(set(classes)), k=len(set(labels)))
    result["backbone_weights"] = backbone_weights
    if backbone_weights == "random":
        result["warning"] = "random backbone weights (seeded), not ImageNet: not comparable to the paper"
    save_json(metrics, result)


run(main, globals())
