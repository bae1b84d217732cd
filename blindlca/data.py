"""Datasets in MVTec AD layout: listing categories and images, reading images and masks.

Layout: `<root>/<category>/test/<class>/<image>` and, for defect classes,
`<root>/<category>/ground_truth/<class>/<stem>_mask.png`. Only evaluation reads classes and masks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from blindlca.io import read_csv, write_csv

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GOOD = "good"
INDEX_FIELDS = ("image", "class", "mask")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a category; paths are relative to the dataset root ("" = no mask)."""

    image: str
    cls: str
    mask: str = ""


def list_categories(root: str | os.PathLike) -> list[str]:
    """Sorted names of the sub-folders of `root` that hold a `test/` folder."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data_root {str(root)!r} is not a folder; point `data_root` at a dataset in MVTec layout "
            "(<root>/<category>/test/<class>/<image>)"
        )
    found = sorted(p.name for p in root.iterdir() if (p / "test").is_dir())
    if not found:
        raise FileNotFoundError(
            f"no category found under {str(root)!r}: expected <root>/<category>/test/<class>/<image>"
        )
    return found


def index_category(
    root: str | os.PathLike, category: str, *, exclude_classes: Sequence[str] = ("combined",)
) -> list[ImageRecord]:
    """All images of one category, sorted by (class, file name), with their mask paths."""
    root = Path(root)
    test = root / category / "test"
    if not test.is_dir():
        raise FileNotFoundError(f"category folder {str(test)!r} does not exist (MVTec layout expected)")
    records = []
    for class_dir in sorted(p for p in test.iterdir() if p.is_dir()):
        cls = class_dir.name
        if cls in exclude_classes:
            continue
        for img in sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            mask = root / category / "ground_truth" / cls / f"{img.stem}_mask.png"
            records.append(
                ImageRecord(
                    image=img.relative_to(root).as_posix(),
                    cls=cls,
                    mask=mask.relative_to(root).as_posix() if cls != GOOD and mask.is_file() else "",
                )
            )
    if not records:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {str(test)!r}")
    return records


def write_index(path: str | os.PathLike, records: Sequence[ImageRecord]) -> None:
    write_csv(
        path, ({"image": r.image, "class": r.cls, "mask": r.mask} for r in records), fields=INDEX_FIELDS
    )


def read_index(path: str | os.PathLike) -> list[ImageRecord]:
    return [ImageRecord(image=r["image"], cls=r["class"], mask=r["mask"]) for r in read_csv(path)]


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB (grey, palette and alpha images are converted)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask as (H, W) bool; any non-zero pixel is anomalous."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 0
