"""Contrastive projection head H (METHOD.md step 5, method `ours`).

Pixels above a blind anomaly threshold are pulled towards the anomalous pixels of similar images
and pushed away from normal pixels and from the anomalous pixels of dissimilar images, so that
projected defect pixels of one type gather in one place.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from torch import nn
from tqdm import tqdm

from blindlca.features import minmax_scale


class ContrastiveHead(nn.Module):
    """1x1 conv 512 -> 256, ReLU, 1x1 conv 256 -> d_out, L2 normalisation over channels."""

    def __init__(self, channels: int = 512, hidden: int = 256, d_out: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, d_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) scaled features -> (B, d_out, H, W), unit length per pixel."""
        return F.normalize(self.net(x), dim=1)

    def project_vectors(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C) feature vectors -> (n, d_out): the same map applied to single pixels."""
        return self.forward(x[:, :, None, None])[:, :, 0, 0]


def similarity(descriptors: torch.Tensor, *, scale: float = 100.0) -> torch.Tensor:
    """1 - scale * mean squared difference between every pair of descriptors; (N, D) -> (N, N)."""
    d = descriptors.double()
    sq = (d[:, None, :] - d[None, :, :]).pow(2).mean(dim=2)
    return 1.0 - scale * sq


def neighbour_sets(sim: torch.Tensor, *, k_close: int = 3) -> tuple[list[list[int]], list[list[int]]]:
    """Per image, the k most similar other images ("close") and the less similar half ("counter").

    Ties are broken by image index so the sets do not depend on sort stability.
    """
    n = sim.shape[0]
    if n < 3:
        raise ValueError(f"the contrastive step needs at least 3 images in a category, got {n}")
    close, counter = [], []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (-float(sim[i, j]), j))
        close.append(others[: min(k_close, len(others))])
        counter.append(others[len(others) - max(1, len(others) // 2) :])
    return close, counter


def normal_threshold(
    descriptors: np.ndarray, max_alpha: np.ndarray, *, n_clusters: int, seed: int = 42
) -> float:
    """Blind anomaly threshold: the k-means cluster with the lowest mean max(alpha) is "normal";
    thr is the quantile of all max(alpha) at that cluster's share of the images.

    Args:
        descriptors: (N, D) descriptors from the raw backbone features.
        max_alpha: (N,) per-image maximum of the anomaly map.
    """
    n_clusters = min(n_clusters, len(descriptors))
    labels = KMeans(n_clusters=n_clusters, random_state=seed, n_init=10).fit_predict(
        np.asarray(descriptors, dtype=np.float64)
    )
    means = [max_alpha[labels == c].mean() for c in range(n_clusters)]
    share = float(np.mean(labels == int(np.argmin(means))))
    return float(np.quantile(max_alpha, share))


def _pair_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance of every pair; (n, d), (m, d) -> (n * m,)."""
    return (a[:, None, :] - b[None, :, :]).pow(2).sum(dim=2).flatten()


def contrastive_loss(
    same_pos: torch.Tensor,
    same_neg: torch.Tensor,
    close_pos: torch.Tensor,
    close_neg: torch.Tensor,
    counter_pos: torch.Tensor,
    *,
    margin: float = 0.5,
) -> torch.Tensor | None:
    """Pull term + push term of METHOD.md step 5; None when no pair exists at all.

    Each argument is (n, d) projected pixels; an empty set (n = 0) contributes no pairs.
    """
    pull = [_pair_dist(same_pos, close_pos), _pair_dist(same_neg, close_neg)]
    push = [
        F.relu(margin - _pair_dist(same_pos, close_neg)),
        F.relu(margin - _pair_dist(close_pos, counter_pos)),
    ]
    terms = [torch.cat(group).mean() for group in (pull, push) if sum(t.numel() for t in group)]
    return torch.stack(terms).sum() if terms else None


@dataclass(frozen=True)
class PixelPools:
    """Global pixel indices (image * H * W + pixel) of positive and negative pixels per image."""

    pos: list[torch.Tensor]
    neg: list[torch.Tensor]

    @staticmethod
    def from_alpha(alpha: torch.Tensor, thr: float) -> PixelPools:
        flat = alpha.flatten(1)
        hw = flat.shape[1]
        pos = [torch.nonzero(a > thr).flatten() + i * hw for i, a in enumerate(flat)]
        neg = [torch.nonzero(a < thr).flatten() + i * hw for i, a in enumerate(flat)]
        return PixelPools(pos, neg)


def _sample(pools: list[torch.Tensor], images: list[int], n: int, gen: torch.Generator) -> torch.Tensor:
    """n pixels drawn uniformly with replacement from the union of the images' pools."""
    pool = torch.cat([pools[i] for i in images])
    if len(pool) == 0:
        return pool
    return pool[torch.randint(len(pool), (n,), generator=gen)]


class PixelSource:
    """Min-max scaled feature vectors of chosen pixels, read image by image.

    Only the images a step samples from are read (and up to `cache_images` recent ones kept), so
    memory does not grow with the number of images in the category.
    """

    def __init__(self, features: np.ndarray, *, device: torch.device, cache_images: int = 16) -> None:
        """features: (N, C, H, W) raw features; any array supporting row indexing (ndarray, ArrayReader)."""
        self.features, self.device, self.cache_images = features, device, max(1, cache_images)
        self.hw = int(np.prod(features.shape[2:]))
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def image(self, i: int) -> torch.Tensor:
        """(H * W, C) scaled pixels of image i."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        x = minmax_scale(torch.from_numpy(np.array(self.features[i : i + 1])).to(self.device))[0]
        self._cache[i] = x.flatten(1).T.contiguous()
        if len(self._cache) > self.cache_images:
            self._cache.popitem(last=False)
        return self._cache[i]

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """Pixels by global index (image * H * W + pixel), (n,) -> (n, C), in the order given."""
        images = torch.div(index, self.hw, rounding_mode="floor")
        out = torch.empty((len(index), self.features.shape[1]), device=self.device)
        for i in torch.unique(images).tolist():
            sel = images == i
            out[sel.to(self.device)] = self.image(i)[(index[sel] - i * self.hw).to(self.device)]
        return out


def train_head(
    features: np.ndarray,
    alpha: np.ndarray,
    descriptors: np.ndarray,
    *,
    n_clusters: int,
    hidden: int = 256,
    d_out: int = 512,
    k_close: int = 3,
    similarity_scale: float = 100.0,
    epochs: int = 10,
    n_same: int = 20,
    n_close: int = 50,
    n_counter: int = 50,
    n_counter_images: int = 5,
    margin: float = 0.5,
    lr: float = 5e-4,
    weight_decay: float = 0.01,
    seed: int = 42,
    device: torch.device | str = "cpu",
    cache_images: int = 16,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[ContrastiveHead, dict]:
    """Train H on one category, one step per image per epoch.

    Args:
        features: (N, C, H, W) raw backbone features (scaled here); an ndarray or ArrayReader.
        cache_images: images whose scaled pixels stay in memory between steps (memory, not results).
        alpha: (N, H, W) anomaly maps.
        descriptors: (N, C) descriptors of the raw features weighted by alpha (step 4).
    Returns:
        The head (eval mode, on `device`) and a summary {threshold, positive_fraction, losses, skipped}.
    """
    device = torch.device(device)
    n = len(features)
    max_alpha = alpha.reshape(n, -1).max(axis=1)
    thr = normal_threshold(descriptors, max_alpha, n_clusters=n_clusters, seed=seed)
    pools = PixelPools.from_alpha(torch.from_numpy(np.asarray(alpha, dtype=np.float32)), thr)
    close, counter = neighbour_sets(
        similarity(torch.from_numpy(descriptors), scale=similarity_scale), k_close=k_close
    )
    n_pos = sum(len(p) for p in pools.pos)
    log(
        f"threshold {thr:.6g}: {n_pos} positive pixels ({n_pos / alpha.size:.3%}) in "
        f"{sum(len(p) > 0 for p in pools.pos)} of {n} images"
    )
    pixels = PixelSource(features, device=device, cache_images=cache_images)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = ContrastiveHead(features.shape[1], hidden, d_out)
    head.to(device).train()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    losses, skipped = [], 0
    bar = tqdm(total=epochs * n, desc="contrastive", unit="img", disable=not progress, mininterval=5)
    for _ in range(epochs):
        epoch_loss = []
        for i in torch.randperm(n, generator=gen).tolist():
            group = [*close[i], i]
            pick = torch.randperm(len(counter[i]), generator=gen)[:n_counter_images].tolist()
            drawn = [
                _sample(pools.pos, [i], n_same, gen),
                _sample(pools.neg, [i], n_same, gen),
                _sample(pools.pos, group, n_close, gen),
                _sample(pools.neg, group, n_close, gen),
                _sample(pools.pos, [counter[i][j] for j in pick], n_counter, gen),
            ]
            sizes = [len(d) for d in drawn]
            projected = head.project_vectors(pixels.gather(torch.cat(drawn))).split(sizes)
            loss = contrastive_loss(*projected, margin=margin)
            bar.update(1)
            if loss is None:
                skipped += 1
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch_loss.append(loss.detach())
        losses.append(float(torch.stack(epoch_loss).mean()) if epoch_loss else float("nan"))
    bar.close()
    log(f"contrastive loss per epoch: {', '.join(f'{v:.4f}' for v in losses)}; {skipped} steps skipped")
    summary = {
        "threshold": thr,
        "positive_fraction": n_pos / alpha.size,
        "losses": losses,
        "skipped": skipped,
    }
    return head.eval(), summary


@torch.no_grad()
def project(head: ContrastiveHead, features: np.ndarray) -> torch.Tensor:
    """H(scaled F_i) for a batch of raw features; (B, C, H, W) -> (B, d_out, H, W) on the head's device."""
    device = next(head.parameters()).device
    return head(minmax_scale(torch.from_numpy(np.array(features)).to(device)))
