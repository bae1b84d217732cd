"""Per-rule logging: route logging, warnings, tqdm bars and stray prints into the rule's log file."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
from collections.abc import Iterator

import torch

from blindlca.errors import InputError


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[logging.Logger]:
    """Send stdout, stderr and the `blindlca` logger to `path` (append) for the block."""
    logger = logging.getLogger("blindlca")
    logger.setLevel(logging.INFO)
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        try:
            yield logger
        finally:
            logger.removeHandler(handler)
        return
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    with open(path, "a", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logging.captureWarnings(True)
        logging.getLogger("py.warnings").addHandler(handler)
        try:
            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                logger.info(
                    "torch %s, %d CPU threads, CUDA available: %s",
                    torch.__version__,
                    torch.get_num_threads(),
                    torch.cuda.is_available(),
                )
                yield logger
                # ru_maxrss is exact for this process; Snakemake's benchmark samples and can miss peaks.
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                logger.info("peak RSS %.0f MB", peak)
        except InputError as err:
            logger.error("%s", err)
            raise
        except BaseException:
            logger.exception("step failed")
            raise
        finally:
            logging.captureWarnings(False)
            logging.getLogger("py.warnings").removeHandler(handler)
            logger.removeHandler(handler)
