"""Localization metrics of the MVTec AD / FCA protocol: pixel AUROC, image AUROC and AU-PRO.

All curves share one convention: a pixel (or image) is flagged at threshold t when its score >= t,
and the thresholds are the distinct scores, swept from high to low, plus +inf for the start (0, 0).
Pixels with equal scores therefore enter the curve together, as one point; this is what makes a
tie between a normal and an anomalous pixel count 1/2 in the AUROC, and it makes every metric here
invariant to strictly increasing transforms of the scores.

A metric that is undefined on its input (no anomalous or no normal pixel, no anomalous or no normal
image) is NaN rather than an error, so one category without defect images does not stop an
evaluation; averages over categories must then skip or report the NaN.

Memory and time: each pixel metric sorts all N*H*W scores once, then reads the sorted pixels in
blocks, so besides the inputs it holds only the sort order (int64) and sorted copies of the scores
and labels. For float32 maps that is 13 bytes per pixel for ``pixel_auroc`` and 20 for ``au_pro``
(which adds int32 region ids and their sorted copy): about 1.6 and 2.5 GB for 120 maps of
1024x1024. ``localization_metrics`` runs the two one after another, a minute in all on two cores.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["au_pro", "image_auroc", "localization_metrics", "pixel_auroc", "upsample_maps"]

# MVTec AD's regions are 8-connected: diagonal neighbours belong to the same defect.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# Sorted pixels per block of the threshold sweep; bounds its temporaries at a few tens of MB.
_BLOCK = 1 << 20


def upsample_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of anomaly maps to the mask resolution, as the evaluation protocol does.

    This is ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` in float32, the
    upsampling of the reference evaluation, so its values are reproduced exactly.

    Args:
        maps: (N, h, w) anomaly maps, any real dtype.
        size: (H, W) target size.
    Returns:
        (N, H, W) float32.
    """
    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"maps must have shape (N, h, w), got shape {maps.shape}")
    if maps.dtype.kind not in "biuf":
        raise ValueError(f"maps must be real numbers, got dtype {maps.dtype}")
    if np.shape(size) != (2,) or not all(isinstance(s, int | np.integer) and s > 0 for s in size):
        raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
    if maps.shape[0] == 0:
        return np.zeros((0, *size), dtype=np.float32)
    # torch is imported here so that the clustering metrics stay importable without its start-up cost.
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None]
    out = F.interpolate(t, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False)
    return out[:, 0].numpy()


def pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    """Area under the ROC curve of all pixels of all images together.

    Equals the probability that an anomalous pixel scores above a normal one, ties counting 1/2
    (sklearn's ``roc_auc_score`` on the flattened arrays, in less memory).

    Args:
        maps: (N, H, W) anomaly scores.
        masks: (N, H, W) bool (or 0/1) ground truth, True on anomalous pixels.
    Returns:
        AUROC in [0, 1]; NaN when there is no anomalous or no normal pixel.
    """
    maps, masks = _check_maps_masks(maps, masks)
    return _auroc(maps.reshape(-1), masks.reshape(-1))


def image_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of image-level anomaly scores.

    Args:
        scores: (N,) one score per image, e.g. the maximum of its anomaly map.
        labels: (N,) bool (or 0/1), True for anomalous images (mask has any pixel, class != good).
    Returns:
        AUROC in [0, 1]; NaN when there is no anomalous or no normal image.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(
            f"scores and labels must be 1-D with one entry per image, got shapes {scores.shape} and "
            f"{labels.shape}"
        )
    if scores.size == 0:
        raise ValueError("got 0 scores and 0 labels; image AUROC needs at least one image")
    _check_scores(scores, "scores")
    return _auroc(scores, _as_bool(labels, "labels"))


def au_pro(maps: np.ndarray, masks: np.ndarray, *, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap (PRO) curve up to a false-positive rate.

    Regions are the 8-connected components of each image's mask. At threshold t, FPR(t) is the
    fraction of all normal pixels (of every image, defect images included) with score >= t, and
    PRO(t) the mean over all regions of all images of the fraction of the region's pixels with
    score >= t, so small defects weigh as much as large ones. PRO is integrated over FPR with the
    trapezoid rule from 0 to ``fpr_limit`` (PRO interpolated linearly at the limit) and divided by
    ``fpr_limit``: a perfect map gives 1.

    Args:
        maps: (N, H, W) anomaly scores.
        masks: (N, H, W) bool (or 0/1) ground truth, True on anomalous pixels.
        fpr_limit: upper end of the integration, in (0, 1]; the protocol uses 0.3.
    Returns:
        AU-PRO in [0, 1]; NaN when there is no anomalous or no normal pixel.
    """
    maps, masks = _check_maps_masks(maps, masks)
    _check_fpr_limit(fpr_limit)
    region_ids, region_sizes = _label_regions(masks)
    if region_sizes.size == 0 or region_sizes.sum() == masks.size:
        return float("nan")
    # Every region carries total weight 1 spread over its pixels, so the cumulative weight over a
    # region's flagged pixels is its overlap fraction; id 0 (normal pixels) weighs nothing.
    weights = np.concatenate([[0.0], 1.0 / region_sizes])
    area = _area_under_sweep(
        maps.reshape(-1),
        region_ids.reshape(-1),
        weights,
        n_negative=masks.size - int(region_sizes.sum()),
        total_weight=float(region_sizes.size),
        limit=fpr_limit,
    )
    return area / fpr_limit


def localization_metrics(maps: np.ndarray, masks: np.ndarray, *, fpr_limit: float = 0.3) -> dict[str, float]:
    """Pixel AUROC, AU-PRO and image AUROC of a set of anomaly maps.

    The image score is the maximum of each map and an image is anomalous when its mask has any
    pixel. Undefined metrics are NaN: all three without anomalous pixels, ``image_auroc`` also when
    every image is anomalous (e.g. a test set of defect images only), and the pixel metrics when
    no pixel is normal.

    Args:
        maps: (N, H, W) anomaly scores, already at mask resolution (see `upsample_maps`).
        masks: (N, H, W) bool (or 0/1) ground truth.
        fpr_limit: upper end of the AU-PRO integration, in (0, 1].
    Returns:
        ``{"pixel_auroc": ..., "au_pro": ..., "image_auroc": ...}`` as Python floats.
    """
    maps, masks = _check_maps_masks(maps, masks)
    _check_fpr_limit(fpr_limit)
    return {
        "pixel_auroc": pixel_auroc(maps, masks),
        "au_pro": au_pro(maps, masks, fpr_limit=fpr_limit),
        "image_auroc": image_auroc(maps.max(axis=(1, 2)), masks.any(axis=(1, 2))),
    }


def _area_under_sweep(
    scores: np.ndarray,
    groups: np.ndarray,
    weights: np.ndarray,
    *,
    n_negative: int,
    total_weight: float,
    limit: float,
) -> float:
    """Area under the curve (FPR, weighted TPR) of a threshold sweep, for FPR in [0, limit].

    The thresholds are the distinct scores from high to low; at each, FPR is the fraction of
    negatives and TPR the fraction of the total weight with score >= threshold. The curve starts at
    (0, 0) and is integrated with the trapezoid rule, interpolated linearly at the limit.

    Args:
        scores: (P,) scores.
        groups: (P,) non-negative integer group of each element; 0 marks negatives.
        weights: (G,) float weight of one element of each group, ``weights[0] == 0``.
        n_negative: number of elements in group 0, > 0.
        total_weight: sum of the weights of all elements, > 0.
        limit: upper end of the FPR range, in (0, 1].
    """
    # Descending order; the order among equal scores does not matter as ties are read out together.
    order = np.argsort(scores)[::-1]
    sorted_scores = scores[order]
    sorted_groups = groups[order]
    del order
    negative_weights = np.zeros(weights.size)
    negative_weights[0] = 1.0

    # The sorted pixels are read in blocks so that the curve, which can have a point per pixel, is
    # never held whole: memory stays at the sort's few (P,) arrays.
    area, last_x, last_y, negatives, positives = 0.0, 0.0, 0.0, 0.0, 0.0
    for start in range(0, scores.size, _BLOCK):
        stop = min(start + _BLOCK, scores.size)
        # A tie ends where the next score differs; that score may open the next block.
        is_last_of_tie = np.ones(stop - start, dtype=bool)
        ahead = sorted_scores[start + 1 : stop + 1]
        np.not_equal(sorted_scores[start : start + ahead.size], ahead, out=is_last_of_tie[: ahead.size])
        block_groups = sorted_groups[start:stop]
        # Float cumulative sums: exact for counts below 2**53, and the weights are fractions anyway.
        cum_negatives = np.cumsum(negative_weights[block_groups]) + negatives
        cum_positives = np.cumsum(weights[block_groups]) + positives
        negatives, positives = cum_negatives[-1], cum_positives[-1]
        x = np.concatenate([[last_x], cum_negatives[is_last_of_tie] / n_negative])
        y = np.concatenate([[last_y], cum_positives[is_last_of_tie] / total_weight])
        area += _area_up_to(x, y, limit)
        last_x, last_y = x[-1], y[-1]
        if last_x >= limit:
            break
    return area


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of (P,) scores against (P,) bool labels; NaN if one class is missing."""
    n_positive = int(np.count_nonzero(positive))
    if n_positive == 0 or n_positive == positive.size:
        return float("nan")
    return _area_under_sweep(
        scores,
        positive.view(np.uint8),
        np.array([0.0, 1.0]),
        n_negative=positive.size - n_positive,
        total_weight=float(n_positive),
        limit=1.0,
    )


def _area_up_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under the polyline through (x, y) for x in [x[0], limit].

    Args:
        x: (K,) non-decreasing, ``x[0] <= limit``.
        y: (K,) curve values.
        limit: upper end of the range.
    """
    k = int(np.searchsorted(x, limit, side="right"))
    if k < x.size:
        # x[k - 1] <= limit < x[k]: end the curve at the limit, on the segment between the two points.
        y_limit = y[k - 1] + (y[k] - y[k - 1]) * (limit - x[k - 1]) / (x[k] - x[k - 1])
        x, y = np.append(x[:k], limit), np.append(y[:k], y_limit)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _label_regions(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the 8-connected regions of each mask, consecutively over all images.

    Args:
        masks: (N, H, W) bool.
    Returns:
        (N, H, W) int32 region id per pixel (0 on normal pixels, regions numbered from 1) and
        (R,) int64 pixel count of each region, region r at index r - 1.
    """
    region_ids = np.zeros(masks.shape, dtype=np.int32)
    sizes, offset = [], 0
    # One image at a time: regions never extend across images, and the per-image count stays small.
    for mask, ids in zip(masks, region_ids, strict=True):
        n_regions = ndimage.label(mask, structure=_EIGHT_CONNECTED, output=ids)
        if n_regions:
            sizes.append(np.bincount(ids.reshape(-1), minlength=n_regions + 1)[1:])
            ids[mask] += offset
            offset += n_regions
    return region_ids, (np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64))


def _check_maps_masks(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps), np.asarray(masks)
    if maps.ndim != 3 or masks.ndim != 3:
        raise ValueError(
            f"maps and masks must have shape (N, H, W), got shapes {maps.shape} and {masks.shape}"
        )
    if maps.shape != masks.shape:
        raise ValueError(
            f"maps of shape {maps.shape} do not match masks of shape {masks.shape}; "
            "upsample the maps to the mask resolution first (upsample_maps)"
        )
    if maps.size == 0:
        raise ValueError(f"maps and masks of shape {maps.shape} hold no pixels")
    _check_scores(maps, "maps")
    # Contiguous (a copy only when they are not) so that flattening them later is free.
    return np.ascontiguousarray(maps), np.ascontiguousarray(_as_bool(masks, "masks"))


def _check_scores(scores: np.ndarray, name: str) -> None:
    if scores.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be real numbers, got dtype {scores.dtype}")
    # min and max propagate NaN and reveal infinities without an N*H*W temporary.
    lo, hi = scores.min(), scores.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got values in [{lo}, {hi}]")


def _as_bool(labels: np.ndarray, name: str) -> np.ndarray:
    if labels.dtype.kind == "b":
        return labels
    if labels.dtype.kind in "iuf":
        lo, hi = labels.min(), labels.max()
        # Integers within [0, 1] can only be 0 or 1; floats also need every value checked.
        if lo >= 0 and hi <= 1 and (labels.dtype.kind != "f" or np.all((labels == 0) | (labels == 1))):
            return labels.astype(bool)
        raise ValueError(
            f"{name} must be boolean or 0/1, got {labels.dtype} values in [{lo}, {hi}]; "
            f"binarize them first, e.g. {name} > 0"
        )
    raise ValueError(f"{name} must be boolean or 0/1, got dtype {labels.dtype}")


def _check_fpr_limit(fpr_limit: float) -> None:
    # Written so that NaN fails too.
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
