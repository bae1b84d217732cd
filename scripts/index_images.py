"""List the images of one category (MVTec layout) with their class and mask.

Inputs:  folder   <data_root>/<category>
Outputs: index    CSV with columns image, class, mask (paths relative to data_root)
Params:  exclude_classes (the dataset root is the folder's parent)
"""

import logging
from collections import Counter
from pathlib import Path

from blindlca.data import index_category, write_index
from blindlca.workflow import run


def main(*, folder: str, index: str, exclude_classes: list) -> None:
    path = Path(folder)
    records = index_category(path.parent, path.name, exclude_classes=exclude_classes)
    write_index(index, records)
    counts = Counter(r.cls for r in records)
    logging.getLogger("blindlca").info("%d images: %s", len(records), dict(sorted(counts.items())))


run(main, globals())
