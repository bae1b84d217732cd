"""Tests for blindlca.data on a tiny MVTec-layout tree written to tmp_path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from blindlca.data import (
    CATEGORY_NAME,
    ImageRecord,
    check_category_names,
    expected_mask,
    folder_fingerprint,
    image_key,
    index_category,
    is_labeled,
    list_categories,
    load_mask,
    load_rgb,
    mask_values,
    read_index,
    resize_mask,
    write_index,
)
from blindlca.errors import InputError


def _png(path, value=0, size=(4, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    t = r / "carpet" / "test"
    gt = r / "carpet" / "ground_truth"
    # Created out of order on purpose.
    _png(t / "good" / "001.png")
    _png(t / "good" / "000.png")
    _png(t / "good" / "002.JPG")  # extensions are matched case-insensitively (PNG data, name decides)
    (t / "good" / "notes.txt").write_text("not an image")
    (t / "good" / ".DS_Store").write_bytes(b"\0")
    _png(gt / "good" / "000_mask.png", 255)  # a mask for `good` is never used
    _png(t / "hole" / "001.png")
    _png(t / "hole" / "000.png")
    _png(gt / "hole" / "000_mask.png", 255)  # 001 has no mask file
    _png(t / "cut" / "000.tif")
    _png(gt / "cut" / "000_mask.png", 255)
    _png(t / "combined" / "000.png")
    _png(gt / "combined" / "000_mask.png", 255)
    (t / "readme.md").write_text("a file, not a class folder")
    # Another category, a folder that is not one, and a stray file.
    _png(r / "wood" / "test" / "good" / "000.png")
    (r / "license_files").mkdir()
    (r / "readme.txt").write_text("x")
    return r


def test_index_category_sorted_with_masks(root):
    records = index_category(root, "carpet")
    assert records == [
        ImageRecord("carpet/test/cut/000.tif", "cut", "carpet/ground_truth/cut/000_mask.png"),
        ImageRecord("carpet/test/good/000.png", "good", ""),
        ImageRecord("carpet/test/good/001.png", "good", ""),
        ImageRecord("carpet/test/good/002.JPG", "good", ""),
        ImageRecord("carpet/test/hole/000.png", "hole", "carpet/ground_truth/hole/000_mask.png"),
        ImageRecord("carpet/test/hole/001.png", "hole", ""),
    ]
    # Paths are relative to the root and resolve there.
    for r in records:
        assert (root / r.image).is_file()
        assert r.mask == "" or (root / r.mask).is_file()


def test_index_category_exclude_classes(root):
    records = index_category(root, "carpet", exclude_classes=())
    assert [r.cls for r in records] == ["combined", "cut", "good", "good", "good", "hole", "hole"]
    assert records[0] == ImageRecord(
        "carpet/test/combined/000.png", "combined", "carpet/ground_truth/combined/000_mask.png"
    )
    records = index_category(root, "carpet", exclude_classes=("combined", "good"))
    assert [r.cls for r in records] == ["cut", "hole", "hole"]


def test_index_category_missing_folder_names_the_path(root):
    with pytest.raises(FileNotFoundError) as err:
        index_category(root, "tile")
    assert str(root / "tile") in str(err.value)


def test_index_category_without_images_is_empty(tmp_path):
    # An empty category is not an error here: the dataset check reports it with every other problem.
    test = tmp_path / "cat" / "test"
    (test / "good").mkdir(parents=True)
    (test / "good" / "a.txt").write_text("x")
    assert index_category(tmp_path, "cat") == []
    _png(test / "combined" / "000.png")  # only an excluded class: also nothing
    assert index_category(tmp_path, "cat") == []


def test_index_lists_files_it_cannot_read(tmp_path):
    # Unsupported formats and broken links are listed, so that the checks report them.
    good = tmp_path / "cat" / "test" / "good"
    _png(good / "000.png")
    (good / "001.heic").write_bytes(b"\0" * 10)
    (good / "002.png").symlink_to(tmp_path / "nowhere.png")
    assert [r.image for r in index_category(tmp_path, "cat")] == [
        "cat/test/good/000.png",
        "cat/test/good/001.heic",
        "cat/test/good/002.png",
    ]


def test_expected_mask():
    assert expected_mask("tile/test/crack/000.JPG") == "tile/ground_truth/crack/000_mask.png"


def test_folder_fingerprint_sees_a_file_replaced_in_place(tmp_path):
    folder = tmp_path / "cat"
    assert folder_fingerprint(folder) == ""
    _png(folder / "a.png", 0)
    before = folder_fingerprint(folder)
    assert before == folder_fingerprint(folder)
    dir_mtime = folder.stat().st_mtime_ns
    (folder / "a.png").write_bytes((folder / "a.png").read_bytes() + b"\0")  # same name, new content
    assert folder.stat().st_mtime_ns == dir_mtime  # the folder's own mtime does not see it ...
    assert folder_fingerprint(folder) != before  # ... the fingerprint does


def test_list_categories(root):
    assert list_categories(root) == ["carpet", "wood"]
    assert list_categories(str(root)) == ["carpet", "wood"]


def test_list_categories_errors_name_the_path(tmp_path):
    missing = tmp_path / "nothing"
    with pytest.raises(FileNotFoundError) as err:
        list_categories(missing)
    assert str(missing) in str(err.value)
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no category") as err:
        list_categories(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FileNotFoundError):
        list_categories(tmp_path / "afile")


def test_index_round_trip(root, tmp_path):
    records = index_category(root, "carpet", exclude_classes=())
    path = tmp_path / "out" / "index.csv"
    write_index(path, records)
    assert read_index(path) == records
    lines = path.read_text().splitlines()
    assert lines[0] == "image,class,mask"
    assert lines[2] == "carpet/test/cut/000.tif,cut,carpet/ground_truth/cut/000_mask.png"
    assert lines[3] == "carpet/test/good/000.png,good,"


def test_index_round_trip_with_awkward_names(tmp_path):
    records = [ImageRecord("a dir/x,1.png", 'odd "class"', ""), ImageRecord("b.png", "good")]
    write_index(tmp_path / "i.csv", records)
    assert read_index(tmp_path / "i.csv") == records


def test_load_rgb_grey(tmp_path):
    grey = np.array([[0, 10, 200], [255, 7, 99]], dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    got = load_rgb(tmp_path / "g.png")
    assert got.shape == (2, 3, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.repeat(grey[..., None], 3, axis=2))


def test_load_rgb_rgba_drops_alpha(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = [[1, 2], [3, 4]], 50, 250
    rgba[..., 3] = [[0, 255], [128, 7]]
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    got = load_rgb(tmp_path / "a.png")
    assert got.shape == (2, 2, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, rgba[..., :3])


def test_load_rgb_palette(tmp_path):
    im = Image.new("P", (3, 1))
    im.putpalette([10, 20, 30, 200, 100, 0] + [0] * (256 * 3 - 6))
    im.putdata([0, 1, 1])
    im.save(tmp_path / "p.png")
    got = load_rgb(tmp_path / "p.png")
    np.testing.assert_array_equal(
        got, np.array([[[10, 20, 30], [200, 100, 0], [200, 100, 0]]], dtype=np.uint8)
    )


def test_load_rgb_rgb_unchanged(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "c.png"), rgb)


def test_load_mask(tmp_path):
    m = np.array([[0, 1, 255], [0, 0, 128]], dtype=np.uint8)
    Image.fromarray(m, mode="L").save(tmp_path / "m.png")
    got = load_mask(tmp_path / "m.png")
    assert got.dtype == bool
    np.testing.assert_array_equal(got, [[False, True, True], [False, False, True]])
    # A 1-bit mask.
    Image.fromarray(m > 0).save(tmp_path / "b.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "b.png"), m > 0)


def test_load_rgb_16_bit_grey_is_scaled_not_clipped(tmp_path):
    v = np.array([[0, 255, 256, 4095], [32768, 65280, 65534, 65535]], dtype=np.uint16)
    Image.fromarray(v).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"
    expected = np.array([[0, 0, 1, 15], [128, 255, 255, 255]], dtype=np.uint8)  # v >> 8
    np.testing.assert_array_equal(load_rgb(tmp_path / "g16.png"), np.repeat(expected[..., None], 3, axis=2))
    tifffile.imwrite(tmp_path / "g16.tif", v)
    np.testing.assert_array_equal(load_rgb(tmp_path / "g16.tif")[..., 0], expected)


def test_load_rgb_16_bit_rgb_matches_grey_scaling(tmp_path):
    v = np.array([[[0, 1000, 65535], [30000, 256, 511]]], dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c16.tif", v)
    np.testing.assert_array_equal(load_rgb(tmp_path / "c16.tif"), (v >> 8).astype(np.uint8))


def test_load_rgb_32_bit_int_and_float(tmp_path):
    tifffile.imwrite(tmp_path / "i.tif", np.array([[0, 65535]], dtype=np.int32))
    np.testing.assert_array_equal(load_rgb(tmp_path / "i.tif")[..., 0], [[0, 255]])
    tifffile.imwrite(tmp_path / "big.tif", np.array([[0, 70000]], dtype=np.int32))
    with pytest.raises(InputError, match="32-bit integers from 0 to 70000"):
        load_rgb(tmp_path / "big.tif")
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(load_rgb(tmp_path / "f.tif")[..., 0], [[0, 128, 255]])
    tifffile.imwrite(tmp_path / "hdr.tif", np.array([[0.0, 3.0]], dtype=np.float32))
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        load_rgb(tmp_path / "hdr.tif")


def test_load_mask_resized_to_its_image(tmp_path):
    m = np.array([[0, 255], [0, 0]], dtype=np.uint8)
    Image.fromarray(m).save(tmp_path / "m.png")
    got = load_mask(tmp_path / "m.png", size=(4, 4))
    np.testing.assert_array_equal(got, np.kron(m > 0, np.ones((2, 2), dtype=bool)))
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png", size=(2, 2)), m > 0)


def test_mask_values_keep_16_bit_and_use_luminance_of_colour(tmp_path):
    Image.fromarray(np.array([[0, 65535]], dtype=np.uint16)).save(tmp_path / "m16.png")
    np.testing.assert_array_equal(mask_values(tmp_path / "m16.png"), [[0, 65535]])
    Image.fromarray(np.array([[[0, 0, 0], [255, 0, 0]]], dtype=np.uint8)).save(tmp_path / "red.png")
    np.testing.assert_array_equal(mask_values(tmp_path / "red.png"), [[0, 76]])  # ITU-R 601-2 luma of red


def test_plain_folders_are_unlabeled_categories(tmp_path):
    root = tmp_path / "plain"
    for rel in ("lot1/a.png", "lot1/sub/b.jpg", "lot1/.hidden/c.png", "lot2/x.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / rel)
    (root / "lot1" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    assert list_categories(root) == ["lot1", "lot2"]
    records = index_category(root, "lot1")
    assert [(r.image, r.cls, r.mask) for r in records] == [("lot1/a.png", "", ""), ("lot1/sub/b.jpg", "", "")]
    assert not is_labeled(records)
    assert [image_key(r) for r in records] == ["a", "sub/b"]


def test_image_key_of_mvtec_records():
    record = ImageRecord("tile/test/crack/000.png", "crack", "tile/ground_truth/crack/000_mask.png")
    assert image_key(record) == "crack/000" and is_labeled([record])


def test_loose_images_in_root_get_a_hint(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match="a folder per category"):
        list_categories(tmp_path)


def test_resize_mask_stays_bool():
    m = np.array([[True, False], [False, False]])
    got = resize_mask(m, (4, 2))
    assert got.dtype == bool
    np.testing.assert_array_equal(got, [[True, True, False, False], [False, False, False, False]])


def test_category_names_that_cannot_be_file_names_are_named_with_a_rename(tmp_path):
    check_category_names(["carpet", "wood-2", "tile_v1.0"], tmp_path)  # no error
    with pytest.raises(InputError) as err:
        check_category_names(["my carpet", "tapis_\u00e9", "wood", "\u6728"], tmp_path)
    assert str(err.value) == (
        f"category folders under data_root {str(tmp_path)!r} may use only letters A-Z a-z, digits, '_', '.' "
        "and '-' in their names (they become file names and Snakemake wildcards); rename them "
        "('my carpet' -> 'my_carpet', 'tapis_\u00e9' -> 'tapis_e', '\u6728' -> 'category') or run the "
        "others only with `categories: [wood]`"
    )
    with pytest.raises(InputError, match=r"rename them \('a b' -> 'a_b'\)$"):
        check_category_names(["a b"], tmp_path)


def test_category_name_pattern_is_the_schemas():
    schema = yaml.safe_load((Path(__file__).parents[1] / "config/schema.yaml").read_text())
    assert schema["properties"]["categories"]["items"]["pattern"] == f"^{CATEGORY_NAME}$"
    assert re.fullmatch(CATEGORY_NAME, "tile_v1.0-b") and not re.fullmatch(CATEGORY_NAME, "a/b")
