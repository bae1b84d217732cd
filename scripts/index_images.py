"""List the images of one category with their class and mask, decoding each to find the unusable ones.

Inputs:  folder    <data_root>/<category>
Outputs: index     CSV image, class, mask of the usable images (paths relative to data_root)
         problems  CSV image, reason, fatal: images left out (fatal) and warnings (e.g. a resized mask)
Params:  exclude_classes, min_side (smallest usable image side), contents (reruns on a changed file)
"""

import logging
from collections import Counter
from pathlib import Path

from blindlca.checks import PROBLEM_FIELDS, check_category
from blindlca.data import index_category, write_index
from blindlca.io import write_csv
from blindlca.workflow import run


def main(
    *, folder: str, index: str, problems: str, exclude_classes: list, min_side: int, contents: str
) -> None:
    del contents  # the folder's fingerprint: only there to rerun this job when a file changes
    log = logging.getLogger("blindlca")
    path = Path(folder)
    usable, found = check_category(
        path.parent,
        index_category(path.parent, path.name, exclude_classes=exclude_classes),
        min_side=min_side,
    )
    write_index(index, usable)
    write_csv(
        problems,
        ({"image": p.image, "reason": p.reason, "fatal": int(p.fatal)} for p in found),
        fields=PROBLEM_FIELDS,
    )
    counts = Counter(r.cls for r in usable)
    log.info("%d usable images: %s", len(usable), dict(sorted(counts.items())))
    for p in found:
        log.warning("%s %s: %s", "left out" if p.fatal else "kept", p.image, p.reason)


run(main, globals())
