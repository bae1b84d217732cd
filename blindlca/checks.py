"""Input checks before the heavy work: which images of a dataset can be used, and why the others cannot.

Two levels, both run before any feature is extracted:

- per image (`check_category`, one job per category): every image is decoded in full, and its mask, if
  the category has masks, is checked against it. An image with a fatal problem is left out of the index.
- per dataset (`dataset_report`, one job): the problems of every category are gathered into one message;
  `on_bad_image` decides whether the run stops (error) or goes on without those images (skip).
  Problems of a whole category (no usable images, nothing to cluster) always stop it.

Every reason names the files involved by their path relative to the dataset root, and says what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from blindlca.data import (
    GOOD,
    IMAGE_EXTENSIONS,
    READABLE_EXTENSIONS,
    ImageRecord,
    expected_mask,
    image_key,
    is_labeled,
    mask_values,
    rgb_array,
)
from blindlca.errors import InputError

PROBLEM_FIELDS = ("image", "reason", "fatal")
SKIPPED_FIELDS = ("image", "reason")
# Input pixels per feature cell of WideResNet-50-2 at each truncation layer (tests check the real net).
FEATURE_STRIDE = {"layer1": 4, "layer2": 8, "layer3": 16}
# Masks whose aspect ratio is within this of their image's are resized to it rather than refused.
ASPECT_TOLERANCE = 0.01
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Problem:
    """What is wrong with one image (path relative to the dataset root). Not fatal: a warning only."""

    image: str
    reason: str
    fatal: bool = True


def min_image_side(image_size: int, layer: str) -> int:
    """Smallest image side the backbone can use: the side of its feature map at `image_size`.

    Every image is resized to image_size x image_size; below this size one feature cell would cover
    less than one source pixel, so the features would describe interpolation, not texture.
    """
    return max(1, image_size // FEATURE_STRIDE[layer])


def image_problem(path: str | os.PathLike, *, min_side: int = 1) -> tuple[str | None, tuple[int, int]]:
    """Decode the whole image; (reason it cannot be used or None, its (width, height) or (0, 0))."""
    reason, size, _ = _inspect_image(Path(path), min_side)
    return reason, size


def _inspect_image(path: Path, min_side: int) -> tuple[str | None, tuple[int, int], int]:
    """`image_problem` plus the EXIF orientation (1 when none), from one decode of the file."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)", (0, 0), 1
        with Image.open(path) as im:
            rgb = rgb_array(im)
            orientation = exif_orientation(im)
    except FileNotFoundError:
        return "cannot be read: the file (or the target of its link) does not exist", (0, 0), 1
    except PermissionError:
        return "cannot be read: permission denied", (0, 0), 1
    except Image.DecompressionBombError as err:
        return f"too large to decode safely ({err})", (0, 0), 1
    except UnidentifiedImageError:
        kind = path.suffix.lower()
        if kind in READABLE_EXTENSIONS:
            return (
                f"not a readable {kind} image (damaged, or another kind of file under that name)",
                (0, 0),
                1,
            )
        return f"unsupported format {kind}: Pillow cannot decode it here; convert it to PNG", (0, 0), 1
    except InputError as err:
        return str(err), (0, 0), 1
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        text = str(err) or type(err).__name__
        return f"truncated or corrupt: {text}", (0, 0), 1
    height, width = rgb.shape[:2]
    if min(height, width) < min_side:
        return (
            f"too small ({width}x{height} px): images need at least {min_side} px per side, the side of the "
            "backbone's feature map at backbone.image_size; lower backbone.image_size or leave the image out",
            (width, height),
            orientation,
        )
    return None, (width, height), orientation


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation tag of an open image (after its pixels are loaded: PNG keeps EXIF anywhere);
    1 (as stored) when there is none or the EXIF block is damaged, which leaves the pixels usable."""
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # Pillow raises SyntaxError, ValueError, ... on a malformed EXIF block
        return 1


def orientation_note(orientation: int) -> str | None:
    """A warning for an image whose EXIF tag asks viewers to rotate or mirror it (phone photos), or None.

    Pixels are used as stored, so that an image and its mask (which has no such tag) stay aligned; a mask
    drawn on the rotated view would not match, and the user is the one who knows which it was.
    """
    if orientation in (0, 1):
        return None
    return (
        f"its EXIF orientation {orientation} (rotate or mirror to view) is ignored: pixels are used as "
        "stored and maps are written that way; if the mask or your viewer assume the rotated view, save the "
        "image with its pixels rotated (e.g. PIL.ImageOps.exif_transpose)"
    )


def mask_problem(path: str | os.PathLike, mask: str, image_size: tuple[int, int]) -> tuple[str | None, bool]:
    """(reason, fatal) for the mask file `path` (named `mask` in messages) of an image of `image_size`
    (width, height); (None, False) when it is fine."""
    reason, mask_size = image_problem(path)
    if reason is not None:
        return f"its mask {mask}: {reason}", True
    values = np.unique(mask_values(path))
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        shown = ", ".join(str(v) for v in values[:4]) + (", ..." if len(values) > 4 else "")
        return (
            f"its mask {mask} is not binary ({len(values)} distinct values: {shown}); masks must hold 0 for "
            "normal pixels and one other value for anomalous ones (a JPEG or resampled mask? save it as PNG)",
            True,
        )
    if mask_size != tuple(image_size):
        (mw, mh), (w, h) = mask_size, image_size
        if abs(mw * h - mh * w) > ASPECT_TOLERANCE * mh * w:
            return (
                f"its mask {mask} is {mw}x{mh} px but the image is {w}x{h} px, another aspect ratio: "
                "is it the mask of another image?",
                True,
            )
        return (
            f"its mask {mask} is {mw}x{mh} px, the image {w}x{h} px: the mask is resized to the image "
            "(nearest neighbour) for evaluation",
            False,
        )
    return None, False


def check_category(
    root: str | os.PathLike, records: Sequence[ImageRecord], *, min_side: int = 1, progress: bool = True
) -> tuple[list[ImageRecord], list[Problem]]:
    """Decode every image of a category and check its mask: (usable records, problems).

    A category has masks when any of its defect images has one; then every defect image must have one.
    A category without any mask is labels-only: it is clustered and scored, but not localized.
    """
    root = Path(root)
    has_masks = any(r.mask for r in records)
    usable, problems = [], []
    first_of_key: dict[str, str] = {}
    for r in tqdm(records, desc="check", unit="img", disable=not progress, mininterval=5):
        key = image_key(r)
        if key in first_of_key:
            # Per-image outputs (maps, overlays) are named by the key: the second would overwrite the first.
            problems.append(
                Problem(
                    r.image, f"same name as {first_of_key[key]} but for the extension; rename one of them"
                )
            )
            continue
        reason, size, orientation = _inspect_image(root / r.image, min_side)
        fatal = reason is not None
        if not fatal:
            first_of_key[key] = r.image
        if not fatal and (note := orientation_note(orientation)):
            problems.append(Problem(r.image, note, fatal=False))
        if reason is None and r.mask:
            reason, fatal = mask_problem(root / r.mask, r.mask, size)
        elif reason is None and has_masks and r.cls != GOOD:
            expected = expected_mask(r.image)
            reason, fatal = (
                f"no mask: expected {expected} (other defect images of this category have one)",
                True,
            )
        if reason is not None:
            problems.append(Problem(r.image, reason, fatal))
        if not fatal:
            usable.append(r)
    return usable, problems


def category_problems(
    category: str,
    records: Sequence[ImageRecord],
    *,
    n_clusters: str | int,
    n_bad: int = 0,
) -> list[str]:
    """What keeps a whole category from being clustered (its `records` are the usable images)."""
    n = len(records)
    bad = f" ({n_bad} more left out as bad)" if n_bad else ""
    leave_out = "or leave the category out with `categories: [...]`"
    if n == 0:
        return [
            f"category {category!r} has no usable image{bad}; expected images "
            f"({', '.join(IMAGE_EXTENSIONS[:6])}, ...) under {category}/test/<class>/ or anywhere below "
            f"{category}/; add images {leave_out}"
        ]
    if n < 2:
        return [
            f"category {category!r} has 1 usable image{bad}; clustering needs at least 2; "
            f"add images {leave_out}"
        ]
    classes = sorted({r.cls for r in records})
    if n_clusters == "labels":
        if not is_labeled(records):
            return [
                f"category {category!r} is a plain folder without classes, but clustering.n_clusters is "
                "'labels'; set clustering.n_clusters to auto or to a number"
            ]
        if len(classes) < 2:
            return [
                f"category {category!r} holds only class {classes[0]!r}{bad}: n_clusters 'labels' would give "
                "a single cluster, with nothing to group by defect type; add the other classes, set "
                f"clustering.n_clusters to auto or a number, {leave_out}"
            ]
    elif n_clusters == "auto":
        if n < 3:
            return [
                f"category {category!r} has {n} usable images{bad}; n_clusters 'auto' compares K = 2 .. "
                f"N - 1 and needs at least 3; set clustering.n_clusters to a number {leave_out}"
            ]
    elif n < n_clusters:
        return [
            f"category {category!r} has {n} usable images{bad}, fewer than clustering.n_clusters = "
            f"{n_clusters}; lower n_clusters {leave_out}"
        ]
    return []


@dataclass(frozen=True)
class DatasetReport:
    """The outcome of the dataset check: what is skipped, what is only warned about, what stops the run."""

    skipped: list[Problem]
    warnings: list[Problem]
    errors: list[str]

    def message(self, *, dataset: str, root: str, on_bad_image: str, n_images: int) -> str:
        """The one message a user reads when the check stops the run."""
        lines = []
        if self.skipped and on_bad_image == "error":
            lines.append(
                f"{len(self.skipped)} of {n_images} images of dataset {dataset!r} cannot be used "
                f"(paths relative to {root}):"
            )
            lines += [f"  {p.image}: {p.reason}" for p in self.skipped]
            lines.append(
                "Fix or remove these files, or set `on_bad_image: skip` (e.g. --config on_bad_image=skip) "
                f"to leave them out; they are then listed in results/{dataset}/skipped.csv."
            )
        if self.errors:
            lines.append(f"Dataset {dataset!r} ({root}) cannot be clustered as it is:")
            lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)

    def stops(self, on_bad_image: str) -> bool:
        return bool(self.errors) or (on_bad_image == "error" and bool(self.skipped))


def dataset_report(
    usable: Mapping[str, Sequence[ImageRecord]],
    problems: Mapping[str, Iterable[Problem]],
    *,
    n_clusters: str | int,
    on_bad_image: str = "error",
) -> DatasetReport:
    """Gather the per-category checks of a dataset (both keyed by category, in run order)."""
    if on_bad_image not in ("error", "skip"):
        raise InputError(f"on_bad_image must be 'error' or 'skip', got {on_bad_image!r}")
    skipped, warnings, errors = [], [], []
    for category, records in usable.items():
        found = list(problems.get(category, ()))
        bad = [p for p in found if p.fatal]
        skipped += bad
        warnings += [p for p in found if not p.fatal]
        errors += category_problems(category, records, n_clusters=n_clusters, n_bad=len(bad))
    return DatasetReport(skipped=skipped, warnings=warnings, errors=errors)
