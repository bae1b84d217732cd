# Image descriptors D_i (METHOD.md step 4).


rule compute_descriptors:
    input:
        unpack(descriptor_inputs),
    output:
        descriptors=res("{method}", "descriptors", "{category}.npy"),
    log:
        res("logs", "compute_descriptors", "{method}", "{category}.log"),
    benchmark:
        res("benchmarks", "compute_descriptors", "{method}", "{category}.tsv")
    conda:
        "../envs/blindlca.yaml"
    threads: 4
    params:
        source=lambda wc: get_method(wc.method).descriptor,
        descriptor=group("descriptor"),
        anomaly_clustering=group("anomaly_clustering"),
        device=config["device"],
        code=code_version(
            "descriptors",
            "contrastive",
            "anomaly_clustering",
            "filters",
            "features",
            "device",
        ),
    script:
        "../scripts/compute_descriptors.py"
