"""Extract raw WideResNet-50-2 features for every image of a category.

Inputs:  index, weights (absent for random weights), checked (the dataset check; only orders the job)
Outputs: features (N, 512, h, w) float32 .npy, rows in index order, written batch by batch
Params:  root, backbone (layer, image_size, batch_size), seed, device
"""

import logging
from pathlib import Path

from blindlca.data import load_rgb, read_index
from blindlca.device import resolve_device
from blindlca.features import build_backbone, iter_features
from blindlca.io import array_writer
from blindlca.workflow import run


def main(
    *,
    index: str,
    features: str,
    root: str,
    backbone: dict,
    seed: int,
    device: str,
    checked: str,
    weights: str | None = None,
) -> None:
    del checked  # the dataset check passed (or skipped the bad images) before any feature is computed
    log = logging.getLogger("blindlca")
    if weights is None:
        log.warning("backbone weights: RANDOM (seed %d), not ImageNet; results are not the paper's", seed)
    paths = [Path(root, r.image) for r in read_index(index)]
    net = build_backbone(weights, layer=backbone["layer"], seed=seed)
    dev = resolve_device(device)
    log.info("%d images, %d px, on %s", len(paths), backbone["image_size"], dev)
    batches = iter_features(
        net,
        paths,
        load=load_rgb,
        image_size=backbone["image_size"],
        batch_size=backbone["batch_size"],
        device=dev,
    )
    first = next(batches)
    with array_writer(features, (len(paths), *first.shape[1:])) as out:
        out.write(first)
        for batch in batches:
            out.write(batch)
    log.info("features (%d, %s)", len(paths), ", ".join(map(str, first.shape[1:])))


run(main, globals())
