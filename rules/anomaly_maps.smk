# Anomaly maps alpha_i (METHOD.md step 3), computed once per source and shared by the methods using it.


rule compute_anomaly_maps:
    input:
        source=alpha_input,
    output:
        alpha=res("alpha", "{source}", "{category}.npy"),
    log:
        res("logs", "compute_anomaly_maps", "{source}", "{category}.log"),
    benchmark:
        res("benchmarks", "compute_anomaly_maps", "{source}", "{category}.tsv")
    conda:
        "../envs/blindlca.yaml"
    threads: 4
    params:
        kind="{source}",
        fca=group("fca"),
        device=config["device"],
        code=code_version("anomaly_maps", "fca", "filters", "features", "device"),
    script:
        "../scripts/compute_anomaly_maps.py"


rule export_anomaly_maps:
    input:
        alpha=alpha_path,
        index=res("images", "{category}.csv"),
    output:
        folder=directory(res("{method}", "anomaly_maps", "{category}")),
    log:
        res("logs", "export_anomaly_maps", "{method}", "{category}.log"),
    conda:
        "../envs/blindlca.yaml"
    params:
        root=lambda wc: data_root(wc.dataset),
        code=code_version("figures", "data"),
    script:
        "../scripts/export_anomaly_maps.py"
