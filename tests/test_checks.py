"""Tests for blindlca.checks: every kind of bad image, mask and category, with the message a user reads."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from snakemake.iocontainers import InputFiles, Log, OutputFiles, Params

from blindlca.checks import (
    FEATURE_STRIDE,
    DatasetReport,
    Problem,
    category_problems,
    check_category,
    dataset_report,
    exif_orientation,
    image_problem,
    mask_problem,
    min_image_side,
    orientation_note,
)
from blindlca.data import ImageRecord, index_category, load_rgb
from blindlca.errors import InputError
from blindlca.workflow import run

RNG = np.random.default_rng(0)


def _rgb(path, size=(16, 16), mode="RGB"):
    """A random image of (width, height) `size`, saved in `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path)
    return path


def _mask(path, size=(16, 16), values=(0, 255)):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.full((size[1], size[0]), values[0], dtype=np.uint8)
    m[: size[1] // 2, : size[0] // 2] = values[-1]
    if len(values) > 2:
        m[0, -1] = values[1]
    Image.fromarray(m).save(path)
    return path


def _truncated(path):
    full = _rgb(path.with_name(f"full-{path.name}"), size=(64, 64))
    path.write_bytes(full.read_bytes()[:-200])
    full.unlink()
    return path


@pytest.mark.parametrize("layer", ["layer1", "layer2", "layer3"])
def test_feature_stride_is_the_real_backbones(layer):
    from blindlca.features import build_backbone

    net = build_backbone(None, layer=layer)
    with torch.no_grad():
        side = net(torch.zeros(1, 3, 64, 64)).shape[-1]
    assert 64 // side == FEATURE_STRIDE[layer]
    assert min_image_side(512, layer) == 512 // FEATURE_STRIDE[layer]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK"], ids=lambda m: f"mode-{m}")
def test_readable_formats_have_no_problem(tmp_path, mode):
    ext = ".jpg" if mode == "CMYK" else ".png"
    path = _rgb(tmp_path / f"a{ext}", size=(24, 16), mode=mode)  # non-square too
    assert image_problem(path, min_side=8) == (None, (24, 16))


def test_16_bit_images_have_no_problem(tmp_path):
    Image.fromarray(np.full((9, 12), 40000, dtype=np.uint16)).save(tmp_path / "g16.png")
    tifffile.imwrite(tmp_path / "c16.tif", np.full((9, 12, 3), 40000, dtype=np.uint16))
    assert image_problem(tmp_path / "g16.png") == (None, (12, 9))
    assert image_problem(tmp_path / "c16.tif") == (None, (12, 9))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_truncated_image(tmp_path, ext):
    reason, size = image_problem(_truncated(tmp_path / f"t{ext}"))
    assert reason.startswith("truncated or corrupt: image file is truncated") and size == (0, 0)


def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    assert image_problem(tmp_path / "e.png") == ("empty file (0 bytes)", (0, 0))


def test_not_an_image_under_an_image_name(tmp_path):
    (tmp_path / "x.png").write_text("hello")
    assert image_problem(tmp_path / "x.png") == (
        "not a readable .png image (damaged, or another kind of file under that name)",
        (0, 0),
    )


def test_unsupported_format(tmp_path):
    (tmp_path / "x.heic").write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    assert image_problem(tmp_path / "x.heic") == (
        "unsupported format .heic: Pillow cannot decode it here; convert it to PNG",
        (0, 0),
    )


def test_unsupported_pixel_format(tmp_path):
    tifffile.imwrite(tmp_path / "hdr.tif", np.array([[0.0, 3.0]], dtype=np.float32))
    assert image_problem(tmp_path / "hdr.tif") == (
        "unsupported pixel format: floating-point values outside [0, 1]",
        (0, 0),
    )


def test_broken_link(tmp_path):
    (tmp_path / "l.png").symlink_to(tmp_path / "gone.png")
    assert image_problem(tmp_path / "l.png") == (
        "cannot be read: the file (or the target of its link) does not exist",
        (0, 0),
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = _rgb(tmp_path / "a.png")
    path.chmod(0)
    assert image_problem(path) == ("cannot be read: permission denied", (0, 0))


def test_too_small_image(tmp_path):
    path = _rgb(tmp_path / "s.png", size=(63, 80))
    assert image_problem(path, min_side=64) == (
        "too small (63x80 px): images need at least 64 px per side, the side of the backbone's feature "
        "map at backbone.image_size; lower backbone.image_size or leave the image out",
        (63, 80),
    )
    assert image_problem(_rgb(tmp_path / "ok.png", size=(64, 80)), min_side=64) == (None, (64, 80))


def test_mask_problems(tmp_path):
    size = (16, 12)
    cases = {
        "ok.png": (_mask(tmp_path / "ok.png", size), (None, False)),
        "ones.png": (_mask(tmp_path / "ones.png", size, values=(0, 1)), (None, False)),
        "grey.png": (
            _mask(tmp_path / "grey.png", size, values=(0, 128, 255)),
            (
                "its mask m is not binary (3 distinct values: 0, 128, 255); masks must hold 0 for normal "
                "pixels and one other value for anomalous ones (a JPEG or resampled mask? save it as PNG)",
                True,
            ),
        ),
        "offset.png": (
            _mask(tmp_path / "offset.png", size, values=(100, 200)),
            (
                "its mask m is not binary (2 distinct values: 100, 200); masks must hold 0 for normal "
                "pixels and one other value for anomalous ones (a JPEG or resampled mask? save it as PNG)",
                True,
            ),
        ),
        "half.png": (
            _mask(tmp_path / "half.png", (8, 6)),
            (
                "its mask m is 8x6 px, the image 16x12 px: the mask is resized to the image (nearest "
                "neighbour) for evaluation",
                False,
            ),
        ),
        "turned.png": (
            _mask(tmp_path / "turned.png", (12, 16)),
            (
                "its mask m is 12x16 px but the image is 16x12 px, another aspect ratio: is it the mask "
                "of another image?",
                True,
            ),
        ),
    }
    for name, (path, expected) in cases.items():
        assert mask_problem(path, "m", size) == expected, name
    (tmp_path / "empty.png").write_bytes(b"")
    assert mask_problem(tmp_path / "empty.png", "m", size) == ("its mask m: empty file (0 bytes)", True)
    many = RNG.integers(0, 256, (12, 16), dtype=np.uint8)
    Image.fromarray(many).save(tmp_path / "many.png")
    reason, fatal = mask_problem(tmp_path / "many.png", "m", size)
    assert fatal and reason.startswith(
        f"its mask m is not binary ({len(np.unique(many))} distinct values: 0, 1, 2, 3, ...)"
    )


@pytest.fixture
def carpet(tmp_path):
    """A category in MVTec layout with one of each problem, and the expected outcome."""
    root = tmp_path / "data"
    test, gt = root / "carpet" / "test", root / "carpet" / "ground_truth"
    _rgb(test / "good" / "000.png")
    _rgb(test / "good" / "001.png", mode="RGBA")
    (test / "good" / "002.png").write_bytes(b"")
    _truncated(test / "good" / "003.png")
    _rgb(test / "good" / "004.png", size=(4, 16))
    _rgb(test / "cut" / "000.png")
    _mask(gt / "cut" / "000_mask.png")
    _rgb(test / "cut" / "001.png")  # no mask
    _rgb(test / "cut" / "002.png")
    _mask(gt / "cut" / "002_mask.png", values=(0, 7, 255))
    _rgb(test / "cut" / "003.png")
    _mask(gt / "cut" / "003_mask.png", size=(8, 8))  # half size: warned, kept
    _rgb(test / "cut" / "004.png")
    _mask(gt / "cut" / "004_mask.png", size=(8, 16))
    return root


def test_check_category(carpet):
    records = index_category(carpet, "carpet")
    usable, problems = check_category(carpet, records, min_side=8, progress=False)
    assert [r.image for r in usable] == [
        "carpet/test/cut/000.png",
        "carpet/test/cut/003.png",
        "carpet/test/good/000.png",
        "carpet/test/good/001.png",
    ]
    assert [(p.image, p.fatal) for p in problems] == [
        ("carpet/test/cut/001.png", True),
        ("carpet/test/cut/002.png", True),
        ("carpet/test/cut/003.png", False),
        ("carpet/test/cut/004.png", True),
        ("carpet/test/good/002.png", True),
        ("carpet/test/good/003.png", True),
        ("carpet/test/good/004.png", True),
    ]
    assert problems[0].reason == (
        "no mask: expected carpet/ground_truth/cut/001_mask.png "
        "(other defect images of this category have one)"
    )
    assert problems[1].reason.startswith("its mask carpet/ground_truth/cut/002_mask.png is not binary")
    assert problems[2].reason.startswith("its mask carpet/ground_truth/cut/003_mask.png is 8x8 px")
    assert problems[3].reason.startswith("its mask carpet/ground_truth/cut/004_mask.png is 8x16 px")
    assert problems[6].reason.startswith("too small (4x16 px)")


def _with_orientation(path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    with Image.open(path) as im:
        im.load()
    im.save(path, exif=exif)
    return path


def _orientation(path):
    with Image.open(path) as im:
        im.load()
        return exif_orientation(im)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_exif_orientation_is_noted_and_the_pixels_kept_as_stored(tmp_path, ext):
    path = _rgb(tmp_path / f"phone{ext}", size=(24, 16))
    assert _orientation(path) == 1 and orientation_note(1) is None and orientation_note(0) is None
    assert _orientation(_with_orientation(path, 6)) == 6
    assert orientation_note(6) == (
        "its EXIF orientation 6 (rotate or mirror to view) is ignored: pixels are used as stored and maps "
        "are written that way; if the mask or your viewer assume the rotated view, save the image with its "
        "pixels rotated (e.g. PIL.ImageOps.exif_transpose)"
    )
    assert _orientation(_with_orientation(path, 1)) == 1
    assert image_problem(_with_orientation(path, 8)) == (None, (24, 16))  # usable, not rotated to 16x24
    assert load_rgb(path).shape == (16, 24, 3)  # height, width as stored


def test_a_damaged_exif_block_leaves_the_image_usable(tmp_path):
    path = _rgb(tmp_path / "a.png", size=(24, 16))
    with Image.open(path) as im:
        im.load()
    im.save(path, exif=b"garbage")  # Pillow's getexif raises SyntaxError on this PNG
    with Image.open(path) as im, pytest.raises(SyntaxError):
        im.load()
        im.getexif()
    assert _orientation(path) == 1
    assert image_problem(path) == (None, (24, 16))
    usable, problems = check_category(tmp_path, [ImageRecord("a.png", "")], progress=False)
    assert (len(usable), problems) == (1, [])


def test_an_oriented_image_is_kept_with_a_warning(tmp_path):
    root = tmp_path / "data"
    _rgb(root / "rug/test/good/000.png")
    _with_orientation(_rgb(root / "rug/test/cut/000.png"), 3)
    _mask(root / "rug/ground_truth/cut/000_mask.png")
    records = index_category(root, "rug")
    usable, problems = check_category(root, records, progress=False)
    assert usable == records
    assert [(p.image, p.fatal) for p in problems] == [("rug/test/cut/000.png", False)]
    assert problems[0].reason.startswith("its EXIF orientation 3 ")


def test_category_without_any_mask_is_labels_only(tmp_path):
    root = tmp_path / "data"
    for name in ("good/000.png", "cut/000.png", "cut/001.png"):
        _rgb(root / "rug" / "test" / name)
    records = index_category(root, "rug")
    assert check_category(root, records, progress=False) == (records, [])


def _records(*classes):
    return [ImageRecord(f"c/test/{cls}/{i:03d}.png", cls) for i, cls in enumerate(classes)]


def test_category_problems():
    two = _records("good", "cut")
    assert category_problems("c", two, n_clusters="labels") == []
    assert category_problems("c", [], n_clusters="labels", n_bad=3) == [
        "category 'c' has no usable image (3 more left out as bad); expected images (.png, .jpg, .jpeg, "
        ".bmp, .tif, .tiff, ...) under c/test/<class>/ or anywhere below c/; add images or leave the "
        "category out with `categories: [...]`"
    ]
    assert category_problems("c", _records("good"), n_clusters=1) == [
        "category 'c' has 1 usable image; clustering needs at least 2; add images or leave the category "
        "out with `categories: [...]`"
    ]
    assert category_problems("c", _records("good", "good", "good"), n_clusters="labels") == [
        "category 'c' holds only class 'good': n_clusters 'labels' would give a single cluster, with "
        "nothing to group by defect type; add the other classes, set clustering.n_clusters to auto or a "
        "number, or leave the category out with `categories: [...]`"
    ]
    assert category_problems("c", _records("good", "good", "good"), n_clusters="auto") == []
    assert category_problems("c", two, n_clusters="auto") == [
        "category 'c' has 2 usable images; n_clusters 'auto' compares K = 2 .. N - 1 and needs at least 3; "
        "set clustering.n_clusters to a number or leave the category out with `categories: [...]`"
    ]
    assert category_problems("c", two, n_clusters=3) == [
        "category 'c' has 2 usable images, fewer than clustering.n_clusters = 3; lower n_clusters or leave "
        "the category out with `categories: [...]`"
    ]
    assert category_problems("c", two, n_clusters=2) == []
    plain = [ImageRecord("c/a.png", ""), ImageRecord("c/b.png", "")]
    assert category_problems("c", plain, n_clusters="labels") == [
        "category 'c' is a plain folder without classes, but clustering.n_clusters is 'labels'; set "
        "clustering.n_clusters to auto or to a number"
    ]


def test_dataset_report_error_message_lists_every_file():
    usable = {"a": _records("good", "cut"), "b": _records("good", "cut", "hole")}
    problems = {
        "a": [Problem("a/test/good/9.png", "empty file (0 bytes)"), Problem("a/test/cut/1.png", "w", False)],
        "b": [Problem("b/test/hole/7.png", "truncated or corrupt: x")],
    }
    report = dataset_report(usable, problems, n_clusters="labels")
    assert report == DatasetReport(
        skipped=[problems["a"][0], problems["b"][0]], warnings=[problems["a"][1]], errors=[]
    )
    assert report.stops("error") and not report.stops("skip")
    assert report.message(dataset="mine", root="/data/mine", on_bad_image="error", n_images=7) == (
        "2 of 7 images of dataset 'mine' cannot be used (paths relative to /data/mine):\n"
        "  a/test/good/9.png: empty file (0 bytes)\n"
        "  b/test/hole/7.png: truncated or corrupt: x\n"
        "Fix or remove these files, or set `on_bad_image: skip` (e.g. --config on_bad_image=skip) to "
        "leave them out; they are then listed in results/mine/skipped.csv."
    )


def test_dataset_report_category_errors_stop_also_when_skipping():
    report = dataset_report(
        {"a": _records("good"), "b": _records("good", "cut")},
        {"a": [Problem("a/test/cut/0.png", "empty file (0 bytes)")]},
        n_clusters="labels",
        on_bad_image="skip",
    )
    assert report.stops("skip")
    assert report.message(dataset="d", root="r", on_bad_image="skip", n_images=4) == (
        "Dataset 'd' (r) cannot be clustered as it is:\n"
        "  category 'a' has 1 usable image (1 more left out as bad); clustering needs at least 2; add images "
        "or leave the category out with `categories: [...]`"
    )
    with pytest.raises(InputError, match="on_bad_image must be 'error' or 'skip', got 'ignore'"):
        dataset_report({}, {}, n_clusters="labels", on_bad_image="ignore")


def test_an_input_error_reaches_the_user_without_a_traceback(tmp_path, capfd):
    def main(*, result: str) -> None:
        raise InputError("3 of 9 images cannot be used:\n  a/b.png: empty file (0 bytes)")

    smk = SimpleNamespace(
        input=InputFiles(),
        output=OutputFiles(fromdict={"result": str(tmp_path / "out.csv")}),
        params=Params(),
        threads=1,
        log=Log(fromdict={"log": str(tmp_path / "step.log")}),
    )
    with pytest.raises(SystemExit) as exit_:
        run(main, {"snakemake": smk})
    assert exit_.value.code == 1
    err = capfd.readouterr().err
    assert err == "\nblindlca: 3 of 9 images cannot be used:\n  a/b.png: empty file (0 bytes)\n\n"
    log = (tmp_path / "step.log").read_text()
    assert "ERROR 3 of 9 images cannot be used:\n  a/b.png: empty file (0 bytes)\n" in log
    assert "Traceback" not in log and not (tmp_path / "out.csv").exists()


def test_two_images_differing_only_in_extension(tmp_path):
    root = tmp_path / "data"
    _rgb(root / "rug" / "test" / "good" / "000.jpg")
    _rgb(root / "rug" / "test" / "good" / "000.png")
    (root / "rug" / "test" / "good" / "001.bmp").write_bytes(b"")
    _rgb(root / "rug" / "test" / "good" / "001.png")
    usable, problems = check_category(root, index_category(root, "rug"), progress=False)
    assert [r.image for r in usable] == ["rug/test/good/000.jpg", "rug/test/good/001.png"]
    assert problems == [
        Problem(
            "rug/test/good/000.png",
            "same name as rug/test/good/000.jpg but for the extension; rename one of them",
        ),
        Problem("rug/test/good/001.bmp", "empty file (0 bytes)"),
    ]
