"""Pictures of anomaly maps: upsampling to image resolution and heat-map overlays."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps


def upsample(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of one map, (h, w) -> size (H, W), float32 (the evaluation protocol's)."""
    t = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(
    image: np.ndarray, alpha: np.ndarray, *, vmin: float, vmax: float, cmap: str = "jet", opacity: float = 0.5
) -> np.ndarray:
    """Blend a colour-mapped map over an image.

    Args:
        image: (H, W, 3) uint8.
        alpha: (H, W) map at image resolution; [vmin, vmax] spans the colour map, so maps drawn
            with one range are comparable.
    Returns:
        (H, W, 3) uint8.
    """
    span = max(vmax - vmin, 1e-12)
    heat = colormaps[cmap](np.clip((alpha - vmin) / span, 0.0, 1.0))[..., :3]
    mixed = (1.0 - opacity) * image.astype(np.float32) / 255.0 + opacity * heat
    return np.round(np.clip(mixed, 0.0, 1.0) * 255.0).astype(np.uint8)
