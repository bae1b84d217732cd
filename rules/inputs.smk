# Input functions: which files a job reads, per dataset, method and anomaly-map source.


def remote_file(wildcards):
    """The registry entry of a file to download."""
    for files in SOURCES[wildcards.dataset].files.values():
        for f in files:
            if f.name == wildcards.file:
                return f
    raise ValueError(
        f"no file {wildcards.file!r} in the registry entry of {wildcards.dataset!r}"
    )


def download_url(wildcards):
    mirror = config["download_mirror"]
    if mirror:
        return f"{mirror.rstrip('/')}/{wildcards.dataset}/{wildcards.file}"
    return remote_file(wildcards).url


def dataset_archives(wildcards):
    files = SOURCES[wildcards.dataset].files[wildcards.category]
    return [f"resources/downloads/{wildcards.dataset}/{f.name}" for f in files]


def alpha_source(wildcards):
    return get_method(wildcards.method).alpha


def alpha_path(wildcards):
    return res("alpha", alpha_source(wildcards), "{category}.npy").format(**wildcards)


def alpha_input(wildcards):
    """Source tensor of an anomaly-map kind: VAE residuals or backbone features."""
    name = "residuals" if wildcards.source.endswith("residuals") else "features"
    return res(name, "{category}.npy").format(**wildcards)


def descriptor_inputs(wildcards):
    method = get_method(wildcards.method)
    inputs = {"features": res("features", "{category}.npy").format(**wildcards)}
    if method.alpha is not None:
        inputs["alpha"] = alpha_path(wildcards)
    if method.descriptor == "head":
        inputs["head"] = res("{method}", "head", "{category}.pt").format(**wildcards)
    return inputs


def localization_input(wildcards):
    """Localization metrics of the method's anomaly maps (none for methods without maps)."""
    source = alpha_source(wildcards)
    if source is None:
        return {}
    return {
        "localization": res("localization", source, "{category}.json").format(
            **wildcards
        )
    }


def plot_inputs(wildcards):
    """The method's anomaly maps, and every category's (the gallery's colour scale spans the dataset)."""
    source = alpha_source(wildcards)
    if source is None:
        return {}
    maps = [
        res("alpha", source, f"{c}.npy").format(dataset=wildcards.dataset)
        for c in categories(wildcards.dataset)
    ]
    return {"alpha": alpha_path(wildcards), "scale_maps": maps}


def method_outputs(dataset):
    out = []
    for m in config["methods"]:
        out.append(res(m, "metrics.json").format(dataset=dataset))
        out += [
            res(m, "figures", c).format(dataset=dataset) for c in categories(dataset)
        ]
        if get_method(m).alpha is not None:
            out += [
                res(m, "anomaly_maps", c).format(dataset=dataset)
                for c in categories(dataset)
            ]
    return out


def all_metrics():
    return [
        res(m, "metrics.json").format(dataset=d)
        for d in DATASETS
        for m in config["methods"]
    ]
