"""Shared helpers for the client replay tests (test_clients_*.py, test_rclone.py, test_davfs2.py).

Each client test replays a real client's request sequence: its User-Agent, headers, XML bodies
and order. These helpers keep the replays short: a session that sends a client's headers, raw
socket requests for what ``requests`` cannot express (chunked bodies with
X-Expected-Entity-Length, ``Expect: 100-continue``), and PROPFIND parsing that keeps the order
of the propstat elements.
"""

from __future__ import annotations

import email.utils
import hashlib
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import requests

from tests.live.conftest import ALICE, D, Node, Server, parse_multistatus, sql

OC_NS = "http://owncloud.org/ns"
OC = "{" + OC_NS + "}"
MS_NS = "urn:schemas-microsoft-com:"
MS = "{" + MS_NS + "}"

UA_WINDOWS = "Microsoft-WebDAV-MiniRedir/10.0.19045"
UA_FINDER = "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)"
UA_WORD = "Microsoft Office Word 2014"
UA_OFFICE_DISCOVERY = "Microsoft Office Existence Discovery"
UA_LIBREOFFICE = "LibreOffice/7.5.9.2 neon/0.32.5"
UA_CYBERDUCK = "Cyberduck/8.7.1.40770 (Mac OS X/14.0) (x86_64)"


def client_session(
    srv: Server, user_agent: str, user: str | None = ALICE, **headers: str
) -> requests.Session:
    """A session (one keep-alive connection) that identifies as ``user_agent``."""
    s = srv.session(user)
    s.headers["User-Agent"] = user_agent
    s.headers.update(headers)
    return s


# --------------------------------------------------------------------------- dates


def http_date(ts: int) -> str:
    """RFC 1123 date, e.g. 'Thu, 01 Jan 2026 10:00:00 GMT'."""
    return email.utils.formatdate(ts, usegmt=True)


def parse_http_date(value: str) -> int:
    return int(email.utils.parsedate_to_datetime(value).timestamp())


def parse_iso_date(value: str) -> int:
    """RFC 3339 / ISO 8601 (creationdate), e.g. '2026-01-01T10:00:00Z'."""
    v = value.strip()
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


# --------------------------------------------------------------------------- PROPFIND


def prop_request(*props: str, namespaces: dict[str, str] | None = None) -> bytes:
    """A PROPFIND body asking for ``props`` given as 'prefix:name' (D: is DAV:, oc: owncloud)."""
    ns = {"D": "DAV:", "oc": OC_NS}
    ns.update(namespaces or {})
    decl = " ".join(f'xmlns:{p}="{u}"' for p, u in ns.items())
    inner = "".join(f"<{p}/>" for p in props)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:propfind {decl}><D:prop>{inner}'
        f"</D:prop></D:propfind>"
    ).encode()


def propfind_response(
    s: requests.Session, url: str, body: bytes | None, depth: str = "0"
) -> requests.Response:
    headers = {"Depth": depth}
    if body:
        headers["Content-Type"] = 'text/xml; charset="utf-8"'
    r = s.request("PROPFIND", url, headers=headers, data=body)
    assert r.status_code == 207, f"PROPFIND {url} Depth {depth}: {r.status_code} {r.text[:500]}"
    return r


def propfind_one(s: requests.Session, url: str, body: bytes | None) -> Node:
    """Depth-0 PROPFIND of ``url``; returns its single response."""
    entries = parse_multistatus(propfind_response(s, url, body, "0").content)
    assert len(entries) == 1, list(entries)
    return next(iter(entries.values()))


@dataclass
class PropstatOrder:
    href: str
    statuses: list[int]  # status code of each propstat, in document order


def propstat_orders(body: bytes) -> list[PropstatOrder]:
    root = ET.fromstring(body)
    out = []
    for resp in root.findall(D + "response"):
        href = unquote(urlsplit((resp.findtext(D + "href") or "").strip()).path)
        codes = []
        for ps in resp.findall(D + "propstat"):
            st = (ps.findtext(D + "status") or "").split()
            codes.append(int(st[1]) if len(st) > 1 else 0)
        out.append(PropstatOrder(href, codes))
    return out


FILEID_BODY = prop_request("oc:fileid")


def fileid(s: requests.Session, url: str) -> str:
    e = propfind_one(s, url, FILEID_BODY)
    value = (e.text(OC + "fileid") or "").strip()
    assert value, f"no oc:fileid for {url}: status {e.status}"
    return value


def kept_versions(server: Server, file_id: str) -> list[tuple[int, str]]:
    """(size, blob) of a file's kept versions, oldest first, read from the database (no DAV
    versions tree in this test's server yet)."""
    rows = sql(
        server.data_dir,
        "SELECT size, blob_id FROM versions WHERE node_id = :id ORDER BY id",
        id=int(file_id),
    )
    return [(int(str(size)), str(blob)) for size, blob in rows]


def trashed(server: Server, name: str) -> list[tuple[int, int, str]]:
    """(node id, size, blob) of the trashed items called ``name``."""
    rows = sql(
        server.data_dir,
        "SELECT id, size, current_blob_id FROM nodes"
        " WHERE deleted_at > 0 AND trash_path LIKE :path",
        path="%/" + name,
    )
    return [(int(str(i)), int(str(size)), str(blob)) for i, size, blob in rows]


MTIME_BODY = prop_request("D:getlastmodified")


def mtime(s: requests.Session, url: str) -> int:
    e = propfind_one(s, url, MTIME_BODY)
    value = e.text(D + "getlastmodified")
    assert value, f"no getlastmodified for {url}: status {e.status}"
    return parse_http_date(value)


def dead_prop_body(ns: str, values: dict[str, str]) -> bytes:
    sets = "".join(f"<Z:{k}>{v}</Z:{k}>" for k, v in values.items())
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:Z="{ns}"><D:set><D:prop>{sets}</D:prop></D:set></D:propertyupdate>'
    ).encode()


def proppatch(
    s: requests.Session, url: str, body: bytes, headers: dict[str, str] | None = None
) -> dict[str, int]:
    """PROPPATCH; asserts 207 and returns {prop clark name: status}."""
    h = {"Content-Type": 'text/xml; charset="utf-8"'}
    h.update(headers or {})
    r = s.request("PROPPATCH", url, data=body, headers=h)
    assert r.status_code == 207, f"PROPPATCH {url}: {r.status_code} {r.text[:500]}"
    entries = parse_multistatus(r.content)
    assert len(entries) == 1, r.text[:500]
    return next(iter(entries.values())).status


def hashes(data: bytes) -> tuple[str, str]:
    """(sha1 hex, md5 hex)."""
    return hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------- raw HTTP


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class RawClient:
    """One HTTP/1.1 connection driven by hand, for framing ``requests`` cannot produce."""

    def __init__(self, srv: Server, timeout: float = 30.0) -> None:
        self.srv = srv
        self.sock = socket.create_connection((srv.host, srv.port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_head(self, method: str, path: str, headers: Iterable[tuple[str, str]]) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.srv.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_chunked(self, data: bytes, sizes: list[int]) -> None:
        """``data`` with real chunked framing (chunk sizes cycle through ``sizes``), then the
        terminating zero chunk."""
        off = 0
        i = 0
        while off < len(data):
            piece = data[off : off + sizes[i % len(sizes)]]
            self.sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            off += len(piece)
            i += 1
        self.sock.sendall(b"0\r\n\r\n")

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed by server; buffered: {self.buf[:200]!r}")
        self.buf += chunk

    def _read_until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(sep)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, method: str = "GET") -> RawResponse:
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        for line in header_lines:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if method != "HEAD" and status >= 200 and status not in (204, 304):
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                    if size == 0:
                        self._read_until(b"\r\n")
                        break
                    body += self._read_exact(size)
                    self._read_exact(2)
            elif "content-length" in headers:
                body = self._read_exact(int(headers["content-length"]))
        return RawResponse(status, reason, headers, body)


def url_of(srv: Server, path: str) -> str:
    return srv.url + path
