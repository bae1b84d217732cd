"""Residuals R_i = scaled F_i - Decoder(mu(scaled F_i)) of every image, a batch at a time.

Inputs:  features (N, C, h, w), model
Outputs: residuals (N, C, h, w) float16 .npy
Params:  device; resources: batch_images (images per batch)
"""

import numpy as np
import torch

from blindlca.device import resolve_device
from blindlca.io import ArrayReader, array_writer
from blindlca.vae import FeatureVAE, iter_residuals
from blindlca.workflow import run


def main(*, features: str, model: str, residuals: str, device: str, batch_images: int = 16) -> None:
    saved = torch.load(model, map_location="cpu", weights_only=True)
    net = FeatureVAE(**saved["config"])
    net.load_state_dict(saved["state_dict"])
    net.to(resolve_device(device)).eval()
    feats = ArrayReader(features)
    # float16 halves the largest intermediate and moves alpha by < 1e-3 of its maximum (see the tests).
    with array_writer(residuals, feats.shape, dtype=np.float16) as out:
        for r in iter_residuals(net, feats, batch_size=batch_images):
            out.write(r)


run(main, globals())
