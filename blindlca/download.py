"""Resumable, checksum-verified downloads (backbone weights, datasets).

`fetch` streams into ``<dest>.part``, resumes that part with an HTTP Range request on the next call,
verifies the SHA-256 and only then moves the part onto ``dest``: ``dest`` never exists half-written
or unverified.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import re
import sys
import urllib.error
import urllib.request

from tqdm import tqdm

__all__ = ["DownloadError", "fetch", "sha256sum"]

_HEX = re.compile(r"[0-9a-f]{8,64}")
_USER_AGENT = "blindlca-fetch/1.0"


class DownloadError(RuntimeError):
    """A download failed, was truncated, or its content does not match the expected checksum."""


class _Truncated(Exception):
    """The server closed the connection before sending everything it announced."""


_NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    _Truncated,
)


def sha256sum(path: str | os.PathLike, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks so large files never sit in memory.

    Returns:
        64-character lower-case hex digest.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _normalise_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not _HEX.fullmatch(sha256.strip().lower()):
        raise ValueError(
            f"sha256={sha256!r} is not a hex digest: give the full 64-character SHA-256 or a hex prefix "
            "of 8 to 64 characters (for sources that publish only a prefix)"
        )
    return sha256.strip().lower()


def _parse_content_range_start(value: str | None) -> int | None:
    # "bytes 100000-299999/300000" -> 100000
    m = re.match(r"\s*bytes\s+(\d+)-", value or "")
    return int(m.group(1)) if m else None


def _stream(
    url: str, part: pathlib.Path, *, expected: str, timeout: float, chunk_size: int, progress: bool
) -> None:
    """Bring ``part`` up to the full remote content, resuming from its current size.

    Leaves whatever arrived in ``part`` when the transfer fails, so the next call can resume.
    """
    # Two attempts: the second starts from zero when the first finds the part unusable for a resume.
    for _ in range(2):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": _USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code != 416 or not offset:
                raise
            exc.close()
            # 416: nothing left past `offset`, so the part is either complete or longer than the file.
            if sha256sum(part, chunk_size=chunk_size).startswith(expected):
                return
            part.unlink()
            continue
        with response:
            status = response.status
            if status == 206 and _parse_content_range_start(response.headers.get("Content-Range")) != offset:
                # A partial answer for some other range cannot be appended safely.
                part.unlink()
                continue
            if status != 206:
                # 200 means the server ignored the Range header and sends the whole file.
                offset = 0
            length = response.headers.get("Content-Length")
            remaining = int(length) if length is not None and length.isdigit() else None
            total = offset + remaining if remaining is not None else None
            received = 0
            with (
                open(part, "ab" if offset else "wb") as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=part.name.removesuffix(".part"),
                    file=sys.stderr,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(chunk_size):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            # http.client returns b"" rather than raising when a connection dies early.
            if remaining is not None and received < remaining:
                raise _Truncated(f"connection closed after {received} of {remaining} bytes")
        return
    raise DownloadError(
        f"{url} could not resume {part}: the server rejected or misanswered its Range request twice; "
        f"retry, or place the file manually at {part.with_suffix('')}"
    )


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    manual_hint: str = "",
    progress: bool = True,
) -> pathlib.Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    The transfer goes to ``<dest>.part``; an existing part is resumed with ``Range: bytes=<size>-``
    (206 appends, 200 restarts from zero, 416 means the part may already be complete). The part is
    moved onto ``dest`` only after its SHA-256 matches.

    Args:
        url: http(s) or file URL.
        dest: final path; parent folders are created.
        sha256: expected digest, lower-case hex; a prefix of at least 8 hex characters is accepted for
            sources that publish only a prefix (e.g. torchvision weight file names).
        timeout: seconds to wait for the connection and for each read.
        chunk_size: bytes per read.
        manual_hint: appended to network-failure messages, e.g. where to get the file by hand.
        progress: show a tqdm bar on stderr.
    Returns:
        ``dest`` as a Path.
    Raises:
        ValueError: ``sha256`` is not a hex digest or prefix.
        DownloadError: network failure, truncated transfer, checksum mismatch, or an existing ``dest``
            whose checksum does not match.
    """
    expected = _normalise_sha256(sha256)
    dest = pathlib.Path(dest)
    part = dest.with_name(dest.name + ".part")

    if dest.exists():
        actual = sha256sum(dest, chunk_size=chunk_size)
        if actual.startswith(expected):
            return dest
        # Never overwrite a file the user may have placed deliberately.
        raise DownloadError(
            f"{dest} exists but its sha256 is {actual}, expected {expected}; "
            f"delete it to download it again from {url}"
        )

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        _stream(url, part, expected=expected, timeout=timeout, chunk_size=chunk_size, progress=progress)
    except _NETWORK_ERRORS as exc:
        # HTTPError's str() carries the status code; a plain URLError's reason is the socket error.
        is_http_error = isinstance(exc, urllib.error.HTTPError)
        reason = exc.reason if isinstance(exc, urllib.error.URLError) and not is_http_error else None
        kept = (
            f"the partial download ({part.stat().st_size} bytes) is kept at {part}; the next call resumes it"
            if part.exists()
            else f"no partial download was kept at {part}"
        )
        message = (
            f"could not download {url}: {reason or exc}. Place the file manually at {dest} "
            f"(sha256 {expected}) or retry; {kept}."
        )
        if manual_hint:
            message += f" {manual_hint}"
        raise DownloadError(message) from exc

    if not part.exists():
        raise DownloadError(f"{url} sent nothing to {part}; retry, or place the file manually at {dest}")
    actual = sha256sum(part, chunk_size=chunk_size)
    if not actual.startswith(expected):
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {url} -> {dest}: expected sha256 {expected}, got {actual}; "
            "the partial file was removed, retry or check the URL and checksum"
        )
    os.replace(part, dest)
    return dest
