# Backbone features F_i (METHOD.md step 1).


rule extract_features:
    input:
        unpack(lambda wc: {"weights": weights_file()} if weights_file() else {}),
        index=res("images", "{category}.csv"),
        # Waits for the dataset check; ancient: a rerun of the check alone reruns no category.
        checked=ancient(res("skipped.csv")),
    output:
        features=res("features", "{category}.npy"),
    log:
        log("extract_features"),
    benchmark:
        bench("extract_features")
    conda:
        "../envs/blindlca.yaml"
    threads: 4
    params:
        root=lambda wc: data_root(wc.dataset),
        backbone=group("backbone", "layer", "image_size", "batch_size"),
        seed=config["seed"],
        device=config["device"],
        code=code_version("features", "data"),
    script:
        "../scripts/extract_features.py"
