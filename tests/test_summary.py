"""Metric files -> results table."""

from __future__ import annotations

import csv
import json
import math

import pytest

from blindlca.summary import COLUMNS, build_table, mean_over_categories, write_table


def test_mean_over_categories_skips_absent_and_nan():
    per_category = {
        "a": {
            "nmi": 0.2,
            "ari": 0.1,
            "f1": 0.5,
            "pixel_auroc": 0.9,
            "compare": {"kmeans": {"nmi": 0.4, "ari": 0.0, "f1": 1.0}},
        },
        "b": {
            "nmi": 0.4,
            "ari": 0.3,
            "f1": 0.7,
            "pixel_auroc": float("nan"),
            "compare": {"kmeans": {"nmi": 0.6, "ari": 0.2, "f1": 0.5}},
        },
    }
    mean = mean_over_categories(per_category)
    # (0.2 + 0.4) / 2 = 0.3, (0.1 + 0.3) / 2 = 0.2, (0.5 + 0.7) / 2 = 0.6; NaN pixel AUROC is left out.
    assert (
        mean["nmi"] == pytest.approx(0.3)
        and mean["ari"] == pytest.approx(0.2)
        and mean["f1"] == pytest.approx(0.6)
    )
    assert mean["pixel_auroc"] == pytest.approx(0.9)
    assert "au_pro" not in mean  # no category has it
    assert mean["compare"]["kmeans"] == pytest.approx({"nmi": 0.5, "ari": 0.1, "f1": 0.75})
    with pytest.raises(ValueError):
        mean_over_categories({})


def _metrics(path, body):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body))
    return path


def test_table_rows_per_category_method_and_clustering(tmp_path):
    ours = _metrics(
        tmp_path / "results/ds/ours/metrics.json",
        {
            "cat": {
                "nmi": 0.5,
                "ari": 0.4,
                "f1": 0.75,
                "clustering": "ward",
                "pixel_auroc": 0.9,
                "au_pro": 0.8,
                "image_auroc": 0.7,
                "compare": {"kmeans": {"nmi": 0.1, "ari": 0.2, "f1": 0.3}},
            },
            "mean": {
                "nmi": 0.5,
                "ari": 0.4,
                "f1": 0.75,
                "pixel_auroc": 0.9,
                "au_pro": 0.8,
                "image_auroc": 0.7,
                "compare": {"kmeans": {"nmi": 0.1, "ari": 0.2, "f1": 0.3}},
            },
        },
    )
    pool = _metrics(
        tmp_path / "results/ds/mean_pool/metrics.json",
        {
            "cat": {"nmi": 0.2, "ari": 0.1, "f1": 0.5, "clustering": "ward"},
            "mean": {"nmi": 0.2, "ari": 0.1, "f1": 0.5},
        },
    )
    rows = build_table([pool, ours])
    keys = [(r["method"], r["clustering"], r["category"]) for r in rows]
    assert keys == [
        ("mean_pool", "ward", "cat"),
        ("mean_pool", "ward", "mean"),
        ("ours", "ward", "cat"),
        ("ours", "ward", "mean"),
        ("ours", "kmeans", "cat"),
        ("ours", "kmeans", "mean"),
    ]
    kmeans_cat = rows[4]
    # A compared algorithm shares the maps, so it carries the same localization metrics.
    assert (kmeans_cat["nmi"], kmeans_cat["f1"], kmeans_cat["au_pro"]) == (0.1, 0.3, 0.8)
    assert rows[0]["pixel_auroc"] is None and rows[0]["dataset"] == "ds"

    write_table(rows, csv_path=tmp_path / "s.csv", markdown_path=tmp_path / "s.md")
    with open(tmp_path / "s.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == COLUMNS and len(table) == 6
    assert table[0]["pixel_auroc"] == "" and float(table[2]["au_pro"]) == 0.8
    md = (tmp_path / "s.md").read_text().splitlines()
    assert md[0].startswith("| dataset | category | method | clustering | nmi")
    assert len(md) == 2 + 6
    assert "| **ds** | **mean** | **ours** | **ward** | **0.5000** |" in md[5]
    assert not math.isnan(float(table[3]["nmi"]))
