"""The audit-log middleware around small WSGI apps: fields, byte counts (a response cut short
included), one line per request, link tokens redacted, whole lines under concurrency."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from davdisk import config as config_mod
from davdisk.http.audit import AuditLog, redact_path
from davdisk.request_context import KEY, RequestContext


def config(target: str) -> config_mod.Config:
    cfg = config_mod.load(None, data_dir="/nonexistent")
    cfg.set("logging", "audit", target, "test")
    return cfg


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body, b"|", body]


def call(
    app: Any,
    method: str = "PUT",
    path: str = "/dav/a",
    body: bytes = b"",
    extra: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "token=secret",
        "REMOTE_ADDR": "192.0.2.7",
        "wsgi.input": io.BytesIO(body),
        **(extra or {}),
    }
    status: list[str] = []
    result = app(environ, lambda s, h, e=None: status.append(s))
    try:
        out = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return status[0], out


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_off_means_not_there() -> None:
    app = AuditLog(echo_app, config(""))
    assert app.sink is None
    environ = {"REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(b"")}
    assert app(environ, lambda *a: None) == [b"", b"|", b""]


def test_one_line_per_request_with_its_fields(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    app = AuditLog(echo_app, config(str(log)))
    assert call(app, body=b"hello", path="/dav/caf\xc3\xa9") == ("200 OK", b"hello|hello")
    call(app, "GET", extra={KEY: RequestContext(client_ip="203.0.113.5", auth_event="failed")})
    first, second = lines(log)
    assert first["method"] == "PUT" and first["path"] == "/dav/café" and first["status"] == 200
    assert (first["bytes_in"], first["bytes_out"], first["ip"]) == (5, 11, "192.0.2.7")
    assert first["user"] is None and "auth" not in first
    assert first["ts"].endswith("Z") and first["ms"] >= 0
    assert second["ip"] == "203.0.113.5" and second["auth"] == "failed"
    assert "secret" not in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_a_response_cut_short_counts_only_what_was_sent(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"

    def streaming(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [])
        for _ in range(10):
            yield b"x" * 1000

    app = AuditLog(streaming, config(str(log)))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/dav/big", "wsgi.input": io.BytesIO()}
    result = app(environ, lambda *a: None)
    chunks = iter(result)
    next(chunks)
    next(chunks)
    next(chunks)  # the server fails to write this third chunk (the client hung up) ...
    assert log.read_text() == ""  # nothing is logged before the server closes the response
    result.close()  # ... and closes the response
    result.close()
    [line] = lines(log)
    assert line["bytes_out"] == 2000


def test_an_application_error_is_logged_as_500_once(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"

    def broken(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        call(AuditLog(broken, config(str(log))))
    [line] = lines(log)
    assert line["status"] == 500


def test_link_tokens_are_redacted() -> None:
    token = "AbCdEf0123456789_-xyzXYZ0123456789abcd"
    h = hashlib.sha256(token.encode()).hexdigest()[:8]
    assert redact_path(f"/s/{token}") == f"/s/<link:{h}>"
    assert redact_path(f"/s/{token}/sub/file.txt") == f"/s/<link:{h}>/sub/file.txt"
    assert redact_path(f"/public/{token}/") == f"/public/<link:{h}>/"
    assert redact_path("/public/") == "/public/"
    assert redact_path("/dav/s/x") == "/dav/s/x"


def test_stdout_target(capfd: pytest.CaptureFixture[str]) -> None:
    call(AuditLog(echo_app, config("-")), body=b"abc")
    out = capfd.readouterr().out
    assert json.loads(out)["bytes_in"] == 3


def test_lines_stay_whole_under_concurrency(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    app = AuditLog(echo_app, config(str(log)))
    body = b"y" * 5000

    def worker() -> None:
        for _ in range(100):
            call(app, body=body, path="/dav/" + "n" * 3000)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = lines(log)
    assert len(found) == 800 and all(x["bytes_in"] == 5000 for x in found)
