"""Real snakemake runs of the whole workflow on a tiny synthetic config."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml
from http_server import folder_handler, serving
from PIL import Image
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, roc_auc_score

from blindlca.datasets import SOURCES

pytestmark = pytest.mark.workflow

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
# Two categories of 10 images (4 good, 3 scratch, 3 hole) at 128 px; VAE and head shrunk for speed.
TINY = {
    "backbone_weights": "random",
    "methods": ["ours", "mean_pool"],
    "synthetic": {
        "families": ["woven", "tiled"],
        "defects": ["scratch", "hole"],
        "image_size": 128,
        "n_good": 4,
        "n_per_defect": 3,
    },
    "backbone": {"image_size": 128},
    "vae": {"samples": 40, "hidden": 64, "latent": 16},
    "contrastive": {"epochs": 1, "d_out": 32},
    "clustering": {"compare": ["kmeans"]},
}
CATEGORIES = ("woven", "tiled")


def snakemake(workdir: Path, *args: str, config: dict | None = None, check: bool = True):
    cfg = workdir / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(config or TINY))
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(cfg), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("run")
    snakemake(workdir)
    return workdir


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def best_matching_f1(classes: list[str], clusters: list[int]) -> float:
    """Independent micro F1: the best of all one-to-one cluster -> class assignments (K = classes)."""
    names, ks = sorted(set(classes)), sorted(set(clusters))
    best = 0
    for perm in itertools.permutations(names, len(ks)):
        mapping = dict(zip(ks, perm, strict=True))
        best = max(best, sum(mapping[k] == c for k, c in zip(clusters, classes, strict=True)))
    return best / len(classes)


def test_metrics_json_matches_clusters(run_dir):
    for method in ("ours", "mean_pool"):
        metrics = json.loads((run_dir / f"results/synthetic/{method}/metrics.json").read_text())
        assert set(metrics) == {*CATEGORIES, "mean"}
        for cat in CATEGORIES:
            rows = read_rows(run_dir / f"results/synthetic/{method}/clusters/{cat}.csv")
            classes = [r["class"] for r in rows]
            clusters = [int(r["cluster"]) for r in rows]
            assert sorted(set(classes)) == ["good", "hole", "scratch"]
            assert [r["image"] for r in rows] == sorted(r["image"] for r in rows)
            m = metrics[cat]
            assert (m["n_images"], m["n_classes"], m["k"]) == (10, 3, 3)
            assert m["nmi"] == pytest.approx(normalized_mutual_info_score(classes, clusters), abs=1e-12)
            assert m["ari"] == pytest.approx(adjusted_rand_score(classes, clusters), abs=1e-12)
            assert m["f1"] == pytest.approx(best_matching_f1(classes, clusters), abs=1e-12)
            assert m["backbone_weights"] == "random" and "not ImageNet" in m["warning"]
            assert m["clustering"] == "ward"
            kmeans = [int(r["cluster_kmeans"]) for r in rows]
            assert m["compare"]["kmeans"]["nmi"] == pytest.approx(
                normalized_mutual_info_score(classes, kmeans)
            )
            has_maps = method == "ours"
            assert all((k in m) == has_maps for k in ("pixel_auroc", "au_pro", "image_auroc"))
        for key in ("nmi", "ari", "f1"):
            assert metrics["mean"][key] == pytest.approx(
                np.mean([metrics[c][key] for c in CATEGORIES]), abs=1e-12
            )


def test_localization_metrics_match_maps_and_masks(run_dir):
    res = run_dir / "results/synthetic"
    alpha = torch.from_numpy(np.load(res / "alpha/fca-residuals/tiled.npy"))
    maps = torch.nn.functional.interpolate(alpha[:, None], size=(128, 128), mode="bilinear")[:, 0].numpy()
    root = run_dir / "resources/datasets/synthetic"
    index = read_rows(res / "images/tiled.csv")
    masks = np.stack(
        [
            np.asarray(Image.open(root / r["mask"])) > 0 if r["mask"] else np.zeros((128, 128), bool)
            for r in index
        ]
    )
    assert [bool(r["mask"]) for r in index] == [r["class"] != "good" for r in index]
    m = json.loads((res / "ours/metrics/tiled.json").read_text())
    assert m["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-9)
    labels = [r["class"] != "good" for r in index]
    assert m["image_auroc"] == pytest.approx(
        roc_auc_score(labels, maps.reshape(len(maps), -1).max(1)), abs=1e-9
    )
    assert 0.0 <= m["au_pro"] <= 1.0


def test_summary_table(run_dir):
    with open(run_dir / "results/summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = {(r["dataset"], r["method"], r["clustering"], r["category"]) for r in rows}
    assert keys == {
        ("synthetic", m, c, cat)
        for m in ("ours", "mean_pool")
        for c in ("ward", "kmeans")
        for cat in (*CATEGORIES, "mean")
    }
    metrics = json.loads((run_dir / "results/synthetic/ours/metrics.json").read_text())
    row = next(r for r in rows if (r["method"], r["clustering"], r["category"]) == ("ours", "ward", "tiled"))
    assert float(row["nmi"]) == metrics["tiled"]["nmi"] and float(row["au_pro"]) == metrics["tiled"]["au_pro"]
    pool = next(
        r for r in rows if (r["method"], r["clustering"], r["category"]) == ("mean_pool", "ward", "mean")
    )
    assert pool["au_pro"] == ""  # no anomaly maps, no localization
    assert "| synthetic | mean | ours | ward |" in (run_dir / "results/summary.md").read_text().replace(
        "**", ""
    )


def test_paper_grid_plans_everything_without_data(tmp_path):
    plan = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(REPO / "config/paper.yaml"), "-n"],
        capture_output=True,
        text=True,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = job_counts(plan.stdout)
    # 5 MVTec texture archives + MTD + Coffee Leaves, the ImageNet weights, 7 categories in all.
    assert counts["download_dataset_file"] == 7 and counts["download_weights"] == 1
    assert counts["prepare_dataset"] == 7 and counts["train_vae"] == 7
    # 7 methods x 7 categories of descriptors; 3 anomaly-map sources x 7 categories.
    assert counts["compute_descriptors"] == 49 and counts["compute_anomaly_maps"] == 21
    assert counts["check_images"] == 3 and counts["index_images"] == 7 and counts["summarize"] == 1


def test_tampered_dataset_archive_is_refused(tmp_path):
    served = tmp_path / "mirror" / "mtd"
    served.mkdir(parents=True)
    name = SOURCES["mtd"].files["mtd"][0].name
    (served / name).write_bytes(b"not the archive")
    with serving(folder_handler(tmp_path / "mirror")) as mirror:
        config = {**TINY, "dataset": "mtd", "download_mirror": mirror}
        work = tmp_path / "work"
        work.mkdir()
        proc = snakemake(work, f"resources/downloads/mtd/{name}", config=config, check=False)
        assert proc.returncode != 0
        assert not (work / f"resources/downloads/mtd/{name}").exists()
        assert "sha256" in (work / f"resources/downloads/mtd/{name}.log").read_text().lower()


def test_intermediate_shapes(run_dir):
    res = run_dir / "results/synthetic"
    feats = np.load(res / "features/woven.npy", mmap_mode="r")
    assert feats.shape == (10, 512, 16, 16) and feats.dtype == np.float32  # 128 px / stride 8
    assert np.load(res / "residuals/woven.npy", mmap_mode="r").shape == (10, 512, 16, 16)
    alpha = np.load(res / "alpha/fca-residuals/woven.npy")
    assert alpha.shape == (10, 16, 16)
    # Border of 5 at 64 scales to round_half_up(5 * 16 / 64) = round_half_up(1.25) = 1 pixel.
    assert np.all(alpha[:, 0, :] == 0) and np.all(alpha[:, :, -1] == 0) and np.all(alpha[:, 1:-1, 1:-1] > 0)
    assert np.load(res / "ours/descriptors/woven.npy").shape == (10, 32)  # d_out = 32
    assert np.load(res / "mean_pool/descriptors/woven.npy").shape == (10, 512)


def test_anomaly_map_files(run_dir):
    index = read_rows(run_dir / "results/synthetic/images/tiled.csv")
    folder = run_dir / "results/synthetic/ours/anomaly_maps/tiled"
    # Snakemake marks directory outputs with a hidden .snakemake_timestamp file.
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("[!.]*") if p.is_file())
    expected = sorted(
        f"{r['class']}/{Path(r['image']).stem}{ext}" for r in index for ext in (".tiff", ".png")
    )
    assert written == expected
    tiff = tifffile.imread(folder / "hole/000.tiff")
    assert tiff.dtype == np.float32 and tiff.shape == (128, 128)
    with Image.open(folder / "hole/000.png") as im:
        assert im.mode == "RGB" and im.size == (128, 128)
    assert not (run_dir / "results/synthetic/ours/anomaly_maps/tiled.tmp").exists()


def test_logs_and_random_weights_warning(run_dir):
    log = (run_dir / "results/synthetic/logs/extract_features/woven.log").read_text()
    assert "RANDOM" in log and "not ImageNet" in log
    vae_log = (run_dir / "results/synthetic/logs/train_vae/woven.log").read_text()
    assert "VAE: 10 images, 4 epochs" in vae_log  # ceil(40 / 10) = 4
    assert (run_dir / "results/synthetic/benchmarks/train_vae/woven.tsv").is_file()


def test_complete_run_plans_nothing(run_dir):
    proc = snakemake(run_dir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The per-rule job counts of a dry run's "Job stats" table."""
    rows = re.findall(r"^(\w+)\s+(\d+)$", dry_run_output, flags=re.M)
    return {rule: int(n) for rule, n in rows if rule != "total"}


def planned(workdir: Path, config: dict, *args: str) -> dict[str, int]:
    """Jobs a dry run would execute, counted per rule."""
    return job_counts(snakemake(workdir, "-n", *args, config=config).stdout)


def test_changing_tau_reruns_only_what_uses_it(run_dir):
    jobs = planned(run_dir, {**TINY, "descriptor": {"tau": 0.004}})
    # ours: the head (its neighbours come from tau-weighted descriptors), descriptors, clusters and metrics
    # of both categories; mean_pool does not use tau; features, VAE, residuals and maps stay.
    assert jobs == {
        "train_head": 2,
        "compute_descriptors": 2,
        "cluster_images": 2,
        "evaluate_clusters": 2,
        "aggregate_metrics": 1,
        "plot_category": 2,
        "summarize": 1,
        "all": 1,
    }


def test_changing_patch_size_reruns_maps_and_later(run_dir):
    jobs = planned(run_dir, {**TINY, "fca": {"patch_size": 5}})
    assert jobs == {
        "compute_anomaly_maps": 2,
        "export_anomaly_maps": 2,
        "evaluate_localization": 2,
        "train_head": 2,
        "compute_descriptors": 2,
        "cluster_images": 2,
        "evaluate_clusters": 2,
        "aggregate_metrics": 1,
        "plot_category": 2,
        "summarize": 1,
        "all": 1,
    }


def test_library_change_reruns_the_rules_that_import_it(run_dir, tmp_path):
    copy = tmp_path / "workflow"
    copy.mkdir()
    for name in ("Snakefile", "rules", "scripts", "config", "envs", "profiles", "report", "blindlca"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, copy / name)
    sm = [sys.executable, "-m", "snakemake", "-s", str(copy / "Snakefile"), "--directory", str(run_dir)]
    cfg = run_dir / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(TINY))

    def jobs() -> dict[str, int]:
        cmd = [*sm, "--configfile", str(cfg), "-n"]
        return job_counts(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)

    assert jobs() == {}  # the copy is the same code: nothing to do
    with open(copy / "blindlca/clustering.py", "a") as fh:
        fh.write("\n# a change\n")
    assert jobs() == {
        "cluster_images": 4,
        "evaluate_clusters": 4,
        "aggregate_metrics": 2,
        "plot_category": 4,
        "summarize": 1,
        "all": 1,
    }


def test_same_seed_gives_identical_results_also_without_gpu(run_dir, tmp_path):
    # --resources gpu=0: the GPU rules ask for no GPU and run on the CPU instead of waiting.
    snakemake(tmp_path, "--resources", "gpu=0")
    for method in ("ours", "mean_pool"):
        for cat in CATEGORIES:
            rel = f"results/synthetic/{method}/clusters/{cat}.csv"
            assert (tmp_path / rel).read_bytes() == (run_dir / rel).read_bytes()
        rel = f"results/synthetic/{method}/metrics.json"
        assert (tmp_path / rel).read_bytes() == (run_dir / rel).read_bytes()


def test_any_mvtec_folder_is_a_dataset(run_dir, tmp_path):
    root = run_dir / "resources/datasets/synthetic"
    config = {**TINY, "dataset": "mine", "data_root": str(root)}
    out = snakemake(tmp_path, "-n", "--quiet", "rules", config=config).stdout
    assert "make_synthetic" not in out and "extract_features" in out
    plan = snakemake(tmp_path, "-n", "--printshellcmds", config=config).stdout
    assert "results/mine/ours/metrics.json" in plan
    for cat in CATEGORIES:
        assert f"results/mine/features/{cat}.npy" in plan
    one = snakemake(tmp_path, "-n", config={**config, "categories": ["tiled"]}).stdout
    assert "results/mine/features/tiled.npy" in one and "results/mine/features/woven.npy" not in one


def test_config_errors_name_the_key(tmp_path):
    def error(config):
        proc = snakemake(tmp_path, "-n", config={**TINY, **config}, check=False)
        assert proc.returncode != 0
        return proc.stdout + proc.stderr

    out = error({"vae": {"lr": "fast"}})
    assert "'fast' is not of type 'number'" in out and "On instance['vae']['lr']" in out
    out = error({"fca": {"patchsize": 7}})
    assert "Additional properties are not allowed ('patchsize' was unexpected)" in out
    assert "On instance['fca']" in out
    out = error({"on_bad_image": "ignore"})
    assert "'ignore' is not one of ['error', 'skip']" in out and "On instance['on_bad_image']" in out


def test_weights_download_rule(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    payload = os.urandom(4096)
    (served / "fake_weights.pth").write_bytes(payload)
    with serving(folder_handler(served)) as base:
        url = f"{base}/fake_weights.pth"
        digest = hashlib.sha256(payload).hexdigest()
        work = tmp_path / "work"
        work.mkdir()
        ok = {**TINY, "backbone": {"weights_url": url, "weights_sha256": digest}}
        snakemake(work, "resources/weights/fake_weights.pth", config=ok)
        assert (work / "resources/weights/fake_weights.pth").read_bytes() == payload
        tampered = {**TINY, "backbone": {"weights_url": url, "weights_sha256": "0" * 64}}
        (work / "resources/weights/fake_weights.pth").unlink()
        bad = snakemake(work, "resources/weights/fake_weights.pth", config=tampered, check=False)
        assert bad.returncode != 0 and not (work / "resources/weights/fake_weights.pth").exists()


def test_offline_weights_error_names_file_and_alternative(tmp_path):
    config = {
        **TINY,
        "backbone_weights": "imagenet",
        "backbone": {"weights_url": "http://127.0.0.1:9/wide_resnet50_2-95faca4d.pth"},
    }
    proc = snakemake(tmp_path, "resources/weights/wide_resnet50_2-95faca4d.pth", config=config, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "resources/weights/wide_resnet50_2-95faca4d.pth.log").read_text()
    assert "resources/weights/wide_resnet50_2-95faca4d.pth" in log
    assert "backbone_weights=random" in log


def test_report_lists_the_figures(run_dir):
    figures = run_dir / "results/synthetic/ours/figures/tiled"
    assert sorted(p.name for p in figures.glob("*.png")) == [
        "contingency.png",
        "embedding.png",
        "gallery.png",
        "montage.png",
    ]
    assert sorted(p.name for p in (run_dir / "results/synthetic/mean_pool/figures/tiled").glob("*.png")) == [
        "contingency.png",
        "embedding.png",
        "montage.png",  # no anomaly maps, no gallery
    ]
    snakemake(run_dir, "--report", str(run_dir / "report.html"))
    html = (run_dir / "report.html").read_text()
    for name in (
        "montage.png",
        "embedding.png",
        "contingency.png",
        "gallery.png",
        "summary.csv",
        "skipped.csv",
    ):
        assert name in html


def test_plain_folder_of_images_with_automatic_k(run_dir, tmp_path):
    # Unlabeled images, in nested folders, two categories; no MVTec structure, no masks, no classes.
    source = run_dir / "resources/datasets/synthetic"
    plain = tmp_path / "plain"
    for cat in CATEGORIES:
        for i, png in enumerate(sorted((source / cat / "test").rglob("*.png"))):
            dest = plain / f"lot_{cat}" / ("a" if i % 2 else "b") / f"img{i:02d}.png"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(png, dest)
    config = {
        **TINY,
        "dataset": "plain",
        "data_root": str(plain),
        "methods": ["ours"],
        "clustering": {"n_clusters": "auto"},
    }
    work = tmp_path / "work"
    work.mkdir()
    snakemake(work, config=config)
    res = work / "results/plain/ours"
    rows = read_rows(res / "clusters/lot_woven.csv")
    assert len(rows) == 10 and all(r["class"] == "" for r in rows)
    metrics = json.loads((res / "metrics.json").read_text())
    m = metrics["lot_woven"]
    assert "nmi" not in m and "pixel_auroc" not in m and 2 <= m["k"] <= 9
    assert sum(m["cluster_sizes"]) == 10 and len(m["cluster_sizes"]) == m["k"]
    assert (res / "anomaly_maps/lot_woven/a/img01.tiff").is_file()
    assert sorted(p.name for p in (res / "figures/lot_woven").glob("*.png")) == [
        "embedding.png",
        "gallery.png",
        "k_selection.png",
        "montage.png",
    ]
    labels_config = {**config, "clustering": {"n_clusters": "labels"}}
    fail = snakemake(tmp_path / "work", config=labels_config, check=False)
    # Stopped by the dataset check, before anything is recomputed: one line per category.
    assert fail.returncode != 0
    for cat in CATEGORIES:
        assert (
            f"category 'lot_{cat}' is a plain folder without classes, but clustering.n_clusters is 'labels'; "
            "set clustering.n_clusters to auto or to a number"
        ) in fail.stderr


def test_killed_run_reruns_to_the_same_results(run_dir, tmp_path):
    # A node dying: SIGKILL snakemake and every job process at once, twice. Kill 1 hits extract_features
    # while it writes its array (on fast hardware that window can pass unseen; then it hits as kill 2
    # does); kill 2 hits right after the job renamed its output into place, before snakemake recorded
    # the job as done. Then `--unlock` (the lock is stale) and a plain rerun finish the run.
    import contextlib
    import signal
    import time

    cfg = tmp_path / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    cmd = [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "2"]
    features = tmp_path / "results/synthetic/features"

    def kill_when(ready):
        """Run snakemake in its own process group; SIGKILL the whole group once `ready()` returns a path."""
        with open(tmp_path / "killed.log", "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                assert proc.poll() is None, (
                    "the run ended before the kill point:\n" + (tmp_path / "killed.log").read_text()[-4000:]
                )
                if ready():
                    os.killpg(proc.pid, signal.SIGSTOP)  # freeze, look again: assert what the kill leaves
                    if found := ready():
                        return found
                    os.killpg(proc.pid, signal.SIGCONT)
                time.sleep(0.002)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def assert_nothing_trusted(category):
        """Every output left is whole, and snakemake will make the killed job's output again."""
        for path in (tmp_path / "results").rglob("[!.]*"):
            if path.suffix == ".npy":
                np.load(path, mmap_mode="r")  # a short file cannot be mapped
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".pt":
                torch.load(path, weights_only=True)
        # A complete file of an unfinished job counts as incomplete; profiles/default sets rerun-incomplete.
        plan = snakemake(tmp_path, "-n").stdout
        assert f"output: results/synthetic/features/{category}.npy" in plan

    def stamp(path):
        with contextlib.suppress(FileNotFoundError):
            return path.stat().st_ino, path.stat().st_mtime_ns

    found = kill_when(lambda: next(features.glob(".*.npy"), None) or next(features.glob("[!.]*.npy"), None))
    category = found.name.lstrip(".").split(".")[0]  # .{category}.npy.XXXXXXXX.npy or {category}.npy
    final = features / f"{category}.npy"
    if found != final:  # killed mid-write: the array is only in a hidden temporary
        assert found.exists() and not final.exists()
    assert_nothing_trusted(category)
    locked = snakemake(tmp_path, check=False)
    assert locked.returncode != 0 and "Directory cannot be locked" in locked.stdout + locked.stderr
    snakemake(tmp_path, "--unlock")

    before = stamp(final)
    kill_when(lambda: stamp(final) not in (None, before) and final)
    assert_nothing_trusted(category)
    snakemake(tmp_path, "--unlock")

    snakemake(tmp_path)
    assert [p for p in (tmp_path / "results").rglob(".*") if p.name != ".snakemake_timestamp"] == []
    for method in ("ours", "mean_pool"):
        for rel in (f"{method}/metrics.json", *(f"{method}/clusters/{cat}.csv" for cat in CATEGORIES)):
            assert (tmp_path / "results/synthetic" / rel).read_bytes() == (
                run_dir / "results/synthetic" / rel
            ).read_bytes()
