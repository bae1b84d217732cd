# Dataset stage: the embedded synthetic dataset, the backbone weights, and the image index.

if SYNTHETIC:

    rule make_synthetic:
        output:
            folder=directory(f"{DATA_ROOT}/{{category}}"),
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


rule download_weights:
    output:
        weights=f"{WEIGHTS_DIR}/{{file}}",
    log:
        f"{WEIGHTS_DIR}/{{file}}.log",
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
        folder=f"{DATA_ROOT}/{{category}}",
    output:
        index=res("images", "{category}.csv"),
    log:
        log("index_images"),
    conda:
        "../envs/blindlca.yaml"
    params:
        exclude_classes=config["exclude_classes"],
        code=code_version("data"),
    script:
        "../scripts/index_images.py"
