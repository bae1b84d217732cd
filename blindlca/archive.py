"""Safe, atomic extraction of downloaded dataset archives (tar, tar.gz/.tgz, tar.xz, tar.bz2, zip).

`safe_extract` checks every entry before it writes anything and refuses the whole archive when one
entry could write outside the target (absolute path, drive letter, escaping ``..``), is a link, or is
a device, fifo or other special file. Datasets have no reason to contain any of these. The entries
land in a temporary sibling folder that is renamed onto the target only when complete, so a killed
extraction never leaves a half-written target behind.
"""

from __future__ import annotations

import copy
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["UnsafeArchiveError", "safe_extract"]

_DRIVE = re.compile(r"^[A-Za-z]:")
# Errors a truncated or corrupt archive raises while it is listed or read.
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, zlib.error, EOFError)


class UnsafeArchiveError(ValueError):
    """An archive entry could write outside the target folder, or is a link or special file."""


@dataclass(frozen=True)
class _Entry:
    path: str  # normalised, '/'-separated, relative; "" for the archive root itself
    is_dir: bool
    member: tarfile.TarInfo | zipfile.ZipInfo


def _normalise(archive: Path, name: str) -> str:
    """The entry's path relative to the target, or UnsafeArchiveError if it could leave the target."""

    def refuse(reason: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(
            f"refusing to extract {archive}: entry {name!r} {reason}; nothing was extracted. "
            "The archive is corrupt or was tampered with: delete it and download it again from its "
            "official source"
        )

    if "\x00" in name:
        raise refuse("contains a NUL character")
    # Backslashes are separators on Windows, so check them as such everywhere.
    posix = name.replace("\\", "/")
    if posix.startswith("/"):
        raise refuse("has an absolute path")
    if _DRIVE.match(posix):
        raise refuse("has a drive letter")
    parts: list[str] = []
    for part in posix.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise refuse("escapes the target folder with '..'")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _tar_entries(archive: Path, tar: tarfile.TarFile) -> Iterator[_Entry]:
    for member in tar.getmembers():
        path = _normalise(archive, member.name)
        kind = None
        if member.issym() or member.islnk():
            kind = f"is a {'symbolic' if member.issym() else 'hard'} link to {member.linkname!r}"
        elif member.ischr() or member.isblk():
            kind = "is a device file"
        elif member.isfifo():
            kind = "is a fifo"
        elif not (member.isreg() or member.isdir()):
            kind = f"is a special file (tar type {member.type!r})"
        if kind:
            raise UnsafeArchiveError(
                f"refusing to extract {archive}: entry {member.name!r} {kind}; nothing was extracted. "
                "Dataset archives hold only regular files and folders: delete it and download it again "
                "from its official source"
            )
        if not path and not member.isdir():
            raise UnsafeArchiveError(f"refusing to extract {archive}: file entry {member.name!r} has no name")
        yield _Entry(path=path, is_dir=member.isdir(), member=member)


def _zip_entries(archive: Path, zf: zipfile.ZipFile) -> Iterator[_Entry]:
    for info in zf.infolist():
        path = _normalise(archive, info.filename)
        # Unix zip tools keep the file type in the high 16 bits; zero means "no Unix mode recorded".
        mode = info.external_attr >> 16
        kind = None
        if stat.S_ISLNK(mode):
            kind = "is a symbolic link"
        elif stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = "is a device, fifo or other special file"
        if kind:
            raise UnsafeArchiveError(
                f"refusing to extract {archive}: entry {info.filename!r} {kind}; nothing was extracted. "
                "Dataset archives hold only regular files and folders: delete it and download it again "
                "from its official source"
            )
        if not path and not info.is_dir():
            raise UnsafeArchiveError(
                f"refusing to extract {archive}: file entry {info.filename!r} has no name"
            )
        yield _Entry(path=path, is_dir=info.is_dir(), member=info)


def _check_dest(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(
            f"extraction target {dest} already exists and is not an empty folder; delete it or extract "
            "somewhere else"
        )


def _extract_tar(tar: tarfile.TarFile, entries: list[_Entry], tmp: Path) -> None:
    # Our own checks above are the guard; the "data" filter (where this Python has it) is a second one,
    # and set_attrs=False keeps the archive's modes, owners and times (e.g. setuid bits) off the disk.
    extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    for entry in entries:
        member = copy.copy(entry.member)
        member.name = entry.path
        tar.extract(member, tmp, set_attrs=False, **extra)


def _extract_zip(zf: zipfile.ZipFile, entries: list[_Entry], tmp: Path) -> None:
    for entry in entries:
        target = tmp.joinpath(*PurePosixPath(entry.path).parts)
        if entry.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(entry.member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)


def safe_extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    members: Callable[[str], bool] | None = None,
) -> Path:
    """Extract a tar or zip archive into ``dest`` after checking every entry.

    The archive type is read from the content (tar with any of gzip/xz/bzip2 compression, or zip),
    not from the file name. All entries are checked before anything is written; then the selected
    ones are extracted into a temporary sibling of ``dest`` that is renamed onto ``dest``.

    Args:
        archive: the archive file.
        dest: target folder; must not exist or be empty.
        members: keeps only the entries for which it returns True; it receives the entry's path inside
            the archive, '/'-separated, without a leading './' (e.g. ``"carpet/test/good/000.png"``).
            Every entry is checked for safety whether selected or not. A filter that selects nothing
            gives an empty ``dest``.
    Returns:
        ``dest`` as a Path.
    Raises:
        FileNotFoundError: ``archive`` does not exist.
        FileExistsError: ``dest`` exists and is not an empty folder.
        UnsafeArchiveError: an entry is absolute, has a drive letter, escapes with ``..``, or is a link,
            device, fifo or other special file; nothing is written.
        ValueError: ``archive`` is neither a tar nor a zip archive, or is truncated or corrupt.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist; download it first")
    _check_dest(dest)

    handle: tarfile.TarFile | zipfile.ZipFile
    try:
        # Tar first: a zip detector scans the file's tail and can be fooled by a zip stored in a tar.
        handle = tarfile.open(archive, "r:*")
    except tarfile.ReadError:
        if not zipfile.is_zipfile(archive):
            raise ValueError(
                f"{archive} is neither a tar (.tar, .tar.gz/.tgz, .tar.xz, .tar.bz2) nor a zip archive; "
                "check that the download is complete (an HTML error page is a common culprit) and "
                "download it again"
            ) from None
        handle = zipfile.ZipFile(archive)
    except _CORRUPT as exc:
        raise ValueError(
            f"{archive} is truncated or corrupt ({exc}); delete it and download it again"
        ) from exc

    with handle:
        try:
            if isinstance(handle, tarfile.TarFile):
                entries = list(_tar_entries(archive, handle))
            else:
                entries = list(_zip_entries(archive, handle))
        except _CORRUPT as exc:
            raise ValueError(
                f"{archive} is truncated or corrupt ({exc}); delete it and download it again"
            ) from exc
        selected = [e for e in entries if e.path and (members is None or members(e.path))]

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
        try:
            if isinstance(handle, tarfile.TarFile):
                _extract_tar(handle, selected, tmp)
            else:
                _extract_zip(handle, selected, tmp)
            # mkdtemp makes a private (0700) folder; give the result the mode any new folder gets.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            _check_dest(dest)  # another process may have filled it meanwhile
            if dest.exists():
                dest.rmdir()
            os.replace(tmp, dest)
        except _CORRUPT as exc:
            raise ValueError(
                f"{archive} is truncated or corrupt ({exc}); delete it and download it again"
            ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
