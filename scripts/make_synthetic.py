"""Generate one texture family of the embedded synthetic dataset in MVTec layout.

Inputs:  none
Outputs: folder   <data_root>/<family>/{test,ground_truth}/...
Params:  family, synthetic (defects, image_size, n_good, n_per_defect), seed
"""

from pathlib import Path

from blindlca.synthetic import generate_category
from blindlca.workflow import run


def main(*, folder: str, family: str, synthetic: dict, seed: int) -> None:
    path = Path(folder)
    generate_category(path.parent, family, seed=seed, **synthetic)
    print(f"wrote {sum(1 for _ in path.rglob('*.png'))} PNG files under {path}")


run(main, globals())
