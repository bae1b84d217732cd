# blindlca: blind localization and clustering of anomalies in textures (Ardelean & Weyrich, CVPRW 2024).
# DAG: dataset -> features -> VAE -> residuals -> anomaly maps -> contrastive head -> descriptors
#      -> clustering -> metrics. See README.md for the contract and ../METHOD.md-derived config.
import os

from snakemake.utils import min_version, validate

min_version("8.20")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "config/schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/inputs.smk"
include: "rules/dataset.smk"
include: "rules/features.smk"
include: "rules/vae.smk"
include: "rules/anomaly_maps.smk"
include: "rules/contrastive.smk"
include: "rules/descriptors.smk"
include: "rules/clustering.smk"
include: "rules/metrics.smk"
include: "rules/report.smk"


wildcard_constraints:
    dataset="|".join(re.escape(d) for d in DATASETS),
    category=CATEGORY_NAME,
    method=r"[A-Za-z0-9_]+",
    source="|".join(ALPHA_SOURCES),
    file=r"[A-Za-z0-9_.-]+",


rule all:
    default_target: True
    input:
        [method_outputs(d) for d in DATASETS],
        "results/summary.csv",
