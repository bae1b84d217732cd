"""Tests for blindlca.vae (METHOD.md step 2): architecture, loss, epoch count, training and residuals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from blindlca.features import minmax_scale
from blindlca.vae import FeatureVAE, compute_residuals, n_epochs, train_vae, vae_loss


def _layers(seq):
    """[(type name, weight shape or None)] of a Sequential."""
    return [(type(m).__name__, tuple(m.weight.shape) if isinstance(m, nn.Conv2d) else None) for m in seq]


def test_default_architecture_matches_method():
    model = FeatureVAE()
    # Encoder 512->512, ReLU, 512->512, ReLU.
    assert _layers(model.encoder) == [
        ("Conv2d", (512, 512, 1, 1)),
        ("ReLU", None),
        ("Conv2d", (512, 512, 1, 1)),
        ("ReLU", None),
    ]
    # Heads 512->128.
    assert isinstance(model.mu, nn.Conv2d) and tuple(model.mu.weight.shape) == (128, 512, 1, 1)
    assert isinstance(model.log_sigma, nn.Conv2d) and tuple(model.log_sigma.weight.shape) == (128, 512, 1, 1)
    # Decoder 128->512, ReLU, 512->512, ReLU, 512->512, ReLU.
    assert _layers(model.decoder) == [
        ("Conv2d", (512, 128, 1, 1)),
        ("ReLU", None),
        ("Conv2d", (512, 512, 1, 1)),
        ("ReLU", None),
        ("Conv2d", (512, 512, 1, 1)),
        ("ReLU", None),
    ]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 7
    for m in convs:
        assert m.kernel_size == (1, 1) and m.stride == (1, 1) and m.padding == (0, 0) and m.bias is not None
    # 4 convs 512x512, 3 convs 512<->128 (weights + biases).
    expected_params = 4 * (512 * 512 + 512) + 2 * (128 * 512 + 128) + (512 * 128 + 512)
    assert sum(p.numel() for p in model.parameters()) == expected_params


def test_custom_sizes_and_non_square_shapes():
    model = FeatureVAE(channels=8, hidden=16, latent=4)
    x = torch.rand(2, 8, 5, 3)
    recon, mu, log_sigma = model(x, generator=torch.Generator().manual_seed(0))
    assert recon.shape == (2, 8, 5, 3)
    assert mu.shape == (2, 4, 5, 3)
    assert log_sigma.shape == (2, 4, 5, 3)
    assert model.residual(x).shape == (2, 8, 5, 3)
    m2, s2 = model.encode(x)
    torch.testing.assert_close(m2, mu, rtol=0, atol=0)
    torch.testing.assert_close(s2, log_sigma, rtol=0, atol=0)


def test_forward_samples_z_with_the_generator():
    torch.manual_seed(0)
    model = FeatureVAE(channels=6, hidden=10, latent=3)
    x = torch.rand(2, 6, 4, 5)
    recon, mu, log_sigma = model(x, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(recon, model.decoder(mu + log_sigma.exp() * eps), rtol=0, atol=1e-6)
    again, _, _ = model(x, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(recon, again, rtol=0, atol=0)
    other, _, _ = model(x, generator=torch.Generator().manual_seed(8))
    assert not torch.allclose(recon, other)


def test_residual_is_input_minus_decoded_mean_without_sampling():
    torch.manual_seed(1)
    model = FeatureVAE(channels=6, hidden=10, latent=3)
    x = torch.rand(3, 6, 4, 2)
    with torch.no_grad():
        expected = x - model.decoder(model.mu(model.encoder(x)))
    r1 = model.residual(x)
    r2 = model.residual(x)
    torch.testing.assert_close(r1, expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(r1, r2, rtol=0, atol=0)
    assert not r1.requires_grad


def test_vae_loss_hand_computed():
    recon = torch.tensor([1.0, 3.0], dtype=torch.float64)
    x = torch.tensor([0.0, 1.0], dtype=torch.float64)
    mu = torch.tensor([0.0, 1.0], dtype=torch.float64)
    log_sigma = torch.tensor([0.0, math.log(2.0)], dtype=torch.float64)
    loss, mse, kl = vae_loss(recon, x, mu, log_sigma, kl_weight=0.001)
    # MSE = (1^2 + 2^2) / 2 = 2.5
    assert float(mse) == pytest.approx(2.5, abs=1e-15)
    # sigma^2 = [1, 4]; terms [1 + 0 - 0 - 0.5, 4 + 1 - ln 2 - 0.5] -> KL = (5 - ln 2) / 2
    assert float(kl) == pytest.approx((5 - math.log(2.0)) / 2, abs=1e-15)
    assert float(loss) == pytest.approx(2.5 + 0.001 * (5 - math.log(2.0)) / 2, abs=1e-15)
    loss0, _, _ = vae_loss(recon, x, mu, log_sigma, kl_weight=0.0)
    assert float(loss0) == pytest.approx(2.5, abs=1e-15)


def test_vae_loss_kl_at_mu_zero_sigma_one():
    # mu = 0, log sigma = 0 -> 1 + 0 - 0 - 0.5 = 0.5 per element (the reference's KL, not the textbook one,
    # which would be 0 here).
    z = torch.zeros(2, 3, 4, 4)
    _, mse, kl = vae_loss(z, z, z, z, kl_weight=1.0)
    assert float(mse) == 0.0
    assert float(kl) == pytest.approx(0.5, abs=1e-7)


@pytest.mark.parametrize(
    ("n", "samples", "expected"),
    [
        (36, 10_000, 278),
        (10_000, 10_000, 1),
        (3, 10_000, 3334),
        (1, 10_000, 10_000),
        (20_000, 10_000, 1),
        (100, 10_000, 100),
        (7, 20, 3),
    ],
)
def test_n_epochs(n, samples, expected):
    # 10000 / 36 = 277.8 -> 278; 10000 / 3 = 3333.3 -> 3334; at least one epoch.
    assert n_epochs(n, samples) == expected


@pytest.mark.parametrize("n", [0, -1])
def test_n_epochs_rejects_no_images(n):
    with pytest.raises(ValueError, match="at least one image"):
        n_epochs(n, 10_000)


@pytest.fixture(scope="module")
def tiny_features():
    rng = np.random.default_rng(0)
    return rng.standard_normal((5, 8, 4, 4)).astype(np.float32) * 3 + 1


_KW = {"hidden": 12, "latent": 3, "batch_size": 2, "samples": 20, "progress": False}


def test_train_vae_is_deterministic_for_a_seed(tiny_features):
    m1, h1 = train_vae(tiny_features, seed=3, **_KW)
    m2, h2 = train_vae(tiny_features, seed=3, **_KW)
    assert h1 == h2
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        torch.testing.assert_close(s1[k], s2[k], rtol=0, atol=0)
    m3, h3 = train_vae(tiny_features, seed=4, **_KW)
    assert h3 != h1
    assert not torch.equal(m3.decoder[0].weight, m1.decoder[0].weight)


def test_train_vae_history_and_model_state(tiny_features):
    model, history = train_vae(tiny_features, seed=0, **_KW)
    # 20 samples over 5 images -> 4 epochs.
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]
    for h in history:
        assert set(h) == {"epoch", "loss", "mse", "kl"}
        # loss is linear in mse and kl, so the per-epoch means keep loss = mse + 0.001 kl.
        assert h["loss"] == pytest.approx(h["mse"] + 0.001 * h["kl"], rel=1e-5)
    assert not model.training
    assert tuple(model.mu.weight.shape) == (3, 12, 1, 1)
    assert tuple(model.encoder[0].weight.shape) == (12, 8, 1, 1)


def test_train_vae_leaves_global_rng_alone(tiny_features):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_vae(tiny_features, seed=0, **_KW)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_train_vae_logs_epoch_count(tiny_features):
    lines = []
    train_vae(tiny_features, seed=0, log=lines.append, **_KW)
    assert any("4 epochs" in line for line in lines)


def test_train_vae_reduces_loss_on_easy_data():
    # Every image is the same smooth ramp: the scaled features are identical for all images.
    ramp = np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 1, 4, 4)
    weights = np.linspace(0.5, 2, 8, dtype=np.float32).reshape(1, 8, 1, 1)
    features = np.repeat(ramp * weights, 6, axis=0)
    _, history = train_vae(
        features,
        hidden=16,
        latent=4,
        batch_size=3,
        samples=600,
        lr=1e-2,
        weight_decay=0.0,
        seed=0,
        progress=False,
    )
    assert len(history) == 100
    assert history[-1]["mse"] < 0.5 * history[0]["mse"]
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.fixture(scope="module")
def trained(tiny_features):
    torch.manual_seed(5)
    return FeatureVAE(channels=8, hidden=12, latent=3).eval()


@pytest.mark.parametrize("batch_size", [1, 2, 5, 8])
def test_compute_residuals_equals_residual_of_scaled_features(trained, tiny_features, batch_size):
    expected = trained.residual(minmax_scale(torch.from_numpy(tiny_features))).numpy()
    got = compute_residuals(trained, tiny_features, batch_size=batch_size, progress=False)
    assert got.dtype == np.float32
    assert got.shape == tiny_features.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_compute_residuals_fills_out_and_reads_memmap(trained, tiny_features, tmp_path):
    np.save(tmp_path / "f.npy", tiny_features)
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(
        tmp_path / "r.npy", mode="w+", dtype=np.float32, shape=tiny_features.shape
    )
    got = compute_residuals(trained, mm, batch_size=2, out=out, progress=False)
    assert got is out
    out.flush()
    np.testing.assert_array_equal(
        np.load(tmp_path / "r.npy"), compute_residuals(trained, tiny_features, batch_size=2, progress=False)
    )
