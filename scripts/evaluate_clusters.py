"""Metrics of one category and method: clustering against the classes, plus localization if any.

Inputs:  clusters CSV (image, class, cluster, cluster_<algorithm>...), localization JSON (methods with maps)
Outputs: metrics  JSON {nmi, ari, f1, clustering, n_images, n_classes, k, [pixel_auroc, au_pro,
                  image_auroc], [compare: {algorithm: {nmi, ari, f1}}], backbone_weights}
Params:  algorithm (the primary one), backbone_weights
"""

from blindlca.io import load_json, read_csv, save_json
from blindlca.metrics import clustering_metrics
from blindlca.workflow import run


def main(
    *, clusters: str, metrics: str, algorithm: str, backbone_weights: str, localization: str | None = None
) -> None:
    rows = read_csv(clusters)
    classes = [r["class"] for r in rows]
    labeled = any(classes)  # a plain folder of images has no classes: no clustering metrics
    columns = {
        algorithm: "cluster",
        **{c.removeprefix("cluster_"): c for c in rows[0] if c.startswith("cluster_")},
    }
    scores = {
        name: clustering_metrics(classes, [int(r[col]) for r in rows]) if labeled else {}
        for name, col in columns.items()
    }
    labels = [int(r["cluster"]) for r in rows]
    result = dict(scores.pop(algorithm))
    result.update(clustering=algorithm, n_images=len(rows), k=len(set(labels)))
    result["cluster_sizes"] = [labels.count(c) for c in sorted(set(labels))]
    if labeled:
        result["n_classes"] = len(set(classes))
    if localization is not None:
        result.update(load_json(localization))
    if scores and labeled:
        result["compare"] = scores
    result["backbone_weights"] = backbone_weights
    if backbone_weights == "random":
        result["warning"] = "random backbone weights (seeded), not ImageNet: not comparable to the paper"
    save_json(metrics, result)


run(main, globals())
