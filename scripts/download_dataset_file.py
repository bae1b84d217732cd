"""Download one archive of a registry dataset (mvtec, mtd, leaves) and verify its sha256.

Inputs:  none
Outputs: archive  resources/downloads/<dataset>/<file>
Params:  url, sha256, manual (the steps to follow where the download cannot be automated)
"""

from blindlca.download import fetch
from blindlca.workflow import run


def main(*, archive: str, url: str, sha256: str, manual: str) -> None:
    hint = f"To place it by hand: {manual}" if manual else f"Or download {url} yourself to {archive}."
    fetch(url, archive, sha256=sha256, manual_hint=hint)


run(main, globals())
