"""Tests for blindlca.contrastive (METHOD.md step 5): head, neighbours, threshold, loss, pools, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from blindlca.contrastive import (
    ContrastiveHead,
    PixelPools,
    PixelSource,
    contrastive_loss,
    neighbour_sets,
    normal_threshold,
    project,
    similarity,
    train_head,
)
from blindlca.features import minmax_scale
from blindlca.io import ArrayReader, save_array


def test_default_head_architecture():
    head = ContrastiveHead()
    layers = list(head.net)
    assert [type(m).__name__ for m in layers] == ["Conv2d", "ReLU", "Conv2d"]
    assert tuple(layers[0].weight.shape) == (256, 512, 1, 1)
    assert tuple(layers[2].weight.shape) == (512, 256, 1, 1)
    assert layers[0].bias is not None and layers[2].bias is not None
    assert sum(p.numel() for p in head.parameters()) == (512 * 256 + 256) + (256 * 512 + 512)


def test_head_d_out_32():
    head = ContrastiveHead(d_out=32)
    assert tuple(head.net[2].weight.shape) == (32, 256, 1, 1)
    out = head(torch.rand(1, 512, 3, 2))
    assert out.shape == (1, 32, 3, 2)


def test_head_forward_matches_manual_computation_and_is_unit_norm():
    torch.manual_seed(0)
    head = ContrastiveHead(channels=6, hidden=5, d_out=4).double()
    x = torch.rand(2, 6, 3, 4, dtype=torch.float64)
    w1, b1 = head.net[0].weight[:, :, 0, 0], head.net[0].bias
    w2, b2 = head.net[2].weight[:, :, 0, 0], head.net[2].bias
    hidden = torch.relu(torch.einsum("oc,bchw->bohw", w1, x) + b1[None, :, None, None])
    z = torch.einsum("oc,bchw->bohw", w2, hidden) + b2[None, :, None, None]
    expected = z / z.norm(dim=1, keepdim=True)
    got = head(x)
    assert got.shape == (2, 4, 3, 4)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(2, 3, 4, dtype=torch.float64), rtol=0, atol=1e-12)


def test_project_vectors_equals_forward_on_the_same_pixels():
    torch.manual_seed(1)
    head = ContrastiveHead(channels=8, hidden=6, d_out=5)
    x = torch.rand(2, 8, 3, 4)
    vectors = x.permute(0, 2, 3, 1).reshape(-1, 8)
    expected = head(x).permute(0, 2, 3, 1).reshape(-1, 5)
    torch.testing.assert_close(head.project_vectors(vectors), expected, rtol=0, atol=1e-6)


def test_project_applies_minmax_scaling_without_grad():
    torch.manual_seed(2)
    head = ContrastiveHead(channels=8, hidden=6, d_out=5).eval()
    features = np.random.default_rng(0).standard_normal((3, 8, 4, 5)).astype(np.float32) * 4
    got = project(head, features)
    with torch.no_grad():
        expected = head(minmax_scale(torch.from_numpy(features)))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert not got.requires_grad


def test_similarity_hand_computed():
    d = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.2]])
    # mean squared differences: (0,1) 0.01/2 = 0.005, (0,2) 0.04/2 = 0.02, (1,2) 0.05/2 = 0.025
    expected = torch.tensor([[1.0, 0.5, -1.0], [0.5, 1.0, -1.5], [-1.0, -1.5, 1.0]], dtype=torch.float64)
    got = similarity(d)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-7)
    # scale 10: 1 - 10 * [0.005, 0.02, 0.025]
    torch.testing.assert_close(
        similarity(d, scale=10.0)[0, 1:], torch.tensor([0.95, 0.8], dtype=torch.float64), rtol=0, atol=1e-8
    )
    torch.testing.assert_close(
        similarity(d, scale=10.0)[1, 2], torch.tensor(0.75, dtype=torch.float64), rtol=0, atol=1e-8
    )


_SIM = torch.tensor(
    [
        [1.0, 0.9, 0.5, 0.5, 0.1],
        [0.9, 1.0, 0.3, 0.7, 0.3],
        [0.5, 0.3, 1.0, 0.2, 0.6],
        [0.5, 0.7, 0.2, 1.0, 0.4],
        [0.1, 0.3, 0.6, 0.4, 1.0],
    ]
)


def test_neighbour_sets_hand_derived():
    close, counter = neighbour_sets(_SIM, k_close=3)
    # Others sorted by similarity, ties by index; close = first 3, counter = last 4 // 2 = 2.
    # row 0: 1(.9) 2(.5) 3(.5) 4(.1)
    # row 1: 0(.9) 3(.7) 2(.3) 4(.3)
    # row 2: 4(.6) 0(.5) 1(.3) 3(.2)
    # row 3: 1(.7) 0(.5) 4(.4) 2(.2)
    # row 4: 2(.6) 3(.4) 1(.3) 0(.1)
    assert close == [[1, 2, 3], [0, 3, 2], [4, 0, 1], [1, 0, 4], [2, 3, 1]]
    assert counter == [[3, 4], [2, 4], [1, 3], [4, 2], [1, 0]]


def test_neighbour_sets_k1_and_three_images():
    close, counter = neighbour_sets(_SIM, k_close=1)
    assert close == [[1], [0], [4], [1], [2]]
    # n = 3: two others, counter = the less similar one (max(1, 2 // 2) = 1).
    sim3 = torch.tensor([[1.0, 0.2, 0.8], [0.2, 1.0, 0.2], [0.8, 0.2, 1.0]])
    close3, counter3 = neighbour_sets(sim3)
    assert close3 == [[2, 1], [0, 2], [0, 1]]
    assert counter3 == [[1], [2], [1]]


def test_neighbour_sets_needs_three_images():
    with pytest.raises(ValueError, match="at least 3 images.*got 2"):
        neighbour_sets(torch.eye(2))


def _two_groups():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 0.1, (6, 3))  # normal-looking group
    b = rng.normal(10.0, 0.1, (4, 3))
    return np.concatenate([a, b])


def test_normal_threshold_picks_low_alpha_cluster():
    desc = _two_groups()
    max_alpha = np.array([0.1, 0.2, 0.3, 0.15, 0.25, 0.05, 1.0, 2.0, 3.0, 4.0])
    # Cluster of rows 0-5 has the lower mean max(alpha); its share is 6 / 10.
    thr = normal_threshold(desc, max_alpha, n_clusters=2)
    assert thr == float(np.quantile(max_alpha, 0.6))


def test_normal_threshold_share_follows_the_low_cluster_not_the_first():
    desc = _two_groups()
    # Now the 4-image group holds the low values: share 4 / 10.
    max_alpha = np.array([1.0, 2.0, 3.0, 1.5, 2.5, 0.9, 0.1, 0.2, 0.3, 0.15])
    assert normal_threshold(desc, max_alpha, n_clusters=2) == float(np.quantile(max_alpha, 0.4))


def test_normal_threshold_clips_clusters_to_image_count():
    # 20 clusters on 5 distinct descriptors -> 5 singletons; the lowest one holds 1 / 5.
    desc = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    max_alpha = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
    assert normal_threshold(desc, max_alpha, n_clusters=20) == float(np.quantile(max_alpha, 0.2))


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 2)


SP = [[0.0, 0.0]]
SN = [[0.5, 0.5]]
CP = [[1.0, 0.0], [0.0, 0.5]]
CN = [[0.5, 0.0], [0.0, 0.1], [1.0, 0.5]]
CT = [[1.0, 0.5]]
# Pair distances (squared Euclidean):
#   SP-CP: 1, 0.25                      SN-CN: 0.25, 0.25 + 0.16 = 0.41, 0.25
#   SP-CN: 0.25, 0.01, 1.25             CP-CT: 0.25, 1
# pull = (1 + 0.25 + 0.25 + 0.41 + 0.25) / 5 = 0.432
# push = (0.25 + 0.49 + 0 + 0.25 + 0) / 5 = 0.198   (relu(0.5 - d))


def test_contrastive_loss_hand_computed():
    loss = contrastive_loss(_t(SP), _t(SN), _t(CP), _t(CN), _t(CT))
    assert float(loss) == pytest.approx(0.432 + 0.198, abs=1e-12)


def test_contrastive_loss_margin():
    # margin 1: push = (0.75 + 0.99 + 0 + 0.75 + 0) / 5 = 0.498
    loss = contrastive_loss(_t(SP), _t(SN), _t(CP), _t(CN), _t(CT), margin=1.0)
    assert float(loss) == pytest.approx(0.432 + 0.498, abs=1e-12)


def test_contrastive_loss_empty_same_pos_contributes_no_terms():
    # pull = SN-CN only = 0.91 / 3; push = CP-CT only = 0.25 / 2.
    loss = contrastive_loss(_t([]), _t(SN), _t(CP), _t(CN), _t(CT))
    assert float(loss) == pytest.approx(0.91 / 3 + 0.125, abs=1e-12)


def test_contrastive_loss_only_pull():
    loss = contrastive_loss(_t([]), _t(SN), _t(CP), _t(CN), _t([]))
    assert float(loss) == pytest.approx(0.91 / 3, abs=1e-12)


def test_contrastive_loss_only_push():
    # pull pairs need SP with CP or SN with CN: both gone. push = SP-CN = (0.25 + 0.49 + 0) / 3.
    loss = contrastive_loss(_t(SP), _t([]), _t([]), _t(CN), _t(CT))
    assert float(loss) == pytest.approx(0.74 / 3, abs=1e-12)


def test_contrastive_loss_none_without_pairs():
    e = _t([])
    assert contrastive_loss(e, e, e, e, e) is None
    # Non-empty sets that form no pair are still no term.
    assert contrastive_loss(e, e, _t(CP), e, e) is None
    assert contrastive_loss(e, _t(SN), _t(CP), e, e) is None


def test_contrastive_loss_has_gradient():
    sp = _t(SP).requires_grad_(True)
    loss = contrastive_loss(sp, _t(SN), _t(CP), _t(CN), _t(CT))
    loss.backward()
    # d/d sp of pull: 2 (sp - cp) summed over CP, / 5 = 2 * ((-1, 0) + (0, -0.5)) / 5 = (-0.4, -0.2);
    # push: only the pairs inside the margin (CN rows 0, 1) count, d relu(0.5 - d) = -2 (sp - cn):
    # -2 * ((-0.5, 0) + (0, -0.1)) / 5 = (0.2, 0.04).
    torch.testing.assert_close(
        sp.grad, torch.tensor([[-0.2, -0.16]], dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_pixel_pools_from_literal_map():
    alpha = torch.tensor(
        [
            [[0.1, 0.5, 0.9], [0.5, 0.2, 0.7]],
            [[0.5, 0.5, 0.5], [0.6, 0.0, 0.5]],
        ]
    )
    pools = PixelPools.from_alpha(alpha, 0.5)
    # hw = 6; pixels equal to 0.5 are in neither pool; image 1 is offset by 6.
    assert [p.tolist() for p in pools.pos] == [[2, 5], [9]]
    assert [p.tolist() for p in pools.neg] == [[0, 4], [10]]


@pytest.mark.parametrize("cache_images", [1, 2, 8])
def test_pixel_source_gathers_scaled_pixels_in_order(tmp_path, cache_images):
    features = np.random.default_rng(1).standard_normal((3, 4, 2, 3)).astype(np.float32)
    save_array(tmp_path / "f.npy", features)
    expected = minmax_scale(torch.from_numpy(features)).permute(0, 2, 3, 1).reshape(-1, 4)
    # Row index = image * H * W + pixel: image 2, pixel (1, 0) -> 2 * 6 + 3 = 15; mixed order, repeats.
    index = torch.tensor([15, 0, 7, 15, 5, 12, 1])
    for source in (features, ArrayReader(tmp_path / "f.npy")):
        pixels = PixelSource(source, device=torch.device("cpu"), cache_images=cache_images)
        torch.testing.assert_close(pixels.gather(index), expected[index], rtol=0, atol=0)
        torch.testing.assert_close(pixels.gather(index[:1]), expected.reshape(3, 2, 3, 4)[2, 1, 0][None])
        assert len(pixels._cache) <= cache_images


def _category():
    """6 images: 0-2 with a hot spot (max 1.0) and descriptors near 0, 3-5 flat (max 0.1), near 10."""
    rng = np.random.default_rng(2)
    features = rng.standard_normal((6, 8, 6, 6)).astype(np.float32)
    alpha = (rng.random((6, 6, 6)) * 0.05).astype(np.float32)
    for i in range(3):
        alpha[i, 2, 2 + i] = 1.0
        alpha[i, 3, 3] = 0.8
    for i in range(3, 6):
        alpha[i, 0, 0] = 0.1
    desc = np.concatenate([rng.normal(0, 0.01, (3, 5)), rng.normal(10, 0.01, (3, 5))]).astype(np.float32)
    return features, alpha, desc


_HEAD_KW = {"n_clusters": 2, "hidden": 8, "d_out": 4, "epochs": 2, "progress": False}


def test_train_head_is_deterministic_and_handles_images_without_positives():
    features, alpha, desc = _category()
    h1, s1 = train_head(features, alpha, desc, seed=3, **_HEAD_KW)
    h2, s2 = train_head(features, alpha, desc, seed=3, **_HEAD_KW)
    assert s1 == s2
    for k, v in h1.state_dict().items():
        torch.testing.assert_close(v, h2.state_dict()[k], rtol=0, atol=0)
    # Normal cluster = images 3-5 (share 0.5): thr = quantile([1, 1, 1, .1, .1, .1], 0.5) = 0.55.
    assert s1["threshold"] == pytest.approx(0.55, abs=1e-7)
    # Positive pixels: the two hot pixels of images 0-2 -> 6 of 6 * 36.
    assert s1["positive_fraction"] == pytest.approx(6 / 216, abs=1e-12)
    # Every step has the image itself in its close group, so SN-CN pairs always exist.
    assert s1["skipped"] == 0
    assert len(s1["losses"]) == 2 and all(math.isfinite(v) for v in s1["losses"])
    assert not h1.training
    assert tuple(h1.net[2].weight.shape) == (4, 8, 1, 1)
    h3, s3 = train_head(features, alpha, desc, seed=4, **_HEAD_KW)
    assert not torch.equal(h3.net[0].weight, h1.net[0].weight)


def test_train_head_changes_weights():
    features, alpha, desc = _category()
    head, _ = train_head(features, alpha, desc, seed=0, **_HEAD_KW)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        init = ContrastiveHead(8, 8, 4)
    assert not torch.allclose(head.net[0].weight, init.net[0].weight)


def test_train_head_skips_steps_without_any_term():
    # Constant maps: every max(alpha) equals thr, so no pixel is positive or negative; every step is skipped
    # and the head keeps its seeded initial weights.
    features, _, desc = _category()
    alpha = np.full((6, 6, 6), 0.3, dtype=np.float32)
    head, summary = train_head(features, alpha, desc, seed=5, **_HEAD_KW)
    assert summary["skipped"] == 2 * 6
    assert summary["positive_fraction"] == 0.0
    assert all(math.isnan(v) for v in summary["losses"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        init = ContrastiveHead(8, 8, 4)
    for k, v in head.state_dict().items():
        torch.testing.assert_close(v, init.state_dict()[k], rtol=0, atol=0)
    assert isinstance(head.net[1], nn.ReLU)
