"""One results table over every dataset, category, method and clustering algorithm of the run.

Inputs:  metrics  results/<dataset>/<method>/metrics.json files
Outputs: csv, markdown  results/summary.csv and results/summary.md
"""

from blindlca.summary import build_table, write_table
from blindlca.workflow import run


def main(*, metrics: list, csv: str, markdown: str) -> None:
    write_table(build_table(metrics), csv_path=csv, markdown_path=markdown)


run(main, globals())
