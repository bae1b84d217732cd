"""Tests for blindlca.features (METHOD.md step 1): trunk, weights, preprocessing, scaling, extraction.

Random-weight backbones only (`build_backbone(None)`), at 64 px at most.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import resnet50, wide_resnet50_2

from blindlca.features import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_backbone,
    extract_features,
    minmax_scale,
    preprocess,
)

TRUNK = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2"]


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(None, seed=0)


def _reference_net(seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return wide_resnet50_2(weights=None)


def _assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def test_trunk_is_conv1_to_layer2_in_order(backbone):
    net = _reference_net(0)
    children = list(backbone.children())
    assert len(children) == len(TRUNK)
    assert [type(c).__name__ for c in children] == [
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "MaxPool2d",
        "Sequential",
        "Sequential",
    ]
    # Same seed -> the i-th child carries exactly the weights of torchvision's child of that name.
    for child, name in zip(children, TRUNK, strict=True):
        _assert_same_state(child, getattr(net, name))
    assert len(children[4]) == 3 and len(children[5]) == 4  # Bottlenecks in layer1 / layer2
    assert tuple(children[5][-1].conv3.weight.shape) == (512, 256, 1, 1)  # wide: 512 outputs at layer2


def test_trunk_is_frozen_eval_mode(backbone):
    assert not backbone.training
    assert all(not m.training for m in backbone.modules())
    assert all(not p.requires_grad for p in backbone.parameters())


def test_output_shape_stride_8(backbone):
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 512, 8, 8)
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 48, 64))
    assert out.shape == (1, 512, 6, 8)


def test_layer1_trunk_and_unknown_layer():
    trunk = build_backbone(None, layer="layer1", seed=0)
    assert len(list(trunk.children())) == 5
    with torch.no_grad():
        assert trunk(torch.randn(1, 3, 32, 32)).shape == (1, 256, 8, 8)
    with pytest.raises(ValueError, match="layer5"):
        build_backbone(None, layer="layer5")


def test_seed_determinism(backbone):
    _assert_same_state(build_backbone(None, seed=0), backbone)
    other = build_backbone(None, seed=1)
    assert not torch.equal(other[0].weight, backbone[0].weight)


def test_build_leaves_global_rng_alone():
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    build_backbone(None, seed=0)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def _check_loaded(trunk, net):
    for child, name in zip(trunk.children(), TRUNK, strict=True):
        _assert_same_state(child, getattr(net, name))


def test_full_torchvision_state_dict_loads(tmp_path):
    # A random full wide_resnet50_2 state dict (~270 MB) stands in for the ImageNet file.
    net = _reference_net(7)
    path = tmp_path / "wide.pth"
    try:
        torch.save(net.state_dict(), path)
        trunk = build_backbone(path, seed=0)
    finally:
        path.unlink(missing_ok=True)
    _check_loaded(trunk, net)
    assert not trunk.training and not any(p.requires_grad for p in trunk.parameters())


def test_state_dict_without_fc_and_layer4_loads(tmp_path):
    net = _reference_net(8)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith(("fc.", "layer4."))}
    path = tmp_path / "trunk.pth"
    try:
        torch.save(state, path)
        trunk = build_backbone(str(path), seed=0)
    finally:
        path.unlink(missing_ok=True)
    _check_loaded(trunk, net)


def test_state_dict_with_foreign_keys_is_rejected(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"foreign\.pth.*do not fit"):
        build_backbone(path)


@pytest.mark.parametrize("content", ["missing", "bad-zip"])
def test_unreadable_weights_raise_value_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    if content == "bad-zip":
        import zipfile

        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a", "b")
    with pytest.raises(ValueError, match=r"weights\.pth") as err:
        build_backbone(path)
    assert "random" in str(err.value)


@pytest.mark.parametrize(
    "data", [b"", b"hello world\n", bytes(range(256)) * 4], ids=["empty", "text", "binary"]
)
def test_garbage_weights_file_raises_value_error(tmp_path, data):
    path = tmp_path / "garbage.pth"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"garbage\.pth") as err:
        build_backbone(path)
    assert "random" in str(err.value)


def test_resnet50_state_dict_is_rejected_with_value_error(tmp_path):
    path = tmp_path / "resnet50.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = {
            k: v for k, v in resnet50(weights=None).state_dict().items() if k.startswith(("conv1", "layer1"))
        }
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"resnet50\.pth"):
        build_backbone(path)


def test_non_dict_weights_rejected_with_value_error(tmp_path):
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match=r"tensor\.pth"):
        build_backbone(path)


def test_preprocess_constant_image_is_imagenet_normalised():
    image = np.empty((10, 6, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 0, 128, 255
    x = preprocess(image, size=16)
    assert x.shape == (3, 16, 16)
    assert x.dtype == torch.float32
    for c, v in enumerate((0, 128, 255)):
        # (v / 255 - mean_c) / std_c, e.g. channel 0: -0.485 / 0.229 = -2.1179
        expected = (v / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        torch.testing.assert_close(x[c], torch.full((16, 16), expected), rtol=0, atol=1e-5)


def test_preprocess_same_size_keeps_pixels_and_channel_order():
    image = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    x = preprocess(image, size=8)
    mean = np.array(IMAGENET_MEAN).reshape(3, 1, 1)
    std = np.array(IMAGENET_STD).reshape(3, 1, 1)
    expected = (image.transpose(2, 0, 1) / 255.0 - mean) / std
    np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("shape", "size"), [((40, 30, 3), 16), ((8, 8, 3), 4), ((20, 20, 3), 32)])
def test_preprocess_resize_matches_pil_bilinear(shape, size):
    # torch's antialiased bilinear follows PIL's BILINEAR resize; PIL rounds to uint8, so compare in grey
    # levels with a tolerance of 1.5.
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    x = preprocess(image, size=size).numpy()
    assert x.shape == (3, size, size)
    grey = (x * np.array(IMAGENET_STD).reshape(3, 1, 1) + np.array(IMAGENET_MEAN).reshape(3, 1, 1)) * 255
    pil = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_allclose(grey, pil, rtol=0, atol=1.5)


def test_minmax_scale_literal():
    x = torch.tensor([[[[1.0, 3.0], [5.0, 9.0]], [[4.0, 4.0], [4.0, 4.0]]]], dtype=torch.float64)
    got = minmax_scale(x)
    # channel 0: (x - 1) / (8 + 1e-8); channel 1 is constant: 0 / (0 + 1e-8) = 0
    expected = torch.tensor([[[[0.0, 2.0], [4.0, 8.0]], [[0.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64) / (
        8 + 1e-8
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-15)
    assert got.shape == x.shape


def test_minmax_scale_per_image_and_channel():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 6, generator=gen) * torch.arange(1, 5).view(1, 4, 1, 1) + 7
    got = minmax_scale(x)
    for b in range(3):
        for c in range(4):
            torch.testing.assert_close(got[b, c], minmax_scale(x[b : b + 1, c : c + 1])[0, 0], rtol=0, atol=0)
    flat = got.flatten(2)
    torch.testing.assert_close(flat.amin(2), torch.zeros(3, 4), rtol=0, atol=1e-6)
    torch.testing.assert_close(flat.amax(2), torch.ones(3, 4), rtol=0, atol=1e-6)


def test_minmax_scale_eps():
    x = torch.tensor([[[[0.0, 1e-8]]]], dtype=torch.float64)
    # range 1e-8: (1e-8) / (1e-8 + 1e-8) = 0.5 with the default eps, 1 with eps 0.
    torch.testing.assert_close(minmax_scale(x)[0, 0, 0, 1], torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(minmax_scale(x, eps=0.0)[0, 0, 0, 1], torch.tensor(1.0, dtype=torch.float64))


def _images():
    rng = np.random.default_rng(3)
    sizes = [(40, 40), (32, 48), (64, 64)]
    return {f"img{i}.png": rng.integers(0, 256, (*s, 3), dtype=np.uint8) for i, s in enumerate(sizes)}


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_extract_features_equals_backbone_for_any_batch_size(backbone, batch_size):
    images = _images()
    paths = list(images)
    with torch.no_grad():
        expected = backbone(torch.stack([preprocess(images[p], size=32) for p in paths])).numpy()
    got = extract_features(
        backbone, paths, load=images.__getitem__, image_size=32, batch_size=batch_size, progress=False
    )
    assert got.shape == (3, 512, 4, 4)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_extract_features_fills_out(backbone, tmp_path):
    images = _images()
    paths = [os.path.join("x", p) for p in images]
    out = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float32, shape=(3, 512, 4, 4))
    got = extract_features(
        backbone,
        paths,
        load=lambda p: images[os.path.basename(p)],
        image_size=32,
        batch_size=2,
        out=out,
        progress=False,
    )
    assert got is out
    ref = extract_features(
        backbone,
        paths,
        load=lambda p: images[os.path.basename(p)],
        image_size=32,
        batch_size=2,
        progress=False,
    )
    np.testing.assert_array_equal(np.asarray(out), ref)
