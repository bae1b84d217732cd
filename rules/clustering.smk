# Clustering of the descriptors (METHOD.md step 6).


rule cluster_images:
    input:
        descriptors=res("{method}", "descriptors", "{category}.npy"),
        index=res("images", "{category}.csv"),
    output:
        clusters=res("{method}", "clusters", "{category}.csv"),
    log:
        res("logs", "cluster_images", "{method}", "{category}.log"),
    conda:
        "../envs/blindlca.yaml"
    params:
        clustering=group("clustering"),
        seed=config["seed"],
        code=code_version("clustering", "data"),
    script:
        "../scripts/cluster_images.py"
