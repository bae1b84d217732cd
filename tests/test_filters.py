"""Tests for blindlca.filters: Gaussian kernels and the separable reflect-padded blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from blindlca.filters import gaussian_blur, gaussian_kernel1d, gaussian_kernel2d


def _gauss2d_np(size: int, sigma: float) -> np.ndarray:
    """Hand-built normalised 2-D Gaussian, independent of blindlca.filters."""
    r = size // 2
    k = np.array(
        [
            [math.exp(-((i - r) ** 2 + (j - r) ** 2) / (2 * sigma**2)) for j in range(size)]
            for i in range(size)
        ]
    )
    return k / k.sum()


def test_kernel1d_size3_sigma1_literal():
    # exp(-x^2 / 2) at x = -1, 0, 1 -> [e^-0.5, 1, e^-0.5], divided by 1 + 2 e^-0.5.
    e = math.exp(-0.5)
    expected = torch.tensor([e, 1.0, e], dtype=torch.float64) / (1 + 2 * e)
    got = gaussian_kernel1d(3, 1.0, dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-15)
    # 0.274068619, 0.451862762, 0.274068619 (float32 default dtype)
    torch.testing.assert_close(
        gaussian_kernel1d(3, 1.0), torch.tensor([0.274068619, 0.451862762, 0.274068619])
    )


@pytest.mark.parametrize(("size", "sigma"), [(1, 1.0), (5, 1.0), (7, 2.0), (9, 0.3)])
def test_kernel1d_sums_to_one_and_is_symmetric(size, sigma):
    g = gaussian_kernel1d(size, sigma, dtype=torch.float64)
    assert g.shape == (size,)
    assert abs(float(g.sum()) - 1.0) < 1e-12
    torch.testing.assert_close(g, g.flip(0), rtol=0, atol=0)
    assert int(g.argmax()) == size // 2


def test_kernel1d_dtype_and_device():
    g = gaussian_kernel1d(5, 1.0, dtype=torch.float16, device=torch.device("cpu"))
    assert g.dtype == torch.float16
    assert g.device.type == "cpu"


@pytest.mark.parametrize("size", [0, 2, 4, -3])
def test_kernel1d_rejects_even_or_nonpositive_size(size):
    with pytest.raises(ValueError, match="odd and positive"):
        gaussian_kernel1d(size, 1.0)


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_kernel1d_rejects_nonpositive_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel1d(5, sigma)


@pytest.mark.parametrize(("size", "sigma"), [(5, 1.0), (7, 2.0)])
def test_kernel2d_matches_hand_built(size, sigma):
    got = gaussian_kernel2d(size, sigma, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, _gauss2d_np(size, sigma), rtol=0, atol=1e-15)
    assert abs(got.sum() - 1.0) < 1e-12


def test_scipy_mirror_mode_is_torch_reflect():
    # torch "reflect" pads d c b | a b c d | c b a (edge not repeated) = scipy.ndimage mode "mirror";
    # scipy's "reflect" repeats the edge. The equivalence tests below rely on this.
    row = np.array([1.0, 2.0, 3.0, 4.0])
    padded = torch.nn.functional.pad(torch.tensor(row)[None, None], (2, 2), mode="reflect")[0, 0].numpy()
    np.testing.assert_array_equal(padded, [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0])
    # A delta kernel shifted by 2 reads the padded value two places left of each pixel.
    shift = np.array([0.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(ndimage.convolve(row, shift, mode="mirror"), padded[:4])
    assert not np.array_equal(ndimage.convolve(row, shift, mode="reflect"), padded[:4])


@pytest.mark.parametrize(
    ("size", "sigma", "dtype"), [(5, 1.0, torch.float64), (7, 2.0, torch.float64), (3, 0.5, torch.float32)]
)
def test_gaussian_blur_matches_scipy_2d_convolution(size, sigma, dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 9, 7, generator=gen, dtype=torch.float64).to(dtype)
    got = gaussian_blur(x, size, sigma)
    assert got.shape == x.shape
    assert got.dtype == dtype
    k = _gauss2d_np(size, sigma)
    expected = np.stack([ndimage.convolve(x[0, c].double().numpy(), k, mode="mirror") for c in range(2)])
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(got[0].double().numpy(), expected, rtol=0, atol=atol)


def test_gaussian_blur_batch_and_channels_independent():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 8, 10, generator=gen, dtype=torch.float64)
    whole = gaussian_blur(x, 5, 1.0)
    for b in range(3):
        for c in range(2):
            torch.testing.assert_close(
                whole[b, c], gaussian_blur(x[b : b + 1, c : c + 1], 5, 1.0)[0, 0], rtol=0, atol=1e-14
            )


def test_gaussian_blur_keeps_constant_input():
    x = torch.full((2, 3, 6, 11), 2.5, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(x, 5, 1.0), x, rtol=0, atol=1e-14)


def test_gaussian_blur_rejects_non_4d():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gaussian_blur(torch.zeros(3, 8, 8), 5, 1.0)
