"""Tests for the embedded synthetic MVTec-layout dataset (blindlca.synthetic)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from blindlca import synthetic as S

SMALL = dict(image_size=64, n_good=2, n_per_defect=1, defects=("scratch", "hole", "patch"), seed=3)


def _files(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _load(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_layout_exact_files_modes_and_masks(tmp_path):
    out = S.generate_category(tmp_path, "tiled", **SMALL)
    assert out == tmp_path / "tiled"
    expected = {"test/good/000.png", "test/good/001.png"} | {
        f"{kind}/{d}/000{suffix}.png"
        for d in ("scratch", "hole", "patch")
        for kind, suffix in (("test", ""), ("ground_truth", "_mask"))
    }
    assert set(_files(out)) == expected
    assert os.listdir(tmp_path) == ["tiled"]
    for rel in expected:
        with Image.open(out / rel) as im:
            assert im.size == (64, 64)
            assert im.mode == ("L" if rel.startswith("ground_truth") else "RGB")
    for d in SMALL["defects"]:
        mask = _load(out / "ground_truth" / d / "000_mask.png")
        assert set(np.unique(mask).tolist()) == {0, 255}


def test_determinism_seed_and_n_good(tmp_path):
    a = _files(S.generate_category(tmp_path / "a", "woven", **SMALL))
    b = _files(S.generate_category(tmp_path / "b", "woven", **SMALL))
    assert a == b
    c = _files(S.generate_category(tmp_path / "c", "woven", **{**SMALL, "seed": 4}))
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.startswith("test/"))
    d = _files(S.generate_category(tmp_path / "d", "woven", **{**SMALL, "n_good": 5}))
    assert set(d) == set(a) | {"test/good/002.png", "test/good/003.png", "test/good/004.png"}
    assert all(d[k] == v for k, v in a.items())


def test_render_texture_deterministic_in_rng_and_varies_between_images():
    for family in S.FAMILIES:
        x = S.render_texture(family, np.random.default_rng(5), 96)
        assert x.shape == (96, 96, 3) and x.dtype == np.uint8
        assert np.array_equal(x, S.render_texture(family, np.random.default_rng(5), 96))
        assert not np.array_equal(x, S.render_texture(family, np.random.default_rng(6), 96))
        assert x.std() > 5  # a surface, not a flat colour


@pytest.mark.parametrize("family", S.FAMILIES)
def test_written_masks_are_exactly_the_altered_pixels(tmp_path, family):
    out = S.generate_category(
        tmp_path, family, image_size=96, n_good=1, n_per_defect=2, defects=S.DEFECTS, seed=9
    )
    for d in S.DEFECTS:
        for i in range(2):
            image = _load(out / "test" / d / f"{i:03d}.png")
            mask = _load(out / "ground_truth" / d / f"{i:03d}_mask.png") == 255
            texture = S.render_texture(family, S.image_rng(9, family, d, i), 96)
            assert mask.any()
            np.testing.assert_array_equal(mask, (image != texture).any(axis=-1))
    good = _load(out / "test" / "good" / "000.png")
    np.testing.assert_array_equal(good, S.render_texture(family, S.image_rng(9, family, "good", 0), 96))


@pytest.mark.parametrize("family", S.FAMILIES)
@pytest.mark.parametrize("defect", S.DEFECTS)
def test_apply_defect_shape_size_and_placement(family, defect):
    for i in range(3):
        rng = np.random.default_rng([21, i])
        texture = S.render_texture(family, rng, 256)
        before = texture.copy()
        image, mask = S.apply_defect(texture, defect, rng, family=family)
        np.testing.assert_array_equal(texture, before)  # input untouched
        assert image.shape == texture.shape and image.dtype == np.uint8
        assert mask.shape == (256, 256) and mask.dtype == bool
        np.testing.assert_array_equal(image[~mask], texture[~mask])
        assert (image != texture).any(axis=-1)[mask].all()
        assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())  # fully inside
        area = mask.mean()
        if defect == "scratch":
            assert 0.002 < area < 0.03
            assert ndi.binary_erosion(mask, np.ones((3, 3))).any()  # at least 3 px wide somewhere
        else:
            assert 0.02 < area < 0.16
            assert ndi.label(ndi.binary_closing(mask, iterations=2))[1] <= 8  # one blob (stain may splash)
        lum_in = image[mask].astype(float).mean()
        if defect == "hole":
            assert lum_in < 0.6 * texture[mask].astype(float).mean()
            assert np.percentile(image[mask].mean(axis=-1), 25) < 40  # nearly black core
        if defect == "stain":
            assert lum_in < texture[mask].astype(float).mean()  # darker discoloration


def _signature(image: np.ndarray) -> np.ndarray:
    """(spectral peakiness, gradient tail) in log space."""
    g = image.astype(float).mean(axis=-1)
    magnitude = np.hypot(*np.gradient(g))
    power = np.abs(np.fft.fft2(g - g.mean())) ** 2
    peakiness = np.sort(power.ravel())[-8:].sum() / power.sum()
    return np.log([peakiness, np.percentile(magnitude, 90) / np.median(magnitude)])


def test_families_differ_more_than_images_within_a_family():
    feats = {
        f: np.array([_signature(S.render_texture(f, S.image_rng(0, f, "good", i), 128)) for i in range(8)])
        for f in S.FAMILIES
    }
    centres = {f: v.mean(axis=0) for f, v in feats.items()}
    within = max(np.linalg.norm(feats[f] - centres[f], axis=1).max() for f in S.FAMILIES)
    between = min(np.linalg.norm(centres[f] - centres[g]) for f in S.FAMILIES for g in S.FAMILIES if f < g)
    assert between > 1.5 * within


def test_existing_folder_is_replaced_and_no_temp_left(tmp_path):
    stale = tmp_path / "granular" / "test" / "crack"
    stale.mkdir(parents=True)
    (stale / "000.png").write_bytes(b"old")
    out = S.generate_category(tmp_path, "granular", **SMALL)
    assert not (out / "test" / "crack").exists()
    assert (out / "test" / "hole" / "000.png").is_file()
    assert os.listdir(tmp_path) == ["granular"]


def test_failure_midway_keeps_previous_folder_and_leaves_no_temp(tmp_path, monkeypatch):
    previous = _files(S.generate_category(tmp_path, "woven", **SMALL))
    calls = []

    def exploding(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    real = S.render_sample
    monkeypatch.setattr(S, "render_sample", exploding)
    with pytest.raises(RuntimeError, match="boom"):
        S.generate_category(tmp_path, "woven", **{**SMALL, "seed": 11})
    assert os.listdir(tmp_path) == ["woven"]
    assert _files(tmp_path / "woven") == previous


def test_bad_family_leaves_nothing_behind(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="'wool'"):
        S.generate_category(root, "wool", **SMALL)
    assert not root.exists()


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"family": "wool"}, r"'wool'.*woven, granular, tiled"),
        ({"defects": ("scratch", "crack")}, r"'crack'.*scratch, stain, hole, patch"),
        ({"defects": "scratch"}, r"'scratch'"),
        ({"defects": ("hole", "hole")}, r"'hole', 'hole'"),
        ({"image_size": 32}, r"image_size.*>= 64.*32"),
        ({"n_good": -1}, r"n_good.*>= 0.*-1"),
        ({"n_per_defect": 0}, r"n_per_defect.*>= 1.*0"),
        ({"seed": -2}, r"seed.*>= 0.*-2"),
    ],
)
def test_generate_category_rejects_bad_arguments(tmp_path, change, pattern):
    kwargs = {"family": "tiled", **SMALL, **change}
    with pytest.raises(ValueError, match=pattern):
        S.generate_category(tmp_path / "out", kwargs.pop("family"), **kwargs)
    assert not (tmp_path / "out").exists()


def test_texture_and_defect_functions_reject_bad_names():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=re.escape("'cloth'") + ".*woven"):
        S.render_texture("cloth", rng, 64)
    with pytest.raises(ValueError, match=r"size.*>= 64.*16"):
        S.render_texture("woven", rng, 16)
    texture = S.render_texture("woven", rng, 64)
    with pytest.raises(ValueError, match=r"'dent'.*scratch, stain, hole, patch"):
        S.apply_defect(texture, "dent", rng, family="woven")
    with pytest.raises(ValueError, match=r"'cloth'.*tiled"):
        S.apply_defect(texture, "hole", rng, family="cloth")
    with pytest.raises(ValueError, match=r"\(64, 64\) uint8"):
        S.apply_defect(texture[..., 0], "hole", rng, family="woven")
