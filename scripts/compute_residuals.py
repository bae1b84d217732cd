"""Residuals R_i = scaled F_i - Decoder(mu(scaled F_i)) of every image.

Inputs:  features (N, C, h, w), model
Outputs: residuals (N, C, h, w) float32 .npy
Params:  batch_size, device
"""

import torch

from blindlca.device import resolve_device
from blindlca.io import load_array, save_array
from blindlca.vae import FeatureVAE, compute_residuals
from blindlca.workflow import run


def main(*, features: str, model: str, residuals: str, batch_size: int, device: str) -> None:
    saved = torch.load(model, map_location="cpu", weights_only=True)
    net = FeatureVAE(**saved["config"])
    net.load_state_dict(saved["state_dict"])
    net.to(resolve_device(device)).eval()
    save_array(residuals, compute_residuals(net, load_array(features, mmap=True), batch_size=batch_size))


run(main, globals())
