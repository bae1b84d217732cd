"""Real snakemake runs on a dataset with broken files, odd formats and mask mistakes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image
from test_workflow import TINY, read_rows, snakemake

from blindlca.synthetic import generate_category

pytestmark = pytest.mark.workflow


def _edit(path, fn):
    """Rewrite the image at `path` through `fn` (an (H, W, 3) uint8 array -> a PIL image)."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    fn(rgb).save(path)


def _build(root):
    """Two categories in MVTec layout (64 px), then one of each kind of odd or bad input."""
    for family in ("woven", "tiled"):
        generate_category(
            root, family, image_size=64, n_good=5, n_per_defect=3, defects=["scratch", "hole"], seed=3
        )
    good = root / "woven" / "test" / "good"
    # Odd but usable: alpha, grey, palette, 16-bit, non-square.
    _edit(good / "000.png", lambda a: Image.fromarray(np.dstack([a, np.full(a.shape[:2], 90, np.uint8)])))
    _edit(good / "001.png", lambda a: Image.fromarray(a).convert("L"))
    _edit(good / "002.png", lambda a: Image.fromarray(a).convert("P"))
    _edit(good / "003.png", lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257))
    _edit(good / "004.png", lambda a: Image.fromarray(a).resize((80, 64)))
    # Bad.
    (good / "010.png").write_bytes(b"")
    truncated = (good / "000.png").read_bytes()
    (good / "011.png").write_bytes(truncated[: len(truncated) // 2])
    (good / "012.jpg").write_text("not a JPEG")
    (good / "013.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    Image.new("RGB", (8, 8)).save(good / "014.png")
    shutil.copy(root / "woven/test/scratch/000.png", root / "woven/test/scratch/009.png")  # no mask
    gt = root / "tiled" / "ground_truth"
    grey = np.asarray(Image.open(gt / "hole/000_mask.png")).copy()
    grey[0, :8] = 128
    Image.fromarray(grey).save(gt / "hole/000_mask.png")
    Image.open(gt / "scratch/001_mask.png").resize((64, 32), Image.NEAREST).save(gt / "scratch/001_mask.png")
    Image.open(gt / "scratch/002_mask.png").resize((32, 32), Image.NEAREST).save(gt / "scratch/002_mask.png")


EXPECTED_ERROR = (
    "8 of 28 images of dataset 'mine' cannot be used (paths relative to {root}):\n"
    "  tiled/test/hole/000.png: its mask tiled/ground_truth/hole/000_mask.png is not binary (3 distinct "
    "values: 0, 128, 255); masks must hold 0 for normal pixels and one other value for anomalous ones (a "
    "JPEG or resampled mask? save it as PNG)\n"
    "  tiled/test/scratch/001.png: its mask tiled/ground_truth/scratch/001_mask.png is 64x32 px but the "
    "image is 64x64 px, another aspect ratio: is it the mask of another image?\n"
    "  woven/test/good/010.png: empty file (0 bytes)\n"
    "  woven/test/good/011.png: truncated or corrupt: image file is truncated\n"
    "  woven/test/good/012.jpg: not a readable .jpg image (damaged, or another kind of file under that "
    "name)\n"
    "  woven/test/good/013.heic: unsupported format .heic: Pillow cannot decode it here; convert it to PNG\n"
    "  woven/test/good/014.png: too small (8x8 px): images need at least 16 px per side, the side of the "
    "backbone's feature map at backbone.image_size; lower backbone.image_size or leave the image out\n"
    "  woven/test/scratch/009.png: no mask: expected woven/ground_truth/scratch/009_mask.png (other defect "
    "images of this category have one)\n"
    "Fix or remove these files, or set `on_bad_image: skip` (e.g. --config on_bad_image=skip) to leave "
    "them out; they are then listed in results/mine/skipped.csv."
)


def test_bad_images_stop_the_run_then_are_skipped(tmp_path):
    root = tmp_path / "mine"
    _build(root)
    config = {
        **TINY,
        "dataset": "mine",
        "data_root": str(root),
        "methods": ["just_fca"],
        "categories": ["tiled", "woven"],
    }
    work = tmp_path / "work"
    work.mkdir()

    failed = snakemake(work, config=config, check=False)
    assert failed.returncode != 0
    assert EXPECTED_ERROR.format(root=root) in failed.stderr
    assert not (work / "results/mine/features").exists()  # stopped before the heavy work

    # A file fixed in place (the folder's own mtime does not change) is picked up by the next run.
    (root / "woven/test/good/011.png").write_bytes((root / "tiled/test/good/000.png").read_bytes())
    done = snakemake(work, config={**config, "on_bad_image": "skip"})
    results = work / "results/mine"
    skipped = read_rows(results / "skipped.csv")
    assert [r["image"] for r in skipped] == [
        "tiled/test/hole/000.png",
        "tiled/test/scratch/001.png",
        "woven/test/good/010.png",
        "woven/test/good/012.jpg",
        "woven/test/good/013.heic",
        "woven/test/good/014.png",
        "woven/test/scratch/009.png",
    ]
    assert skipped[2]["reason"] == "empty file (0 bytes)"
    assert "blindlca: mine: 7 of 28 images left out as unusable: see results/mine/skipped.csv" in done.stderr
    assert (
        "blindlca: mine: tiled/test/scratch/002.png: its mask tiled/ground_truth/scratch/002_mask.png is "
        "32x32 px, the image 64x64 px: the mask is resized to the image (nearest neighbour) for evaluation"
    ) in done.stderr

    woven = read_rows(results / "just_fca/clusters/woven.csv")
    assert len(woven) == 17 - 5  # 5 bad files left out; 011 was fixed
    assert "woven/test/good/011.png" in {r["image"] for r in woven}
    maps = results / "just_fca/anomaly_maps/woven/good"
    assert tifffile.imread(maps / "004.tiff").shape == (64, 80)  # the non-square image, at its own size
    assert tifffile.imread(maps / "003.tiff").shape == (64, 64)  # the 16-bit one
    assert read_rows(results / "just_fca/clusters/tiled.csv").__len__() == 9
    localization = (results / "localization/fca-features/tiled.json").read_text()
    assert "pixel_auroc" in localization  # with the half-size mask resized


def test_a_listed_category_that_is_not_there(tmp_path):
    root = tmp_path / "mine"
    generate_category(root, "woven", image_size=64, n_good=2, n_per_defect=1, defects=["hole"], seed=0)
    config = {**TINY, "dataset": "mine", "data_root": str(root), "categories": ["woven", "wool"]}
    proc = snakemake(tmp_path, "-n", config=config, check=False)
    assert proc.returncode != 0
    assert (
        f"categories ['wool'] are not folders under data_root {str(root)!r}; it holds ['woven']"
        in proc.stdout + proc.stderr
    )


def test_category_folders_whose_names_cannot_be_wildcards(tmp_path):
    root = tmp_path / "mine"
    generate_category(root, "woven", image_size=64, n_good=2, n_per_defect=1, defects=["hole"], seed=0)
    shutil.copytree(root / "woven", root / "my carpet")
    config = {**TINY, "dataset": "mine", "data_root": str(root)}
    proc = snakemake(tmp_path, "-n", config=config, check=False)
    assert proc.returncode != 0
    assert (
        "may use only letters A-Z a-z, digits, '_', '.' and '-' in their names (they become file names and "
        "Snakemake wildcards); rename them ('my carpet' -> 'my_carpet') or run the others only with "
        "`categories: [woven]`"
    ) in proc.stdout + proc.stderr
    assert "MissingInputException" not in proc.stdout + proc.stderr
    snakemake(tmp_path, "-n", config={**config, "categories": ["woven"]})  # the advice works
