"""Localization metrics of one anomaly-map source on one category (FCA / MVTec AD protocol).

Inputs:  alpha (N, h, w), index (image, class, mask)
Outputs: metrics  JSON {pixel_auroc, au_pro, image_auroc}; {} when masks are missing
Params:  root, fpr_limit
"""

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from blindlca.data import GOOD, load_mask, read_index
from blindlca.io import load_array, save_json
from blindlca.metrics import localization_metrics, upsample_maps
from blindlca.workflow import run


def main(*, alpha: str, index: str, metrics: str, root: str, fpr_limit: float) -> None:
    log = logging.getLogger("blindlca")
    records = read_index(index)
    missing = [r.image for r in records if r.cls != GOOD and not r.mask]
    if missing:
        log.warning(
            "no mask for %d defect images (e.g. %s): localization metrics left out", len(missing), missing[0]
        )
        save_json(metrics, {})
        return
    masks = []
    for r in records:
        if r.mask:
            masks.append(load_mask(Path(root, r.mask)))
        else:
            with Image.open(Path(root, r.image)) as im:  # reads the header only
                masks.append(np.zeros(im.size[::-1], dtype=bool))
    sizes = sorted({m.shape for m in masks})
    if len(sizes) > 1:
        # The protocol compares at mask resolution; a common size keeps one global pixel pool.
        log.warning("masks of %d sizes %s: all are resized (nearest) to %s", len(sizes), sizes[:3], sizes[-1])
        masks = [np.asarray(Image.fromarray(m).resize(sizes[-1][::-1], Image.NEAREST)) for m in masks]
    maps = upsample_maps(load_array(alpha), sizes[-1])
    result = localization_metrics(maps, np.stack(masks), fpr_limit=fpr_limit)
    log.info("%s", result)
    save_json(metrics, {k: float(v) for k, v in result.items()})


run(main, globals())
