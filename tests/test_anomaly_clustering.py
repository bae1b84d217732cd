"""Tests for blindlca.anomaly_clustering (the Sohn et al. baseline) against loop-based references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from blindlca.anomaly_clustering import anomaly_clustering_descriptors, embeddings, patch_scores

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")],
)


def _scores_np(x: np.ndarray, over_images: str) -> np.ndarray:
    """Obviously-correct scores: x (N, C, H, W) float64 -> (N, H, W), loops over images and patches."""
    n, _, h, w = x.shape
    out = np.zeros((n, h, w))
    for i in range(n):
        for r in range(h):
            for s in range(w):
                per_image = []
                for j in range(n):
                    if j == i:
                        continue
                    nearest = math.inf
                    for r2 in range(h):
                        for s2 in range(w):
                            d = np.sqrt(np.sum((x[i, :, r, s] - x[j, :, r2, s2]) ** 2))
                            nearest = min(nearest, float(d))
                    per_image.append(nearest)
                out[i, r, s] = np.mean(per_image) if over_images == "mean" else np.min(per_image)
    return out


def _images(*rows: list[float]) -> torch.Tensor:
    """One-channel images with a single row of pixels: (N, 1, 1, W)."""
    return torch.tensor(rows, dtype=torch.float32)[:, None, None, :]


@pytest.mark.parametrize("over_images", ["mean", "min"])
def test_patch_scores_match_loop_reference_for_every_chunk(over_images: str) -> None:
    x = np.random.default_rng(0).normal(size=(3, 4, 3, 2))
    ref = _scores_np(x, over_images)
    results = [
        patch_scores(torch.from_numpy(x), chunk=chunk, over_images=over_images)
        for chunk in (1, 2, 5, 6, 7, 12, 18, 10_000)
    ]
    for r in results:
        np.testing.assert_allclose(r.numpy(), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r, results[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("over_images", ["mean", "min"])
def test_patch_scores_hand_made_two_images(over_images: str) -> None:
    # Image 0 holds 0 and 10, image 1 holds 3 and 4: 0 -> 3 (|0-3|), 10 -> 6 (|10-4|), 3 -> 3, 4 -> 4.
    s = patch_scores(_images([0.0, 10.0], [3.0, 4.0]), over_images=over_images)
    assert torch.equal(s, torch.tensor([[[3.0, 6.0]], [[3.0, 4.0]]]))


def test_patch_scores_mean_and_min_over_three_images() -> None:
    x = _images([0.0], [1.0], [5.0])
    # Per-image distances: 0 -> (1, 5), 1 -> (1, 4), 5 -> (5, 4).
    assert patch_scores(x, over_images="mean").flatten().tolist() == [3.0, 2.5, 4.5]
    assert patch_scores(x, over_images="min").flatten().tolist() == [1.0, 1.0, 4.0]


def test_own_patches_are_excluded_by_index_not_by_value() -> None:
    # Image 0 repeats the value 2; its twin in the same image must not make it look normal.
    assert patch_scores(_images([2.0, 2.0], [5.0, 7.0])).flatten().tolist() == [3.0, 3.0, 3.0, 5.0]
    # The same value in another image does count: distance 0.
    assert patch_scores(_images([2.0, 2.0], [2.0, 9.0])).flatten().tolist() == [0.0, 0.0, 0.0, 7.0]


def test_embeddings_uniform_scores_give_spatial_mean() -> None:
    f = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 4, 5)))
    e = embeddings(f, torch.full((2, 4, 5), 0.7), tau=0.3)
    torch.testing.assert_close(e, f.mean(dim=(2, 3)).float(), rtol=1e-5, atol=1e-6)


def test_embeddings_dominant_score_with_small_tau_picks_that_patch() -> None:
    f = torch.from_numpy(np.random.default_rng(2).normal(size=(2, 3, 4, 5))).float()
    scores = torch.zeros(2, 4, 5)
    scores[0, 1, 2] = 1.0
    scores[1, 3, 4] = 1.0
    e = embeddings(f, scores, tau=1e-3)
    torch.testing.assert_close(e, torch.stack([f[0, :, 1, 2], f[1, :, 3, 4]]))


def test_embeddings_literal_softmax_weights() -> None:
    f = torch.tensor([[[[4.0, 8.0]], [[0.0, 4.0]]]])  # (1, 2, 1, 2)
    scores = torch.tensor([[[0.0, 0.5]]])
    tau = 0.25
    w0, w1 = math.exp(0.0 / tau), math.exp(0.5 / tau)
    a0, a1 = w0 / (w0 + w1), w1 / (w0 + w1)
    expected = torch.tensor([[a0 * 4.0 + a1 * 8.0, a0 * 0.0 + a1 * 4.0]])
    torch.testing.assert_close(embeddings(f, scores, tau=tau), expected)


@pytest.mark.parametrize("over_images", ["mean", "min"])
def test_planted_anomaly_scores_highest_and_pulls_its_embedding(over_images: str) -> None:
    f = torch.from_numpy(np.random.default_rng(3).normal(size=(6, 8, 5, 5))).float()
    f[2, :, 1, 3] = 10.0
    s = patch_scores(f, over_images=over_images)
    assert divmod(int(s[2].argmax()), 5) == (1, 3)
    planted = f[2, :, 1, 3]
    e = embeddings(f, s)
    assert torch.linalg.norm(e[2] - planted) < 0.5 * torch.linalg.norm(f[2].mean(dim=(1, 2)) - planted)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_device_and_dtype_follow_the_input(device: str) -> None:
    f = torch.from_numpy(np.random.default_rng(4).normal(size=(3, 4, 3, 3))).to(device)  # float64
    s = patch_scores(f, chunk=5)
    e = embeddings(f, s)
    assert s.device == f.device and s.dtype == torch.float32 and s.shape == (3, 3, 3)
    assert e.device == f.device and e.dtype == torch.float32 and e.shape == (3, 4)
    d = anomaly_clustering_descriptors(f.cpu().numpy(), device=device, chunk=5)
    assert isinstance(d, np.ndarray) and d.dtype == np.float32 and d.shape == (3, 4)
    np.testing.assert_allclose(d, e.cpu().numpy(), rtol=1e-6, atol=1e-6)


def test_descriptors_accept_a_tensor_and_pass_options_through() -> None:
    f = torch.from_numpy(np.random.default_rng(5).normal(size=(4, 3, 2, 3))).float()
    expected = embeddings(f, patch_scores(f, over_images="min"), tau=0.5).numpy()
    got = anomaly_clustering_descriptors(f, tau=0.5, chunk=3, over_images="min")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_user_mistakes_raise_value_error_naming_the_value() -> None:
    f = torch.zeros(3, 2, 2, 2)
    with pytest.raises(ValueError, match="N=1"):
        patch_scores(torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"\(2, 2, 2\)"):
        patch_scores(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="chunk"):
        patch_scores(f, chunk=0)
    with pytest.raises(ValueError, match="'max'"):
        patch_scores(f, over_images="max")
    for tau in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="tau"):
            embeddings(f, torch.zeros(3, 2, 2), tau=tau)
        with pytest.raises(ValueError, match="tau"):
            anomaly_clustering_descriptors(f, tau=tau)
    with pytest.raises(ValueError, match=r"\(3, 2, 2, 2\)|\(3, 2, 2\)"):
        embeddings(f, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        embeddings(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="N=1"):
        anomaly_clustering_descriptors(np.zeros((1, 2, 2, 2), dtype=np.float32))
