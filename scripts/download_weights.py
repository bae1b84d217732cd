"""Download the ImageNet WideResNet-50-2 weights and verify their sha256.

Inputs:  none
Outputs: weights  resources/weights/<file>.pth
Params:  url, sha256
"""

from blindlca.download import fetch
from blindlca.workflow import run


def main(*, weights: str, url: str, sha256: str) -> None:
    hint = (
        f"Offline? Copy the file from a machine with network (torchvision keeps it in "
        f"~/.cache/torch/hub/checkpoints/) to {weights}, or run without ImageNet weights: "
        "--config backbone_weights=random (seeded random weights; results are not the paper's)."
    )
    fetch(url, weights, sha256=sha256, manual_hint=hint)


run(main, globals())
