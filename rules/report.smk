# Figures for `snakemake --report report.html`: per method and category.


rule plot_category:
    input:
        unpack(plot_inputs),
        clusters=res("{method}", "clusters", "{category}.csv"),
        descriptors=res("{method}", "descriptors", "{category}.npy"),
        index=res("images", "{category}.csv"),
    output:
        figures=report(
            directory(res("{method}", "figures", "{category}")),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="{dataset}: {method}",
            subcategory="{category}",
        ),
    log:
        res("logs", "plot_category", "{method}", "{category}.log"),
    conda:
        "../envs/blindlca.yaml"
    params:
        root=lambda wc: data_root(wc.dataset),
        clustering=group("clustering", "n_clusters", "k_rule", "k_max"),
        seed=config["seed"],
        code=code_version("figures", "kselect", "data"),
    script:
        "../scripts/plot_category.py"
