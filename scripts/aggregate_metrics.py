"""Gather per-category metrics of one method into one file with the mean over categories.

Inputs:  metrics  per-category JSON files
Outputs: summary  JSON {category: {...}, ..., "mean": {nmi, ari, f1, [localization], [compare]}}
"""

from pathlib import Path

from blindlca.io import load_json, save_json
from blindlca.summary import mean_over_categories
from blindlca.workflow import run


def main(*, metrics: list, summary: str) -> None:
    per_category = {Path(p).stem: load_json(p) for p in sorted(metrics)}
    save_json(summary, {**per_category, "mean": mean_over_categories(per_category)})


run(main, globals())
