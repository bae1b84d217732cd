"""Image descriptors D_i (METHOD.md step 4): anomaly-weighted pooling of descriptor features."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from blindlca.filters import gaussian_blur


def anomaly_weights(alpha: torch.Tensor, *, tau: float = 0.002) -> torch.Tensor:
    """w = softmax(alpha.flatten() / tau) per image; (B, H, W) -> (B, H, W), each map sums to 1.

    A small tau (0.002) makes w nearly one-hot on the most anomalous pixels, so D_i describes the
    defect rather than the texture around it.
    """
    if tau <= 0:
        raise ValueError(f"descriptor.tau must be positive, got {tau}")
    b, h, w = alpha.shape
    return torch.softmax(alpha.reshape(b, -1).double() / tau, dim=1).reshape(b, h, w).to(alpha.dtype)


def descriptor(
    features: torch.Tensor,
    alpha: torch.Tensor,
    *,
    tau: float = 0.002,
    blur_kernel: int = 7,
    blur_sigma: float = 2.0,
) -> torch.Tensor:
    """D = sum_p w(p) G(p), G = blurred features minus their spatial mean.

    Args:
        features: (B, C, H, W) descriptor features (raw backbone features or projections H(F)).
        alpha: (B, H, W) anomaly maps at the same resolution.
    Returns:
        (B, C) descriptors.
    """
    if features.shape[0] != alpha.shape[0] or features.shape[2:] != alpha.shape[1:]:
        raise ValueError(
            f"features {tuple(features.shape)} and anomaly maps {tuple(alpha.shape)} differ in batch or size"
        )
    g = gaussian_blur(features, blur_kernel, blur_sigma)
    g = g - g.mean(dim=(2, 3), keepdim=True)
    w = anomaly_weights(alpha.to(g.dtype), tau=tau)
    return torch.einsum("bchw,bhw->bc", g, w)


def mean_pool(features: torch.Tensor) -> torch.Tensor:
    """Baseline descriptor with no anomaly weighting: the spatial mean; (B, C, H, W) -> (B, C)."""
    return features.mean(dim=(2, 3))


def descriptors_of(
    features: np.ndarray,
    alpha: np.ndarray | None,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    tau: float = 0.002,
    blur_kernel: int = 7,
    blur_sigma: float = 2.0,
) -> np.ndarray:
    """Descriptors of a whole category, a batch at a time.

    Args:
        features: (N, C, H, W) raw backbone features (array or memmap).
        alpha: (N, H, W) anomaly maps, or None for the unweighted `mean_pool` baseline.
        transform: maps a (B, C, H, W) raw batch to descriptor features, e.g. the contrastive
            head's projections; None keeps the raw features.
    Returns:
        (N, D) float32.
    """
    device = torch.device(device)
    out = []
    for s in range(0, len(features), batch_size):
        f = torch.from_numpy(np.array(features[s : s + batch_size])).to(device)
        with torch.no_grad():
            f = transform(f) if transform is not None else f
            if alpha is None:
                d = mean_pool(f)
            else:
                a = torch.from_numpy(np.array(alpha[s : s + batch_size])).to(device)
                d = descriptor(f, a, tau=tau, blur_kernel=blur_kernel, blur_sigma=blur_sigma)
        out.append(d.float().cpu().numpy())
    return np.concatenate(out)
