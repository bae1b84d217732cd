"""Metric files -> one results table (a row per dataset / category / method / clustering)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from blindlca.io import atomic_path, load_json, write_csv

CLUSTERING_KEYS = ("nmi", "ari", "f1")
LOCALIZATION_KEYS = ("pixel_auroc", "au_pro", "image_auroc")
COLUMNS = ("dataset", "category", "method", "clustering", *CLUSTERING_KEYS, *LOCALIZATION_KEYS)
MEAN = "mean"


def _mean(values: Iterable[float | None]) -> float | None:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else None


def mean_over_categories(per_category: Mapping[str, Mapping]) -> dict:
    """Unweighted mean over categories of every metric present (the paper averages categories).

    Compared clustering algorithms (`compare`) are averaged the same way.
    """
    if not per_category:
        raise ValueError("no category metrics to average")
    cats = list(per_category.values())
    keys = [k for k in (*CLUSTERING_KEYS, *LOCALIZATION_KEYS) if any(k in m for m in cats)]
    out: dict = {k: _mean(m.get(k) for m in cats) for k in keys}
    algorithms = sorted({a for m in cats for a in m.get("compare", {})})
    if algorithms:
        out["compare"] = {
            a: {
                k: _mean(m["compare"][a][k] for m in cats if a in m.get("compare", {}))
                for k in CLUSTERING_KEYS
            }
            for a in algorithms
        }
    return out


def rows_of(dataset: str, method: str, metrics: Mapping[str, Mapping]) -> list[dict]:
    """Table rows of one `metrics.json`: each category and the mean, for each clustering algorithm."""
    rows = []
    for category, m in metrics.items():
        local = {k: m.get(k) for k in LOCALIZATION_KEYS}
        primary = m.get("clustering", "ward") if category != MEAN else None
        rows.append(
            {
                "dataset": dataset,
                "category": category,
                "method": method,
                "clustering": primary,
                **{k: m.get(k) for k in CLUSTERING_KEYS},
                **local,
            }
        )
        for algorithm, c in m.get("compare", {}).items():
            rows.append(
                {
                    "dataset": dataset,
                    "category": category,
                    "method": method,
                    "clustering": algorithm,
                    **{k: c.get(k) for k in CLUSTERING_KEYS},
                    **local,
                }
            )
    return rows


def build_table(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """Rows from `results/<dataset>/<method>/metrics.json` files, sorted for stable diffs."""
    rows = []
    for p in paths:
        p = Path(p)
        metrics = load_json(p)
        primary = next(
            (m["clustering"] for c, m in metrics.items() if c != MEAN and "clustering" in m), "ward"
        )
        for row in rows_of(p.parent.parent.name, p.parent.name, metrics):
            if row["clustering"] is None:  # the mean row of the primary algorithm
                row["clustering"] = primary
            rows.append(row)
    order = {name: i for i, name in enumerate(("ward", "kmeans", "spectral", "gmm"))}
    return sorted(
        rows,
        key=lambda r: (
            r["dataset"],
            r["method"],
            order.get(r["clustering"], 9),
            r["category"] == MEAN,
            r["category"],
        ),
    )


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_table(
    rows: Sequence[Mapping], *, csv_path: str | os.PathLike, markdown_path: str | os.PathLike
) -> None:
    """The same rows as CSV (full precision, empty = not applicable) and as a Markdown table."""
    write_csv(csv_path, ({k: ("" if r[k] is None else r[k]) for k in COLUMNS} for r in rows), fields=COLUMNS)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [_fmt(r[k]) for k in COLUMNS]
        if r["category"] == MEAN:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    with atomic_path(markdown_path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
