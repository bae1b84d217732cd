"""The paper's three datasets as data: where to download them and how to bring them into MVTec layout.

`SOURCES` lists, per dataset, the categories, the archives each category needs (URL, pinned SHA-256,
file name under ``resources/downloads/<dataset>/``), the manual steps for when the automatic download
is impossible, and the citation. `prepare_category` turns the downloaded archive(s) into
``<root>/<category>/test/<class>/<image>`` plus ``<root>/<category>/ground_truth/<class>/<stem>_mask.png``
(binary 0/255 PNG; no masks for ``good``), atomically.

Provenance (looked up 2026-12-04 in stored copies of public code and pages; no digest is invented):

- MVTec AD (textures only). MVTec hands out mydrive.ch links after its licence page and rotates the
  share ids without notice. The per-category links used here (shares 150455..150465) are the ones
  pinned in 2026 by several public loaders (e.g. a ``stable_datasets`` MVTec builder). The per-category
  SHA-256 digests come from a public TensorFlow loader that pinned the per-category archives of
  MVTec's former FTP mirror (ftp.softronics.ch). We take those files to be byte-identical to the
  mydrive ones: that is confirmed for carpet, whose digest a second public loader pins for the mydrive
  link above, and assumed for the other four (a mismatch makes `fetch` refuse the file, never accept a
  wrong one). The full archive's digest is the one anomalib pins (``DOWNLOAD_INFO.hashsum`` in
  ``anomalib/data/datamodules/image/mvtecad.py``).
- MTD (Huang et al.). GitHub's ``archive/refs/heads/master.zip`` is regenerated on request and is not
  guaranteed to be byte-stable, and its top folder (and thus its bytes) changes with every new commit.
  We pin instead the archive of commit cc4eb530 and the SHA-256 that NVIDIA's AnomalyGen
  (``prepare_magnetic_tile_defect.py``, 2026) pins for exactly that URL. If GitHub ever re-packs the
  zip, verification fails and `fetch` says so; re-check the content before changing the digest.
- Coffee Leaves (the paper's "Leaves"). The official code of the paper (TArdelean/BlindLCA, README)
  links the Google Drive file 15YHebAGrx1Vhv8-naave-R5o3Uo70jsm of Esgario et al. (github.com/esgario/
  lara2018), ``coffee-datasets.zip``: 278,741,231 bytes, SHA-256 e6fc32d5...9f89 as recorded by two
  independent public projects that downloaded it (BRACOL provenance notes, 2026).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from blindlca.archive import safe_extract
from blindlca.data import GOOD

__all__ = [
    "MVTEC_FULL_ARCHIVE",
    "SOURCES",
    "DatasetSource",
    "RemoteFile",
    "get_source",
    "prepare_category",
]


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable archive: URL, pinned SHA-256, file name under resources/downloads/<dataset>/."""

    url: str
    sha256: str
    name: str


@dataclass(frozen=True)
class DatasetSource:
    """A dataset of the paper: its categories, the archives each needs, manual steps and citation."""

    name: str
    categories: tuple[str, ...]
    files: dict[str, tuple[RemoteFile, ...]]
    manual: str
    citation: str


# --- MVTec AD ---------------------------------------------------------------------------------------

_MYDRIVE = "https://www.mydrive.ch/shares"
_MVTEC_FILES = {
    "carpet": RemoteFile(
        url=f"{_MYDRIVE}/150455/eac7fbce84d93a5094e13f391170eca4/download/420937484-1629959013/carpet.tar.xz",
        sha256="d9dd5064515a20bd75cf24d223c570579141abd72388beef892780b74dbaa85d",
        name="carpet.tar.xz",
    ),
    "grid": RemoteFile(
        url=f"{_MYDRIVE}/150456/bb0b2e3dc804ccb8b4485e01f8e4493b/download/420937487-1629959044/grid.tar.xz",
        sha256="d94a9a651cbfaee22c94d06cf8fa8204a590c872362de0489eb34f1645328de8",
        name="grid.tar.xz",
    ),
    "leather": RemoteFile(
        url=f"{_MYDRIVE}/150458/923030ce14e10a7d147e95d0f8885f6b/download/420937607-1629959262/leather.tar.xz",
        sha256="704ffa48b1dc2fc44824aa50442d9febc399dd92a5d6fd8156f8aa0373d15f24",
        name="leather.tar.xz",
    ),
    "tile": RemoteFile(
        url=f"{_MYDRIVE}/150462/5479f0fdc97bc6fa16eab0cb0cf0109f/download/420938133-1629960456/tile.tar.xz",
        sha256="392228153b96d0db9f179d3f7c2d63e131e907154883b57309fcbf798643173c",
        name="tile.tar.xz",
    ),
    "wood": RemoteFile(
        url=f"{_MYDRIVE}/150465/d5b4115b720cdb54d217e75636e6e374/download/420938383-1629960649/wood.tar.xz",
        sha256="3757297ac2a266072eb4f25a97f805f5b37fd583492b20bd709f310736c1ea47",
        name="wood.tar.xz",
    ),
}

#: The full 15-category archive (5,264,982,680 bytes). Not needed by `SOURCES`; `prepare_category`
#: accepts it in place of a per-category archive and extracts only the requested category.
MVTEC_FULL_ARCHIVE = RemoteFile(
    url=f"{_MYDRIVE}/150996/b52ecdcbf521176e9db9c731f2304b27/download/420938113-1629960298/"
    "mvtec_anomaly_detection.tar.xz",
    sha256="cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d",
    name="mvtec_anomaly_detection.tar.xz",
)

_MVTEC_MANUAL = (
    "MVTec AD is distributed under CC BY-NC-SA 4.0 (non-commercial use) from "
    "https://www.mvtec.com/research-teaching/datasets/mvtec-ad/downloads after accepting that licence, "
    "and its download links change over time. If the automatic download fails: open that page, accept "
    "the licence, download the archive of each texture category you need (carpet.tar.xz, grid.tar.xz, "
    "leather.tar.xz, tile.tar.xz, wood.tar.xz) and place it unchanged as "
    "resources/downloads/mvtec/<category>.tar.xz (it must match the pinned sha256; if MVTec re-packed "
    "it, delete it and use the next option). Or download the full mvtec_anomaly_detection.tar.xz, "
    "extract it anywhere and run with --config dataset=mvtec data_root=<that folder>."
)

# --- MTD ----------------------------------------------------------------------------------------------

_MTD_COMMIT = "cc4eb530b57b9cb7225bf76023873043ffd50655"
_MTD_FILE = RemoteFile(
    url=f"https://github.com/abin24/Magnetic-tile-defect-datasets./archive/{_MTD_COMMIT}.zip",
    sha256="592b050953d1de4ffa538b93b6b91aee7268d8e59b73d4d9c92cfce187d7ce66",
    name=f"Magnetic-tile-defect-datasets-{_MTD_COMMIT[:8]}.zip",
)
# Source folder (each holds Imgs/ with <stem>.jpg images and <stem>.png masks) -> class.
_MTD_CLASSES = {
    "MT_Free": GOOD,
    "MT_Blowhole": "blowhole",
    "MT_Break": "break",
    "MT_Crack": "crack",
    "MT_Fray": "fray",
    "MT_Uneven": "uneven",
}

# --- Coffee Leaves ------------------------------------------------------------------------------------

_LEAVES_DRIVE_ID = "15YHebAGrx1Vhv8-naave-R5o3Uo70jsm"
_LEAVES_FILE = RemoteFile(
    # confirm=t skips Drive's "too large to scan for viruses" page; Drive may still answer with an HTML
    # quota page, which the checksum then rejects (see `manual`).
    url=f"https://drive.usercontent.google.com/download?id={_LEAVES_DRIVE_ID}&export=download&confirm=t",
    sha256="e6fc32d504ae33e667475dec4c4aef710aac65ad12f16a401c706445c46c9f89",
    name="coffee-datasets.zip",
)
# leaf/dataset.csv `predominant_stress` (leaf/legend.txt): 0 healthy, 1 miner, 2 rust, 3 phoma (brown
# leaf spot), 4 cercospora; 5 "undetermined" leaves are left out, as Esgario et al. did.
_LEAVES_CLASSES = {0: GOOD, 1: "miner", 2: "rust", 3: "phoma", 4: "cercospora"}
_LEAVES_UNDETERMINED = 5

_LEAVES_MANUAL = (
    "The Coffee Leaves archive lives on Google Drive, which may refuse scripted downloads (quota or "
    "confirmation pages). Download coffee-datasets.zip (about 279 MB) in a browser from "
    f"https://drive.google.com/file/d/{_LEAVES_DRIVE_ID}/view (linked from "
    "https://github.com/esgario/lara2018) and place it unchanged at "
    f"resources/downloads/leaves/coffee-datasets.zip (sha256 {_LEAVES_FILE.sha256})."
)

SOURCES: dict[str, DatasetSource] = {
    "mvtec": DatasetSource(
        name="mvtec",
        categories=tuple(_MVTEC_FILES),
        files={c: (f,) for c, f in _MVTEC_FILES.items()},
        manual=_MVTEC_MANUAL,
        citation=(
            "P. Bergmann, M. Fauser, D. Sattlegger, C. Steger. MVTec AD - A Comprehensive Real-World Dataset "
            "for Unsupervised Anomaly Detection. CVPR 2019. Licence CC BY-NC-SA 4.0."
        ),
    ),
    "mtd": DatasetSource(
        name="mtd",
        categories=("mtd",),
        files={"mtd": (_MTD_FILE,)},
        manual="",
        citation=(
            "Y. Huang, C. Qiu, K. Yuan. Surface defect saliency of magnetic tile. The Visual Computer 36, "
            "85-96 (2020; online 2018), doi:10.1007/s00371-018-1588-5. "
            "https://github.com/abin24/Magnetic-tile-defect-datasets."
        ),
    ),
    "leaves": DatasetSource(
        name="leaves",
        categories=("leaves",),
        files={"leaves": (_LEAVES_FILE,)},
        manual=_LEAVES_MANUAL,
        citation=(
            "J. G. M. Esgario, R. A. Krohling, J. A. Ventura. Deep learning for classification and severity "
            "estimation of coffee leaf biotic stress. Computers and Electronics in Agriculture 169, 105162 "
            "(2020), doi:10.1016/j.compag.2019.105162. Data: BRACOL, Mendeley Data, "
            "doi:10.17632/yy2k5y8mxg.1 (CC BY 4.0)."
        ),
    ),
}


def get_source(name: str) -> DatasetSource:
    """The registry entry of dataset ``name``; ValueError listing the known names otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; the datasets that can be downloaded are: {', '.join(SOURCES)}. "
            "For any other dataset in MVTec layout pass data_root instead"
        ) from None


# --- conversion helpers -------------------------------------------------------------------------------


def _parts(path: str) -> tuple[str, ...]:
    return PurePosixPath(path).parts


def _write_mask(mask: np.ndarray, path: Path) -> None:
    """Save a boolean (H, W) mask as a 0/255 single-channel PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def _binary_mask(path: Path) -> np.ndarray:
    """(H, W) bool from a grey label mask: 0/255 masks split at 128; 0/1 label images at 0."""
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L"))
    # The midpoint also drops faint anti-aliasing or resampling noise around 0/255 masks.
    return grey > 0 if grey.max(initial=0) <= 1 else grey >= 128


def _symptom_mask(path: Path) -> np.ndarray:
    """(H, W) bool of the symptom pixels of a Coffee Leaves annotation.

    segmentation/annotations-info.txt: background [0,0,0], leaf [0,176,0], symptom [255,0,0] (RGB).
    """
    with Image.open(path) as im:
        if im.getbands() not in (("R", "G", "B"), ("R", "G", "B", "A"), ("P",)):
            raise ValueError(
                f"annotation {path} has mode {im.mode}; expected an RGB colour mask (symptom = red "
                "[255,0,0], leaf = [0,176,0]). Is the archive the original coffee-datasets.zip?"
            )
        rgb = np.asarray(im.convert("RGB")).astype(np.int16)
    return (rgb[..., 0] >= 128) & (rgb[..., 1] < 128) & (rgb[..., 2] < 128)


def _shallowest(paths: list[Path]) -> Path | None:
    return min(paths, key=lambda p: (len(p.parts), str(p)), default=None)


def _find_dir(roots: Sequence[Path], name: str, *, has: str) -> Path | None:
    """The shallowest folder called ``name`` under ``roots`` that holds a sub-folder ``has``."""
    hits = [p for r in roots for p in [r / name, *r.rglob(name)] if (p / has).is_dir()]
    return _shallowest(hits)


def _describe(archives: Sequence[Path]) -> str:
    return ", ".join(str(a) for a in archives)


def _build_mvtec(category: str, roots: Sequence[Path], archives: Sequence[Path], out: Path) -> None:
    # MVTec archives are already in the target layout: move the category folder as it is (train/good
    # included; the workflow reads only test/ and ground_truth/).
    found = _find_dir(roots, category, has="test")
    if found is None:
        raise ValueError(
            f"no {category}/test folder in {_describe(archives)}; expected MVTec AD's {category}.tar.xz "
            "or the full mvtec_anomaly_detection.tar.xz"
        )
    os.replace(found, out)


def _build_mtd(roots: Sequence[Path], archives: Sequence[Path], out: Path) -> None:
    # Images keep their JPEG bytes (moved, not re-encoded: no second lossy step); masks of the same stem
    # become <stem>_mask.png, binarised to 0/255. MT_Free's all-black masks are dropped (`good` has none).
    # A defect image without a mask is kept without one (data.index_category then records no mask).
    for folder, cls in _MTD_CLASSES.items():
        source = _find_dir(roots, folder, has="Imgs")
        if source is None:
            raise ValueError(
                f"no {folder}/Imgs folder in {_describe(archives)}; expected the archive of "
                "github.com/abin24/Magnetic-tile-defect-datasets. (MT_Blowhole, MT_Break, MT_Crack, "
                "MT_Fray, MT_Free, MT_Uneven)"
            )
        files = sorted(p for p in (source / "Imgs").iterdir() if p.is_file())
        images = [p for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
        masks = {p.stem: p for p in files if p.suffix.lower() == ".png"}
        if not images:
            raise ValueError(
                f"{source / 'Imgs'} holds no .jpg image; the archive {_describe(archives)} is incomplete"
            )
        test_dir = out / "test" / cls
        test_dir.mkdir(parents=True)
        for image in images:
            if cls != GOOD and image.stem in masks:
                _write_mask(
                    _binary_mask(masks[image.stem]), out / "ground_truth" / cls / f"{image.stem}_mask.png"
                )
            os.replace(image, test_dir / image.name)


def _read_stress(path: Path) -> dict[str, int]:
    """id -> predominant_stress from Coffee Leaves' leaf/dataset.csv."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = {(k or "").strip() for k in reader.fieldnames or ()}
        if not {"id", "predominant_stress"} <= fields:
            raise ValueError(
                f"{path} lacks the columns id and predominant_stress; is it Coffee Leaves' dataset.csv?"
            )
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    try:
        return {row["id"]: int(row["predominant_stress"]) for row in rows if row["id"]}
    except ValueError as exc:
        raise ValueError(f"{path}: predominant_stress is not an integer ({exc})") from exc


def _build_leaves(roots: Sequence[Path], archives: Sequence[Path], out: Path) -> None:
    # The paper's authors prepared their Leaves folder ("group_all_uniform" in their code) by hand and
    # did not publish the steps. Their loader pairs every defect image with a mask, so we use the part of
    # Coffee Leaves that has pixel masks: segmentation/ (train, val and test merged: the setting is
    # blind), with each leaf's class from leaf/dataset.csv. Images keep their JPEG bytes; the symptom
    # pixels (red) of the colour annotation become the 0/255 mask; leaf and background are 0. A defect
    # image without an annotation is kept without a mask, like MTD's.
    seg = _find_dir(roots, "segmentation", has="images")
    table = seg.parent / "leaf" / "dataset.csv" if seg is not None else None
    if seg is None or table is None or not table.is_file():
        raise ValueError(
            f"no segmentation/images folder with leaf/dataset.csv beside it in {_describe(archives)}; "
            "expected coffee-datasets.zip of Esgario et al. (coffee-datasets/{leaf,segmentation,symptom})"
        )
    stress = _read_stress(table)
    masks = {p.name.removesuffix("_mask.png"): p for p in (seg / "annotations").rglob("*_mask.png")}
    images = sorted(
        (
            p
            for p in (seg / "images").rglob("*")
            if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")
        ),
        key=lambda p: (p.stem, str(p)),
    )
    seen: dict[str, Path] = {}
    for image in images:
        leaf = image.stem
        if leaf in seen:
            raise ValueError(f"leaf id {leaf} appears twice: {seen[leaf]} and {image}")
        seen[leaf] = image
        if leaf not in stress:
            raise ValueError(f"{image}: leaf id {leaf} is not listed in {table}")
        code = stress[leaf]
        if code == _LEAVES_UNDETERMINED:
            continue
        if code not in _LEAVES_CLASSES:
            raise ValueError(f"{table}: leaf {leaf} has predominant_stress {code}; known codes are 0-5")
        cls = _LEAVES_CLASSES[code]
        test_dir = out / "test" / cls
        test_dir.mkdir(parents=True, exist_ok=True)
        if cls != GOOD and leaf in masks:
            _write_mask(_symptom_mask(masks[leaf]), out / "ground_truth" / cls / f"{leaf}_mask.png")
        os.replace(image, test_dir / image.name)
    if not (out / "test").is_dir():
        raise ValueError(f"no usable image under {seg / 'images'} in {_describe(archives)}")


def _members(name: str, category: str) -> Callable[[str], bool]:
    """Which archive entries a category needs (the full MVTec archive holds 15 categories)."""
    if name == "mvtec":
        return lambda path: category in _parts(path)
    if name == "mtd":
        return lambda path: any(part.startswith("MT_") for part in _parts(path))
    # Coffee Leaves: skip leaf/images and symptom/ (most of the archive), keep the masks and the labels.
    return lambda path: "segmentation" in _parts(path) or _parts(path)[-2:] == ("leaf", "dataset.csv")


def prepare_category(
    name: str,
    category: str,
    archives: Sequence[str | os.PathLike],
    dest: str | os.PathLike,
) -> Path:
    """Build ``dest`` (= ``<root>/<category>``) in MVTec layout from a dataset's downloaded archive(s).

    Everything is extracted (with `safe_extract`, only the entries the category needs) and converted in a
    temporary sibling of ``dest`` that is renamed onto ``dest`` at the end: a failure or a killed run
    leaves no ``dest``.

    Args:
        name: dataset in `SOURCES` ("mvtec", "mtd", "leaves").
        category: one of that dataset's categories.
        archives: the downloaded file(s) of `SOURCES[name].files[category]`; for mvtec also the full
            mvtec_anomaly_detection.tar.xz.
        dest: the category folder to create; must not exist or be empty.
    Returns:
        ``dest`` as a Path.
    Raises:
        ValueError: unknown dataset or category, no archive given, or an archive without the expected
            content (`blindlca.archive.UnsafeArchiveError` for unsafe entries).
        FileNotFoundError: an archive does not exist.
        FileExistsError: ``dest`` exists and is not an empty folder.
    """
    source = get_source(name)
    if category not in source.categories:
        raise ValueError(
            f"dataset {name!r} has no category {category!r}; "
            f"its categories are: {', '.join(source.categories)}"
        )
    paths = [Path(a) for a in archives]
    if not paths:
        raise ValueError(
            f"no archive given for {name}/{category}; expected {[f.name for f in source.files[category]]}"
        )
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"archive {path} for {name}/{category} does not exist; download it first"
                + (f". {source.manual}" if source.manual else "")
            )
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(
            f"{dest} already exists and is not an empty folder; delete it to prepare it again"
        )

    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".preparing", dir=dest.parent))
    try:
        keep = _members(name, category)
        roots = [safe_extract(path, work / f"archive{i}", members=keep) for i, path in enumerate(paths)]
        out = work / "out"
        if name == "mvtec":
            _build_mvtec(category, roots, paths, out)
        else:
            out.mkdir()
            (_build_mtd if name == "mtd" else _build_leaves)(roots, paths, out)
        if dest.exists():
            dest.rmdir()
        os.replace(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest
