# Metrics: localization per anomaly-map source, clustering per method, then the tables.


rule evaluate_localization:
    input:
        alpha=res("alpha", "{source}", "{category}.npy"),
        index=res("images", "{category}.csv"),
    output:
        metrics=res("localization", "{source}", "{category}.json"),
    log:
        res("logs", "evaluate_localization", "{source}", "{category}.log"),
    benchmark:
        res("benchmarks", "evaluate_localization", "{source}", "{category}.tsv")
    conda:
        "../envs/blindlca.yaml"
    params:
        root=lambda wc: data_root(wc.dataset),
        fpr_limit=config["evaluation"]["fpr_limit"],
        code=code_version("metrics", "data"),
    script:
        "../scripts/evaluate_localization.py"


rule evaluate_clusters:
    input:
        unpack(localization_input),
        clusters=res("{method}", "clusters", "{category}.csv"),
    output:
        metrics=res("{method}", "metrics", "{category}.json"),
    log:
        res("logs", "evaluate_clusters", "{method}", "{category}.log"),
    conda:
        "../envs/blindlca.yaml"
    params:
        algorithm=config["clustering"]["algorithm"],
        backbone_weights=config["backbone_weights"],
        code=code_version("metrics"),
    script:
        "../scripts/evaluate_clusters.py"


rule aggregate_metrics:
    input:
        metrics=lambda wc: expand(
            res("{method}", "metrics", "{category}.json"),
            category=categories(wc.dataset),
            **wc,
        ),
    output:
        summary=res("{method}", "metrics.json"),
    log:
        res("logs", "aggregate_metrics", "{method}.log"),
    conda:
        "../envs/blindlca.yaml"
    params:
        code=code_version("summary"),
    script:
        "../scripts/aggregate_metrics.py"


rule summarize:
    input:
        metrics=all_metrics(),
    output:
        csv=report(
            "results/summary.csv", caption="../report/summary.rst", category="Metrics"
        ),
        markdown="results/summary.md",
    log:
        "results/logs/summarize.log",
    conda:
        "../envs/blindlca.yaml"
    params:
        code=code_version("summary"),
    script:
        "../scripts/summarize.py"
