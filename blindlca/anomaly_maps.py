"""Anomaly maps alpha_i from a method's source tensor (METHOD.md step 3 and the `just_vae` ablation)."""

from __future__ import annotations

import torch

from blindlca.fca import fca, postprocess, residual_magnitude
from blindlca.features import minmax_scale

KINDS = ("fca-residuals", "fca-features", "l1-residuals")


def anomaly_map(
    x: torch.Tensor,
    *,
    kind: str,
    patch_size: int = 7,
    sigma_p: float = 3.0,
    k_s: int = 5,
    sigma_s: float = 1.0,
    blur_kernel: int = 5,
    blur_sigma: float = 1.0,
    border: int = 5,
    border_reference: int = 64,
) -> torch.Tensor:
    """Post-processed alpha for one kind of map.

    Args:
        x: (B, C, h, w) VAE residuals (`fca-residuals`, `l1-residuals`) or raw backbone
            features (`fca-features`, min-max scaled here as FCA expects).
    Returns:
        (B, h, w) float32, border zeroed.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown anomaly-map kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "l1-residuals":
        raw = residual_magnitude(x)
    else:
        source = minmax_scale(x) if kind == "fca-features" else x
        raw = fca(source, patch_size=patch_size, sigma_p=sigma_p, k_s=k_s, sigma_s=sigma_s)
    return postprocess(
        raw.float(),
        blur_kernel=blur_kernel,
        blur_sigma=blur_sigma,
        border=border,
        border_reference=border_reference,
    )
