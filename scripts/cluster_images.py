"""Cluster the descriptors of one category into K groups.

Inputs:  descriptors (N, D), index
Outputs: clusters CSV with columns image, class, cluster
Params:  clustering (algorithm, n_clusters), seed
"""

import logging

from blindlca.clustering import cluster, number_of_clusters
from blindlca.data import read_index
from blindlca.io import load_array, write_csv
from blindlca.workflow import run


def main(*, descriptors: str, index: str, clusters: str, clustering: dict, seed: int) -> None:
    records = read_index(index)
    k = number_of_clusters(clustering["n_clusters"], [r.cls for r in records])
    labels = cluster(load_array(descriptors), k, algorithm=clustering["algorithm"], seed=seed)
    logging.getLogger("blindlca").info("%s, K = %d, %d images", clustering["algorithm"], k, len(records))
    rows = (
        {"image": r.image, "class": r.cls, "cluster": int(c)} for r, c in zip(records, labels, strict=True)
    )
    write_csv(clusters, rows, fields=("image", "class", "cluster"))


run(main, globals())
