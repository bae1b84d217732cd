"""Tests for blindlca.descriptors (METHOD.md step 4) against an independent numpy/scipy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from blindlca.descriptors import anomaly_weights, descriptor, descriptors_of, mean_pool


def _gauss2d_np(size: int, sigma: float) -> np.ndarray:
    r = size // 2
    k = np.array(
        [
            [math.exp(-((i - r) ** 2 + (j - r) ** 2) / (2 * sigma**2)) for j in range(size)]
            for i in range(size)
        ]
    )
    return k / k.sum()


def _g_np(features: np.ndarray, size: int = 7, sigma: float = 2.0) -> np.ndarray:
    """G = blurred features minus their spatial mean; (B, C, H, W) float64.

    scipy's mode "mirror" (d c b | a b c d) is torch's reflect padding (see test_filters).
    """
    k = _gauss2d_np(size, sigma)
    g = np.stack([np.stack([ndimage.convolve(ch, k, mode="mirror") for ch in img]) for img in features])
    return g - g.mean(axis=(2, 3), keepdims=True)


def _descriptor_np(
    features: np.ndarray, alpha: np.ndarray, tau: float = 0.002, size: int = 7, sigma: float = 2.0
) -> np.ndarray:
    g = _g_np(features, size, sigma)
    out = np.zeros(features.shape[:2])
    for b in range(len(features)):
        z = alpha[b].ravel() / tau
        w = np.exp(z - z.max())
        w /= w.sum()
        out[b] = g[b].reshape(g.shape[1], -1) @ w
    return out


def test_anomaly_weights_literal_softmax():
    # alpha / tau = [0, 1, 2, 0] -> softmax = [1, e, e^2, 1] / (2 + e + e^2).
    alpha = torch.tensor([[[0.0, 0.002], [0.004, 0.0]]], dtype=torch.float64)
    e = math.e
    expected = torch.tensor([[[1.0, e], [e * e, 1.0]]], dtype=torch.float64) / (2 + e + e * e)
    torch.testing.assert_close(anomaly_weights(alpha, tau=0.002), expected, rtol=0, atol=1e-15)
    # Default tau is 0.002.
    torch.testing.assert_close(anomaly_weights(alpha), expected, rtol=0, atol=1e-15)


def test_anomaly_weights_sum_to_one_per_image_and_keep_dtype():
    gen = torch.Generator().manual_seed(0)
    alpha = torch.rand(3, 5, 7, generator=gen) * 0.05
    w = anomaly_weights(alpha)
    assert w.shape == alpha.shape
    assert w.dtype == torch.float32
    torch.testing.assert_close(w.sum(dim=(1, 2)), torch.ones(3), rtol=0, atol=1e-5)
    # Per image: the weights of image 1 do not depend on the other images.
    torch.testing.assert_close(w[1:2], anomaly_weights(alpha[1:2]), rtol=0, atol=0)


def test_anomaly_weights_extreme_values_do_not_overflow():
    # alpha / tau = 5e5: a naive exp overflows; softmax must give an exact one-hot.
    alpha = torch.zeros(1, 3, 3)
    alpha[0, 2, 1] = 1000.0
    w = anomaly_weights(alpha)
    expected = torch.zeros(1, 3, 3)
    expected[0, 2, 1] = 1.0
    torch.testing.assert_close(w, expected, rtol=0, atol=0)


@pytest.mark.parametrize("tau", [0.0, -0.002])
def test_nonpositive_tau_rejected(tau):
    with pytest.raises(ValueError, match="tau"):
        anomaly_weights(torch.zeros(1, 4, 4), tau=tau)
    with pytest.raises(ValueError, match="tau"):
        descriptor(torch.zeros(1, 2, 8, 8), torch.zeros(1, 8, 8), tau=tau)


def test_descriptor_single_hot_pixel_picks_g_there():
    # alpha = 1 at one pixel, 0 elsewhere: weights exp(-500) ~ 7e-218 elsewhere, so D = G(p).
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(2, 3, 10, 12, generator=gen, dtype=torch.float64)
    alpha = torch.zeros(2, 10, 12, dtype=torch.float64)
    alpha[0, 0, 0] = 1.0  # corner: exercises the padding
    alpha[1, 6, 4] = 1.0
    g = _g_np(f.numpy())
    got = descriptor(f, alpha)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got[0].numpy(), g[0, :, 0, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1].numpy(), g[1, :, 6, 4], rtol=0, atol=1e-12)


def test_descriptor_uniform_alpha_is_mean_of_g_which_is_zero():
    # Uniform weights 1/(H W): D = mean over pixels of (blur - mean(blur)) = 0.
    gen = torch.Generator().manual_seed(2)
    f = torch.randn(2, 4, 9, 9, generator=gen, dtype=torch.float64) * 10 + 3
    got = descriptor(f, torch.full((2, 9, 9), 0.7, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), np.zeros((2, 4)), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("tau", "size", "sigma"), [(0.002, 7, 2.0), (0.01, 5, 1.0)])
def test_descriptor_matches_reference_on_soft_weights(tau, size, sigma):
    # alpha spread over ~0.01 so several pixels carry weight (not one-hot).
    gen = torch.Generator().manual_seed(3)
    f = torch.randn(2, 5, 11, 8, generator=gen, dtype=torch.float64)
    alpha = torch.rand(2, 11, 8, generator=gen, dtype=torch.float64) * 0.01
    got = descriptor(f, alpha, tau=tau, blur_kernel=size, blur_sigma=sigma)
    expected = _descriptor_np(f.numpy(), alpha.numpy(), tau, size, sigma)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_descriptor_float32_matches_reference():
    gen = torch.Generator().manual_seed(4)
    f = torch.randn(1, 4, 12, 12, generator=gen)
    alpha = torch.rand(1, 12, 12, generator=gen) * 0.01
    got = descriptor(f, alpha)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(
        got.numpy(), _descriptor_np(f.double().numpy(), alpha.double().numpy()), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize(
    ("f_shape", "a_shape"), [((2, 3, 8, 8), (1, 8, 8)), ((1, 3, 8, 8), (1, 8, 9)), ((1, 3, 8, 8), (1, 9, 8))]
)
def test_descriptor_shape_mismatch_rejected(f_shape, a_shape):
    with pytest.raises(ValueError, match="differ"):
        descriptor(torch.zeros(f_shape), torch.zeros(a_shape))


def test_mean_pool():
    f = torch.arange(2 * 2 * 2 * 3, dtype=torch.float64).reshape(2, 2, 2, 3)
    # image 0, channel 0 holds 0..5 -> 2.5; each further channel adds 6.
    torch.testing.assert_close(mean_pool(f), torch.tensor([[2.5, 8.5], [14.5, 20.5]], dtype=torch.float64))


@pytest.fixture
def category():
    rng = np.random.default_rng(5)
    features = rng.standard_normal((5, 4, 10, 10)).astype(np.float32)
    alpha = (rng.random((5, 10, 10)) * 0.01).astype(np.float32)
    return features, alpha


@pytest.mark.parametrize("batch_size", [1, 2, 5, 8])
def test_descriptors_of_matches_descriptor_for_any_batch_size(category, batch_size):
    features, alpha = category
    expected = descriptor(torch.from_numpy(features), torch.from_numpy(alpha)).numpy()
    got = descriptors_of(features, alpha, batch_size=batch_size)
    assert got.dtype == np.float32
    assert got.shape == (5, 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_descriptors_of_passes_blur_and_tau(category):
    features, alpha = category
    expected = descriptor(
        torch.from_numpy(features), torch.from_numpy(alpha), tau=0.05, blur_kernel=3, blur_sigma=0.5
    ).numpy()
    got = descriptors_of(features, alpha, batch_size=2, tau=0.05, blur_kernel=3, blur_sigma=0.5)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert not np.allclose(got, descriptors_of(features, alpha), atol=1e-4)


def test_descriptors_of_without_alpha_is_mean_pool(category):
    features, _ = category
    got = descriptors_of(features, None, batch_size=2)
    np.testing.assert_allclose(got, features.mean(axis=(2, 3)), rtol=0, atol=1e-6)


def test_descriptors_of_applies_transform(category):
    features, alpha = category

    def transform(f):
        return f[:, :2] * 3.0

    got = descriptors_of(features, alpha, transform=transform, batch_size=3)
    expected = descriptor(torch.from_numpy(features[:, :2] * 3.0), torch.from_numpy(alpha)).numpy()
    assert got.shape == (5, 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        descriptors_of(features, None, transform=transform),
        features[:, :2].mean(axis=(2, 3)) * 3.0,
        rtol=0,
        atol=1e-5,
    )


def test_descriptors_of_reads_memmap(category, tmp_path):
    features, alpha = category
    np.save(tmp_path / "f.npy", features)
    np.save(tmp_path / "a.npy", alpha)
    got = descriptors_of(
        np.load(tmp_path / "f.npy", mmap_mode="r"), np.load(tmp_path / "a.npy", mmap_mode="r"), batch_size=2
    )
    np.testing.assert_array_equal(got, descriptors_of(features, alpha, batch_size=2))
