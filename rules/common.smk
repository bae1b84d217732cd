# Helpers only: paths, input functions and params built from the validated config.
import hashlib
import os
import re
from pathlib import Path

from blindlca.data import list_categories
from blindlca.methods import ALPHA_SOURCES, get_method

# Scripts import this checkout's library, also inside conda envs and cluster jobs where it is not installed.
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p
    )
)

DATASET = config["dataset"]
SYNTHETIC = DATASET == "synthetic"
DATA_ROOT = config["data_root"] or f"resources/datasets/{DATASET}"
WEIGHTS_DIR = "resources/weights"


def categories():
    if config["categories"]:
        return list(config["categories"])
    if SYNTHETIC:
        return list(config["synthetic"]["families"])
    return list_categories(DATA_ROOT)


def res(*parts):
    """results/{dataset}/<parts...>: every output lives under the dataset's folder."""
    return os.path.join("results", "{dataset}", *parts)


def log(stage):
    return res("logs", stage, "{category}.log")


def bench(stage):
    return res("benchmarks", stage, "{category}.tsv")


def group(name, *keys):
    """A config group (or some of its keys) as a sorted dict, passed to a step as keyword arguments."""
    values = config[name]
    return {k: values[k] for k in sorted(keys or values)}


def code_version(*modules):
    """Hash of the library modules a step runs: Snakemake watches the script, not what it imports."""
    h = hashlib.sha256()
    for m in ("workflow", "runlog", "io", *modules):
        h.update(Path(workflow.basedir, "blindlca", f"{m}.py").read_bytes())
    return h.hexdigest()[:16]


def weights_file():
    """The backbone state dict a run reads, or None for random weights."""
    choice = config["backbone_weights"]
    if choice == "random":
        return None
    if choice == "imagenet":
        return f"{WEIGHTS_DIR}/{Path(config['backbone']['weights_url']).name}"
    return choice


def alpha_source(wildcards):
    return get_method(wildcards.method).alpha


def alpha_path(wildcards):
    return res("alpha", alpha_source(wildcards), "{category}.npy").format(**wildcards)


def alpha_input(wildcards):
    """Source tensor of an anomaly-map kind: VAE residuals or backbone features."""
    name = "residuals" if wildcards.source.endswith("residuals") else "features"
    return res(name, "{category}.npy").format(**wildcards)


def descriptor_inputs(wildcards):
    method = get_method(wildcards.method)
    inputs = {"features": res("features", "{category}.npy").format(**wildcards)}
    if method.alpha is not None:
        inputs["alpha"] = alpha_path(wildcards)
    if method.descriptor == "head":
        inputs["head"] = res("{method}", "head", "{category}.pt").format(**wildcards)
    return inputs


def final_outputs():
    out = []
    for m in config["methods"]:
        out.append(res(m, "metrics.json"))
        if get_method(m).alpha is not None:
            out += [res(m, "anomaly_maps", c) for c in categories()]
    return [p.format(dataset=DATASET) for p in out]
