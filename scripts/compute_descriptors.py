"""Image descriptors D_i of one category (METHOD.md step 4, or the mean_pool baseline).

Inputs:  features (N, C, h, w), alpha (N, h, w; absent for mean_pool), head (method ours)
Outputs: descriptors (N, D) float32 .npy
Params:  source (head | backbone | mean), descriptor (tau, blur_kernel, blur_sigma), device
"""

import torch

from blindlca.contrastive import ContrastiveHead
from blindlca.descriptors import descriptors_of
from blindlca.device import resolve_device
from blindlca.features import minmax_scale
from blindlca.io import load_array, save_array
from blindlca.workflow import run


def main(
    *,
    features: str,
    descriptors: str,
    source: str,
    descriptor: dict,
    device: str,
    alpha: str | None = None,
    head: str | None = None,
) -> None:
    dev = resolve_device(device)
    transform = None
    if source == "head":
        saved = torch.load(head, map_location="cpu", weights_only=True)
        net = ContrastiveHead(**saved["config"])
        net.load_state_dict(saved["state_dict"])
        net.to(dev).eval()
        transform = lambda f: net(minmax_scale(f))  # noqa: E731 (H takes scaled features)
    maps = load_array(alpha) if alpha is not None and source != "mean" else None
    out = descriptors_of(load_array(features, mmap=True), maps, transform=transform, device=dev, **descriptor)
    save_array(descriptors, out)


run(main, globals())
