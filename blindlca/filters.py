"""Separable Gaussian filtering shared by FCA post-processing and descriptors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel1d(
    size: int, sigma: float, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """Normalised 1-D Gaussian, exp(-x^2 / 2 sigma^2) at x = -(size//2) .. size//2.

    Returns:
        (size,) tensor summing to 1.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and positive, got {size}")
    if sigma <= 0:
        raise ValueError(f"Gaussian sigma must be positive, got {sigma}")
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def gaussian_kernel2d(
    size: int, sigma: float, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> torch.Tensor:
    """Outer product of two `gaussian_kernel1d`; (size, size), sums to 1."""
    g = gaussian_kernel1d(size, sigma, dtype=torch.float64)
    return torch.outer(g, g).to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Blur every channel of `x` with a `size` x `size` Gaussian, reflect padding.

    Args:
        x: (B, C, H, W) float tensor, H and W > size // 2 (reflect padding needs it).
    Returns:
        (B, C, H, W), same dtype and device.
    """
    if x.ndim != 4:
        raise ValueError(f"gaussian_blur expects (B, C, H, W), got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    r = size // 2
    g = gaussian_kernel1d(size, sigma, dtype=x.dtype, device=x.device)
    y = x.reshape(b * c, 1, h, w)
    # Separable: two 1-D passes cost 2k instead of k^2 multiply-adds per pixel.
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), g.view(1, 1, 1, size))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), g.view(1, 1, size, 1))
    return y.reshape(b, c, h, w)
