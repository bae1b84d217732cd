"""Choosing the torch device from the `device` config value."""

from __future__ import annotations

import re

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """Map `auto | cpu | cuda | cuda:N` to a torch device.

    `auto` takes CUDA when this process sees a GPU (a SLURM job without `--gpus`, or
    `CUDA_VISIBLE_DEVICES=""`, sees none) and the CPU otherwise.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device: {name!r} was requested but torch sees no CUDA device "
                f"(torch {torch.__version__}); set `device: auto` or `device: cpu` in the config"
            )
        return torch.device(name)
    raise ValueError(f"device: {name!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
