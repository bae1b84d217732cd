# Per-category VAE and residuals R_i (METHOD.md step 2).


rule train_vae:
    input:
        features=res("features", "{category}.npy"),
    output:
        model=res("vae", "{category}.pt"),
    log:
        log("train_vae"),
    benchmark:
        bench("train_vae")
    conda:
        "../envs/blindlca.yaml"
    threads: 4
    resources:
        gpu=gpus(),
    params:
        vae=group("vae"),
        seed=config["seed"],
        device=config["device"],
        code=code_version("vae", "features", "device"),
    script:
        "../scripts/train_vae.py"


rule compute_residuals:
    input:
        features=res("features", "{category}.npy"),
        model=res("vae", "{category}.pt"),
    output:
        residuals=res("residuals", "{category}.npy"),
    log:
        log("compute_residuals"),
    benchmark:
        bench("compute_residuals")
    conda:
        "../envs/blindlca.yaml"
    threads: 4
    resources:
        batch_images=config["batch_images"],
    params:
        device=config["device"],
        code=code_version("vae", "features", "device"),
    script:
        "../scripts/compute_residuals.py"
