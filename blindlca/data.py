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
UNLABELED = ""  # the class of every image of a plain (non-MVTec) folder
INDEX_FIELDS = ("image", "class", "mask")


@dataclass(frozen=True)
class ImageRecord:
    """One image of a category; paths are relative to the dataset root ("" = no mask)."""

    image: str
    cls: str
    mask: str = ""


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere below `folder` (hidden files and folders skipped), sorted by path."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def is_mvtec_category(folder: str | os.PathLike) -> bool:
    return (Path(folder) / "test").is_dir()


def list_categories(root: str | os.PathLike) -> list[str]:
    """Sorted category names under `root`.

    MVTec layout: the sub-folders that hold a `test/` folder. Otherwise (a plain folder of unlabeled
    images): every sub-folder that holds images, at any depth below it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data_root {str(root)!r} is not a folder; point `data_root` at a dataset in MVTec layout "
            "(<root>/<category>/test/<class>/<image>) or at a folder of image folders, one per category"
        )
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [p.name for p in folders if is_mvtec_category(p)] or [p.name for p in folders if _images_under(p)]
    if not found:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS][:3]
        hint = (
            f" It holds images directly ({', '.join(loose)}, ...): move them into a folder per category."
            if loose
            else ""
        )
        raise FileNotFoundError(
            f"no category found under {str(root)!r}: expected <root>/<category>/test/<class>/<image> (MVTec) "
            f"or <root>/<category>/<images>.{hint}"
        )
    return found


def index_category(
    root: str | os.PathLike, category: str, *, exclude_classes: Sequence[str] = ("combined",)
) -> list[ImageRecord]:
    """All images of one category, sorted by (class, file name), with their mask paths.

    A category without a `test/` folder is a plain folder of unlabeled images: every image below it,
    with class "" (unknown) and no mask.
    """
    root = Path(root)
    folder = root / category
    if not folder.is_dir():
        raise FileNotFoundError(f"category folder {str(folder)!r} does not exist")
    if not is_mvtec_category(folder):
        records = [
            ImageRecord(image=p.relative_to(root).as_posix(), cls=UNLABELED) for p in _images_under(folder)
        ]
        if not records:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {str(folder)!r}")
        return records
    test = folder / "test"
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


def is_labeled(records: Sequence[ImageRecord]) -> bool:
    """Whether the images carry classes (MVTec layout) or are a plain unlabeled folder."""
    return any(r.cls != UNLABELED for r in records)


def image_key(record: ImageRecord) -> str:
    """The image's path inside its category, without `test/` and suffix: `<class>/<name>` for MVTec,
    `<sub-folders>/<name>` for a plain folder. Used to name per-image outputs."""
    parts = Path(record.image).with_suffix("").parts[1:]
    return "/".join(parts[1:] if parts and parts[0] == "test" else parts)


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
