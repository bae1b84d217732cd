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
    resources:
        batch_images=config["batch_images"],
    params:
        source=lambda wc: get_method(wc.method).descriptor,
        descriptor=lambda wc: method_group(wc, "descriptor"),
        anomaly_clustering=lambda wc: method_group(wc, "anomaly_clustering"),
        device=config["device"],
        code=lambda wc: code_version(
            *DESCRIPTOR_MODULES[get_method(wc.method).descriptor]
        ),
    script:
        "../scripts/compute_descriptors.py"
