"""Localization metrics of one anomaly-map source on one category (FCA / MVTec AD protocol).

Inputs:  alpha (N, h, w), index (image, class, mask)
Outputs: metrics  JSON {pixel_auroc, au_pro, image_auroc}; {} when masks are missing
Params:  root, fpr_limit
"""

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from blindlca.data import GOOD, load_mask, read_index, resize_mask
from blindlca.io import load_array, save_json
from blindlca.metrics import localization_metrics, upsample_maps
from blindlca.workflow import run


def main(*, alpha: str, index: str, metrics: str, root: str, fpr_limit: float) -> None:
    log = logging.getLogger("blindlca")
    records = read_index(index)
    missing = [r.image for r in records if r.cls != GOOD and not r.mask]
    if missing:
        # The dataset check lets this through only for a category with no mask at all (labels only).
        log.warning(
            "no mask for %d defect images (e.g. %s): localization metrics left out", len(missing), missing[0]
        )
        save_json(metrics, {})
        return
    masks = []
    for r in records:
        with Image.open(Path(root, r.image)) as im:  # reads the header only
            size = im.size
        # A mask of another size but the same aspect ratio was warned about by the dataset check.
        masks.append(load_mask(Path(root, r.mask), size=size) if r.mask else np.zeros(size[::-1], dtype=bool))
    sizes = sorted({m.shape for m in masks})
    if len(sizes) > 1:
        # The protocol compares at mask resolution; a common size keeps one global pixel pool.
        log.warning("images of %d sizes %s: masks resized (nearest) to %s", len(sizes), sizes[:3], sizes[-1])
        masks = [resize_mask(m, sizes[-1][::-1]) for m in masks]
    maps = upsample_maps(load_array(alpha), sizes[-1])
    result = localization_metrics(maps, np.stack(masks), fpr_limit=fpr_limit)
    log.info("%s", result)
    save_json(metrics, {k: float(v) for k, v in result.items()})


run(main, globals())
