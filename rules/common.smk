# Helpers only: the datasets, paths and params built from the validated config (inputs.smk: input functions).
import hashlib
import os
import re
from pathlib import Path

from blindlca.checks import min_image_side
from blindlca.data import (
    CATEGORY_NAME,
    check_category_names,
    folder_fingerprint,
    list_categories,
)
from blindlca.datasets import SOURCES
from blindlca.methods import ALPHA_SOURCES, get_method

# Scripts import this checkout's library, also inside conda envs and cluster jobs where it is not installed.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)

DATASETS = (
    config["dataset"] if isinstance(config["dataset"], list) else [config["dataset"]]
)
if len(DATASETS) > 1 and (config["data_root"] or config["categories"]):
    raise ValueError(
        f"data_root and categories apply to one dataset, but dataset lists {DATASETS}; "
        "run the datasets one at a time or leave data_root and categories unset"
    )
WEIGHTS_DIR = "resources/weights"


def data_root(dataset):
    """Folder in MVTec layout: data_root if given, else where the dataset is generated or prepared."""
    return config["data_root"] or f"resources/datasets/{dataset}"


def is_downloaded(dataset):
    """A dataset of the registry (mvtec, mtd, leaves) that the workflow downloads and prepares."""
    return dataset in SOURCES and not config["data_root"]


def categories(dataset):
    if config["categories"]:
        chosen = list(config["categories"])
        root = config["data_root"]
        missing = [
            c for c in chosen if root and not os.path.isdir(os.path.join(root, c))
        ]
        if missing:
            raise ValueError(
                f"categories {missing} are not folders under data_root {root!r}; "
                f"it holds {list_categories(root) if os.path.isdir(root) else 'nothing (no such folder)'}"
            )
        return chosen
    if dataset == "synthetic":
        return list(config["synthetic"]["families"])
    if is_downloaded(dataset):
        return list(SOURCES[dataset].categories)
    root = data_root(dataset)
    if not os.path.isdir(root):
        raise ValueError(
            f"dataset {dataset!r}: folder {root!r} does not exist. Pass data_root=PATH (MVTec layout: "
            f"PATH/<category>/test/<class>/<image>), or use one of: synthetic, {', '.join(SOURCES)}"
        )
    found = list_categories(root)
    check_category_names(found, root)
    return found


def user_folder_contents(wildcards):
    """Fingerprint of a user's category folder, so that an image fixed in place reruns its category.
    Folders the workflow makes itself (synthetic, downloaded) change only through their rules.
    """
    if wildcards.dataset == "synthetic" or is_downloaded(wildcards.dataset):
        return ""
    return folder_fingerprint(f"{data_root(wildcards.dataset)}/{wildcards.category}")


def res(*parts):
    """results/{dataset}/<parts...>: every output lives under the dataset's folder."""
    return os.path.join("results", "{dataset}", *parts)


def log(stage):
    return res("logs", stage, "{category}.log")


def bench(stage):
    return res("benchmarks", stage, "{category}.tsv")


def gpus():
    """One GPU per GPU job; none when the run offers none (`--resources gpu=0`): the job then runs on
    the CPU instead of waiting for a GPU that never comes."""
    offered = workflow.global_resources
    if "gpu" not in list(offered):
        return 1
    value = getattr(
        offered["gpu"], "value", offered["gpu"]
    )  # a Resource in Snakemake 9, an int before
    return 1 if value is None else min(1, int(value))


def group(name, *keys):
    """A config group (or some of its keys) as a sorted dict, passed to a step as keyword arguments."""
    values = config[name]
    return {k: values[k] for k in sorted(keys or values)}


# Library modules each kind of descriptor runs (besides io/workflow): their hash triggers reruns.
DESCRIPTOR_MODULES = {
    "head": ("descriptors", "contrastive", "filters", "features", "device"),
    "backbone": ("descriptors", "filters", "device"),
    "mean": ("descriptors", "device"),
    "anomaly_clustering": ("anomaly_clustering", "device"),
}


def method_group(wildcards, name):
    """A config group if the method's descriptor uses it, else {}: a value a job does not use must not
    trigger its rerun (e.g. descriptor.tau for mean_pool)."""
    uses = {
        "descriptor": ("head", "backbone"),
        "anomaly_clustering": ("anomaly_clustering",),
    }
    return group(name) if get_method(wildcards.method).descriptor in uses[name] else {}


def code_version(*modules):
    """Hash of the library modules a step runs: Snakemake watches the script, not what it imports."""
    h = hashlib.sha256()
    lib = Path(workflow.basedir, "blindlca")
    for m in ("workflow", "runlog", "errors", "io", *modules):
        files = (
            [lib / f"{m}.py"]
            if (lib / f"{m}.py").is_file()
            else sorted((lib / m).glob("*.py"))
        )
        if not files:
            raise ValueError(f"code_version: no module blindlca.{m}")
        for f in files:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def weights_file():
    """The backbone state dict a run reads, or None for random weights."""
    choice = config["backbone_weights"]
    if choice == "random":
        return None
    if choice == "imagenet":
        return f"{WEIGHTS_DIR}/{Path(config['backbone']['weights_url']).name}"
    return choice
