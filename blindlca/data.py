"""Datasets in MVTec AD layout: listing categories and images, reading images and masks.

Layout: `<root>/<category>/test/<class>/<image>` and, for defect classes,
`<root>/<category>/ground_truth/<class>/<stem>_mask.png`. Only evaluation reads classes and masks.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from blindlca.errors import InputError
from blindlca.io import read_csv, write_csv

# Files with these extensions are indexed; decoding (blindlca.checks) then decides whether they are usable,
# so a .heic or .jxl that Pillow cannot read is reported rather than silently ignored.
READABLE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
OTHER_IMAGE_EXTENSIONS = (".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".exr", ".hdr", ".dng", ".svg")
IMAGE_EXTENSIONS = READABLE_EXTENSIONS + OTHER_IMAGE_EXTENSIONS
GOOD = "good"
UNLABELED = ""  # the class of every image of a plain (non-MVTec) folder
INDEX_FIELDS = ("image", "class", "mask")
# Category names become Snakemake wildcards and file names (config/schema.yaml's `categories` pattern too).
_CATEGORY_CHARS = "A-Za-z0-9_.-"
CATEGORY_NAME = f"[{_CATEGORY_CHARS}]+"


@dataclass(frozen=True)
class ImageRecord:
    """One image of a category; paths are relative to the dataset root ("" = no mask)."""

    image: str
    cls: str
    mask: str = ""


def _is_image_file(path: Path) -> bool:
    # Broken links count: the checks then report them instead of the image silently vanishing.
    return path.suffix.lower() in IMAGE_EXTENSIONS and (path.is_file() or path.is_symlink())


def _images_under(folder: Path) -> list[Path]:
    """Image files anywhere below `folder` (hidden files and folders skipped), sorted by path."""
    return sorted(
        p
        for p in folder.rglob("*")
        if _is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
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


def check_category_names(names: Sequence[str], root: str | os.PathLike) -> None:
    """Raise InputError naming every folder under `root` whose name cannot be a category (`CATEGORY_NAME`),
    with a name to rename it to."""
    bad = [n for n in names if not re.fullmatch(CATEGORY_NAME, n)]
    if not bad:
        return
    good = [n for n in names if n not in bad]
    renames = ", ".join(f"{n!r} -> {_usable_name(n)!r}" for n in bad)
    keep = f" or run the others only with `categories: [{', '.join(good)}]`" if good else ""
    raise InputError(
        f"category folders under data_root {str(root)!r} may use only letters A-Z a-z, digits, '_', '.' and "
        f"'-' in their names (they become file names and Snakemake wildcards); rename them ({renames}){keep}"
    )


def _usable_name(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(f"[^{_CATEGORY_CHARS}]+", "_", ascii_name).strip("_") or "category"


def index_category(
    root: str | os.PathLike, category: str, *, exclude_classes: Sequence[str] = ("combined",)
) -> list[ImageRecord]:
    """All images of one category, sorted by (class, file name), with their mask paths ("" where the
    expected mask file does not exist; see `expected_mask`). Empty when the category holds no images.

    A category without a `test/` folder is a plain folder of unlabeled images: every image below it,
    with class "" (unknown) and no mask. Nothing is decoded here; blindlca.checks does that.
    """
    root = Path(root)
    folder = root / category
    if not folder.is_dir():
        raise FileNotFoundError(f"category folder {str(folder)!r} does not exist")
    if not is_mvtec_category(folder):
        images = _images_under(folder)
        return [ImageRecord(image=p.relative_to(root).as_posix(), cls=UNLABELED) for p in images]
    records = []
    for class_dir in sorted(p for p in (folder / "test").iterdir() if p.is_dir()):
        cls = class_dir.name
        if cls in exclude_classes:
            continue
        for img in sorted(p for p in class_dir.iterdir() if _is_image_file(p)):
            image = img.relative_to(root).as_posix()
            mask = expected_mask(image)
            has_mask = cls != GOOD and (root / mask).is_file()
            records.append(ImageRecord(image=image, cls=cls, mask=mask if has_mask else ""))
    return records


def expected_mask(image: str) -> str:
    """Where MVTec layout keeps the mask of `image` (both relative to the dataset root):
    `<category>/test/<class>/<stem>.<ext>` -> `<category>/ground_truth/<class>/<stem>_mask.png`."""
    category, _test, cls, name = Path(image).parts
    return f"{category}/ground_truth/{cls}/{Path(name).stem}_mask.png"


def folder_fingerprint(folder: str | os.PathLike) -> str:
    """Hash of every file's path, size and modification time below `folder` ("" if it does not exist).

    A folder's own mtime changes only when entries are added or removed; this also changes when a file
    is replaced in place, so a fixed image reruns its category.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return ""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


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
    """Read an image as (H, W, 3) uint8 RGB (see `rgb_array`)."""
    with Image.open(path) as im:
        return rgb_array(im)


def rgb_array(im: Image.Image) -> np.ndarray:
    """An open image's pixels as (H, W, 3) uint8 RGB.

    Grey, palette, CMYK and alpha images are converted (alpha is dropped). 16-bit images are scaled to
    the 8-bit range by their high byte (v >> 8, as Pillow does for 16-bit RGB), never clipped; float
    images must lie in [0, 1]. Raises InputError for pixel formats with no such mapping.
    """
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        v = np.asarray(im).astype(np.int64)
        if v.size and (v.min() < 0 or v.max() > 65535):
            raise InputError(
                f"unsupported pixel format: 32-bit integers from {v.min()} to {v.max()} "
                "(expected 8 or 16 bits per channel)"
            )
        grey = (v >> 8).astype(np.uint8)
    elif mode == "F":
        v = np.asarray(im, dtype=np.float64)
        if v.size and not (np.isfinite(v).all() and v.min() >= 0.0 and v.max() <= 1.0):
            raise InputError("unsupported pixel format: floating-point values outside [0, 1]")
        grey = np.round(v * 255.0).astype(np.uint8)
    else:
        return np.asarray(im.convert("RGB"))
    return np.repeat(grey[..., None], 3, axis=2)


def mask_values(path: str | os.PathLike) -> np.ndarray:
    """A mask's pixel values as one (H, W) channel: grey and 16-bit values as stored, colour and palette
    masks as their luminance."""
    with Image.open(path) as im:
        if im.mode in ("1", "L", "I", "F") or im.mode.startswith("I;16"):
            return np.asarray(im)
        return np.asarray(im.convert("L"))


def load_mask(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as (H, W) bool; any non-zero pixel is anomalous.

    Args:
        size: (width, height) to resize to (nearest neighbour), e.g. its image's size; None keeps it.
    """
    mask = mask_values(path) > 0
    return mask if size is None else resize_mask(mask, size)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool -> (height, width) bool, nearest neighbour; `size` is (width, height)."""
    if mask.shape[::-1] == tuple(size):
        return mask
    # Through uint8: Pillow's 1-bit images come back from resize as 0/255 on some versions.
    return np.asarray(Image.fromarray(mask.astype(np.uint8)).resize(tuple(size), Image.NEAREST)) > 0
