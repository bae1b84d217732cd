"""Benchmarks anyone can rerun: `python -m blindlca.benchmark {stages results/synthetic | memory | fca}`.

`stages` gathers the Snakemake `benchmark:` files of a finished run into one table per rule
(jobs, total and mean wall seconds, peak resident memory), slowest first.

`memory` runs the workflow twice on the synthetic dataset, with N and 2N images in one category (quick
preset, random weights), and prints each stage's peak resident memory as every job logs it on exit
(blindlca.runlog), for both runs, and their ratio: a stage holding a bounded number of images stays near 1.

`fca` times `blindlca.fca.fca` against the plain sort-based `fca_reference` in one process
(alternating runs, medians) on a random (1, C, S, S) map, and reports the largest deviation
relative to the map maximum and the peak memory of each: on the CPU the peak resident-memory
increase of one call in a fresh subprocess, on CUDA `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def stage_table(run_dir: str | Path) -> list[dict[str, float | str | int]]:
    """One row per rule from `<run_dir>/benchmarks/<rule>/**/*.tsv`, sorted by total seconds."""
    root = Path(run_dir) / "benchmarks"
    if not root.is_dir():
        raise FileNotFoundError(f"no benchmarks folder under {str(run_dir)!r}; run the workflow first")
    seconds, rss = defaultdict(list), defaultdict(list)
    for tsv in sorted(root.rglob("*.tsv")):
        rule = tsv.relative_to(root).parts[0]
        with open(tsv, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                seconds[rule].append(float(row["s"]))
                rss[rule].append(float(row["max_rss"]) if row["max_rss"] not in ("", "NA", "-") else 0.0)
    rows = [
        {
            "rule": rule,
            "jobs": len(s),
            "total_s": sum(s),
            "mean_s": sum(s) / len(s),
            "max_rss_mb": max(rss[rule]),
        }
        for rule, s in seconds.items()
    ]
    return sorted(rows, key=lambda r: -r["total_s"])


def format_table(rows: list[dict]) -> str:
    total = sum(r["total_s"] for r in rows) or 1.0
    lines = [
        "| rule | jobs | total s | mean s | share | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['rule']} | {r['jobs']} | {r['total_s']:.1f} | {r['mean_s']:.1f} | "
            f"{r['total_s'] / total:.0%} | {r['max_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- fca

FCA_IMPLEMENTATIONS = ("fca_reference", "fca")  # straightforward, fast


def _fca_input(size: int, channels: int):
    import torch

    return torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))


def _fca_function(name: str):
    from blindlca import fca

    return getattr(fca, name)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def fca_peak_rss_child(name: str, size: int, channels: int, threads: int) -> float:
    """Peak resident-memory increase (MB) of one call, measured in this (fresh) process.

    Linux only (reads /proc/self/status); NaN elsewhere.
    """
    import torch

    torch.set_num_threads(threads)
    fn, x = _fca_function(name), _fca_input(size, channels)
    fn(x[:, :2])  # first-call set-up (thread pool, kernels) is not the call's memory
    try:
        before = _status_mb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current resident size
        except OSError:
            pass  # then VmHWM may still hold an earlier, higher peak: an upper bound
        fn(x)
        return _status_mb("VmHWM") - before
    except OSError:
        return float("nan")


def fca_peak_rss_mb(name: str, size: int, channels: int, threads: int) -> float:
    """Run `fca_peak_rss_child` in a fresh interpreter (Linux: reads /proc/self/status)."""
    code = (
        "import sys; from blindlca.benchmark import fca_peak_rss_child as f; "
        "print(f(sys.argv[1], *map(int, sys.argv[2:])))"
    )
    args = [sys.executable, "-c", code, name, str(size), str(channels), str(threads)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def fca_compare(size: int, channels: int, repeats: int, device: str) -> dict:
    """Alternating timings of both implementations on one device, deviation and CUDA peaks."""
    import torch

    x = _fca_input(size, channels).to(device)
    cuda = x.device.type == "cuda"

    def run(name: str):
        fn = _fca_function(name)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start_bytes = torch.cuda.memory_allocated() if cuda else 0
        t0 = time.perf_counter()
        out = fn(x)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        peak = (torch.cuda.max_memory_allocated() - start_bytes) / 2**20 if cuda else float("nan")
        return out, seconds, peak

    for name in FCA_IMPLEMENTATIONS:  # warm-up: lazy initialisation, kernel caches
        _fca_function(name)(x[:, : min(channels, 8)])
    seconds = {name: [] for name in FCA_IMPLEMENTATIONS}
    peaks = {}
    for _ in range(repeats):
        outs = {}
        for name in FCA_IMPLEMENTATIONS:
            outs[name], s, peaks[name] = run(name)
            seconds[name].append(s)
    ref, fast = outs["fca_reference"].double(), outs["fca"].double()
    deviation = ((fast - ref).abs().max() / ref.abs().max()).item()
    return {"device": str(x.device), "seconds": seconds, "deviation": deviation, "peak_mb": peaks}


def fca_devices(device: str) -> list[str]:
    import torch

    if device == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available")
    return [device]


def format_fca(results: list[dict]) -> str:
    lines = [
        "| device | straightforward s | fast s | speed-up | max deviation / max | "
        "peak MB straightforward | peak MB fast |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ref_s = statistics.median(r["seconds"]["fca_reference"])
        fast_s = statistics.median(r["seconds"]["fca"])
        lines.append(
            f"| {r['device']} | {ref_s:.3f} | {fast_s:.3f} | {ref_s / fast_s:.1f}x | {r['deviation']:.1e} | "
            f"{r['peak_mb']['fca_reference']:.0f} | {r['peak_mb']['fca']:.0f} |"
        )
    lines.append("")
    lines.append("all times (s), in run order:")
    for r in results:
        for name in FCA_IMPLEMENTATIONS:
            lines.append(f"  {r['device']} {name}: " + " ".join(f"{s:.3f}" for s in r["seconds"][name]))
    return "\n".join(lines)


def fca_benchmark(size: int, channels: int, repeats: int, threads: int, device: str) -> str:
    import torch

    torch.set_num_threads(threads)
    results = []
    for dev in fca_devices(device):
        r = fca_compare(size, channels, repeats, dev)
        if dev == "cpu":
            r["peak_mb"] = {
                name: fca_peak_rss_mb(name, size, channels, threads) for name in FCA_IMPLEMENTATIONS
            }
        results.append(r)
    header = (
        f"FCA of torch.randn(1, {channels}, {size}, {size}), float32; median of {repeats} alternating runs; "
        f"{threads} CPU threads; CPU peak = resident-memory increase of one call in a fresh process"
    )
    return header + "\n\n" + format_fca(results)


def peak_rss(run_dir: str | Path) -> dict[str, float]:
    """Largest "peak RSS <MB> MB" that a job of each rule logged."""
    peaks: dict[str, float] = {}
    logs = Path(run_dir) / "logs"
    for log in sorted(logs.rglob("*.log")):
        rule = log.relative_to(logs).parts[0]
        for match in re.finditer(r"peak RSS (\d+) MB", log.read_text(errors="replace")):
            peaks[rule] = max(peaks.get(rule, 0.0), float(match.group(1)))
    return peaks


def memory_runs(*, n_good: int = 12, n_per_defect: int = 8, cores: int = 2, keep: str | None = None) -> str:
    """Quick preset on one synthetic category with N and then 2N images; a table of peak RSS per rule."""
    tables = {}
    root = Path(keep or tempfile.mkdtemp(prefix="blindlca-memory-"))
    for scale in (1, 2):
        work = root / f"x{scale}"
        work.mkdir(parents=True, exist_ok=True)
        config = {
            "backbone_weights": "random",
            "methods": ["ours"],
            "synthetic": {
                "families": ["woven"],
                "n_good": n_good * scale,
                "n_per_defect": n_per_defect * scale,
            },
        }
        (work / "bench.yaml").write_text(yaml.safe_dump(config))
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--directory",
            str(work),
            "--configfile",
            str(REPO / "config/quick.yaml"),
            str(work / "bench.yaml"),
            "--cores",
            str(cores),
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        tables[scale] = peak_rss(work / "results/synthetic")
    n = n_good + n_per_defect * 3
    lines = [
        f"| rule | peak RSS MB, N = {n} | peak RSS MB, 2N = {2 * n} | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for rule, one in sorted(tables[1].items(), key=lambda kv: -kv[1]):
        two = tables[2].get(rule, float("nan"))
        lines.append(f"| {rule} | {one:.0f} | {two:.0f} | {two / max(one, 1):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blindlca.benchmark", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    stages = sub.add_parser("stages", help="per-rule times of a finished run")
    stages.add_argument("run_dir", help="results/<dataset> of a finished run")
    memory = sub.add_parser("memory", help="peak memory per stage with N and 2N images")
    memory.add_argument("--n-good", type=int, default=12, help="good images at scale N (default 12)")
    memory.add_argument(
        "--n-per-defect", type=int, default=8, help="images per defect at scale N (default 8)"
    )
    memory.add_argument("--cores", type=int, default=2)
    memory.add_argument("--keep", help="folder for the two runs (default: a new temporary folder)")
    fca = sub.add_parser("fca", help="fast FCA against the plain sort-based one")
    fca.add_argument("--size", type=int, default=64, help="map height and width (default 64)")
    fca.add_argument("--channels", type=int, default=512, help="channels (default 512)")
    fca.add_argument("--repeats", type=int, default=5, help="timed runs of each (default 5)")
    fca.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    fca.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="default: auto")
    args = parser.parse_args(argv)
    if args.command == "stages":
        print(format_table(stage_table(args.run_dir)))
    elif args.command == "memory":
        print(
            memory_runs(n_good=args.n_good, n_per_defect=args.n_per_defect, cores=args.cores, keep=args.keep)
        )
    elif args.command == "fca":
        print(fca_benchmark(args.size, args.channels, args.repeats, args.threads, args.device))


if __name__ == "__main__":
    main()
