"""Benchmarks anyone can rerun: `python -m blindlca.benchmark stages results/synthetic`.

`stages` gathers the Snakemake `benchmark:` files of a finished run into one table per rule
(jobs, total and mean wall seconds, peak resident memory), slowest first.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blindlca.benchmark", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    stages = sub.add_parser("stages", help="per-rule times of a finished run")
    stages.add_argument("run_dir", help="results/<dataset> of a finished run")
    args = parser.parse_args(argv)
    if args.command == "stages":
        print(format_table(stage_table(args.run_dir)))


if __name__ == "__main__":
    main()
