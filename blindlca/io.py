"""Atomic file output and the small tabular/array formats the workflow exchanges.

Every writer goes through `atomic_path`: the data lands in a temporary file next to the target
and is renamed into place only when complete, so a killed job never leaves a file that a rerun
would trust.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` if the block succeeds.

    The temporary file is `.{name}.XXXXXXXX{suffix or .tmp}`, and the writer holds an exclusive `flock` on
    it until the rename. A writer killed mid-write (SIGKILL, a dead node) leaves its temporary behind and
    its lock goes with it; the next `atomic_path` for the same target deletes such unlocked temporaries,
    so repeated kills leave no pile of dead files. A temporary still locked by a live writer is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or ".tmp"
    _remove_dead_temporaries(path, suffix)
    fd, tmp = _locked_temporary(path, suffix)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the mode any other new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)  # releases the lock, only after the rename


def _flock(fd: int, *, wait: bool) -> bool | None:
    """Lock `fd` exclusively: True if locked, False if another holds it, None if locks are unsupported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # e.g. ENOLCK/EOPNOTSUPP on file systems without flock
        return None
    return True


def _locked_temporary(path: Path, suffix: str) -> tuple[int, Path]:
    """Create the temporary for `path` and lock it; the fd keeps the lock until it is closed."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        _flock(fd, wait=True)
        if os.fstat(fd).st_nlink:
            return fd, Path(tmp)
        os.close(fd)  # a concurrent `_remove_dead_temporaries` deleted it before we had the lock


def _remove_dead_temporaries(path: Path, suffix: str) -> None:
    """Delete the temporaries of `path` that killed writers left: those nobody holds locked.

    Where the file system cannot lock, nothing is deleted. Where its locks are weaker than flock's (some
    network file systems), a live writer of the same target (which Snakemake's lock rules out) could lose
    its temporary; it then fails at the rename rather than leave a wrong file.
    """
    pattern = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}" + re.escape(suffix))
    with os.scandir(path.parent) as entries:
        names = [e.name for e in entries if pattern.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
    for name in names:
        stale = path.parent / name
        try:
            fd = os.open(stale, os.O_RDWR | os.O_NOFOLLOW)  # NFS grants exclusive locks to writers only
        except OSError:  # gone already, or not ours
            continue
        try:
            # Unlocked: its writer is dead. Delete it if the name still points to the file we locked.
            if _flock(fd, wait=False) and os.path.samestat(os.fstat(fd), os.lstat(stale)):
                stale.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write one array as .npy (memory-mappable on read)."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.ascontiguousarray(array))


def load_array(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """Read an array written by `save_array`; `mmap=True` maps it instead of reading it."""
    return np.load(path, mmap_mode="r" if mmap else None)


def save_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=True) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], *, fields: Sequence[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class ArrayReader:
    """Rows of a .npy file read on demand with plain file reads.

    Unlike a memory map, rows read this way leave no pages mapped into the process, so a stage that
    holds a few rows at a time keeps a flat resident size however many images the file holds.
    Indexing: an int, a step-1 slice, or a sequence of row indices; returns a fresh array.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran:
            raise ValueError(f"{str(self.path)!r} is stored in Fortran order; rewrite it with save_array")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _read(self, start: int, stop: int) -> np.ndarray:
        n = max(0, stop - start)
        with open(self.path, "rb") as fh:
            fh.seek(self.offset + start * self.row_bytes)
            data = np.fromfile(fh, dtype=self.dtype, count=n * self.row_bytes // self.dtype.itemsize)
        return data.reshape((n, *self.shape[1:]))

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("ArrayReader reads step-1 slices only")
            return self._read(start, stop)
        if np.ndim(index) == 0:
            i = int(index) + (len(self) if int(index) < 0 else 0)
            if not 0 <= i < len(self):
                raise IndexError(f"row {index} out of range for {len(self)} rows")
            return self._read(i, i + 1)[0]
        return np.stack([self[int(i)] for i in index]) if len(index) else self._read(0, 0)


class _RowWriter:
    def __init__(self, fh, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.fh, self.shape, self.dtype, self.rows = fh, shape, dtype, 0

    def write(self, block: np.ndarray) -> None:
        """Append rows (n, *shape[1:]); cast to the file's dtype."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"rows of shape {block.shape[1:]} do not fit an array of shape {self.shape}")
        if self.rows + len(block) > self.shape[0]:
            raise ValueError(f"more than the {self.shape[0]} rows declared")
        self.fh.write(block.tobytes())
        self.rows += len(block)


@contextlib.contextmanager
def array_writer(path: str | os.PathLike, shape: tuple[int, ...], dtype=np.float32) -> Iterator[_RowWriter]:
    """Write a .npy of known shape block by block with plain writes (flat memory), atomically.

    Yields a writer with `.write(rows)`; the file is renamed into place only when every row came.
    """
    dtype = np.dtype(dtype)
    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
        )
        writer = _RowWriter(fh, tuple(shape), dtype)
        yield writer
        if writer.rows != shape[0]:
            raise ValueError(f"{str(path)!r}: {writer.rows} of {shape[0]} rows written")


def save_model(path: str | os.PathLike, net, *, config: dict, **extra: Any) -> None:
    """Save a module's weights with the constructor arguments that rebuild it (`load_model`), atomically."""
    import torch

    with atomic_path(path, suffix=".pt") as tmp:
        torch.save({"state_dict": net.cpu().state_dict(), "config": config, **extra}, tmp)


def load_model(path: str | os.PathLike, cls):
    """Rebuild a module saved by `save_model`: `cls(**config)` with its weights, in eval mode, on the CPU."""
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=True)
    net = cls(**saved["config"])
    net.load_state_dict(saved["state_dict"])
    return net.eval()
