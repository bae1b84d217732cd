"""Write every anomaly map of a category at image resolution: float32 TIFF and PNG overlay.

Inputs:  alpha (N, h, w), index
Outputs: folder   <class>/<stem>.tiff (float32 map) and <class>/<stem>.png (overlay) (plain folders:
                  <sub-folders>/<stem>.*), one colour
                  scale [0, max alpha of the category] for all overlays
Params:  root
"""

import os
import shutil
from pathlib import Path

import tifffile
from PIL import Image

from blindlca.data import image_key, load_rgb, read_index
from blindlca.figures import overlay, upsample
from blindlca.io import load_array
from blindlca.workflow import run


def main(*, alpha: str, index: str, folder: str, root: str) -> None:
    maps = load_array(alpha)
    vmax = float(maps.max())
    tmp = Path(f"{folder}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for record, a in zip(read_index(index), maps, strict=True):
        image = load_rgb(Path(root, record.image))
        full = upsample(a, image.shape[:2])
        stem = tmp / image_key(record)
        stem.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(f"{stem}.tiff", full)
        Image.fromarray(overlay(image, full, vmin=0.0, vmax=vmax)).save(f"{stem}.png")
    os.replace(tmp, folder)  # the folder appears complete or not at all


run(main, globals())
