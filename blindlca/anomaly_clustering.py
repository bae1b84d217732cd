"""Baseline "Anomaly Clustering" (Sohn et al., WACV 2023, arXiv 2112.11573), unsupervised weighting.

Each image is a bag of patch embeddings. Its image embedding is the weighted mean of its patches,
with weights alpha = softmax(score / tau) over the image's patches, where a patch's score says how
unlike the *other* images of the set it is (the paper's unsupervised instance weights). The
distance between two images is the Euclidean distance between their embeddings (the paper's
weighted-average distance), so a clustering step on these (N, C) descriptors (the workflow's Ward
linkage) clusters with that distance.

Scoring a patch against the other images: the per-image nearest-patch distances are averaged over
the other images (`over_images="mean"`, the default: our reading of the paper's unsupervised score,
not checked against its text), or the minimum is taken over all patches of all other images
(`over_images="min"`, the nearest patch in any other image). The mean keeps a defect's patches
salient when a few other images share the same defect type; the minimum would find those twins and
score the defect as normal. With two images the two agree.

Differences from the paper's setting: the paper embeds patches with an ImageNet WideResNet-50
(layer2 and layer3 features, 3x3 neighbourhood average pooling, as in PatchCore); here the caller
passes its own features, in this workflow the WideResNet-50-2 layer2 maps. No L2 normalisation is
applied; normalise before calling if wanted. tau's scale depends on the features' scale.
"""

from __future__ import annotations

import math

import numpy as np
import torch

OVER_IMAGES = ("mean", "min")
# tau = 1 is the default of a public reproduction of the paper (KevinWangHP/Anomaly-Clustering); the
# paper's own value could not be checked. tau -> 0 keeps only the top-scoring patch, tau -> inf gives the
# plain spatial mean.
DEFAULT_TAU = 1.0


def _key_blocks(n: int, p: int, chunk: int) -> list[tuple[int, int, int, int]]:
    """Key blocks (first image, end image, first patch, end patch) of at most `chunk` patches.

    A block holds whole images when an image fits in `chunk`, else part of one image, so the
    per-image minimum of a block is a plain reshape.
    """
    if p <= chunk:
        g = chunk // p
        return [(a, min(a + g, n), 0, p) for a in range(0, n, g)]
    return [(j, j + 1, s, min(s + chunk, p)) for j in range(n) for s in range(0, p, chunk)]


def patch_scores(features: torch.Tensor, *, chunk: int = 4096, over_images: str = "mean") -> torch.Tensor:
    """Distance of every patch to the other images of the set, exact (brute force).

    For patch x of image i and another image j, d_j(x) = min over patches y of j of ||x - y||_2.
    The score is the mean of d_j(x) over j != i (`over_images="mean"`) or its minimum, i.e. the
    distance to the nearest patch in any other image (`"min"`). Image i's own patches never count:
    they are excluded by image index, so a patch repeated inside its own image still scores > 0.

    Cost: O((N H W)^2 C) multiply-adds, done as chunked matrix products in float32. Memory beyond a
    float32 (N, H, W, C) copy of the input: one chunk x chunk distance block and a chunk x N table
    of running per-image minima.

    Args:
        features: (N, C, H, W) patch embeddings, N >= 2.
        chunk: patches per query block and per key block.
        over_images: "mean" or "min", how d_j(x) is reduced over the other images j.
    Returns:
        (N, H, W) float32 scores, on the input's device.
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (N, C, H, W), got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    if n < 2:
        raise ValueError(f"patch_scores needs at least 2 images to compare against, got N={n}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of patches, got {chunk}")
    if over_images not in OVER_IMAGES:
        raise ValueError(f"over_images {over_images!r} is not one of {', '.join(OVER_IMAGES)}")
    p = h * w
    x = features.detach().to(torch.float32).permute(0, 2, 3, 1).reshape(n, p, c)
    sq = x.pow(2).sum(dim=-1)  # (N, P)
    flat, flat_sq = x.reshape(n * p, c), sq.reshape(n * p)
    owner = torch.arange(n, device=x.device).repeat_interleave(p)
    blocks = _key_blocks(n, p, chunk)
    out = torch.empty(n * p, dtype=torch.float32, device=x.device)
    for q0 in range(0, n * p, chunk):
        q1 = min(q0 + chunk, n * p)
        q, q_sq = flat[q0:q1], flat_sq[q0:q1]
        best = torch.full((q1 - q0, n), math.inf, dtype=torch.float32, device=x.device)
        for a, b, s, e in blocks:
            keys = x[a:b, s:e].reshape(-1, c)
            # ||q - k||^2 = ||q||^2 + ||k||^2 - 2 q.k, one matrix product per block.
            d2 = torch.addmm(q_sq[:, None] + sq[a:b, s:e].reshape(1, -1), q, keys.T, alpha=-2.0)
            d2 = d2.view(q1 - q0, b - a, e - s).amin(dim=-1)
            best[:, a:b] = torch.minimum(best[:, a:b], d2)
        # Rounding can push a squared distance slightly below 0; sqrt after the minimum is exact
        # because sqrt is monotonic.
        dist = best.clamp_min(0.0).sqrt()
        own = owner[q0:q1, None]
        if over_images == "min":
            out[q0:q1] = dist.scatter(1, own, math.inf).amin(dim=1)
        else:
            out[q0:q1] = dist.scatter(1, own, 0.0).sum(dim=1) / (n - 1)
    return out.view(n, h, w)


def embeddings(features: torch.Tensor, scores: torch.Tensor, *, tau: float = DEFAULT_TAU) -> torch.Tensor:
    """Weighted mean of each image's patches, alpha = softmax over its patches of scores / tau.

    Euclidean distances between these embeddings are the paper's weighted-average distance.

    Args:
        features: (N, C, H, W) patch embeddings.
        scores: (N, H, W) patch scores, e.g. from `patch_scores`.
        tau: softmax temperature, > 0; small tau approaches the single highest-scoring patch.
    Returns:
        (N, C) float32, on the features' device.
    """
    if features.ndim != 4:
        raise ValueError(f"features must be (N, C, H, W), got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    if scores.shape != (n, h, w):
        raise ValueError(
            f"scores must be (N, H, W) = {(n, h, w)} for these features, got {tuple(scores.shape)}"
        )
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive finite number, got {tau}")
    f = features.to(torch.float32).reshape(n, c, h * w)
    alpha = torch.softmax(scores.to(device=f.device, dtype=torch.float32).reshape(n, h * w) / tau, dim=1)
    return torch.bmm(f, alpha.unsqueeze(2)).squeeze(2)


def anomaly_clustering_descriptors(
    features: np.ndarray | torch.Tensor,
    *,
    tau: float = DEFAULT_TAU,
    device: str | torch.device = "cpu",
    chunk: int = 4096,
    over_images: str = "mean",
) -> np.ndarray:
    """`patch_scores` then `embeddings` on one set of images (e.g. one category).

    Args:
        features: (N, C, H, W) patch embeddings (array, memmap or tensor), N >= 2; in this workflow
            the WideResNet-50-2 layer2 features rather than the paper's layer2+layer3 pooled ones.
        tau: softmax temperature of the patch weights.
        device: where the distances are computed.
        chunk: patches per block in `patch_scores`.
        over_images: "mean" or "min", see `patch_scores`.
    Returns:
        (N, C) float32 descriptors.
    """
    if not (math.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a positive finite number, got {tau}")
    if isinstance(features, torch.Tensor):
        t = features.detach()
    else:
        t = torch.from_numpy(np.asarray(features, dtype=np.float32))
    t = t.to(device=torch.device(device), dtype=torch.float32)
    with torch.no_grad():
        s = patch_scores(t, chunk=chunk, over_images=over_images)
        e = embeddings(t, s, tau=tau)
    return e.cpu().numpy().astype(np.float32, copy=False)
