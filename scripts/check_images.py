"""Check a whole dataset before the heavy work: one verdict on every category's unusable images.

Inputs:  indexes   the categories' index CSVs (usable images), in run order
         problems  the categories' problem CSVs (image, reason, fatal), same order
Outputs: skipped   CSV image, reason: the images left out (header only when none)
Params:  dataset, root, on_bad_image (error | skip), n_clusters
Stops the run (InputError, one message listing every file) on a bad image when on_bad_image is error,
and on any category that cannot be clustered.
"""

import logging
import sys
from pathlib import Path

from blindlca.checks import SKIPPED_FIELDS, Problem, dataset_report
from blindlca.data import read_index
from blindlca.errors import InputError
from blindlca.io import read_csv, write_csv
from blindlca.workflow import run

MAX_SHOWN = 5  # warnings printed to the terminal; the log has all


def _category(index: str) -> str:
    return Path(index).stem


def main(
    *,
    indexes: list,
    problems: list,
    skipped: str,
    dataset: str,
    root: str,
    on_bad_image: str,
    n_clusters: str | int,
) -> None:
    log = logging.getLogger("blindlca")
    usable = {_category(i): read_index(i) for i in indexes}
    found = {
        _category(i): [Problem(r["image"], r["reason"], r["fatal"] == "1") for r in read_csv(p)]
        for i, p in zip(indexes, problems, strict=True)
    }
    report = dataset_report(usable, found, n_clusters=n_clusters, on_bad_image=on_bad_image)
    for p in report.warnings:
        log.warning("%s: %s", p.image, p.reason)
    n_images = sum(map(len, usable.values())) + len(report.skipped)
    if report.stops(on_bad_image):
        raise InputError(
            report.message(dataset=dataset, root=root, on_bad_image=on_bad_image, n_images=n_images)
        )
    write_csv(
        skipped, ({"image": p.image, "reason": p.reason} for p in report.skipped), fields=SKIPPED_FIELDS
    )
    for p in report.skipped:
        log.warning("left out %s: %s", p.image, p.reason)
    notes = [f"{p.image}: {p.reason}" for p in report.warnings[:MAX_SHOWN]]
    if len(report.warnings) > MAX_SHOWN:
        notes.append(f"... and {len(report.warnings) - MAX_SHOWN} more warnings in the log of check_images")
    if report.skipped:
        notes.insert(0, f"{len(report.skipped)} of {n_images} images left out as unusable: see {skipped}")
    for note in notes:
        # Snakemake shows a job's log only when it fails; these must reach the terminal of a run that goes on.
        print(f"blindlca: {dataset}: {note}", file=sys.__stderr__, flush=True)
    log.info("%d usable images in %d categories", n_images - len(report.skipped), len(usable))


run(main, globals())
