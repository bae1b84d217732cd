# Dataset stage: generate (synthetic) or download and prepare (registry) the images, then index them.

if "synthetic" in DATASETS:

    rule make_synthetic:
        output:
            folder=directory(f"{data_root('synthetic')}/{{category}}"),
        log:
            "results/synthetic/logs/make_synthetic/{category}.log",
        conda:
            "../envs/blindlca.yaml"
        params:
            family="{category}",
            synthetic=group(
                "synthetic", "defects", "image_size", "n_good", "n_per_defect"
            ),
            seed=config["seed"],
            code=code_version("synthetic"),
        script:
            "../scripts/make_synthetic.py"


rule download_dataset_file:
    output:
        archive="resources/downloads/{dataset}/{file}",
    log:
        "resources/downloads/{dataset}/{file}.log",
    wildcard_constraints:
        dataset="|".join(SOURCES),
    retries: 2
    localrule: True
    conda:
        "../envs/blindlca.yaml"
    params:
        url=download_url,
        sha256=lambda wc: remote_file(wc).sha256,
        manual=lambda wc: SOURCES[wc.dataset].manual,
        code=code_version("download"),
    script:
        "../scripts/download_dataset_file.py"


rule prepare_dataset:
    input:
        archives=dataset_archives,
    output:
        folder=directory("resources/datasets/{dataset}/{category}"),
    log:
        "resources/datasets/{dataset}/{category}.log",
    wildcard_constraints:
        dataset="|".join(SOURCES),
    conda:
        "../envs/blindlca.yaml"
    params:
        dataset="{dataset}",
        category="{category}",
        code=code_version("datasets", "archive", "data"),
    script:
        "../scripts/prepare_dataset.py"


rule download_weights:
    output:
        weights=f"{WEIGHTS_DIR}/{{file}}",
    log:
        f"{WEIGHTS_DIR}/{{file}}.log",
    wildcard_constraints:
        file=r"[A-Za-z0-9_.-]+\.pth",
    retries: 2
    localrule: True
    conda:
        "../envs/blindlca.yaml"
    params:
        url=config["backbone"]["weights_url"],
        sha256=config["backbone"]["weights_sha256"],
        code=code_version("download"),
    script:
        "../scripts/download_weights.py"


rule index_images:
    input:
        folder=lambda wc: f"{data_root(wc.dataset)}/{wc.category}",
    output:
        index=res("images", "{category}.csv"),
        problems=res("images", "{category}.problems.csv"),
    log:
        log("index_images"),
    conda:
        "../envs/blindlca.yaml"
    params:
        exclude_classes=config["exclude_classes"],
        min_side=min_image_side(
            config["backbone"]["image_size"], config["backbone"]["layer"]
        ),
        contents=user_folder_contents,
        code=code_version("data", "checks"),
    script:
        "../scripts/index_images.py"


rule check_images:
    input:
        indexes=lambda wc: expand(
            res("images", "{category}.csv"), category=categories(wc.dataset), **wc
        ),
        problems=lambda wc: expand(
            res("images", "{category}.problems.csv"),
            category=categories(wc.dataset),
            **wc,
        ),
    output:
        skipped=report(
            res("skipped.csv"), caption="../report/skipped.rst", category="Inputs"
        ),
    log:
        res("logs", "check_images.log"),
    localrule: True  # reads a few CSVs: not worth a cluster job's queueing
    conda:
        "../envs/blindlca.yaml"
    params:
        dataset="{dataset}",
        root=lambda wc: data_root(wc.dataset),
        on_bad_image=config["on_bad_image"],
        n_clusters=config["clustering"]["n_clusters"],
        code=code_version("data", "checks"),
    script:
        "../scripts/check_images.py"
