# Contrastive projection head H (METHOD.md step 5).


rule train_head:
    input:
        features=res("features", "{category}.npy"),
        alpha=alpha_path,
        index=res("images", "{category}.csv"),
    output:
        head=res("{method}", "head", "{category}.pt"),
    log:
        res("logs", "train_head", "{method}", "{category}.log"),
    benchmark:
        res("benchmarks", "train_head", "{method}", "{category}.tsv")
    conda:
        "../envs/blindlca.yaml"
    threads: 4
    resources:
        batch_images=config["batch_images"],
        gpu=gpus(),
    params:
        contrastive=group("contrastive"),
        descriptor=group("descriptor"),
        n_clusters=group("clustering", "n_clusters", "k_rule", "k_max"),
        seed=config["seed"],
        device=config["device"],
        code=code_version("contrastive", "descriptors", "filters", "features", "device"),
    script:
        "../scripts/train_head.py"
