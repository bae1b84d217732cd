"""Report figures: each renders, PNGs are valid and byte-identical across saves, and what they show."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import AxesImage
from PIL import Image

from blindlca.figures import (
    cluster_montage,
    contingency_figure,
    embedding_figure,
    gallery_figure,
    k_selection_figure,
    save_figure,
)

CLASSES = ["good", "scratch", "good", "stain", "scratch", "good", "stain"]
CLUSTERS = [0, 1, 0, 2, 1, 1, 2]


def _images(n: int, *, seed: int = 0) -> list[np.ndarray]:
    """n small uint8 RGB images of varying sizes."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(20 + 3 * i, 24, 3), dtype=np.uint8) for i in range(n)]


def _maps(n: int, *, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((8, 8)).astype(np.float32) * (i + 1) for i in range(n)]


def _figures():
    n = len(CLASSES)
    descriptors = np.random.default_rng(2).normal(size=(n, 5))
    return {
        "montage": lambda: cluster_montage(
            _images(n), _images(n, seed=3), CLUSTERS, classes=CLASSES, thumb=32
        ),
        "contingency": lambda: contingency_figure(CLASSES, CLUSTERS),
        "embedding": lambda: embedding_figure(descriptors, CLUSTERS, classes=CLASSES),
        "gallery": lambda: gallery_figure(_images(n), _maps(n), vmin=0.0, vmax=7.0, titles=CLASSES, ncols=3),
        "k_selection": lambda: k_selection_figure({2: 0.3, 3: 0.5, 4: 0.1}, 3, rule="silhouette"),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_renders_and_saves_valid_png(tmp_path, name):
    path = tmp_path / "sub" / f"{name}.png"
    save_figure(_figures()[name](), path)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > 0 and png.height > 0
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize("name", ["montage", "gallery", "embedding"])
def test_same_inputs_same_bytes(tmp_path, name):
    save_figure(_figures()[name](), tmp_path / "a.png")
    save_figure(_figures()[name](), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_contingency_counts_match_hand_count():
    fig = contingency_figure(CLASSES, CLUSTERS)
    ax = fig.axes[0]
    shown = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in ax.texts}
    # rows clusters 0, 1, 2; columns classes good, scratch, stain (sorted)
    expected = np.array([[2, 0, 0], [1, 2, 0], [0, 0, 2]])
    assert shown == {(r, c): int(expected[r, c]) for r in range(3) for c in range(3)}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["good", "scratch", "stain"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2"]


def test_gallery_uses_one_scale():
    n = 5
    fig = gallery_figure(_images(n), _maps(n), vmin=0.5, vmax=4.0, ncols=2)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert all(isinstance(im, AxesImage) for im in images)
    maps = [im for im in images if im.get_array().ndim == 2]  # the others are the RGB photos beneath
    assert len(images) == 2 * n
    assert len(maps) == n
    assert all(im.get_clim() == (0.5, 4.0) for im in maps)
    assert len({id(im.norm) for im in maps}) == 1
    # one colour bar, drawn with that same scale
    colourbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colourbars) == 1
    assert colourbars[0]._colorbar.mappable.get_clim() == (0.5, 4.0)


def test_montage_has_one_row_per_cluster():
    clusters = [5, 2, 5, 5, 9, 2, 5]
    fig = cluster_montage(_images(7), _images(7, seed=4), clusters, max_per_cluster=2, thumb=16)
    rows = {ax.get_subplotspec().rowspan.start for ax in fig.axes}
    assert rows == {0, 1, 2}
    headers = sorted(t.get_text() for ax in fig.axes for t in ax.texts)
    assert headers == ["cluster 2\n2 images", "cluster 5\n4 images", "cluster 9\n1 image"]
    # at most max_per_cluster thumbnails per row, plus the header
    per_row = [sum(ax.get_subplotspec().rowspan.start == r for ax in fig.axes) for r in range(3)]
    assert per_row == [3, 3, 2]


@pytest.mark.parametrize("shape", [(2, 4), (5, 1), (1, 3)])
def test_embedding_with_fewer_than_two_components(tmp_path, shape):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) ** 1.5
    save_figure(embedding_figure(x, list(range(shape[0]))), tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0


def test_k_selection_marks_chosen():
    fig = k_selection_figure({2: 0.3, 3: 0.5, 4: float("inf")}, 3, rule="silhouette")
    ax = fig.axes[0]
    assert any(line.get_label() == "chosen K = 3" for line in ax.get_lines())


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: contingency_figure(["a", "b"], [0]), "clusters has 1"),
        (lambda: gallery_figure(_images(2), _maps(2), vmin=1.0, vmax=1.0), "vmax=1.0"),
        (lambda: gallery_figure(_images(2), _maps(1), vmin=0.0, vmax=1.0), "maps has 1"),
        (lambda: cluster_montage(_images(2), _images(2), [0, 1], max_per_cluster=0), "max_per_cluster"),
        (lambda: cluster_montage([np.zeros((4, 4, 3))], [np.zeros((4, 4, 3), np.uint8)], [0]), "float64"),
        (lambda: k_selection_figure({2: 0.1}, 5, rule="silhouette"), "K=5"),
        (lambda: embedding_figure(np.full((3, 2), np.nan), [0, 1, 2]), "NaN"),
    ],
)
def test_bad_inputs(make, match):
    with pytest.raises(ValueError, match=match):
        make()
