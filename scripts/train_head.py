"""Train the contrastive projection head of one category (method `ours`).

Inputs:  features (N, C, h, w), alpha (N, h, w), index (for K when n_clusters = labels)
Outputs: head     torch file {state_dict, config, summary}
Params:  contrastive (METHOD.md step 5), descriptor (step 4), n_clusters (n_clusters, k_rule, k_max),
         seed, device
         resources: batch_images (images read at once / kept in the pixel cache)
"""

import logging

from blindlca.clustering import number_of_clusters
from blindlca.contrastive import train_head
from blindlca.data import read_index
from blindlca.descriptors import descriptors_of
from blindlca.device import resolve_device
from blindlca.io import ArrayReader, load_array, save_model
from blindlca.workflow import run


def main(
    *,
    features: str,
    alpha: str,
    index: str,
    head: str,
    contrastive: dict,
    descriptor: dict,
    n_clusters: dict,
    seed: int,
    device: str,
    batch_images: int = 16,
) -> None:
    log = logging.getLogger("blindlca")
    dev = resolve_device(device)
    feats, maps = ArrayReader(features), load_array(alpha)
    # Neighbours and the threshold come from descriptors of the raw features.
    raw = descriptors_of(feats, maps, batch_size=batch_images, device=dev, **descriptor)
    k = number_of_clusters(
        n_clusters["n_clusters"],
        [r.cls for r in read_index(index)],
        raw,
        k_rule=n_clusters["k_rule"],
        k_max=n_clusters["k_max"],
        seed=seed,
    )
    log.info("threshold k-means with K = %d", k)
    net, summary = train_head(
        feats,
        maps,
        raw,
        n_clusters=k,
        **contrastive,
        seed=seed,
        device=dev,
        cache_images=batch_images,
        log=log.info,
    )
    config = {"channels": feats.shape[1], "hidden": contrastive["hidden"], "d_out": contrastive["d_out"]}
    save_model(head, net, config=config, summary=summary)


run(main, globals())
