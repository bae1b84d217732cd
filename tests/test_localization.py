"""Localization metrics on literal maps with hand-worked curves, and against slow direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from blindlca.metrics import (
    _localization,
    au_pro,
    image_auroc,
    localization_metrics,
    pixel_auroc,
    upsample_maps,
)

# Two regions of different size in image 0 and a normal image 1, scored with ties between normal and
# defect pixels; 10 normal pixels in all.
#   image 0 mask      image 0 map               image 1 map (all normal)
#   1 0 1 1           0.6 0.6 0.9 0.9           0.6 0.3 0.3 0.0
#   1 0 1 1           0.3 0.0 0.3 0.3           0.0 0.0 0.0 0.0
# R1 = column 0 (2 pixels), R2 = columns 2-3 (4 pixels); column 1 separates them even 8-connected.
TWO_REGIONS_MASKS = np.array([[[1, 0, 1, 1], [1, 0, 1, 1]], [[0, 0, 0, 0], [0, 0, 0, 0]]], dtype=bool)
TWO_REGIONS_MAPS = np.array(
    [[[0.6, 0.6, 0.9, 0.9], [0.3, 0.0, 0.3, 0.3]], [[0.6, 0.3, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0]]]
)
# t    | new normal | new R1 | new R2 | FPR         | PRO
# +inf |     0      |   0    |   0    | 0           | 0
# 0.9  |     0      |   0    |   2    | 0           | (0/2 + 2/4) / 2 = 0.25
# 0.6  |     2      |   1    |   0    | 2/10 = 0.2  | (1/2 + 2/4) / 2 = 0.5
# 0.3  |     2      |   1    |   2    | 4/10 = 0.4  | (2/2 + 4/4) / 2 = 1
# 0.0  |     6      |   0    |   0    | 10/10 = 1   | 1
# (Pooling the pixels instead of averaging regions would give 2/6, not 0.25, at t = 0.9.)


def test_pixel_auroc_by_hand():
    maps = np.array([[[0.9, 0.1], [0.4, 0.4]], [[0.8, 0.3], [0.2, 0.6]]])
    masks = np.array([[[1, 0], [1, 0]], [[0, 0], [0, 1]]], dtype=bool)
    # positives 0.9, 0.4, 0.6; negatives 0.1, 0.4, 0.8, 0.3, 0.2: 3 * 5 = 15 pairs
    # 0.9 beats all 5; 0.4 beats 0.1, 0.3, 0.2 and ties 0.4 -> 3.5; 0.6 beats all but 0.8 -> 4
    # AUC = (5 + 3.5 + 4) / 15 = 12.5 / 15 = 5/6
    assert pixel_auroc(maps, masks) == pytest.approx(5 / 6, abs=1e-15)


def test_image_auroc_by_hand():
    # positives 0.7, 0.1; negatives 0.3, 0.7: 0.7 beats 0.3 (1) and ties 0.7 (0.5); 0.1 beats none
    # AUC = 1.5 / 4
    assert image_auroc(np.array([0.3, 0.7, 0.7, 0.1]), np.array([0, 1, 0, 1])) == 0.375


@pytest.mark.parametrize("block", [3, 1 << 20])
@pytest.mark.parametrize("seed", range(4))
def test_aurocs_match_sklearn(seed, block, monkeypatch):
    # A tiny block makes ties and curve segments straddle the blocks the sorted pixels are read in.
    monkeypatch.setattr(_localization, "_BLOCK", block)
    rng = np.random.default_rng(seed)
    masks = _blob_masks(rng, (5, 9, 11))
    maps = rng.random(masks.shape) + 0.5 * masks
    if seed % 2:
        maps = np.round(maps, 1)  # many ties
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)
    scores, labels = np.round(rng.random(30), 1), rng.random(30) < 0.5
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_au_pro_perfect_map():
    masks = np.zeros((3, 6, 6), dtype=bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 5, 5] = True
    # curve (0, 0) -> (0, 1) at t = 1 -> (1, 1) at t = 0: area 0.3 * 1 over [0, 0.3]
    assert au_pro(masks.astype(float), masks) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("fpr_limit", "expected"),
    [
        # 0.3 lies between the points (0.2, 0.5) and (0.4, 1): PRO(0.3) = 0.5 + 0.5 * 0.1 / 0.2 = 0.75
        # area = 0.2 * (0.25 + 0.5) / 2 + 0.1 * (0.5 + 0.75) / 2 = 0.075 + 0.0625 = 0.1375
        # AU-PRO = 0.1375 / 0.3 = 11/24; stopping at the point 0.2 would give 0.075 / 0.3 = 1/4, and
        # holding PRO at 0.5 up to 0.3 would give (0.075 + 0.05) / 0.3 = 5/12
        (0.3, 11 / 24),
        # exactly on a point: 0.075 / 0.2
        (0.2, 0.375),
        # 0.075 + 0.2 * (0.5 + 1) / 2 + 0.6 * 1 = 0.075 + 0.15 + 0.6
        (1.0, 0.825),
    ],
)
def test_au_pro_two_regions_by_hand(fpr_limit, expected):
    out = au_pro(TWO_REGIONS_MAPS, TWO_REGIONS_MASKS, fpr_limit=fpr_limit)
    assert out == pytest.approx(expected, abs=1e-12)


def test_au_pro_merges_ties():
    # One region {0.8, 0.5} and two normal pixels {0.5, 0.0}; 0.5 is shared by both kinds.
    maps = np.array([[[0.8, 0.5, 0.5, 0.0]]])
    masks = np.array([[[1, 1, 0, 0]]], dtype=bool)
    # merged: (0, 0) -> t=0.8 (0, 0.5) -> t=0.5 (0.5, 1) -> t=0 (1, 1)
    #   area to 1: 0.5 * (0.5 + 1) / 2 + 0.5 * 1 = 0.875
    # one point per pixel instead, defect first: (0, 0.5) -> (0, 1) -> (0.5, 1) -> (1, 1): area 1
    #   normal first: (0, 0.5) -> (0.5, 0.5) -> (0.5, 1) -> (1, 1): area 0.25 + 0.5 = 0.75
    # so merging is the mean of the two orders, the 1/2 that a tie counts in the AUROC
    assert au_pro(maps, masks, fpr_limit=1.0) == pytest.approx(0.875, abs=1e-15)
    assert pixel_auroc(maps, masks) == pytest.approx(0.875, abs=1e-15)  # one region: PRO is the TPR
    # to 0.25: PRO(0.25) = 0.75 on the diagonal, area 0.25 * (0.5 + 0.75) / 2 = 0.15625 -> 0.625
    # (unmerged: 0.25 * 1 / 0.25 = 1, or 0.25 * 0.5 / 0.25 = 0.5)
    assert au_pro(maps, masks, fpr_limit=0.25) == pytest.approx(0.625, abs=1e-15)


def test_au_pro_regions_are_8_connected():
    # mask          map
    # 1 0 0         0.9 0.0 0.7
    # 0 1 1         0.0 0.5 0.5
    # 0 0 0         0.0 0.0 0.0
    maps = np.array([[[0.9, 0.0, 0.7], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]])
    masks = np.array([[[1, 0, 0], [0, 1, 1], [0, 0, 0]]], dtype=bool)
    # 8-connected: one region of 3 pixels; 6 normal pixels
    #   t=0.9 (0, 1/3), t=0.7 (1/6, 1/3), t=0.5 (1/6, 1), t=0 (1, 1)
    #   area = (1/6) * (1/3) + (5/6) * 1 = 1/18 + 15/18 = 8/9
    # 4-connected it would be {(0,0)} and {(1,1), (1,2)}: PRO(0.9) = (1 + 0) / 2, area 1/12 + 10/12 = 11/12
    assert au_pro(maps, masks, fpr_limit=1.0) == pytest.approx(8 / 9, abs=1e-15)


def test_au_pro_regions_do_not_cross_images():
    # image 0: one defect pixel scored 1; image 1: a 3-pixel defect at the same place scored 0;
    # normal pixels 0.5. Regions {img0}, {img1}: t=1 (0, (1 + 0) / 2), t=0.5 (1, 0.5), t=0 (1, 1)
    # area = 1 * 0.5 = 0.5; one region across both images would give PRO(1) = 1/4 and 0.25
    masks = np.array([[[1, 0], [0, 0]], [[1, 1], [1, 0]]], dtype=bool)
    maps = np.where(masks, 0.0, 0.5)
    maps[0, 0, 0] = 1.0
    assert au_pro(maps, masks, fpr_limit=1.0) == pytest.approx(0.5, abs=1e-15)


@pytest.mark.parametrize("block", [5, 1 << 20])
@pytest.mark.parametrize("seed", range(5))
def test_au_pro_matches_slow_reference(seed, block, monkeypatch):
    monkeypatch.setattr(_localization, "_BLOCK", block)
    rng = np.random.default_rng(seed)
    masks = _blob_masks(rng, (3, 10, 12))
    maps = 0.4 * masks + rng.random(masks.shape)
    if seed % 2:
        maps = np.round(maps, 1)
    for fpr_limit in (0.05, 0.3, 1.0):
        expected = _slow_au_pro(maps, masks, fpr_limit)
        assert au_pro(maps, masks, fpr_limit=fpr_limit) == pytest.approx(expected, abs=1e-10)


def test_invariant_to_increasing_transform():
    rng = np.random.default_rng(7)
    masks = _blob_masks(rng, (4, 8, 8))
    masks[0] = False  # a normal image, for the image AUROC
    maps = np.round(rng.random(masks.shape) + 0.3 * masks, 2)
    warped = np.exp(3.0 * maps)  # strictly increasing, keeps distinct floats distinct
    assert au_pro(warped, masks) == pytest.approx(au_pro(maps, masks), abs=1e-14)
    assert pixel_auroc(warped, masks) == pytest.approx(pixel_auroc(maps, masks), abs=1e-14)
    assert localization_metrics(warped, masks) == pytest.approx(localization_metrics(maps, masks), abs=1e-14)


def test_undefined_metrics_are_nan():
    maps = np.random.default_rng(0).random((2, 3, 3))
    no_defect = np.zeros(maps.shape, dtype=bool)
    assert all(math.isnan(v) for v in localization_metrics(maps, no_defect).values())
    assert math.isnan(au_pro(maps, no_defect)) and math.isnan(pixel_auroc(maps, no_defect))
    all_defect = np.ones(maps.shape, dtype=bool)
    assert all(math.isnan(v) for v in localization_metrics(maps, all_defect).values())
    # defect images only: the pixel metrics are defined, the image AUROC has no normal image
    some_defect = no_defect.copy()
    some_defect[:, 0, 0] = True
    out = localization_metrics(maps, some_defect)
    assert math.isnan(out["image_auroc"]) and not math.isnan(out["pixel_auroc"] + out["au_pro"])
    assert math.isnan(image_auroc(np.array([0.1, 0.2]), np.array([True, True])))


def test_localization_metrics_agrees_with_parts():
    rng = np.random.default_rng(3)
    masks = _blob_masks(rng, (6, 12, 12))
    masks[:2] = False  # normal images
    maps = rng.random(masks.shape) + 0.3 * masks
    out = localization_metrics(maps, masks, fpr_limit=0.2)
    assert out == {
        "pixel_auroc": pixel_auroc(maps, masks),
        "au_pro": au_pro(maps, masks, fpr_limit=0.2),
        "image_auroc": image_auroc(maps.max(axis=(1, 2)), masks.any(axis=(1, 2))),
    }
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in out.values())


def test_masks_may_be_0_1_numbers():
    maps = TWO_REGIONS_MAPS
    expected = localization_metrics(maps, TWO_REGIONS_MASKS)
    assert localization_metrics(maps, TWO_REGIONS_MASKS.astype(np.uint8)) == expected
    assert localization_metrics(maps, TWO_REGIONS_MASKS.astype(np.float32)) == expected


def test_upsample_by_hand():
    # align_corners=False: output pixel i samples input coordinate (i + 0.5) / 2 - 0.5, clamped to
    # [0, 1]: -0.25 -> 0, 0.25, 0.75, 1.25 -> 1, i.e. weights [1, 0], [3/4, 1/4], [1/4, 3/4], [0, 1].
    # rows of [[0, 4], [8, 12]] along the width: [0, 1, 3, 4] and [8, 9, 11, 12]; then along the height
    out = upsample_maps(np.array([[[0.0, 4.0], [8.0, 12.0]]]), (4, 4))
    expected = [[0, 1, 3, 4], [2, 3, 5, 6], [6, 7, 9, 10], [8, 9, 11, 12]]
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_upsample_shape_and_dtype():
    out = upsample_maps(np.random.default_rng(0).random((3, 5, 7)), (10, 14))
    assert out.shape == (3, 10, 14) and out.dtype == np.float32
    maps = np.random.default_rng(1).random((2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(upsample_maps(maps, (4, 4)), maps)


@pytest.mark.parametrize("size", [(4,), (0, 4), (4.0, 4), 4])
def test_upsample_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size must be two positive integers"):
        upsample_maps(np.zeros((1, 2, 2)), size)


def test_upsample_rejects_2d():
    with pytest.raises(ValueError, match=r"\(N, h, w\), got shape \(2, 2\)"):
        upsample_maps(np.zeros((2, 2)), (4, 4))


@pytest.mark.parametrize("fn", [pixel_auroc, au_pro, localization_metrics])
def test_rejects_bad_maps_and_masks(fn):
    with pytest.raises(ValueError, match=r"\(2, 4, 4\) do not match masks of shape \(2, 8, 8\)"):
        fn(np.zeros((2, 4, 4)), np.zeros((2, 8, 8), dtype=bool))
    with pytest.raises(ValueError, match=r"\(N, H, W\), got shapes \(4, 4\) and \(4, 4\)"):
        fn(np.zeros((4, 4)), np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"masks must be boolean or 0/1, got uint8 values in \[0, 255\]"):
        fn(np.zeros((1, 2, 2)), np.array([[[0, 255], [0, 0]]], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"masks must be boolean or 0/1"):
        fn(np.zeros((1, 2, 2)), np.array([[[0, 0.5], [0, 1]]]))
    with pytest.raises(ValueError, match="maps must be finite"):
        fn(np.array([[[0, np.nan], [0, 1]]]), np.ones((1, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="hold no pixels"):
        fn(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), dtype=bool))


@pytest.mark.parametrize("fn", [au_pro, localization_metrics])
@pytest.mark.parametrize("fpr_limit", [0.0, -0.1, 1.5, float("nan")])
def test_rejects_bad_fpr_limit(fn, fpr_limit):
    with pytest.raises(ValueError, match=r"fpr_limit must be in \(0, 1\], got"):
        fn(TWO_REGIONS_MAPS, TWO_REGIONS_MASKS, fpr_limit=fpr_limit)


def test_image_auroc_rejects_bad_input():
    with pytest.raises(ValueError, match=r"got shapes \(3,\) and \(2,\)"):
        image_auroc(np.zeros(3), np.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match="0 scores and 0 labels"):
        image_auroc(np.zeros(0), np.zeros(0, dtype=bool))


def _blob_masks(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, H, W) bool: thresholded smooth noise, i.e. blobs of various sizes, some touching diagonally."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(0, 1.2, 1.2))
    return noise > 0.5 * noise.std()


def _regions_8(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a (H, W) mask by flood fill, as (H, W) bool arrays."""
    labels = np.zeros(mask.shape, dtype=int)
    n = 0
    for seed in zip(*np.nonzero(mask), strict=True):
        if labels[seed]:
            continue
        n += 1
        labels[seed] = n
        stack = [seed]
        while stack:
            i, j = stack.pop()
            for a in range(max(i - 1, 0), min(i + 2, mask.shape[0])):
                for b in range(max(j - 1, 0), min(j + 2, mask.shape[1])):
                    if mask[a, b] and not labels[a, b]:
                        labels[a, b] = n
                        stack.append((a, b))
    return [labels == k for k in range(1, n + 1)]


def _slow_au_pro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """AU-PRO straight from the definition: every distinct score as a threshold, every region apart."""
    regions = [(i, region) for i, mask in enumerate(masks) for region in _regions_8(mask)]
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        flagged = maps >= t
        fprs.append((flagged & normal).sum() / normal.sum())
        pros.append(np.mean([flagged[i][region].mean() for i, region in regions]))
    area = 0.0
    for x0, y0, x1, y1 in zip(fprs, pros, fprs[1:], pros[1:], strict=False):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:
            x1, y1 = fpr_limit, y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit
