"""Residuals R_i = scaled F_i - Decoder(mu(scaled F_i)) of every image, a batch at a time.

Inputs:  features (N, C, h, w), model
Outputs: residuals (N, C, h, w) float16 .npy
Params:  device; resources: batch_images (images per batch)
"""

import numpy as np

from blindlca.device import resolve_device
from blindlca.io import ArrayReader, array_writer, load_model
from blindlca.vae import FeatureVAE, iter_residuals
from blindlca.workflow import run


def main(*, features: str, model: str, residuals: str, device: str, batch_images: int = 16) -> None:
    net = load_model(model, FeatureVAE).to(resolve_device(device))
    feats = ArrayReader(features)
    # float16 halves the largest intermediate and moves alpha by < 1e-3 of its maximum (see the tests).
    with array_writer(residuals, feats.shape, dtype=np.float16) as out:
        for r in iter_residuals(net, feats, batch_size=batch_images):
            out.write(r)


run(main, globals())
