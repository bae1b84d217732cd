"""Pictures: anomaly-map upsampling and overlays, and the report figures (matplotlib, Agg canvas)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from PIL import Image

from blindlca.io import atomic_path


def upsample(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of one map, (h, w) -> size (H, W), float32 (the evaluation protocol's)."""
    t = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(
    image: np.ndarray, alpha: np.ndarray, *, vmin: float, vmax: float, cmap: str = "jet", opacity: float = 0.5
) -> np.ndarray:
    """Blend a colour-mapped map over an image.

    Args:
        image: (H, W, 3) uint8.
        alpha: (H, W) map at image resolution; [vmin, vmax] spans the colour map, so maps drawn
            with one range are comparable.
    Returns:
        (H, W, 3) uint8.
    """
    span = max(vmax - vmin, 1e-12)
    heat = colormaps[cmap](np.clip((alpha - vmin) / span, 0.0, 1.0))[..., :3]
    mixed = (1.0 - opacity) * image.astype(np.float32) / 255.0 + opacity * heat
    return np.round(np.clip(mixed, 0.0, 1.0) * 255.0).astype(np.uint8)


# --- Report figures ------------------------------------------------------------------------------
# Figures are built on matplotlib's object API with an Agg canvas, never through pyplot: no display
# or global figure registry is involved, so they render the same on a headless node or in a worker.


def _new_figure(width: float, height: float, *, layout: str | None = None) -> Figure:
    """An empty figure of (width, height) inches at 100 dpi on an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _rgb(image: np.ndarray, what: str) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> (H, W, 3) uint8."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got dtype {a.dtype}")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or 0 in a.shape[:2]:
        raise ValueError(f"{what} must be an (H, W) or (H, W, 1|3|4) image, got shape {np.shape(image)}")
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3]


def _thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Fit an (H, W, 3) uint8 image into a size x size white square, aspect kept; (size, size, 3)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))
    tile = np.full((size, size, 3), 255, dtype=np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    tile[top : top + new_h, left : left + new_w] = small
    return tile


def _check_lengths(n: int, **named: Sequence | None) -> None:
    for name, values in named.items():
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries, expected {n} (one per image)")


def _check_positive(**named: int) -> None:
    for name, value in named.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def cluster_montage(
    images: Sequence[np.ndarray],
    overlays: Sequence[np.ndarray],
    clusters: Sequence[int],
    *,
    classes: Sequence[str] | None = None,
    max_per_cluster: int = 8,
    thumb: int = 96,
) -> Figure:
    """One row per cluster: its label and size, then up to `max_per_cluster` images in input order.

    Each thumbnail stacks the image above its anomaly-map overlay, titled with the class when given.

    Args:
        images: N uint8 images, (H, W, 3) (grey (H, W) accepted); sizes may differ.
        overlays: N uint8 overlays (e.g. from `overlay`), any size; each is fitted to thumb x thumb.
        clusters: (N,) cluster labels; rows follow the sorted labels.
        classes: (N,) class names to title the thumbnails with, or None.
        max_per_cluster: thumbnails per row at most.
        thumb: edge of one thumbnail in pixels at the 100 dpi of `save_figure`.
    Returns:
        The figure.
    """
    n = len(images)
    if n == 0:
        raise ValueError("cluster_montage needs at least one image, got none")
    _check_lengths(n, overlays=overlays, clusters=clusters, classes=classes)
    _check_positive(max_per_cluster=max_per_cluster, thumb=thumb)
    labels = np.asarray(clusters)
    groups = np.unique(labels)
    members = [np.flatnonzero(labels == g)[:max_per_cluster] for g in groups]
    ncols = max(len(m) for m in members)
    title_in = 0.18 if classes is not None else 0.0
    tile_in = thumb / 100.0
    fig = _new_figure((1.2 + ncols) * tile_in + 0.1, len(groups) * (2 * tile_in + title_in + 0.06) + 0.1)
    grid = fig.add_gridspec(len(groups), ncols + 1, width_ratios=[1.2] + [1.0] * ncols)
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.005, top=0.995, wspace=0.04, hspace=0.1)
    for row, (group, idx) in enumerate(zip(groups, members, strict=True)):
        head = fig.add_subplot(grid[row, 0])
        head.set_axis_off()
        size = int((labels == group).sum())
        head.text(0.5, 0.5, f"cluster {group}\n{size} image{'s' * (size != 1)}", ha="center", va="center")
        for col, i in enumerate(idx, start=1):
            ax = fig.add_subplot(grid[row, col])
            tile = np.concatenate(
                [
                    _thumbnail(_rgb(images[i], f"images[{i}]"), thumb),
                    _thumbnail(_rgb(overlays[i], f"overlays[{i}]"), thumb),
                ]
            )
            ax.imshow(tile, interpolation="nearest")
            ax.set_axis_off()
            if classes is not None:
                ax.set_title(str(classes[i]), fontsize=7, pad=2)
    return fig


def contingency_figure(classes: Sequence[str], clusters: Sequence[int]) -> Figure:
    """Counts of images per (cluster, class) as an annotated matrix: rows clusters, columns classes.

    Args:
        classes: (N,) class names; columns follow their sorted order.
        clusters: (N,) cluster labels; rows follow their sorted order.
    Returns:
        The figure; every cell carries its count as a text artist of the matrix axes.
    """
    if len(classes) == 0:
        raise ValueError("contingency_figure needs at least one image, got none")
    _check_lengths(len(classes), clusters=clusters)
    class_names, class_idx = np.unique(np.asarray(classes, dtype=str), return_inverse=True)
    cluster_ids, cluster_idx = np.unique(np.asarray(clusters), return_inverse=True)
    counts = np.zeros((len(cluster_ids), len(class_names)), dtype=np.int64)
    np.add.at(counts, (cluster_idx.ravel(), class_idx.ravel()), 1)
    fig = _new_figure(1.6 + 0.8 * len(class_names), 1.3 + 0.45 * len(cluster_ids), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1), aspect="auto")
    for (r, c), count in np.ndenumerate(counts):
        # Light text on the dark upper half of the colour map keeps every count readable.
        colour = "white" if count > counts.max() / 2 else "black"
        ax.text(c, r, str(count), ha="center", va="center", color=colour, fontsize=9)
    ax.set_xticks(range(len(class_names)), [str(c) for c in class_names], rotation=30, ha="right")
    ax.set_yticks(range(len(cluster_ids)), [str(c) for c in cluster_ids])
    ax.set_xlabel("class")
    ax.set_ylabel("cluster")
    ax.set_title(f"images per cluster and class (N = {len(classes)})", fontsize=10)
    return fig


def _pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact PCA to two components, zero-padded when fewer exist (N < 3 or D < 2).

    Each component's sign is fixed so its largest-magnitude loading is positive, which makes the
    picture independent of the LAPACK build.

    Returns:
        (N, 2) coordinates and (2,) explained-variance ratios.
    """
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    coords = (u * s * signs)[:, :2]
    total = float((s**2).sum())
    ratios = (s[:2] ** 2) / total if total > 0 else np.zeros(min(2, len(s)))
    pad = 2 - coords.shape[1]
    return np.pad(coords, ((0, 0), (0, pad))), np.pad(ratios, (0, pad))


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


def embedding_figure(
    descriptors: np.ndarray,
    clusters: Sequence[int],
    *,
    classes: Sequence[str] | None = None,
    seed: int = 42,
) -> Figure:
    """Descriptors projected to 2-D by PCA: colour = cluster, marker = class (legend for both).

    Args:
        descriptors: (N, D) finite values, N >= 1, D >= 1; fewer than two components are zero-padded.
        clusters: (N,) cluster labels.
        classes: (N,) class names, or None for one marker.
        seed: accepted for a stochastic embedding; PCA is exact, so it does not change the picture.
    Returns:
        The figure.
    """
    del seed  # PCA needs no randomness
    x = np.asarray(descriptors, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"descriptors must be a non-empty 2-D (N, D) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("descriptors contain NaN or inf; fix or drop those images before plotting")
    _check_lengths(len(x), clusters=clusters, classes=classes)
    coords, ratios = _pca_2d(x)
    labels = np.asarray(clusters)
    names = np.asarray(classes, dtype=str) if classes is not None else np.full(len(x), "", dtype=str)
    groups, class_names = np.unique(labels), np.unique(names)
    palette = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    colour = {g: palette(i % palette.N) for i, g in enumerate(groups)}
    marker = {c: _MARKERS[i % len(_MARKERS)] for i, c in enumerate(class_names)}
    fig = _new_figure(6.0, 4.5, layout="constrained")
    ax = fig.add_subplot()
    for g in groups:
        for c in class_names:
            mask = (labels == g) & (names == c)
            if mask.any():
                ax.scatter(
                    coords[mask, 0],
                    coords[mask, 1],
                    color=colour[g],
                    marker=marker[c],
                    s=36,
                    edgecolors="black",
                    linewidths=0.4,
                )
    handles = [Patch(color=colour[g], label=f"cluster {g}") for g in groups]
    if classes is not None:
        handles += [
            Line2D([], [], color="grey", marker=marker[c], linestyle="none", label=str(c))
            for c in class_names
        ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel(f"PC 1 ({100 * ratios[0]:.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * ratios[1]:.0f}% of variance)")
    ax.set_title(f"descriptors, PCA (N = {len(x)})", fontsize=10)
    return fig


def gallery_figure(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    *,
    vmin: float,
    vmax: float,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    thumb: int = 128,
    cmap: str = "jet",
    opacity: float = 0.5,
) -> Figure:
    """Anomaly maps over their images, all on one colour scale [vmin, vmax] with one shared colour bar.

    One scale makes maps comparable across images: a faint map stays faint next to a strong one.

    Args:
        images: N uint8 images, (H, W, 3) (grey (H, W) accepted).
        maps: N float maps (h, w); each is stretched over its image.
        vmin, vmax: the colour scale, vmin < vmax (e.g. 0 and the largest map value of the category).
        titles: N panel titles, or None.
        ncols: panels per row at most.
        thumb: panel edge in pixels at the 100 dpi of `save_figure`.
        cmap, opacity: colour map of the maps and their opacity over the image.
    Returns:
        The figure; every map is an AxesImage sharing one Normalize(vmin, vmax).
    """
    n = len(images)
    if n == 0:
        raise ValueError("gallery_figure needs at least one image, got none")
    _check_lengths(n, maps=maps, titles=titles)
    _check_positive(ncols=ncols, thumb=thumb)
    if not (np.isfinite(vmin) and np.isfinite(vmax) and vmin < vmax):
        raise ValueError(f"the colour scale needs finite vmin < vmax, got vmin={vmin}, vmax={vmax}")
    cols = min(ncols, n)
    rows = -(-n // cols)
    tile_in = thumb / 100.0
    title_in = 0.2 if titles is not None else 0.05
    fig = _new_figure(cols * (tile_in + 0.05) + 0.9, rows * (tile_in + title_in) + 0.15, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    norm = Normalize(vmin=float(vmin), vmax=float(vmax))
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        image = _rgb(images[i], f"images[{i}]")
        alpha = np.asarray(maps[i], dtype=np.float32)
        if alpha.ndim != 2:
            raise ValueError(f"maps[{i}] must be a 2-D (h, w) map, got shape {alpha.shape}")
        h, w = image.shape[:2]
        ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest")
        # The same extent stretches a coarse map over its image without resampling it here.
        ax.imshow(alpha, extent=(0, w, h, 0), cmap=cmap, norm=norm, alpha=opacity, interpolation="bilinear")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7, pad=2)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.9, label="anomaly score")
    return fig


def k_selection_figure(scores: dict[int, float], chosen: int, *, rule: str) -> Figure:
    """A K-selection criterion against K, the chosen K marked (see `blindlca.kselect.k_scores`).

    Args:
        scores: {K: score}; non-finite scores leave a gap in the curve.
        chosen: the K picked, one of the keys.
        rule: the rule's name, for the labels.
    Returns:
        The figure.
    """
    if not scores:
        raise ValueError("k_selection_figure needs at least one scored K, got none")
    if chosen not in scores:
        raise ValueError(f"chosen K={chosen} is not among the scored K {sorted(scores)}")
    ks = sorted(scores)
    values = np.array([scores[k] for k in ks], dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    fig = _new_figure(5.0, 3.2, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(ks, values, marker="o", color="C0")
    ax.axvline(chosen, color="C3", linestyle="--", linewidth=1)
    mark = values[ks.index(chosen)]
    ax.plot(
        [chosen],
        [mark],
        marker="o",
        markersize=10,
        color="C3",
        linestyle="none",
        label=f"chosen K = {chosen}",
    )
    ax.set_xticks(ks)
    ax.set_xlabel("K (number of clusters)")
    ax.set_ylabel(f"{rule} score")
    ax.set_title(f"choosing K: {rule}", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write a figure as PNG at 100 dpi, atomically, then close it.

    No software tag or timestamp is written, so the same figure gives the same bytes.
    """
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    finally:
        # Only a pyplot-made figure is registered anywhere; ours are freed with their last reference.
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)
