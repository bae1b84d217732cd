"""Embedded, deterministic synthetic texture-anomaly dataset in MVTec AD layout.

Each image is a fresh random variation of one surface family ("woven", "granular", "tiled");
defect images carry one of four visually distinct defects whose boolean mask is exactly the set of
altered pixels. Image ``i`` of class ``c`` of family ``f`` depends only on ``(seed, f, c, i)``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

FAMILIES: tuple[str, ...] = ("woven", "granular", "tiled")
DEFECTS: tuple[str, ...] = ("scratch", "stain", "hole", "patch")  # "patch" = foreign patch of another texture
GOOD_INDEX = 255  # fixed class index of "good" in the per-image rng key (defects use their DEFECTS index)
MIN_IMAGE_SIZE = 64

_WOVEN = (
    ((62, 84, 132), (50, 66, 104)),
    ((196, 178, 142), (176, 158, 124)),
    ((128, 52, 48), (110, 44, 42)),
    ((104, 112, 78), (120, 126, 92)),
    ((150, 150, 156), (120, 122, 128)),
)
_GRANULAR = ((132, 96, 66), (176, 150, 112), (118, 112, 104), (96, 72, 52), (160, 128, 96))
_TILED = (
    ((186, 96, 64), (200, 192, 176)),
    ((222, 220, 212), (120, 118, 112)),
    ((96, 104, 110), (60, 58, 56)),
    ((92, 136, 160), (210, 208, 200)),
)
_STAINS = ((112, 72, 30), (150, 84, 36), (52, 48, 40), (130, 110, 40))


def _check_choice(what: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; valid choices: {', '.join(choices)}")


def _check_size(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_IMAGE_SIZE:
        raise ValueError(f"{what} must be an integer >= {MIN_IMAGE_SIZE}, got {value!r}")


def _noise(rng: np.random.Generator, size: int, sigma: float | tuple[float, float]) -> np.ndarray:
    """Periodic Gaussian-filtered white noise (FFT), zero mean, unit std; (size, size) float64."""
    sy, sx = np.broadcast_to(np.asarray(sigma, float), (2,))
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :]
    transfer = np.exp(-2 * np.pi**2 * ((sy * fy) ** 2 + (sx * fx) ** 2))
    spectrum = np.fft.rfft2(rng.standard_normal((size, size))) * transfer
    spectrum[0, 0] = 0
    n = np.fft.irfft2(spectrum, s=(size, size))
    return n / (n.std() + 1e-12)


def _grid(rng: np.random.Generator, size: int, max_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random small angle and shifted by a random phase; 2 x (size, size)."""
    t = np.deg2rad(rng.uniform(-max_deg, max_deg))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    u = np.cos(t) * x + np.sin(t) * y + rng.uniform(0, size)
    v = -np.sin(t) * x + np.cos(t) * y + rng.uniform(0, size)
    return u, v


def _finish(rgb: np.ndarray, rng: np.random.Generator, fine: float) -> np.ndarray:
    """Add fine per-pixel sensor noise and quantise (H, W, 3) float -> uint8."""
    rgb = rgb + fine * rng.standard_normal(rgb.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _woven(rng: np.random.Generator, s: int) -> np.ndarray:
    """Plain weave: warp (vertical) and weft (horizontal) threads alternate over/under per cell."""
    u, v = _grid(rng, s, 6)
    fu, fv = u / (s / rng.uniform(12, 18)), v / (s / rng.uniform(12, 18))
    warp_top = (np.floor(fu) + np.floor(fv)) % 2 == 0
    fu, fv = fu % 1.0, fv % 1.0
    k = s / 256
    warp = np.sin(np.pi * fu) ** 0.6 * (0.55 + 0.45 * np.sin(np.pi * fv)) + 0.1 * _noise(rng, s, (5 * k, 0.6))
    weft = np.sin(np.pi * fv) ** 0.6 * (0.55 + 0.45 * np.sin(np.pi * fu)) + 0.1 * _noise(rng, s, (0.6, 5 * k))
    height = np.where(warp_top, warp, weft)
    warp_col, weft_col = (np.asarray(c, float) for c in _WOVEN[rng.integers(len(_WOVEN))])
    jitter = rng.uniform(0.93, 1.07, 3)
    col = np.where(warp_top[..., None], warp_col, weft_col) * jitter
    shade = 0.3 + 0.8 * height + 0.05 * _noise(rng, s, s / 6)
    return _finish(shade[..., None] * col, rng, 3.0)


def _granular(rng: np.random.Generator, s: int) -> np.ndarray:
    """Leather/stone: lit multi-scale noise relief with creases, plus albedo blotches and small grains."""
    k = s / 256 * rng.uniform(0.8, 1.25)
    relief = sum(w * _noise(rng, s, sig * k) for w, sig in ((1.0, 10), (0.8, 4), (0.6, 1.8)))
    relief = relief - 1.2 * np.exp(-((_noise(rng, s, 5 * k) / 0.15) ** 2)) * rng.uniform(0.4, 1.0)  # creases
    light = np.deg2rad(rng.uniform(0, 360))
    gy, gx = np.gradient(relief)
    shade = 0.8 + 0.5 * (np.cos(light) * gx + np.sin(light) * gy) / k + 0.06 * relief
    shade += 0.08 * _noise(rng, s, 24 * k)  # large-scale albedo blotches
    dots = (rng.random((s, s)) < 0.004) * rng.choice([-1.0, 1.0], (s, s))
    shade += 2.5 * ndi.gaussian_filter(dots, 0.9 * k)
    base = np.asarray(_GRANULAR[rng.integers(len(_GRANULAR))], float) * rng.uniform(0.93, 1.07, 3)
    tint = 0.05 * _noise(rng, s, 20 * k)[..., None] * np.array([1.0, 0.4, -0.6])  # earthy hue drift
    return _finish(shade[..., None] * base * (1 + tint), rng, 2.5)


def _tiled(rng: np.random.Generator, s: int) -> np.ndarray:
    """Square tiles with grout lines, bevelled edges, per-tile colour variation and slight tile texture."""
    u, v = _grid(rng, s, 3)
    pitch, k = s / rng.uniform(3.5, 5.5), s / 256
    grout_w = max(2.0, k * rng.uniform(2.5, 4.5))
    iu, iv = np.floor(u / pitch).astype(int), np.floor(v / pitch).astype(int)
    edge = np.minimum(np.minimum(u % pitch, pitch - u % pitch), np.minimum(v % pitch, pitch - v % pitch))
    tile_col, grout_col = (np.asarray(c, float) * rng.uniform(0.94, 1.06, 3) for c in _TILED[rng.integers(4)])
    per_tile = rng.normal(0, 0.05, (16, 16, 1)) + rng.normal(0, 0.015, (16, 16, 3))
    bevel = 0.8 + 0.2 * np.clip((edge - grout_w / 2) / (3 * k), 0, 1)
    grain = 0.03 * _noise(rng, s, 1.2 * k) + 0.04 * _noise(rng, s, 8 * k)
    surface = 1 + per_tile[iu % 16, iv % 16] + grain[..., None]
    tile = tile_col * surface * bevel[..., None]
    grout = grout_col * (1 + 0.06 * _noise(rng, s, 1.0))[..., None]
    return _finish(np.where((edge < grout_w / 2)[..., None], grout, tile), rng, 2.0)


_RENDERERS = {"woven": _woven, "granular": _granular, "tiled": _tiled}


def render_texture(family: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """Render one random, defect-free surface of `family`.

    Returns:
        (size, size, 3) uint8 RGB image.
    """
    _check_choice("family", family, FAMILIES)
    _check_size("size", size)
    return _RENDERERS[family](rng, size)


def _frame(rng: np.random.Generator, h: int, w: int, a: float, b: float, pad: float):
    """Random rotated frame (uu, vv), normalised by half-axes a >= b; |uu|, |vv| <= pad stays inside."""
    phi = rng.uniform(0, np.pi)
    ext = pad * np.hypot(a, b) + 2
    cy, cx = rng.uniform(ext, h - ext), rng.uniform(ext, w - ext)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = y - cy, x - cx
    return (np.cos(phi) * dx + np.sin(phi) * dy) / a, (-np.sin(phi) * dx + np.cos(phi) * dy) / b


def _axes(rng: np.random.Generator, h: int, w: int, lo: float, hi: float, unit_area: float):
    """Half-axes (a, b), a >= b, of a shape of area uniform in [lo, hi] * h * w (area = unit_area * a * b)."""
    ratio = rng.uniform(0.55, 1.0)
    a = np.sqrt(rng.uniform(lo, hi) * h * w / (unit_area * ratio))
    return a, a * ratio


def _scratch(img: np.ndarray, rng: np.random.Generator, family: str):
    h, w = img.shape[:2]
    n, k = min(h, w), min(h, w) / 256
    length, theta = rng.uniform(0.35, 0.7) * n, rng.uniform(0, np.pi)
    d = np.array([np.sin(theta), np.cos(theta)])
    c = np.array([h, w]) / 2 + rng.uniform(-1, 1, 2) * (n - length) / 2 * 0.8
    p0, p2 = c - d * length / 2, c + d * length / 2
    p1 = c + np.array([-d[1], d[0]]) * rng.uniform(-0.35, 0.35) * length  # Bezier control point
    t = np.linspace(0, 1, int(4 * length))[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2
    pts = np.clip(np.rint(pts), 0.08 * n, [h - 1 - 0.08 * n, w - 1 - 0.08 * n]).astype(int)
    line = np.zeros((h, w), bool)
    line[pts[:, 0], pts[:, 1]] = True
    mask = ndi.distance_transform_edt(~line) <= max(1.5, k * rng.uniform(1.5, 3.0))
    target = 245.0 if rng.random() < 0.5 else 15.0
    strength = np.clip(0.8 + 0.1 * _noise(rng, max(h, w), 3 * k)[:h, :w], 0.6, 0.95)[..., None]
    return img + strength * (target - img), mask


def _stain(img: np.ndarray, rng: np.random.Generator, family: str):
    h, w = img.shape[:2]
    a, b = _axes(rng, h, w, 0.05, 0.14, np.pi)
    uu, vv = _frame(rng, h, w, a, b, 1.3)
    r2 = uu**2 + vv**2
    field = 1 - r2 + 0.45 * _noise(rng, max(h, w), 0.12 * b)[:h, :w]
    mask = ((field > 0.3) & (r2 < 1.69)) | (r2 < 0.09)
    alpha = (0.55 + 0.3 * np.clip(field, 0, 1) + 0.12 * np.exp(-(((field - 0.3) / 0.08) ** 2)))[..., None]
    colour = np.asarray(_STAINS[rng.integers(len(_STAINS))], float) * rng.uniform(0.8, 1.1)
    target = img * (0.5 * colour / colour.max()) + 0.3 * colour  # tinted darkening, texture shows through
    return img + alpha * (target - img), mask


def _hole(img: np.ndarray, rng: np.random.Generator, family: str):
    h, w = img.shape[:2]
    a, b = _axes(rng, h, w, 0.03, 0.09, np.pi)
    uu, vv = _frame(rng, h, w, a, b, 1.25)
    r = np.hypot(uu, vv) * (1 + 0.07 * _noise(rng, max(h, w), 0.15 * b)[:h, :w])
    mask = r < 1.18
    inside = (8 + 30 * np.clip(r, 0, 1) ** 3 + 4 * rng.standard_normal((h, w)))[..., None] + 0.06 * img
    rim = 0.5 * img + 10  # shadowed/frayed edge: lighter than the hole, darker than the surface
    return np.where((r < 1)[..., None], inside, rim), mask


def _patch(img: np.ndarray, rng: np.random.Generator, family: str):
    h, w = img.shape[:2]
    a, b = _axes(rng, h, w, 0.04, 0.12, 4.0)
    uu, vv = _frame(rng, h, w, a, b, 1.0)
    others = [f for f in FAMILIES if f != family]
    foreign = render_texture(others[rng.integers(len(others))], rng, max(h, w)).astype(np.float64)[:h, :w]
    inset = np.minimum(a * (1 - np.abs(uu)), b * (1 - np.abs(vv)))  # px from the rectangle's edge
    border = (inset < max(2.0, 0.008 * min(h, w)))[..., None]
    return np.where(border, 0.45 * foreign + 0.2 * img, foreign), inset >= 0


_DEFECTS = {"scratch": _scratch, "stain": _stain, "hole": _hole, "patch": _patch}


def apply_defect(
    image: np.ndarray, defect: str, rng: np.random.Generator, *, family: str
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one random `defect` onto a defect-free `family` texture.

    Args:
        image: (H, W, 3) uint8 texture, H, W >= 64; not modified.
    Returns:
        (H, W, 3) uint8 defective image and the (H, W) bool mask of exactly the altered pixels
        (non-empty; in practice > 99% of the defect's footprint).
    """
    _check_choice("defect", defect, DEFECTS)
    _check_choice("family", family, FAMILIES)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    _check_size("image height/width", min(image.shape[:2]))
    new, footprint = _DEFECTS[defect](image.astype(np.float64), rng, family)
    out = image.copy()
    out[footprint] = np.clip(np.rint(np.broadcast_to(new, image.shape)[footprint]), 0, 255).astype(np.uint8)
    return out, (out != image).any(axis=-1)


def image_rng(seed: int, family: str, cls: str, index: int) -> np.random.Generator:
    """Generator for image `index` of class `cls` ("good" or a defect) of `family`; stable across runs."""
    cls_index = GOOD_INDEX if cls == "good" else DEFECTS.index(cls)
    return np.random.default_rng([seed, FAMILIES.index(family), cls_index, index])


def render_sample(
    family: str, cls: str, index: int, *, seed: int, image_size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Image `index` of class `cls`: texture first, then (unless "good") the defect, from one rng.

    Returns:
        (image_size, image_size, 3) uint8 image and (image_size, image_size) bool mask, None for "good".
    """
    _check_choice("class", cls, ("good", *DEFECTS))
    rng = image_rng(seed, family, cls, index)
    texture = render_texture(family, rng, image_size)
    return (texture, None) if cls == "good" else apply_defect(texture, cls, rng, family=family)


def generate_category(
    root: str | os.PathLike,
    family: str,
    *,
    image_size: int,
    n_good: int,
    n_per_defect: int,
    defects: Sequence[str],
    seed: int,
) -> pathlib.Path:
    """Write `<root>/<family>/test/<class>/<NNN>.png` and `ground_truth/<defect>/<NNN>_mask.png` atomically.

    Everything is built in `<root>/.<family>.tmp-<pid>` and renamed into place at the end, replacing an
    existing `<root>/<family>`; a failed or killed run never leaves a half-written category.

    Returns:
        The category folder `<root>/<family>`.
    """
    _check_choice("family", family, FAMILIES)
    _check_size("image_size", image_size)
    if isinstance(defects, str):
        raise ValueError(f"defects must be a sequence of names, got the string {defects!r}")
    for d in defects:
        _check_choice("defect", d, DEFECTS)
    if len(set(defects)) != len(defects):
        raise ValueError(f"defects must not repeat, got {list(defects)!r}")
    for name, value, lowest in (("n_good", n_good, 0), ("n_per_defect", n_per_defect, 1), ("seed", seed, 0)):
        if value < lowest:
            raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
    root = pathlib.Path(root)
    final = root / family
    tmp, old = root / f".{family}.tmp-{os.getpid()}", root / f".{family}.old-{os.getpid()}"
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for cls, count in [("good", n_good), *((d, n_per_defect) for d in defects)]:
            test_dir, gt_dir = tmp / "test" / cls, tmp / "ground_truth" / cls
            for i in range(count):
                image, mask = render_sample(family, cls, i, seed=seed, image_size=image_size)
                test_dir.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(test_dir / f"{i:03d}.png", compress_level=1)
                if mask is not None:
                    gt_dir.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(gt_dir / f"{i:03d}_mask.png")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
