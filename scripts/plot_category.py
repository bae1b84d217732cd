"""Report figures of one method on one category.

Inputs:  clusters CSV, descriptors (N, D), index, alpha (N, h, w) and scale_maps (every category's alpha,
         for one colour scale over the dataset; methods with anomaly maps only)
Outputs: figures  folder of PNGs: montage, embedding, contingency (labels), gallery (maps),
                  k_selection (auto K)
Params:  root, clustering (n_clusters, k_rule, k_max), seed
"""

import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from blindlca.data import image_key, is_labeled, load_rgb, read_index
from blindlca.figures import (
    cluster_montage,
    contingency_figure,
    embedding_figure,
    gallery_figure,
    k_selection_figure,
    overlay,
    save_figure,
    upsample,
)
from blindlca.io import load_array, read_csv
from blindlca.kselect import k_scores
from blindlca.workflow import run

THUMB = 128


def thumbnail(image: np.ndarray) -> np.ndarray:
    """Shrink early: a montage of a large category must not hold every full-size image."""
    im = Image.fromarray(image)
    im.thumbnail((THUMB, THUMB))
    return np.asarray(im)


def main(
    *,
    clusters: str,
    descriptors: str,
    index: str,
    figures: str,
    root: str,
    clustering: dict,
    seed: int,
    alpha: str | None = None,
    scale_maps: list | None = None,
) -> None:
    log = logging.getLogger("blindlca")
    records = read_index(index)
    labels = [int(r["cluster"]) for r in read_csv(clusters)]
    classes = [r.cls for r in records] if is_labeled(records) else None
    maps = load_array(alpha) if alpha is not None else None
    vmax = max(float(load_array(p).max()) for p in scale_maps) if scale_maps else 1.0
    images, overlays, small_maps = [], [], []
    for i, record in enumerate(records):
        image = thumbnail(load_rgb(Path(root, record.image)))
        images.append(image)
        if maps is not None:
            small_maps.append(upsample(maps[i], image.shape[:2]))
            overlays.append(overlay(image, small_maps[-1], vmin=0.0, vmax=vmax))
        else:
            overlays.append(image)
    tmp = Path(f"{figures}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_figure(cluster_montage(images, overlays, labels, classes=classes), tmp / "montage.png")
    desc = load_array(descriptors)
    save_figure(embedding_figure(desc, labels, classes=classes, seed=seed), tmp / "embedding.png")
    if classes is not None:
        save_figure(contingency_figure(classes, labels), tmp / "contingency.png")
    if maps is not None:
        # A few images of each class (or cluster, without labels), drawn on the dataset-wide scale.
        groups = defaultdict(list)
        for i, record in enumerate(records):
            groups[record.cls if classes is not None else labels[i]].append(i)
        chosen = [i for members in groups.values() for i in members[:4]]
        fig = gallery_figure(
            [images[i] for i in chosen],
            [small_maps[i] for i in chosen],
            vmin=0.0,
            vmax=vmax,
            titles=[image_key(records[i]) for i in chosen],
        )
        save_figure(fig, tmp / "gallery.png")
    if clustering["n_clusters"] == "auto":
        scores = k_scores(desc, k_max=clustering["k_max"], rule=clustering["k_rule"], seed=seed)
        fig = k_selection_figure(scores, len(set(labels)), rule=clustering["k_rule"])
        save_figure(fig, tmp / "k_selection.png")
    log.info("figures: %s", sorted(p.name for p in tmp.iterdir()))
    os.replace(tmp, figures)


run(main, globals())
