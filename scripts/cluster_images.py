"""Cluster the descriptors of one category into K groups, with the primary and any compared algorithms.

Inputs:  descriptors (N, D), index
Outputs: clusters CSV with columns image, class, cluster (primary algorithm), cluster_<algorithm> (compared)
Params:  clustering (algorithm, compare, n_clusters, k_rule, k_max), seed
"""

import logging

from blindlca.clustering import cluster, number_of_clusters
from blindlca.data import read_index
from blindlca.io import load_array, write_csv
from blindlca.workflow import run


def main(*, descriptors: str, index: str, clusters: str, clustering: dict, seed: int) -> None:
    records = read_index(index)
    x = load_array(descriptors)
    k = number_of_clusters(
        clustering["n_clusters"],
        [r.cls for r in records],
        x,
        k_rule=clustering["k_rule"],
        k_max=clustering["k_max"],
        seed=seed,
    )
    columns = {"cluster": clustering["algorithm"]}
    columns.update({f"cluster_{a}": a for a in clustering["compare"] if a != clustering["algorithm"]})
    labels = {col: cluster(x, k, algorithm=alg, seed=seed) for col, alg in columns.items()}
    logging.getLogger("blindlca").info(
        "K = %d, %d images, algorithms %s", k, len(records), list(columns.values())
    )
    rows = (
        {"image": r.image, "class": r.cls, **{col: int(lab[i]) for col, lab in labels.items()}}
        for i, r in enumerate(records)
    )
    write_csv(clusters, rows, fields=("image", "class", *columns))


run(main, globals())
