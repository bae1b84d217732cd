"""The workflow through the SLURM executor (profiles/slurm) on a real single-node cluster vs a local run.

The cluster is installed (apt) and started by tests/slurm.py: munge, slurmctld and slurmd, one partition, one
node with a `gpu` GRES backed by /dev/null so that GPU-requesting jobs can be scheduled (torch still finds
no CUDA there, so the GPU rules run on the CPU). Skipped only where SLURM cannot be installed (not root, or
no apt-get).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm import SlurmUnavailable, running_cluster
from test_workflow import CATEGORIES, TINY

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
GPU_RULES = {"train_vae", "train_head"}
# The tiny config of test_workflow, with the full method only: every rule but the downloads still runs, and
# the other methods' jobs would only add minutes of SLURM polling on a 2-CPU node.
CONFIG = {**TINY, "methods": ["ours"]}
# What this tiny cluster needs on top of profiles/slurm: poll after 1 s instead of 20 (jobs take seconds).
# The profile already polls with squeue, which this cluster (no accounting, so no sacct) needs.
SLURM_ARGS = ["--slurm-init-seconds-before-status-checks", "1", "--slurm-status-command", "squeue"]
TIMEOUT_S = 480


@pytest.fixture(scope="session")
def slurm_cluster():
    try:
        with running_cluster() as cluster:
            yield cluster
    except SlurmUnavailable as e:
        pytest.skip(f"no SLURM cluster: {e}")


def run_snakemake(workdir: Path, *args: str, env: dict[str, str], cluster=None) -> tuple[str, float]:
    """Run CONFIG (config/quick.yaml, then CONFIG on top) in workdir; return its log and wall time."""
    cfg = workdir / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    cmd = [
        *SNAKEMAKE,
        "--directory",
        str(workdir),
        "--configfile",
        str(REPO / "config/quick.yaml"),
        str(cfg),
        "--cores",
        "2",
        # One thread per job in both runs: the same thread count keeps the numbers comparable, and on the
        # 2-CPU test node SLURM can then run the two categories' jobs side by side.
        "--max-threads",
        "1",
        *args,
    ]
    log_path = workdir / "snakemake.out"
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # snakemake cancels its SLURM jobs and releases its lock
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    wall = time.monotonic() - start
    out = log_path.read_text()
    if proc.returncode != 0:
        queue = cluster.run("squeue", "-t", "all", "-o", "%i %T %r %k", check=False) if cluster else ""
        raise AssertionError(
            f"snakemake failed ({proc.returncode}) after {wall:.0f} s in {workdir}:\n{out[-6000:]}\n"
            f"{queue}\n{cluster.logs(15) if cluster else ''}"
        )
    return out, wall


def seconds(hms: str) -> int:
    """SLURM's [D-]HH:MM:SS as seconds."""
    days, _, clock = hms.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return ((int(days or 0) * 24 + h) * 60 + m) * 60 + s


def megabytes(size: str) -> int:
    """SLURM's memory sizes (8000M, 2G) in MB."""
    return int(float(size[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[size[-1]])


def assert_close(a, b, path="metrics"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=0, abs_tol=1e-9), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_slurm_run_matches_local_run(slurm_cluster, tmp_path):
    cluster = slurm_cluster
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()

    out, slurm_wall = run_snakemake(
        slurm_dir, "--profile", str(REPO / "profiles/slurm"), *SLURM_ARGS, env=cluster.env, cluster=cluster
    )
    jobs = {j["JobId"]: j for j in cluster.jobs()}
    _, local_wall = run_snakemake(local_dir, env=dict(os.environ))
    submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", out))
    run_s = [seconds(jobs[i]["RunTime"]) for i in submitted.values() if i in jobs]
    mean_run = sum(run_s) / max(len(run_s), 1)
    times = (
        f"SLURM run: {slurm_wall:.1f} s ({len(submitted)} jobs, {mean_run:.1f} s each on average from start "
        f"to end in SLURM); local run (--cores 2): {local_wall:.1f} s; same config"
    )
    (tmp_path / "times.txt").write_text(times + "\n")
    print(f"\n{times}")

    # Every job ran under SLURM: one submission per job, and slurmctld saw each of them complete.
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:")[1].split("\n\n")[0], flags=re.M))
    # `all` only collects, it runs nowhere; check_images is a localrule, it runs on the submit host.
    n_jobs = int(planned.pop("total")) - int(planned.pop("all", 0)) - int(planned.pop("check_images"))
    assert len(submitted) == n_jobs > 15, (planned, submitted)
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    rules = {}
    for slurm_id in submitted.values():
        job = jobs[slurm_id]
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        rule = re.match(r"rule_(\w+?)(?:_wildcards_|$)", job["Comment"]).group(1)
        rules[rule] = rules.get(rule, 0) + 1
        gres = job.get("TresPerJob", "")
        # GPU rules ask for one GPU each (--gpus=1); the other rules ask for none.
        assert ("gres:gpu:1" in gres) == (rule in GPU_RULES), (rule, gres)
        # Each job asked for the runtime and memory the profile sets for its rule.
        want = {**profile["default-resources"], **profile["set-resources"].get(rule, {})}
        assert seconds(job["TimeLimit"]) == 60 * want["runtime"], (rule, job["TimeLimit"])
        assert megabytes(job["MinMemoryNode"]) == want["mem_mb"], (rule, job["MinMemoryNode"])
    assert rules == {k: int(v) for k, v in planned.items()}
    assert rules["train_vae"] == len(CATEGORIES) and rules["train_head"] == len(CATEGORIES)
    assert not list((slurm_dir / ".snakemake/locks").glob("*")), "lock left in .snakemake/locks"

    # The same results as the local run.
    for method in CONFIG["methods"]:
        for cat in CATEGORIES:
            rel = f"results/synthetic/{method}/clusters/{cat}.csv"
            assert (slurm_dir / rel).read_bytes() == (local_dir / rel).read_bytes(), rel
        rel = f"results/synthetic/{method}/metrics.json"
        assert_close(json.loads((slurm_dir / rel).read_text()), json.loads((local_dir / rel).read_text()))


def test_slurm_profile_plans_without_a_cluster(tmp_path):
    """`snakemake --profile profiles/slurm -n` needs no SLURM: the plan carries the profile's requests."""
    plan = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "--profile", str(REPO / "profiles/slurm"), "-n"]
        + ["--config", "backbone_weights=random"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SLURM_CONF"},
    )
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    # The last plan of each rule wins; every job of a rule asks for the same here.
    resources = {
        rule: dict(re.findall(r"(\w+)=([^,\n]+)", line))
        for rule, line in re.findall(r"^rule (\w+):\n(?:.*\n)*?\s+resources: (.*)$", plan.stdout, flags=re.M)
    }
    assert {"mem_mb": "8000", "runtime": "120", "gpu": "1"}.items() <= resources["train_vae"].items()
    assert {"mem_mb": "8000", "runtime": "120", "gpu": "1"}.items() <= resources["train_head"].items()
    assert {"mem_mb": "8000", "runtime": "60"}.items() <= resources["extract_features"].items()
    assert "gpu" not in resources["extract_features"]
    assert {"mem_mb": "2000", "runtime": "30"}.items() <= resources["index_images"].items()
