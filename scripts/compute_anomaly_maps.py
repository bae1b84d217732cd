"""Anomaly maps alpha_i of one category from residuals or backbone features.

Inputs:  source   (N, C, h, w): VAE residuals or raw backbone features
Outputs: alpha    (N, h, w) float32 .npy, post-processed (blurred, border zeroed)
Params:  kind (fca-residuals | fca-features | l1-residuals), fca (METHOD.md step 3), device
"""

import numpy as np
import torch
from tqdm import tqdm

from blindlca.anomaly_maps import anomaly_map
from blindlca.device import resolve_device
from blindlca.io import ArrayReader, save_array
from blindlca.workflow import run


def main(*, source: str, alpha: str, kind: str, fca: dict, device: str) -> None:
    x = ArrayReader(source)
    dev = resolve_device(device)
    out = np.empty((x.shape[0], *x.shape[2:]), dtype=np.float32)
    for i in tqdm(range(len(x)), desc=kind, unit="img", mininterval=5):
        batch = torch.from_numpy(np.array(x[i : i + 1], dtype=np.float32)).to(dev)
        out[i] = anomaly_map(batch, kind=kind, **fca)[0].cpu().numpy()
    save_array(alpha, out)


run(main, globals())
