# Clustering metrics per category, then one file per method.


rule evaluate_clusters:
    input:
        clusters=res("{method}", "clusters", "{category}.csv"),
    output:
        metrics=res("{method}", "metrics", "{category}.json"),
    log:
        res("logs", "evaluate_clusters", "{method}", "{category}.log"),
    conda:
        "../envs/blindlca.yaml"
    params:
        backbone_weights=config["backbone_weights"],
        code=code_version("metrics"),
    script:
        "../scripts/evaluate_clusters.py"


rule aggregate_metrics:
    input:
        metrics=lambda wc: expand(
            res("{method}", "metrics", "{category}.json"), category=categories(), **wc
        ),
    output:
        summary=res("{method}", "metrics.json"),
    log:
        res("logs", "aggregate_metrics", "{method}.log"),
    conda:
        "../envs/blindlca.yaml"
    params:
        code=code_version("metrics"),
    script:
        "../scripts/aggregate_metrics.py"
