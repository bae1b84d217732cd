"""safe_extract on tar (plain, gz, xz, bz2) and zip archives built here, safe and hostile."""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from blindlca.archive import UnsafeArchiveError, safe_extract

FILES = {"root/a.txt": b"alpha", "root/sub/b.bin": bytes(range(256)), "root/sub/deeper/c.txt": b"gamma"}
TAR_MODES = {"tar": "w", "tar.gz": "w:gz", "tgz": "w:gz", "tar.xz": "w:xz", "tar.bz2": "w:bz2"}


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, b""


def write_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def write_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _zip_link(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so external_attr carries the file type
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_nothing_written(tmp_path: Path, archive: Path) -> None:
    """Only the archive is left in tmp_path: no target, no temporary folder, no escaped file."""
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]
    assert not (tmp_path.parent / "evil").exists()


@pytest.mark.parametrize("ext", [*TAR_MODES, "zip"])
def test_extracts_every_supported_format(tmp_path: Path, ext: str) -> None:
    archive = tmp_path / f"data.{ext}"
    if ext == "zip":
        write_zip(archive, [("root/", b""), *FILES.items()])
    else:
        dir_info = tarfile.TarInfo("root")
        dir_info.type = tarfile.DIRTYPE
        write_tar(archive, [(dir_info, b""), *(_file(n, d) for n, d in FILES.items())], TAR_MODES[ext])

    dest = safe_extract(archive, tmp_path / "out" / "dest")

    assert dest == tmp_path / "out" / "dest"
    assert read_tree(dest) == FILES
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dest"]  # no temporary folder left


def test_type_comes_from_the_content_not_the_name(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "misnamed.zip", [_file("x.txt", b"x")], "w:xz")
    assert read_tree(safe_extract(archive, tmp_path / "dest")) == {"x.txt": b"x"}


def test_dot_slash_prefix_and_inner_dotdot_stay_inside(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [_file("./top/a.txt", b"a"), _file("top/x/../b.txt", b"b")])
    seen: list[str] = []
    dest = safe_extract(archive, tmp_path / "dest", members=lambda p: seen.append(p) or True)
    assert read_tree(dest) == {"top/a.txt": b"a", "top/b.txt": b"b"}
    assert seen == ["top/a.txt", "top/b.txt"]  # the filter sees normalised paths


TAR_ATTACKS = {
    "../evil": _file("../evil", b"boom"),
    "a/../../evil": _file("a/../../evil", b"boom"),
    "/abs/path": _file("/abs/path", b"boom"),
    "C:/evil": _file("C:/evil", b"boom"),
    "..\\evil": _file("..\\evil", b"boom"),
    "link-out": _special("link-out", tarfile.SYMTYPE, "/etc/passwd"),
    "link-in": _special("link-in", tarfile.SYMTYPE, "root/a.txt"),
    "hard": _special("hard", tarfile.LNKTYPE, "root/a.txt"),
    "fifo": _special("fifo", tarfile.FIFOTYPE),
    "chardev": _special("chardev", tarfile.CHRTYPE),
    "blockdev": _special("blockdev", tarfile.BLKTYPE),
}


@pytest.mark.parametrize("name", list(TAR_ATTACKS))
def test_tar_with_one_unsafe_entry_is_refused_whole(tmp_path: Path, name: str) -> None:
    # The harmless entry comes first: it must not be written either.
    archive = write_tar(tmp_path / "bad.tar.gz", [_file("root/a.txt", b"alpha"), TAR_ATTACKS[name]])
    with pytest.raises(UnsafeArchiveError, match=re.escape(repr(name))) as info:
        safe_extract(archive, tmp_path / "dest")
    assert str(archive) in str(info.value)
    assert_nothing_written(tmp_path, archive)


ZIP_ATTACKS = {
    "../evil": ("../evil", b"boom"),
    "/abs/path": ("/abs/path", b"boom"),
    "C:\\evil": ("C:\\evil", b"boom"),
    "link": _zip_link("link", "/etc/passwd"),
}


@pytest.mark.parametrize("name", list(ZIP_ATTACKS))
def test_zip_with_one_unsafe_entry_is_refused_whole(tmp_path: Path, name: str) -> None:
    archive = write_zip(tmp_path / "bad.zip", [("root/a.txt", b"alpha"), ZIP_ATTACKS[name]])
    with pytest.raises(UnsafeArchiveError, match=re.escape(repr(name))):
        safe_extract(archive, tmp_path / "dest")
    assert_nothing_written(tmp_path, archive)


def test_unsafe_entry_is_refused_even_when_the_filter_skips_it(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "bad.tar", [_file("keep/a.txt", b"a"), TAR_ATTACKS["../evil"]], "w")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "dest", members=lambda p: p.startswith("keep/"))
    assert_nothing_written(tmp_path, archive)


def test_checks_hold_without_the_tarfile_data_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pythons before 3.11.4 have no extraction filters: our own checks must suffice.
    monkeypatch.delattr(tarfile, "data_filter")
    good = write_tar(tmp_path / "good.tar.gz", [_file(n, d) for n, d in FILES.items()])
    assert read_tree(safe_extract(good, tmp_path / "dest")) == FILES
    bad = write_tar(tmp_path / "bad.tar.gz", [TAR_ATTACKS["link-out"]])
    with pytest.raises(UnsafeArchiveError):
        safe_extract(bad, tmp_path / "dest2")
    assert not (tmp_path / "dest2").exists()


@pytest.mark.parametrize("ext", ["tar.xz", "zip"])
def test_members_filter_selects_entries(tmp_path: Path, ext: str) -> None:
    entries = {**FILES, "other/z.txt": b"zeta", "license.txt": b"cc"}
    archive = tmp_path / f"a.{ext}"
    if ext == "zip":
        write_zip(archive, list(entries.items()))
    else:
        write_tar(archive, [_file(n, d) for n, d in entries.items()], "w:xz")
    dest = safe_extract(archive, tmp_path / "dest", members=lambda p: "sub" in p.split("/"))
    assert read_tree(dest) == {k: v for k, v in FILES.items() if "/sub/" in k}


def test_filter_that_selects_nothing_gives_an_empty_folder(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [_file(n, d) for n, d in FILES.items()])
    dest = safe_extract(archive, tmp_path / "dest", members=lambda p: False)
    assert dest.is_dir() and not any(dest.iterdir())


def test_existing_nonempty_dest_is_refused_and_left_alone(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [_file("x.txt", b"new")])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        safe_extract(archive, dest)
    assert read_tree(dest) == {"mine.txt": b"keep me"}


def test_existing_empty_dest_is_filled(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [_file("x.txt", b"new")])
    (tmp_path / "dest").mkdir()
    assert read_tree(safe_extract(archive, tmp_path / "dest")) == {"x.txt": b"new"}


def test_unsupported_file_is_a_value_error_naming_it(tmp_path: Path) -> None:
    page = tmp_path / "carpet.tar.xz"
    page.write_text("<html>quota exceeded</html>")
    with pytest.raises(ValueError, match=re.escape(str(page))) as info:
        safe_extract(page, tmp_path / "dest")
    assert not isinstance(info.value, UnsafeArchiveError)
    assert not (tmp_path / "dest").exists()


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.zip"):
        safe_extract(tmp_path / "nope.zip", tmp_path / "dest")


def test_truncated_archive_is_a_value_error_and_writes_nothing(tmp_path: Path) -> None:
    full = write_tar(tmp_path / "full.tar.gz", [_file("big.bin", os.urandom(200_000))])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full.read_bytes()[:50_000])
    full.unlink()
    with pytest.raises(ValueError, match="truncated or corrupt"):
        safe_extract(cut, tmp_path / "dest")
    assert_nothing_written(tmp_path, cut)


def test_failure_midway_leaves_no_dest_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_tar(tmp_path / "a.tar.gz", [_file(n, d) for n, d in FILES.items()])
    real, calls = tarfile.TarFile.extract, []

    def dying(self: tarfile.TarFile, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a killed job
        real(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", dying)
    with pytest.raises(KeyboardInterrupt):
        safe_extract(archive, tmp_path / "dest")
    assert_nothing_written(tmp_path, archive)


def test_archive_modes_are_not_applied(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "a.tar", [_file("suid", b"#!/bin/sh\n", mode=0o4777)], "w")
    dest = safe_extract(archive, tmp_path / "dest")
    umask = os.umask(0)
    os.umask(umask)
    assert not (dest / "suid").stat().st_mode & (stat.S_ISUID | stat.S_ISGID)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~umask  # not the private mode of a temp folder
