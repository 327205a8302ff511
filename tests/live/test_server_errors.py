"""Every 5xx answer leaves its cause in the server log: once, with a traceback, the request's
method and path, and no secret (a public link's token is redacted).

Before, a key error (a ``DavdiskError`` turned into ``DAVError(500)``) and 500s raised inside
WsgiDAV left no line at all, although the README says 500s are logged.
"""

from __future__ import annotations

from pathlib import Path

from tests.live.conftest import ALICE, ServerFactory, blob_files, put, sql, wait_until
from tests.live.sharing_helpers import share_link


def _lines_about(log: str, needle: str) -> list[str]:
    return [line for line in log.splitlines() if needle in line]


def test_a_key_error_is_logged_once_with_traceback(server_factory: ServerFactory) -> None:
    srv = server_factory()
    s = srv.session(ALICE)
    put(s, srv.dav + "before.txt", b"written while the key was sound", expect=(201,))
    srv.stop()
    # Damage alice's wrapped key: her content can no longer be encrypted or read.
    ((uid,),) = sql(srv.data_dir, "SELECT id FROM users WHERE name = :name", name=ALICE)
    ((wrapped,),) = sql(srv.data_dir, "SELECT wrapped_key FROM user_keys WHERE user_id = :u", u=uid)
    assert isinstance(wrapped, bytes)
    bad = bytes([wrapped[0] ^ 0xFF]) + wrapped[1:]
    sql(srv.data_dir, "UPDATE user_keys SET wrapped_key = :k WHERE user_id = :u", k=bad, u=uid)
    srv = server_factory(data_dir=srv.data_dir)
    s = srv.session(ALICE)
    r = s.put(srv.dav + "new-file.txt", data=b"x" * 1000)
    assert r.status_code == 500, r.status_code
    assert "Traceback" not in r.text
    log = wait_until(
        lambda: srv.log() if _lines_about(srv.log(), "/dav/new-file.txt") else None,
        10,
        "the 500 in the log",
    )
    assert isinstance(log, str)
    lines = _lines_about(log, "/dav/new-file.txt")
    assert len(lines) == 1, lines
    assert "PUT" in lines[0] and "500" in lines[0], lines
    assert log.count("Traceback") == 1, log
    assert "alice-password" not in log


def test_damage_found_by_get_and_by_a_link_is_logged(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory()
    s = srv.session(ALICE)
    s.request("MKCOL", srv.dav + "pub/")
    put(s, srv.dav + "pub/lost.txt", b"its blob will be gone", expect=(201,))
    link = share_link(srv, ALICE, "/pub")
    for blob in blob_files(srv.data_dir):
        blob.unlink()
    r = s.get(srv.dav + "pub/lost.txt")
    assert r.status_code == 500, r.status_code
    r = srv.session(None).get(link.public + "lost.txt")
    assert r.status_code == 500, r.status_code
    wait_until(lambda: srv.log().count("Traceback") >= 2, 10, "two tracebacks in the log")
    log = srv.log()
    dav_lines = [ln for ln in _lines_about(log, "GET /dav/pub/lost.txt") if "500" in ln]
    link_lines = [ln for ln in _lines_about(log, "lost.txt") if "/public/" in ln and "500" in ln]
    assert len(dav_lines) == 1, log
    assert len(link_lines) == 1, log
    assert link.token not in log, "a link token in the server log"
    assert log.count("Traceback") == 2, log


def test_damage_found_half_way_through_a_download_is_logged(
    server_factory: ServerFactory,
) -> None:
    """A segment that fails verification after the 200 went out: the client sees the response
    cut, the log says which request and why, with the traceback, once."""
    srv = server_factory()
    s = srv.session(ALICE)
    data = bytes(range(256)) * 8192  # 2 MiB
    put(s, srv.dav + "big.bin", data, expect=(201,))
    (blob,) = blob_files(srv.data_dir)
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    blob.write_bytes(bytes(raw))
    got = b""
    try:
        with s.get(srv.dav + "big.bin", stream=True) as r:
            assert r.status_code == 200
            for chunk in r.iter_content(1 << 16):
                got += chunk
    except Exception:
        pass  # the cut: a truncated body or a reset
    assert len(got) < len(data)
    assert got == data[: len(got)], "bytes past the damage were served"
    wait_until(lambda: "big.bin" in srv.log(), 10, "the cut download in the log")
    log = srv.log()
    lines = [ln for ln in _lines_about(log, "GET /dav/big.bin")]
    assert len(lines) == 1, log
    assert log.count("Traceback") == 1, log
