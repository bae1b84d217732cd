"""Tests for blindlca.fca against a slow, loop-based numpy reference, and of the fast `fca`
against the plain sort-based `fca_reference`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import blindlca.fca as fca_module
from blindlca.fca import (
    border_width,
    fca,
    fca_reference,
    postprocess,
    reference_distribution,
    residual_magnitude,
)


def _gauss2d_np(size: int, sigma: float) -> np.ndarray:
    """Hand-built normalised 2-D Gaussian, independent of blindlca.filters."""
    k = np.zeros((size, size))
    r = size // 2
    for i in range(size):
        for j in range(size):
            k[i, j] = np.exp(-((i - r) ** 2 + (j - r) ** 2) / (2.0 * sigma**2))
    return k / k.sum()


def _ref_distribution_np(img: np.ndarray, p: int) -> np.ndarray:
    """img (C, H, W) -> (C, P*P), loops over tiles."""
    c, h, w = img.shape
    out = np.zeros((c, p * p))
    for ch in range(c):
        tiles = []
        for ti in range(h // p):
            for tj in range(w // p):
                tiles.append(np.sort(img[ch, ti * p : (ti + 1) * p, tj * p : (tj + 1) * p].ravel()))
        out[ch] = np.median(np.stack(tiles), axis=0)
    return out


def _fca_np(x: np.ndarray, p: int, sigma_p: float = 3.0, k_s: int = 5, sigma_s: float = 1.0) -> np.ndarray:
    """Obviously-correct FCA: x (B, C, H, W) float64 -> (B, H, W)."""
    b, c, h, w = x.shape
    r = p // 2
    rs = k_s // 2
    g_s = _gauss2d_np(k_s, sigma_s)
    g_p = _gauss2d_np(p, sigma_p)
    out = np.zeros((b, h, w))
    for n in range(b):
        ref = _ref_distribution_np(x[n], p)
        xpad = np.pad(x[n], ((0, 0), (r, r), (r, r)), mode="reflect")
        for i in range(h):
            for j in range(w):
                grid = np.zeros(p * p)
                for ch in range(c):
                    patch = xpad[ch, i : i + p, j : j + p].ravel()
                    order = np.argsort(patch, kind="stable")
                    for k in range(p * p):
                        grid[order[k]] += abs(patch[order[k]] - ref[ch, k])
                grid = (grid / c).reshape(p, p)
                gpad = np.pad(grid, rs, mode="reflect")
                smooth = np.zeros((p, p))
                for u in range(p):
                    for v in range(p):
                        smooth[u, v] = np.sum(gpad[u : u + k_s, v : v + k_s] * g_s)
                weighted = smooth * g_p
                for u in range(p):
                    for v in range(p):
                        qi, qj = i + u - r, j + v - r
                        if 0 <= qi < h and 0 <= qj < w:
                            out[n, qi, qj] += weighted[u, v]
    return out


def _assert_close_rel(actual: torch.Tensor, expected: np.ndarray, rel: float) -> None:
    a = actual.detach().cpu().double().numpy()
    scale = max(np.abs(expected).max(), 1e-12)
    assert a.shape == expected.shape
    assert np.abs(a - expected).max() <= rel * scale


@pytest.mark.parametrize(
    ("shape", "p", "dtype"),
    [
        ((2, 3, 9, 11), 3, torch.float64),
        ((2, 3, 9, 11), 7, torch.float32),
        ((1, 4, 14, 14), 7, torch.float64),
        ((1, 4, 14, 14), 3, torch.float32),
    ],
)
@pytest.mark.parametrize("impl", [fca, fca_reference])
def test_fca_matches_numpy_reference(shape, p, dtype, impl):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    expected = _fca_np(x.double().numpy(), p)
    got = impl(x, patch_size=p, channel_chunk=2)
    assert got.dtype == dtype
    _assert_close_rel(got, expected, 1e-5)


def test_fca_matches_numpy_reference_with_ties():
    # Few distinct integer values: many ties, so the stable tie-breaking order matters.
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 3, (1, 2, 10, 9), generator=gen).to(torch.float32)
    for p in (3, 5):
        _assert_close_rel(fca(x, patch_size=p), _fca_np(x.double().numpy(), p), 1e-5)


def test_fca_custom_smoothing_parameters_match_reference():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 8, 10, generator=gen, dtype=torch.float64)
    got = fca(x, patch_size=5, sigma_p=1.5, k_s=3, sigma_s=0.7)
    _assert_close_rel(got, _fca_np(x.numpy(), 5, sigma_p=1.5, k_s=3, sigma_s=0.7), 1e-5)


def _assert_matches_reference(x: torch.Tensor, rel: float = 1e-5, **kwargs) -> None:
    got, expected = fca(x, **kwargs), fca_reference(x, **kwargs)
    assert got.shape == expected.shape and got.dtype == expected.dtype and got.device == x.device
    _assert_close_rel(got, expected.double().numpy(), rel)


@pytest.mark.parametrize("shape", [(1, 6, 16, 16), (2, 5, 13, 21), (1, 3, 22, 9)])
@pytest.mark.parametrize("p", [3, 5, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_fca_matches_fca_reference(shape, p, dtype, ties):
    gen = torch.Generator().manual_seed(10 + p)
    if ties:  # few integer values: most comparisons are ties, broken by raster order
        x = torch.randint(0, 4, shape, generator=gen).to(dtype)
    else:
        x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    _assert_matches_reference(x, patch_size=p, k_s=3 if p == 3 else 5, channel_chunk=4)


@pytest.mark.parametrize(("p", "k_s"), [(1, 1), (17, 5)])
def test_fca_matches_fca_reference_extreme_patch_sizes(p, k_s):
    # P = 1: every rank is 0. P = 17: ranks above 255 need the wider integer counts.
    gen = torch.Generator().manual_seed(11)
    x = torch.randint(0, 6, (1, 2, 19, 18), generator=gen).float()
    _assert_matches_reference(x, patch_size=p, k_s=k_s)


@pytest.mark.parametrize(
    ("scratch_bytes", "channel_chunk"),
    [(1, 64), (1 << 30, 64), (1 << 30, 3)],
    ids=["one-map-per-chunk", "all-images-in-one-chunk", "partial-last-chunk"],
)
def test_fca_chunking_does_not_change_result(monkeypatch, scratch_bytes, channel_chunk):
    monkeypatch.setattr(fca_module, "_SCRATCH_BYTES", {"cpu": scratch_bytes})
    gen = torch.Generator().manual_seed(12)
    x = torch.randint(0, 3, (3, 4, 11, 12), generator=gen).float()
    _assert_matches_reference(x, channel_chunk=channel_chunk)


def test_fca_worker_threads_keep_thread_setting_and_result(monkeypatch):
    # Several chunks: the CPU path splits them among torch.get_num_threads() worker threads.
    monkeypatch.setattr(fca_module, "_SCRATCH_BYTES", {"cpu": 1})
    gen = torch.Generator().manual_seed(16)
    x = torch.randn(2, 6, 12, 10, generator=gen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = fca(x)
        torch.set_num_threads(3)
        several = fca(x)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(several, single, rtol=1e-5, atol=1e-6)
    _assert_close_rel(several, fca_reference(x).double().numpy(), 1e-5)


def test_fca_non_finite_values_like_reference():
    # NaN sorts last in a stable sort; +-inf, -0.0 and ties must rank exactly as there.
    gen = torch.Generator().manual_seed(13)
    x = torch.randint(-2, 3, (2, 3, 12, 13), generator=gen).float()
    u = torch.rand(x.shape, generator=gen)
    x[u < 0.03] = float("nan")
    x[(u >= 0.03) & (u < 0.06)] = float("inf")
    x[(u >= 0.06) & (u < 0.08)] = -float("inf")
    x[(u >= 0.08) & (u < 0.12)] = -0.0
    for p in (3, 5):
        got, expected = fca(x, patch_size=p, k_s=3), fca_reference(x, patch_size=p, k_s=3)
        assert torch.equal(got.isnan(), expected.isnan())
        assert torch.equal(got.isinf(), expected.isinf())
        finite = expected.isfinite()
        torch.testing.assert_close(got[finite], expected[finite], rtol=1e-5, atol=1e-6)


def test_fca_input_requiring_grad_stays_differentiable():
    gen = torch.Generator().manual_seed(15)
    x = torch.randn(1, 3, 10, 11, generator=gen, requires_grad=True)
    out = fca(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.testing.assert_close(out.detach(), fca(x.detach()), rtol=1e-5, atol=1e-6)


def test_reference_distribution_hand_computed():
    # 1 channel, 2x4, patch 2 -> tiles [[1,5],[3,2]] and [[4,0],[8,6]]:
    # sorted [1,2,3,5] and [0,4,6,8]; even count -> mean of the two.
    x = torch.tensor([[[[1.0, 5.0, 4.0, 0.0], [3.0, 2.0, 8.0, 6.0]]]])
    got = reference_distribution(x, patch_size=2)
    assert got.shape == (1, 1, 4)
    torch.testing.assert_close(got, torch.tensor([[[0.5, 3.0, 4.5, 6.5]]]), rtol=0, atol=0)


def test_reference_distribution_odd_tile_count_drops_remainder():
    # 3x7 with patch 2: tiles at columns 0,2,4 of rows 0-1; row 2 and column 6 are dropped.
    x = torch.tensor(
        [
            [1.0, 5.0, 4.0, 0.0, 2.0, 2.0, 1000.0],
            [3.0, 2.0, 8.0, 6.0, 2.0, 2.0, 1000.0],
            [1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0],
        ]
    )[None, None]
    # sorted tiles: [1,2,3,5], [0,4,6,8], [2,2,2,2] -> per-rank median [1,2,3,5].
    got = reference_distribution(x, patch_size=2)
    torch.testing.assert_close(got, torch.tensor([[[1.0, 2.0, 3.0, 5.0]]]), rtol=0, atol=0)


def test_reference_distribution_per_image_and_channel():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 15, 22, generator=gen, dtype=torch.float64)
    got = reference_distribution(x, patch_size=7)
    for n in range(2):
        np.testing.assert_allclose(got[n].numpy(), _ref_distribution_np(x[n].numpy(), 7), rtol=0, atol=1e-12)


def test_constant_image_gives_zero():
    x = torch.full((2, 3, 12, 17), 2.5)
    assert fca(x).abs().max() < 1e-6


def test_periodic_tiling_zero_away_from_border():
    # An exact periodic tiling of one P x P tile (starting at (0, 0)) makes every reference tile
    # identical, so r_c is the sorted tile. A patch lying fully inside the image is a cyclic shift
    # of the tile (same multiset of values) -> zero error. Patches that reach into the reflect
    # padding contain mirrored values, which are not a cyclic shift of the tile, so their error is
    # generally non-zero; those patches have centres within r = P//2 of the border and cover
    # pixels up to 2r - 1 from it. Hence the invariant is: alpha == 0 for pixels at distance
    # >= 2r from every border, not everywhere.
    p, r = 7, 3
    gen = torch.Generator().manual_seed(4)
    tile = torch.randn(3, p, p, generator=gen)
    h, w = 23, 26
    x = tile.repeat(1, 4, 4)[None, :, :h, :w]
    alpha = fca(x, patch_size=p)
    assert alpha[0, 2 * r : h - 2 * r, 2 * r : w - 2 * r].abs().max() < 1e-6
    assert alpha.abs().max() > 1e-3  # the border region really is non-zero


def test_local_anomaly_is_localised():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 40, 44, generator=gen)
    x[:, :, 18:24, 25:31] += 6.0
    alpha = fca(x)
    idx = int(torch.argmax(alpha[0]))
    i, j = divmod(idx, 44)
    assert 15 <= i < 27 and 22 <= j < 34
    assert alpha[0, 18:24, 25:31].mean() > 3 * alpha[0, :10, :10].mean()


def test_batch_invariance_and_channel_chunk():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 5, 12, 15, generator=gen)
    full = fca(x, channel_chunk=64)
    for i in range(3):
        torch.testing.assert_close(fca(x[i : i + 1]), full[i : i + 1], rtol=0, atol=1e-6)
    for chunk in (1, 2, 3):
        torch.testing.assert_close(fca(x, channel_chunk=chunk), full, rtol=0, atol=1e-6)


def test_fca_low_precision_and_shape():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 9, 13, generator=gen)
    out = fca(x.to(torch.bfloat16))
    assert out.shape == (2, 9, 13)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), fca(x.to(torch.bfloat16).float()), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    ("size", "expected"), [(64, 5), (32, 3), (128, 10), (16, 1), (24, 2), (512, 40), (0, 0)]
)
def test_border_width(size, expected):
    assert border_width(size) == expected


def test_border_width_custom():
    assert border_width(50, border=1, reference=100) == 1  # 0.5 -> 1 (half up, not banker's)
    assert border_width(150, border=1, reference=100) == 2  # 1.5 -> 2
    assert border_width(250, border=1, reference=100) == 3  # 2.5 -> 3


def test_postprocess_border_and_interior_non_square():
    gen = torch.Generator().manual_seed(8)
    h, w = 32, 64
    alpha = torch.rand(2, h, w, generator=gen, dtype=torch.float64)
    out = postprocess(alpha)
    bh, bw = border_width(h), border_width(w)
    assert (bh, bw) == (3, 5)
    # Independent blur: explicit 5x5 Gaussian with reflect padding.
    g = _gauss2d_np(5, 1.0)
    a = np.pad(alpha.numpy(), ((0, 0), (2, 2), (2, 2)), mode="reflect")
    blurred = np.zeros((2, h, w))
    for u in range(5):
        for v in range(5):
            blurred += g[u, v] * a[:, u : u + h, v : v + w]
    o = out.numpy()
    assert out.shape == (2, h, w)
    assert np.all(o[:, :bh, :] == 0) and np.all(o[:, h - bh :, :] == 0)
    assert np.all(o[:, :, :bw] == 0) and np.all(o[:, :, w - bw :] == 0)
    np.testing.assert_allclose(
        o[:, bh : h - bh, bw : w - bw], blurred[:, bh : h - bh, bw : w - bw], atol=1e-12
    )
    # The pixel just inside the border is not zeroed.
    assert np.all(o[:, bh, bw:-bw] > 0)


def test_residual_magnitude_literal():
    res = torch.tensor([[[[1.0, -2.0]], [[-3.0, 0.0]]]])  # (1, 2, 1, 2)
    torch.testing.assert_close(residual_magnitude(res), torch.tensor([[[2.0, 1.0]]]), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(1, 2, 6, 10), (1, 2, 10, 6), (2, 10, 10), (2, 1, 3, 10, 10)])
def test_fca_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=r"shape"):
        fca(torch.zeros(shape))


def test_small_input_message_names_minimum():
    with pytest.raises(ValueError, match=r"patch_size = 7.*\(1, 2, 6, 10\)"):
        fca(torch.zeros(1, 2, 6, 10))
    with pytest.raises(ValueError, match=r"shape"):
        reference_distribution(torch.zeros(1, 1, 1, 5), patch_size=2)


@pytest.mark.parametrize("kwargs", [{"patch_size": 6}, {"patch_size": 0}, {"k_s": 4}, {"k_s": -1}])
def test_fca_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        fca(torch.zeros(1, 1, 10, 10), **kwargs)


def test_residual_magnitude_and_postprocess_reject_bad_ndim():
    with pytest.raises(ValueError):
        residual_magnitude(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError):
        postprocess(torch.zeros(1, 1, 8, 8))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fca_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, 70, 20, 23, generator=gen)
    cpu = postprocess(fca(x, channel_chunk=32))
    gpu = postprocess(fca(x.cuda(), channel_chunk=32))
    assert gpu.device.type == "cuda"
    scale = cpu.abs().max()
    assert (gpu.cpu() - cpu).abs().max() <= 1e-4 * scale
    torch.testing.assert_close(
        residual_magnitude(x.cuda()).cpu(), residual_magnitude(x), rtol=1e-5, atol=1e-6
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fca_cuda_matches_fca_reference_with_ties(dtype):
    gen = torch.Generator().manual_seed(14)
    x = torch.randint(0, 4, (2, 40, 17, 21), generator=gen).to(dtype)
    got = fca(x.cuda(), channel_chunk=16)
    assert got.device.type == "cuda" and got.dtype == dtype
    _assert_close_rel(got, fca_reference(x).double().numpy(), 1e-5)
