"""Train the per-category feature VAE on min-max scaled backbone features.

Inputs:  features (N, C, h, w)
Outputs: model    torch file {state_dict, config, history}
Params:  vae (hidden, latent, lr, weight_decay, batch_size, samples, kl_weight), seed, device
"""

import logging

from blindlca.device import resolve_device
from blindlca.io import ArrayReader, save_model
from blindlca.vae import train_vae
from blindlca.workflow import run


def main(*, features: str, model: str, vae: dict, seed: int, device: str) -> None:
    log = logging.getLogger("blindlca")
    feats = ArrayReader(features)
    net, history = train_vae(feats, **vae, seed=seed, device=resolve_device(device), log=log.info)
    config = {"channels": feats.shape[1], "hidden": vae["hidden"], "latent": vae["latent"]}
    save_model(model, net, config=config, history=history)


run(main, globals())
