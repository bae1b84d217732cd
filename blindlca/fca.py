"""Feature correspondence analysis (FCA): per-pixel anomaly score from local feature statistics.

For each image, a reference distribution of sorted patch values is built per channel
(median over non-overlapping tiles). Every pixel's centred patch is sorted per channel and
compared rank by rank with that reference; the absolute differences are mapped back to the
patch positions that hold those ranks, averaged over channels, smoothed, weighted by a
Gaussian window and overlap-added onto the image.

Precision: float64 inputs are computed in float64; every other dtype (float32, float16,
bfloat16, integers) is computed in float32. Outputs are returned in the input dtype when the
input is floating point, and in float32 otherwise. Outputs live on the input's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from blindlca.filters import gaussian_blur, gaussian_kernel2d

__all__ = ["border_width", "fca", "postprocess", "reference_distribution", "residual_magnitude"]


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _out_dtype(dtype: torch.dtype) -> torch.dtype:
    """Floating inputs keep their dtype; non-floating inputs give float32."""
    return dtype if dtype.is_floating_point else torch.float32


def _check_odd_positive(name: str, value: int) -> None:
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be odd and positive, got {value}")


def _check_maps(x: torch.Tensor, patch_size: int, what: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{what} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h < patch_size or w < patch_size:
        raise ValueError(f"{what} needs H and W >= patch_size = {patch_size}, got shape {tuple(x.shape)}")


def reference_distribution(x: torch.Tensor, *, patch_size: int = 7) -> torch.Tensor:
    """Per-channel median of the sorted values of non-overlapping tiles.

    The image is cut into ``patch_size`` x ``patch_size`` tiles starting at (0, 0); remainder
    rows/columns are dropped. Each tile's values are sorted ascending per channel and the
    element-wise median over tiles is taken (numpy semantics: the mean of the two middle
    values for an even number of tiles). ``patch_size`` need not be odd here.

    Args:
        x: (B, C, H, W) tensor, H and W >= patch_size.
        patch_size: tile side P.

    Returns:
        (B, C, P*P) tensor, each row sorted ascending.
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    _check_maps(x, patch_size, "reference_distribution")
    p = patch_size
    b, c, h, w = x.shape
    nh, nw = h // p, w // p
    xw = x.to(_work_dtype(x.dtype))[:, :, : nh * p, : nw * p]
    tiles = xw.reshape(b, c, nh, p, nw, p).permute(0, 1, 2, 4, 3, 5).reshape(b, c, nh * nw, p * p)
    tiles = torch.sort(tiles, dim=-1).values
    # torch.median returns the lower middle value; sort over tiles and average the middle pair.
    tiles = torch.sort(tiles, dim=2).values
    n = nh * nw
    ref = 0.5 * (tiles[:, :, (n - 1) // 2] + tiles[:, :, n // 2])
    return ref.to(_out_dtype(x.dtype))


def fca(
    features: torch.Tensor,
    *,
    patch_size: int = 7,
    sigma_p: float = 3.0,
    k_s: int = 5,
    sigma_s: float = 1.0,
    channel_chunk: int = 64,
) -> torch.Tensor:
    """Feature correspondence analysis score, before post-processing.

    For every pixel the ``patch_size`` x ``patch_size`` patch centred on it (reflect padding
    P//2) is sorted per channel (stable sort: ties keep row-major patch order); the value of
    rank k is compared with the reference ``r_c[k]``; |difference| is written back to the
    patch position holding rank k and averaged over channels. Each P x P error grid is
    smoothed on its own (k_s x k_s Gaussian, reflect padding at the grid edge), multiplied by
    a normalised P x P Gaussian of ``sigma_p`` and overlap-added onto the pixels it covers;
    contributions falling outside the image are discarded.

    Args:
        features: (B, C, H, W) tensor, H and W >= patch_size.
        patch_size: odd patch side P.
        sigma_p: sigma of the P x P overlap-add weight (normalised to sum 1).
        k_s: odd side of the error-grid smoothing kernel, k_s // 2 < patch_size.
        sigma_s: sigma of the error-grid smoothing kernel.
        channel_chunk: channels processed at once (bounds memory; does not change the result).

    Returns:
        (B, H, W) score on the input's device (dtype: see module docstring).
    """
    _check_odd_positive("patch_size", patch_size)
    _check_odd_positive("k_s", k_s)
    if k_s // 2 >= patch_size:
        raise ValueError(
            f"k_s // 2 must be < patch_size for reflect padding of the error grid, "
            f"got k_s = {k_s}, patch_size = {patch_size}"
        )
    if channel_chunk < 1:
        raise ValueError(f"channel_chunk must be positive, got {channel_chunk}")
    _check_maps(features, patch_size, "fca")

    p, r, pp = patch_size, patch_size // 2, patch_size * patch_size
    b, c, h, w = features.shape
    n_pix = h * w
    dtype = _work_dtype(features.dtype)
    x = features.to(dtype)
    ref = reference_distribution(x, patch_size=p)  # (B, C, PP), already in `dtype`
    weight = gaussian_kernel2d(p, sigma_p, dtype=dtype, device=x.device)  # (P, P)

    out = []
    for i in range(b):
        err = torch.zeros(pp, n_pix, dtype=dtype, device=x.device)  # channel-sum of error grids
        for c0 in range(0, c, channel_chunk):
            c1 = min(c0 + channel_chunk, c)
            xp = F.pad(x[i : i + 1, c0:c1], (r, r, r, r), mode="reflect")
            cols = F.unfold(xp, p).view(c1 - c0, pp, n_pix)  # patch values, row-major in the patch
            vals, idx = torch.sort(cols, dim=1, stable=True)
            del cols
            d = (vals - ref[i, c0:c1, :, None]).abs_()
            del vals
            # idx is a permutation per (channel, pixel): each patch position is written once.
            err += torch.empty_like(d).scatter_(1, idx, d).sum(dim=0)
            del d, idx
        err /= c
        grids = err.t().reshape(n_pix, 1, p, p)
        grids = gaussian_blur(grids, k_s, sigma_s) * weight
        cols = grids.reshape(n_pix, pp).t().unsqueeze(0)  # (1, PP, H*W), fold layout
        acc = F.fold(cols, (h + 2 * r, w + 2 * r), p)
        out.append(acc[0, 0, r : r + h, r : r + w])
    return torch.stack(out).to(_out_dtype(features.dtype))


def border_width(size: int, *, border: int = 5, reference: int = 64) -> int:
    """Border width for an axis of ``size`` pixels: ``border * size / reference``, rounded half up.

    Exact integer arithmetic (no float rounding): 5 at 64, 3 at 32, 10 at 128.
    """
    if size < 0 or border < 0 or reference < 1:
        raise ValueError(
            f"need size >= 0, border >= 0, reference >= 1; got size={size}, border={border}, "
            f"reference={reference}"
        )
    return (2 * border * size + reference) // (2 * reference)


def postprocess(
    alpha: torch.Tensor,
    *,
    blur_kernel: int = 5,
    blur_sigma: float = 1.0,
    border: int = 5,
    border_reference: int = 64,
) -> torch.Tensor:
    """Gaussian blur (reflect padding), then zero a border scaled per axis.

    The border is ``border_width(H)`` rows at top and bottom and ``border_width(W)`` columns
    at left and right.

    Args:
        alpha: (B, H, W) score map, H and W > blur_kernel // 2.

    Returns:
        (B, H, W) on the input's device (dtype: see module docstring).
    """
    if alpha.ndim != 3:
        raise ValueError(f"postprocess expects a (B, H, W) tensor, got shape {tuple(alpha.shape)}")
    _check_odd_positive("blur_kernel", blur_kernel)
    h, w = alpha.shape[-2:]
    if min(h, w) <= blur_kernel // 2:
        raise ValueError(
            f"postprocess needs H and W > blur_kernel // 2 = {blur_kernel // 2}, "
            f"got shape {tuple(alpha.shape)}"
        )
    y = gaussian_blur(alpha.to(_work_dtype(alpha.dtype))[:, None], blur_kernel, blur_sigma)[:, 0]
    bh = border_width(h, border=border, reference=border_reference)
    bw = border_width(w, border=border, reference=border_reference)
    y[:, :bh, :] = 0
    y[:, h - bh :, :] = 0
    y[:, :, :bw] = 0
    y[:, :, w - bw :] = 0
    return y.to(_out_dtype(alpha.dtype))


def residual_magnitude(residuals: torch.Tensor) -> torch.Tensor:
    """just_vae score: mean over channels of |R|.

    Args:
        residuals: (B, C, H, W) tensor.

    Returns:
        (B, H, W) on the input's device (dtype: see module docstring).
    """
    if residuals.ndim != 4:
        raise ValueError(
            f"residual_magnitude expects a (B, C, H, W) tensor, got shape {tuple(residuals.shape)}"
        )
    return residuals.to(_work_dtype(residuals.dtype)).abs().mean(dim=1).to(_out_dtype(residuals.dtype))
