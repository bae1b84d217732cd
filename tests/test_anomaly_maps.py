"""Tests for blindlca.anomaly_maps: each kind is the documented composition of fca / postprocess."""

from __future__ import annotations

import pytest
import torch

from blindlca.anomaly_maps import KINDS, anomaly_map
from blindlca.fca import fca, postprocess, residual_magnitude
from blindlca.features import minmax_scale


@pytest.fixture(scope="module")
def x():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 5, 16, 14, generator=gen) * 3 + 1


def test_kinds():
    assert set(KINDS) == {"fca-residuals", "fca-features", "l1-residuals"}


def test_l1_residuals(x):
    got = anomaly_map(x, kind="l1-residuals")
    assert got.shape == (2, 16, 14) and got.dtype == torch.float32
    torch.testing.assert_close(got, postprocess(residual_magnitude(x)), rtol=0, atol=1e-6)
    # Independent: mean |x| over channels, blurred, border zeroed (round(5 * 16 / 64) = 1 at 16 px).
    assert torch.all(got[:, 0] == 0) and torch.all(got[:, -1] == 0)
    assert torch.all(got[:, :, 0] == 0) and torch.all(got[:, :, -1] == 0)
    assert torch.all(got[:, 1:-1, 1:-1] > 0)


def test_fca_features_scales_first(x):
    got = anomaly_map(x, kind="fca-features")
    torch.testing.assert_close(got, postprocess(fca(minmax_scale(x))), rtol=0, atol=1e-6)
    # Scaling matters: FCA of the raw input is a different map.
    assert not torch.allclose(got, postprocess(fca(x)), atol=1e-3)


def test_fca_residuals_uses_input_as_is(x):
    got = anomaly_map(x, kind="fca-residuals")
    assert got.shape == (2, 16, 14) and got.dtype == torch.float32
    torch.testing.assert_close(got, postprocess(fca(x)), rtol=0, atol=1e-6)


def test_parameters_are_passed_through(x):
    kw_fca = {"patch_size": 3, "sigma_p": 1.0, "k_s": 3, "sigma_s": 0.5}
    kw_post = {"blur_kernel": 3, "blur_sigma": 0.7, "border": 2, "border_reference": 16}
    got = anomaly_map(x, kind="fca-residuals", **kw_fca, **kw_post)
    torch.testing.assert_close(got, postprocess(fca(x, **kw_fca), **kw_post), rtol=0, atol=1e-6)
    assert not torch.allclose(got, anomaly_map(x, kind="fca-residuals"), atol=1e-4)
    got = anomaly_map(x, kind="l1-residuals", **kw_fca, **kw_post)
    torch.testing.assert_close(got, postprocess(residual_magnitude(x), **kw_post), rtol=0, atol=1e-6)
    # border 2 at reference 16 -> 2 rows / columns zeroed at 16 x 14: round(2 * 14 / 16) = 2 (1.75).
    assert torch.all(got[:, :2] == 0) and torch.all(got[:, :, -2:] == 0) and torch.all(got[:, 2:-2, 2:-2] > 0)


def test_float64_input_gives_float32(x):
    got = anomaly_map(x.double(), kind="fca-residuals")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, anomaly_map(x, kind="fca-residuals"), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["fca", "L1-residuals", "", "fca_features"])
def test_unknown_kind(x, kind):
    with pytest.raises(ValueError, match="unknown anomaly-map kind"):
        anomaly_map(x, kind=kind)


@pytest.mark.parametrize("kind", ["fca-residuals", "l1-residuals", "fca-features"])
def test_float16_storage_moves_alpha_by_less_than_1e_3_of_its_max(kind):
    # Residuals are stored as float16 (scripts/compute_residuals.py); this bound is what allows it.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 24, 24, generator=gen) * 0.1
    x[:, :, 8:12, 8:12] += 0.5  # an anomaly, so the maximum means something
    if kind == "fca-features":
        x = x.relu() * 5.0
    a32 = anomaly_map(x, kind=kind)
    a16 = anomaly_map(x.half().float(), kind=kind)
    assert (a32 - a16).abs().max() < 1e-3 * a32.max()
