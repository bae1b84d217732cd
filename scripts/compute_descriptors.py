"""Image descriptors D_i of one category (METHOD.md step 4, or a baseline's).

Inputs:  features (N, C, h, w), alpha (N, h, w; methods with maps), head (methods with the contrastive head)
Outputs: descriptors (N, D) float32 .npy
Params:  source (head | backbone | mean | anomaly_clustering), descriptor (tau, blur_kernel, blur_sigma),
         anomaly_clustering (tau), device; resources: batch_images (images per batch)
"""

from blindlca.anomaly_clustering import anomaly_clustering_descriptors
from blindlca.contrastive import ContrastiveHead
from blindlca.descriptors import descriptors_of
from blindlca.device import resolve_device
from blindlca.features import minmax_scale
from blindlca.io import ArrayReader, load_array, load_model, save_array
from blindlca.workflow import run


def main(
    *,
    features: str,
    descriptors: str,
    source: str,
    descriptor: dict,
    anomaly_clustering: dict,
    device: str,
    alpha: str | None = None,
    head: str | None = None,
    batch_images: int = 16,
) -> None:
    dev = resolve_device(device)
    feats = ArrayReader(features)
    if source == "anomaly_clustering":
        # Its nearest-neighbour search compares every patch with every other image's: it reads them all.
        whole = feats[0 : len(feats)]
        save_array(
            descriptors, anomaly_clustering_descriptors(whole, tau=anomaly_clustering["tau"], device=dev)
        )
        return
    transform = None
    if source == "head":
        net = load_model(head, ContrastiveHead).to(dev)
        transform = lambda f: net(minmax_scale(f))  # noqa: E731 (H takes scaled features)
    maps = load_array(alpha) if source != "mean" else None
    options = descriptor if maps is not None else {}
    out = descriptors_of(feats, maps, transform=transform, batch_size=batch_images, device=dev, **options)
    save_array(descriptors, out)


run(main, globals())
