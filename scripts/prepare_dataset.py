"""Build one category of a registry dataset in MVTec layout from its downloaded archives.

Inputs:  archives resources/downloads/<dataset>/<file>...
Outputs: folder   resources/datasets/<dataset>/<category> (MVTec layout)
Params:  dataset, category
"""

from blindlca.datasets import prepare_category
from blindlca.workflow import run


def main(*, archives: list, folder: str, dataset: str, category: str) -> None:
    prepare_category(dataset, category, list(archives), folder)


run(main, globals())
