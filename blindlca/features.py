"""Backbone features F_i (METHOD.md step 1): WideResNet-50-2 up to layer2, 512 channels at stride 8."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYERS = ("layer1", "layer2", "layer3")
# torchvision's file for Wide_ResNet50_2_Weights.IMAGENET1K_V1; its name carries the sha256 prefix.
IMAGENET_WEIGHTS_FILE = "wide_resnet50_2-95faca4d.pth"
IMAGENET_WEIGHTS_URL = f"https://download.pytorch.org/models/{IMAGENET_WEIGHTS_FILE}"


def build_backbone(
    weights: str | os.PathLike | None, *, layer: str = "layer2", seed: int = 42
) -> nn.Sequential:
    """WideResNet-50-2 children up to and including `layer`, in eval mode, frozen.

    Args:
        weights: path of a torchvision state dict (ImageNet V1 or fine-tuned), or None for
            random weights drawn with `seed` (for tests and offline runs; not the paper's setting).
    """
    from torchvision.models import wide_resnet50_2

    if layer not in LAYERS:
        raise ValueError(f"backbone.layer {layer!r} is not one of {LAYERS}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = wide_resnet50_2(weights=None)
    kept = ["conv1", "bn1", "relu", "maxpool", *LAYERS[: LAYERS.index(layer) + 1]]
    if weights is not None:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            missing, unexpected = net.load_state_dict(state, strict=False)
        except Exception as err:  # torch raises many types for a file that is not a state dict
            raise ValueError(
                f"cannot read backbone weights {str(weights)!r} ({type(err).__name__}: {err}); expected a "
                "torchvision WideResNet-50-2 state dict (.pth), or set `backbone_weights: random`"
            ) from err
        trunk_missing = [k for k in missing if k.split(".")[0] in kept]
        if trunk_missing or unexpected:
            raise ValueError(
                f"backbone weights {str(weights)!r} do not fit WideResNet-50-2: missing "
                f"{trunk_missing[:5]}, unexpected {list(unexpected)[:5]}"
            )
    trunk = nn.Sequential(*(getattr(net, n) for n in kept)).eval()
    for p in trunk.parameters():
        p.requires_grad_(False)
    return trunk


def preprocess(image: np.ndarray, *, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, size, size) float, bilinear resize, ImageNet normalisation."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def iter_features(
    backbone: nn.Module,
    paths: Sequence[str | os.PathLike],
    *,
    load: Callable[[str | os.PathLike], np.ndarray],
    image_size: int = 512,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Iterator[np.ndarray]:
    """Raw backbone features, one (B, C, h, w) float32 batch at a time, in the order of `paths`.

    Args:
        load: reads one path as (H, W, 3) uint8 RGB.
    """
    if not paths:
        raise ValueError("extract_features got no images; check the category's index file")
    device = torch.device(device)
    backbone = backbone.to(device)
    bar = tqdm(total=len(paths), desc="features", unit="img", disable=not progress, mininterval=5)
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([preprocess(load(p), size=image_size) for p in paths[start : start + batch_size]])
        yield backbone(batch.to(device)).float().cpu().numpy()
        bar.update(len(batch))
    bar.close()


def extract_features(
    backbone: nn.Module,
    paths: Sequence[str | os.PathLike],
    *,
    out: np.ndarray | None = None,
    **options,
) -> np.ndarray:
    """All features at once: (N, C, h, w) float32, h = w = image_size / 8 for layer2.

    Args:
        out: optional preallocated (N, C, h, w) array (e.g. a memmap) to fill.
        **options: as for `iter_features`.
    """
    start = 0
    for feats in iter_features(backbone, paths, **options):
        if out is None:
            out = np.empty((len(paths), *feats.shape[1:]), dtype=np.float32)
        out[start : start + len(feats)] = feats
        start += len(feats)
    return out


def minmax_scale(features: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Per image and channel min-max scaling over the spatial grid to [0, 1].

    (B, C, H, W) -> (B, C, H, W).
    """
    flat = features.flatten(2)
    lo = flat.amin(dim=2, keepdim=True)
    hi = flat.amax(dim=2, keepdim=True)
    return ((flat - lo) / (hi - lo + eps)).view_as(features)
