"""The dataset registry and prepare_category on tiny fake archives with each dataset's real structure."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from http_server import folder_handler, serving
from PIL import Image

import blindlca.datasets as ds
from blindlca.data import index_category
from blindlca.datasets import MVTEC_FULL_ARCHIVE, SOURCES, get_source, prepare_category
from blindlca.download import DownloadError, fetch, sha256sum

HEX64 = re.compile(r"[0-9a-f]{64}")


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def jpg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def grey_mask(pixels: list[tuple[int, int]], *, value: int = 255, noise: int = 0) -> np.ndarray:
    """8x8 uint8 mask: `value` at `pixels`, `noise` (e.g. faint anti-aliasing) elsewhere."""
    m = np.full((8, 8), noise, np.uint8)
    for r, c in pixels:
        m[r, c] = value
    return m


def expected(pixels: list[tuple[int, int]]) -> np.ndarray:
    return grey_mask(pixels) > 0


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def write_tar(path: Path, files: dict[str, bytes], mode: str = "w:xz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        values = np.asarray(im)
    assert set(np.unique(values)) <= {0, 255}
    return values == 255


def only_dest_left(parent: Path, *names: str) -> None:
    """Nothing but `names` in `parent`: no temporary folder survives."""
    assert sorted(p.name for p in parent.iterdir()) == sorted(names)


# --- registry --------------------------------------------------------------------------------------------


def test_sources_sanity() -> None:
    assert set(SOURCES) == {"mvtec", "mtd", "leaves"}
    assert SOURCES["mvtec"].categories == ("carpet", "grid", "leather", "tile", "wood")
    assert SOURCES["mtd"].categories == ("mtd",)
    assert SOURCES["leaves"].categories == ("leaves",)
    for key, source in SOURCES.items():
        assert source.name == key and source.citation
        assert set(source.files) == set(source.categories)
        names = [f.name for files in source.files.values() for f in files]
        assert len(names) == len(set(names))
        for files in source.files.values():
            assert files
            for f in files:
                assert f.url.startswith("https://"), f.url
                assert HEX64.fullmatch(f.sha256), f"{key}: {f.sha256} is not a full lower-case sha256"
                assert "/" not in f.name and f.name.endswith((".tar.xz", ".zip"))
        # Manual steps name the file to place under resources/downloads/<dataset>/ where they are needed.
        assert source.manual == "" or f"resources/downloads/{key}/" in source.manual
    assert SOURCES["mtd"].manual == ""
    assert {f.name for files in SOURCES["mvtec"].files.values() for f in files} == {
        f"{c}.tar.xz" for c in SOURCES["mvtec"].categories
    }
    assert HEX64.fullmatch(MVTEC_FULL_ARCHIVE.sha256) and MVTEC_FULL_ARCHIVE.url.startswith("https://")


def test_get_source() -> None:
    assert get_source("mtd") is SOURCES["mtd"]
    with pytest.raises(ValueError, match="mvtec, mtd, leaves"):
        get_source("visa")


def test_bad_arguments(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "carpet.tar.xz", {"carpet/test/good/000.png": png(grey_mask([]))})
    with pytest.raises(ValueError, match="carpet, grid, leather, tile, wood"):
        prepare_category("mvtec", "bottle", [archive], tmp_path / "root" / "bottle")
    with pytest.raises(ValueError, match="no archive given"):
        prepare_category("mvtec", "carpet", [], tmp_path / "root" / "carpet")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "grid.tar.xz"))):
        prepare_category("mvtec", "grid", [tmp_path / "grid.tar.xz"], tmp_path / "root" / "grid")
    full = tmp_path / "root" / "carpet"
    full.mkdir(parents=True)
    (full / "x").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        prepare_category("mvtec", "carpet", [archive], full)
    assert tree(full) == {"x"}


# --- MVTec AD -------------------------------------------------------------------------------------------


def mvtec_files(category: str, defect: str) -> dict[str, bytes]:
    image = png(np.full((8, 8, 3), 7, np.uint8))
    return {
        f"{category}/train/good/000.png": image,
        f"{category}/test/good/000.png": image,
        f"{category}/test/{defect}/000.png": image,
        f"{category}/test/{defect}/001.png": image,
        f"{category}/ground_truth/{defect}/000_mask.png": png(grey_mask([(1, 1)])),
        f"{category}/ground_truth/{defect}/001_mask.png": png(grey_mask([(2, 2)])),
    }


MVTEC_TREE = {
    "train/good/000.png",
    "test/good/000.png",
    "test/color/000.png",
    "test/color/001.png",
    "ground_truth/color/000_mask.png",
    "ground_truth/color/001_mask.png",
}


def test_mvtec_category_archive(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "carpet.tar.xz", mvtec_files("carpet", "color"))
    root = tmp_path / "mvtec"
    dest = prepare_category("mvtec", "carpet", [archive], root / "carpet")
    assert dest == root / "carpet"
    assert tree(dest) == MVTEC_TREE
    records = index_category(root, "carpet")
    assert [(r.image, r.cls, r.mask) for r in records] == [
        ("carpet/test/color/000.png", "color", "carpet/ground_truth/color/000_mask.png"),
        ("carpet/test/color/001.png", "color", "carpet/ground_truth/color/001_mask.png"),
        ("carpet/test/good/000.png", "good", ""),
    ]
    only_dest_left(root, "carpet")


def test_mvtec_full_archive_extracts_only_the_category(tmp_path: Path) -> None:
    files = {
        **mvtec_files("carpet", "color"),
        **mvtec_files("grid", "bent"),
        "license.txt": b"CC BY-NC-SA 4.0",
        "readme.txt": b"MVTec AD",
    }
    archive = write_tar(tmp_path / "mvtec_anomaly_detection.tar.xz", files)
    dest = prepare_category("mvtec", "carpet", [archive], tmp_path / "mvtec" / "carpet")
    assert tree(dest) == MVTEC_TREE
    only_dest_left(tmp_path / "mvtec", "carpet")


def test_mvtec_archive_without_the_category(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "grid.tar.xz", mvtec_files("grid", "bent"))
    with pytest.raises(ValueError, match="no carpet/test folder"):
        prepare_category("mvtec", "carpet", [archive], tmp_path / "mvtec" / "carpet")
    only_dest_left(tmp_path / "mvtec")


# --- MTD --------------------------------------------------------------------------------------------------

MTD_TOP = "Magnetic-tile-defect-datasets.-cc4eb530b57b9cb7225bf76023873043ffd50655"
MTD_PIXELS = {"exp1_num_1": [(0, 0), (3, 4)], "exp2_num_7": [(7, 7)]}


def mtd_files() -> dict[str, bytes]:
    """The repository's structure: MT_<Type>/Imgs/<stem>.jpg image + <stem>.png mask, plus top-level files."""
    files = {f"{MTD_TOP}/README.md": b"# MTD", f"{MTD_TOP}/dataset.jpg": jpg(99)}
    for i, folder in enumerate(ds._MTD_CLASSES):
        for j, (stem, pixels) in enumerate(MTD_PIXELS.items()):
            files[f"{MTD_TOP}/{folder}/Imgs/{stem}.jpg"] = jpg(10 * i + j)
            # MT_Free's masks are all black; the faint 3s stand for anti-aliasing the midpoint removes.
            mask = grey_mask([] if folder == "MT_Free" else pixels, noise=3)
            files[f"{MTD_TOP}/{folder}/Imgs/{stem}.png"] = png(mask)
    return files


def mtd_expected_tree() -> set[str]:
    out = set()
    for cls in ("good", "blowhole", "break", "crack", "fray", "uneven"):
        for stem in MTD_PIXELS:
            out.add(f"test/{cls}/{stem}.jpg")
            if cls != "good":
                out.add(f"ground_truth/{cls}/{stem}_mask.png")
    return out


def check_mtd(dest: Path, files: dict[str, bytes]) -> None:
    assert tree(dest) == mtd_expected_tree()
    for folder, cls in ds._MTD_CLASSES.items():
        for stem, pixels in MTD_PIXELS.items():
            assert (dest / "test" / cls / f"{stem}.jpg").read_bytes() == files[
                f"{MTD_TOP}/{folder}/Imgs/{stem}.jpg"
            ]
            if cls != "good":
                np.testing.assert_array_equal(
                    read_mask(dest / "ground_truth" / cls / f"{stem}_mask.png"), expected(pixels)
                )
    classes = {r.cls for r in index_category(dest.parent, dest.name)}
    assert classes == {"good", "blowhole", "break", "crack", "fray", "uneven"}


def test_mtd_layout(tmp_path: Path) -> None:
    files = mtd_files()
    archive = write_zip(tmp_path / SOURCES["mtd"].files["mtd"][0].name, files)
    dest = prepare_category("mtd", "mtd", [archive], tmp_path / "mtd" / "mtd")
    check_mtd(dest, files)
    only_dest_left(tmp_path / "mtd", "mtd")


def test_mtd_missing_class_folder(tmp_path: Path) -> None:
    files = {k: v for k, v in mtd_files().items() if "/MT_Crack/" not in k}
    archive = write_zip(tmp_path / "mtd.zip", files)
    with pytest.raises(ValueError, match="no MT_Crack/Imgs folder"):
        prepare_category("mtd", "mtd", [archive], tmp_path / "mtd" / "mtd")
    only_dest_left(tmp_path / "mtd")


def fail_on_call(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    real, calls = ds._write_mask, []

    def dying(mask: np.ndarray, path: Path) -> None:
        calls.append(path)
        if len(calls) == n:
            raise RuntimeError("disk full")
        real(mask, path)

    monkeypatch.setattr(ds, "_write_mask", dying)


def test_mtd_failure_midway_leaves_no_dest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_zip(tmp_path / "mtd.zip", mtd_files())
    fail_on_call(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_category("mtd", "mtd", [archive], tmp_path / "mtd" / "mtd")
    only_dest_left(tmp_path / "mtd")


# --- Coffee Leaves ----------------------------------------------------------------------------------------

# id -> (predominant_stress, split, symptom pixels); 6 is "undetermined" (5) and is left out.
LEAVES = {
    "1": (0, "train", []),
    "2": (1, "train", [(1, 1), (1, 2)]),
    "3": (2, "val", [(4, 4)]),
    "4": (3, "test", [(0, 7)]),
    "5": (4, "train", [(6, 0), (6, 1)]),
    "6": (5, "test", [(2, 2)]),
    "7": (2, "train", [(5, 5)]),
}
LEAVES_CLASS = {0: "good", 1: "miner", 2: "rust", 3: "phoma", 4: "cercospora"}


def colour_annotation(pixels: list[tuple[int, int]]) -> np.ndarray:
    """RGB mask as in segmentation/annotations: background black, leaf [0,176,0], symptom [255,0,0]."""
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[1:7, :, 1] = 176
    for r, c in pixels:
        rgb[r, c] = (255, 0, 0)
    return rgb


def leaves_files() -> dict[str, bytes]:
    top = "coffee-datasets"
    rows = "id,predominant_stress,miner,rust,phoma,cercospora,severity\n" + "".join(
        f"{i},{code},0,0,0,0,1\n" for i, (code, _, _) in LEAVES.items()
    )
    files = {
        f"{top}/leaf/dataset.csv": rows.encode(),
        f"{top}/leaf/legend.txt": b"0 healthy ... 5 undetermined",
        f"{top}/segmentation/annotations-info.txt": b"background [0,0,0] leaf [0,176,0] symptom [255,0,0]",
        f"{top}/symptom/train/1_health/1.jpg": jpg(500),
    }
    for i, (_, split, pixels) in LEAVES.items():
        files[f"{top}/leaf/images/{i}.jpg"] = jpg(200 + int(i))
        files[f"{top}/segmentation/images/{split}/{i}.jpg"] = jpg(int(i))
        files[f"{top}/segmentation/annotations/{split}/{i}_mask.png"] = png(colour_annotation(pixels))
    return files


def test_leaves_layout(tmp_path: Path) -> None:
    files = leaves_files()
    archive = write_zip(tmp_path / "coffee-datasets.zip", files)
    dest = prepare_category("leaves", "leaves", [archive], tmp_path / "leaves" / "leaves")

    want = set()
    for i, (code, split, pixels) in LEAVES.items():
        if code == 5:
            continue
        cls = LEAVES_CLASS[code]
        want.add(f"test/{cls}/{i}.jpg")
        assert (dest / "test" / cls / f"{i}.jpg").read_bytes() == files[
            f"coffee-datasets/segmentation/images/{split}/{i}.jpg"
        ]
        if cls != "good":
            want.add(f"ground_truth/{cls}/{i}_mask.png")
            np.testing.assert_array_equal(
                read_mask(dest / "ground_truth" / cls / f"{i}_mask.png"), expected(pixels)
            )
    assert tree(dest) == want
    assert {r.cls for r in index_category(dest.parent, "leaves")} == set(LEAVES_CLASS.values())
    only_dest_left(tmp_path / "leaves", "leaves")


def test_leaves_id_missing_from_the_table(tmp_path: Path) -> None:
    files = leaves_files()
    files["coffee-datasets/segmentation/images/train/99.jpg"] = jpg(99)
    archive = write_zip(tmp_path / "coffee-datasets.zip", files)
    with pytest.raises(ValueError, match="leaf id 99 is not listed"):
        prepare_category("leaves", "leaves", [archive], tmp_path / "leaves" / "leaves")
    only_dest_left(tmp_path / "leaves")


def test_leaves_failure_midway_leaves_no_dest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_zip(tmp_path / "coffee-datasets.zip", leaves_files())
    fail_on_call(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_category("leaves", "leaves", [archive], tmp_path / "leaves" / "leaves")
    only_dest_left(tmp_path / "leaves")


# --- download, verify, prepare: a real HTTP server on 127.0.0.1 ------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder it serves)."""
    folder = tmp_path / "www"
    folder.mkdir()
    with serving(folder_handler(folder)) as url:
        yield url, folder


def test_download_verify_prepare(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, www = served
    name = SOURCES["mvtec"].files["carpet"][0].name
    archive = write_tar(www / name, mvtec_files("carpet", "color"))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()

    got = fetch(f"{base}/{name}", tmp_path / "downloads" / "mvtec" / name, sha256=digest, progress=False)
    assert sha256sum(got) == digest
    dest = prepare_category("mvtec", "carpet", [got], tmp_path / "datasets" / "mvtec" / "carpet")
    assert tree(dest) == MVTEC_TREE


def test_tampered_download_is_refused_before_extraction(tmp_path: Path, served: tuple[str, Path]) -> None:
    base, www = served
    name = SOURCES["mtd"].files["mtd"][0].name
    genuine = write_zip(tmp_path / "genuine.zip", mtd_files())
    digest = sha256sum(genuine)
    files = mtd_files()
    files[f"{MTD_TOP}/MT_Crack/Imgs/exp1_num_1.jpg"] = jpg(12345)  # same name, other bytes
    write_zip(www / name, files)

    target = tmp_path / "downloads" / "mtd" / name
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(f"{base}/{name}", target, sha256=digest, progress=False)
    assert not target.exists() and not target.with_name(name + ".part").exists()
    with pytest.raises(FileNotFoundError):
        prepare_category("mtd", "mtd", [target], tmp_path / "datasets" / "mtd" / "mtd")
    assert not (tmp_path / "datasets" / "mtd" / "mtd").exists()

    (www / name).write_bytes(genuine.read_bytes())  # the genuine archive: the digest matches
    got = fetch(f"{base}/{name}", target, sha256=digest, progress=False)
    check_mtd(prepare_category("mtd", "mtd", [got], tmp_path / "datasets" / "mtd" / "mtd"), mtd_files())
