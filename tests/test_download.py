"""fetch() against a real HTTP server on 127.0.0.1 that can honour, ignore or cut Range requests."""

from __future__ import annotations

import hashlib
import http.server
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from http_server import serving

from blindlca.download import DownloadError, fetch, sha256sum

SIZE = 300_000
PART = 100_000


@dataclass
class Behaviour:
    """What the test server does; tests flip these between calls."""

    data: bytes
    ignore_range: bool = False
    cut_after: int | None = None  # body bytes sent before dropping the connection
    fail_status: int | None = None  # answer every request with this HTTP error
    ranges: list[str | None] = field(default_factory=list)  # Range header of every request, in order


def _handler(behaviour: Behaviour) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            data = behaviour.data
            range_header = self.headers.get("Range")
            behaviour.ranges.append(range_header)
            if behaviour.fail_status is not None:
                self.send_error(behaviour.fail_status)
                return
            start = 0
            if range_header and not behaviour.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if behaviour.cut_after is not None:
                body = body[: behaviour.cut_after]
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep pytest output clean

    return Handler


@pytest.fixture
def payload() -> bytes:
    return np.random.default_rng(0).bytes(SIZE)


@pytest.fixture
def server(payload: bytes) -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour(data=payload)
    with serving(_handler(behaviour)) as url:
        yield f"{url}/weights.bin", behaviour


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(url: str, dest, data: bytes, **kwargs):
    kwargs.setdefault("sha256", _digest(data))
    return fetch(url, dest, timeout=5.0, progress=False, **kwargs)


def test_fresh_download_verified(server, payload, tmp_path):
    url, behaviour = server
    dest = tmp_path / "sub" / "weights.bin"
    out = _fetch(url, dest, payload)
    assert out == dest
    assert dest.read_bytes() == payload
    assert sha256sum(dest) == _digest(payload)
    assert not (tmp_path / "sub" / "weights.bin.part").exists()
    assert behaviour.ranges == [None]


def test_resume_after_truncated_part(server, payload, tmp_path):
    url, behaviour = server
    dest = tmp_path / "weights.bin"
    (tmp_path / "weights.bin.part").write_bytes(payload[:PART])
    _fetch(url, dest, payload)
    assert behaviour.ranges == [f"bytes={PART}-"]
    assert dest.read_bytes() == payload


def test_server_ignoring_range_restarts(server, payload, tmp_path):
    url, behaviour = server
    behaviour.ignore_range = True
    dest = tmp_path / "weights.bin"
    (tmp_path / "weights.bin.part").write_bytes(payload[:PART])
    _fetch(url, dest, payload)
    assert behaviour.ranges == [f"bytes={PART}-"]
    assert dest.read_bytes() == payload


def test_complete_part_answered_416_is_kept(server, payload, tmp_path):
    url, behaviour = server
    dest = tmp_path / "weights.bin"
    (tmp_path / "weights.bin.part").write_bytes(payload)
    _fetch(url, dest, payload)
    assert behaviour.ranges == [f"bytes={SIZE}-"]
    assert dest.read_bytes() == payload


def test_invalid_part_answered_416_restarts(server, payload, tmp_path):
    url, behaviour = server
    dest = tmp_path / "weights.bin"
    (tmp_path / "weights.bin.part").write_bytes(b"\0" * (SIZE + 10))
    _fetch(url, dest, payload)
    assert behaviour.ranges == [f"bytes={SIZE + 10}-", None]
    assert dest.read_bytes() == payload


def test_cut_connection_keeps_part_then_resumes(server, payload, tmp_path):
    url, behaviour = server
    behaviour.cut_after = 120_000
    dest = tmp_path / "weights.bin"
    part = tmp_path / "weights.bin.part"
    with pytest.raises(DownloadError) as info:
        _fetch(url, dest, payload)
    assert str(part) in str(info.value)
    assert not dest.exists()
    assert part.read_bytes() == payload[:120_000]

    behaviour.cut_after = None
    _fetch(url, dest, payload)
    assert behaviour.ranges == [None, "bytes=120000-"]
    assert dest.read_bytes() == payload
    assert not part.exists()


def test_tampered_content_rejected(server, payload, tmp_path):
    url, behaviour = server
    behaviour.data = payload[:-1] + bytes([payload[-1] ^ 0xFF])
    dest = tmp_path / "weights.bin"
    with pytest.raises(DownloadError) as info:
        _fetch(url, dest, payload)
    message = str(info.value)
    assert url in message and str(dest) in message
    assert _digest(payload) in message and _digest(behaviour.data) in message
    assert not dest.exists()
    assert not (tmp_path / "weights.bin.part").exists()


def test_existing_correct_dest_makes_no_request(server, payload, tmp_path):
    url, behaviour = server
    dest = tmp_path / "weights.bin"
    dest.write_bytes(payload)
    assert _fetch(url, dest, payload) == dest
    assert behaviour.ranges == []


def test_existing_wrong_dest_is_not_overwritten(server, payload, tmp_path):
    url, behaviour = server
    dest = tmp_path / "weights.bin"
    dest.write_bytes(b"user's own file")
    with pytest.raises(DownloadError, match="delete it"):
        _fetch(url, dest, payload)
    assert dest.read_bytes() == b"user's own file"
    assert behaviour.ranges == []


def test_closed_port_names_dest_and_hint(payload, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "weights.bin"
    hint = "Download it by hand from the model zoo."
    with pytest.raises(DownloadError) as info:
        _fetch(f"http://127.0.0.1:{port}/weights.bin", dest, payload, manual_hint=hint)
    message = str(info.value)
    assert str(dest) in message and hint in message
    assert not dest.exists()


def test_http_error_is_download_error(server, payload, tmp_path):
    url, behaviour = server
    behaviour.fail_status = 404
    dest = tmp_path / "weights.bin"
    with pytest.raises(DownloadError, match="404") as info:
        _fetch(url, dest, payload, manual_hint="HINT")
    assert url in str(info.value) and str(dest) in str(info.value) and "HINT" in str(info.value)
    assert not dest.exists()


@pytest.mark.parametrize("length", [8, 16, 64])
def test_prefix_checksum_accepted(server, payload, tmp_path, length):
    url, _ = server
    dest = tmp_path / "weights.bin"
    _fetch(url, dest, payload, sha256=_digest(payload)[:length].upper())
    assert dest.read_bytes() == payload


@pytest.mark.parametrize("bad", ["", "abc", "1234567", "g" * 64, "a" * 65, "deadbeef-"])
def test_malformed_sha256(server, payload, tmp_path, bad):
    url, behaviour = server
    with pytest.raises(ValueError, match="sha256"):
        _fetch(url, tmp_path / "weights.bin", payload, sha256=bad)
    assert behaviour.ranges == []
