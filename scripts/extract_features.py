"""Extract raw WideResNet-50-2 features for every image of a category.

Inputs:  index, weights (absent for random weights)
Outputs: features (N, 512, h, w) float32 .npy, rows in index order
Params:  root, backbone (layer, image_size, batch_size), seed, device
"""

import logging
from pathlib import Path

from blindlca.data import load_rgb, read_index
from blindlca.device import resolve_device
from blindlca.features import build_backbone, extract_features
from blindlca.io import save_array
from blindlca.workflow import run


def main(
    *,
    index: str,
    features: str,
    root: str,
    backbone: dict,
    seed: int,
    device: str,
    weights: str | None = None,
) -> None:
    log = logging.getLogger("blindlca")
    if weights is None:
        log.warning("backbone weights: RANDOM (seed %d), not ImageNet; results are not the paper's", seed)
    paths = [Path(root, r.image) for r in read_index(index)]
    net = build_backbone(weights, layer=backbone["layer"], seed=seed)
    dev = resolve_device(device)
    log.info("%d images, %d px, on %s", len(paths), backbone["image_size"], dev)
    out = extract_features(
        net,
        paths,
        load=load_rgb,
        image_size=backbone["image_size"],
        batch_size=backbone["batch_size"],
        device=dev,
    )
    log.info("features %s", out.shape)
    save_array(features, out)


run(main, globals())
