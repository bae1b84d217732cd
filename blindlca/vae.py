"""Per-category feature VAE and its residuals R_i (METHOD.md step 2).

All layers are 1x1 convolutions, so the VAE models the distribution of single feature vectors;
defects are rare in a category, so they reconstruct worse than the texture and stand out in R_i.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from blindlca.features import minmax_scale


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1)


class FeatureVAE(nn.Module):
    """Encoder 512-512-512, heads mu / log-sigma to 128; decoder 128-512-512-512, ReLU after each."""

    def __init__(self, channels: int = 512, hidden: int = 512, latent: int = 128) -> None:
        super().__init__()
        self.encoder = nn.Sequential(_conv(channels, hidden), nn.ReLU(), _conv(hidden, hidden), nn.ReLU())
        self.mu = _conv(hidden, latent)
        self.log_sigma = _conv(hidden, latent)
        self.decoder = nn.Sequential(
            _conv(latent, hidden),
            nn.ReLU(),
            _conv(hidden, hidden),
            nn.ReLU(),
            _conv(hidden, channels),
            nn.ReLU(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> mu, log_sigma, each (B, latent, H, W)."""
        h = self.encoder(x)
        return self.mu(h), self.log_sigma(h)

    def forward(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sampled reconstruction with z = mu + sigma * eps; returns (recon, mu, log_sigma)."""
        mu, log_sigma = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return self.decoder(mu + log_sigma.exp() * eps), mu, log_sigma

    @torch.no_grad()
    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """R = x - Decoder(mu(x)): no sampling at inference. (B, C, H, W) -> (B, C, H, W)."""
        mu, _ = self.encode(x)
        return x - self.decoder(mu)


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, *, kl_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MSE + kl_weight * KL with KL = mean(sigma^2 + mu^2 - log sigma - 1/2), as in the reference.

    Returns (loss, mse, kl).
    """
    mse = torch.mean((recon - x) ** 2)
    kl = torch.mean(torch.exp(2 * log_sigma) + mu**2 - log_sigma - 0.5)
    return mse + kl_weight * kl, mse, kl


def n_epochs(n_images: int, samples: int) -> int:
    """The reference's "10,000 iterations" counts samples: ceil(samples / N) epochs."""
    if n_images < 1:
        raise ValueError("VAE training needs at least one image")
    return max(1, math.ceil(samples / n_images))


def train_vae(
    features: np.ndarray,
    *,
    hidden: int = 512,
    latent: int = 128,
    lr: float = 1e-4,
    weight_decay: float = 0.1,
    batch_size: int = 8,
    samples: int = 10_000,
    kl_weight: float = 0.001,
    seed: int = 42,
    device: torch.device | str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[FeatureVAE, list[dict[str, float]]]:
    """Train the VAE on the min-max scaled features of one category.

    Args:
        features: (N, C, H, W) raw backbone features (array or memmap; read batch by batch).
    Returns:
        The trained model (on `device`, eval mode) and one {epoch, loss, mse, kl} dict per epoch.
    """
    device = torch.device(device)
    n = len(features)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FeatureVAE(features.shape[1], hidden, latent)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    order_rng = torch.Generator().manual_seed(seed)
    noise_rng = torch.Generator(device=device).manual_seed(seed)
    epochs = n_epochs(n, samples)
    log(f"VAE: {n} images, {epochs} epochs of batch {batch_size} ({epochs * n} samples)")
    history = []
    bar = tqdm(total=epochs * n, desc="vae", unit="img", disable=not progress, mininterval=5)
    for epoch in range(epochs):
        sums = torch.zeros(3, device=device)
        for idx in torch.randperm(n, generator=order_rng).split(batch_size):
            x = minmax_scale(torch.from_numpy(features[np.sort(idx.numpy())]).to(device))
            recon, mu, log_sigma = model(x, generator=noise_rng)
            loss, mse, kl = vae_loss(recon, x, mu, log_sigma, kl_weight=kl_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.stack([loss.detach(), mse.detach(), kl.detach()]) * len(idx)
            bar.update(len(idx))
        loss_e, mse_e, kl_e = (sums / n).tolist()
        history.append({"epoch": epoch, "loss": loss_e, "mse": mse_e, "kl": kl_e})
    bar.close()
    if history:
        last = history[-1]
        log(f"VAE final epoch: loss {last['loss']:.6f} mse {last['mse']:.6f} kl {last['kl']:.4f}")
    return model.eval(), history


@torch.no_grad()
def iter_residuals(
    model: FeatureVAE, features: np.ndarray, *, batch_size: int = 8, progress: bool = True
) -> Iterator[np.ndarray]:
    """R_i = scaled F_i - Decoder(mu(scaled F_i)), one (B, C, H, W) float32 batch at a time.

    Args:
        features: (N, C, H, W) raw features; any array supporting slices (ndarray, ArrayReader).
    """
    device = next(model.parameters()).device
    for start in tqdm(
        range(0, len(features), batch_size), desc="residuals", disable=not progress, mininterval=5
    ):
        x = minmax_scale(torch.from_numpy(np.array(features[start : start + batch_size])).to(device))
        yield model.residual(x).float().cpu().numpy()


def compute_residuals(
    model: FeatureVAE,
    features: np.ndarray,
    *,
    batch_size: int = 8,
    out: np.ndarray | None = None,
    progress: bool = True,
) -> np.ndarray:
    """All residuals at once, (N, C, H, W) float32 (into `out` if given)."""
    if out is None:
        out = np.empty(features.shape, dtype=np.float32)
    start = 0
    for r in iter_residuals(model, features, batch_size=batch_size, progress=progress):
        out[start : start + len(r)] = r
        start += len(r)
    return out
