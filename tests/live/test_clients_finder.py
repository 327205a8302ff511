"""macOS Finder (webdavfs, "WebDAVFS/3.0.0 ... Darwin/...") replayed request by request."""

from __future__ import annotations

import os

import pytest
import requests

from tests.live.clients import (
    UA_FINDER,
    RawClient,
    client_session,
    propfind_one,
    propfind_response,
)
from tests.live.conftest import (
    D,
    Server,
    get_bytes,
    members,
    parse_multistatus,
    propfind,
    url_path,
)

# webdavfs's PROPFIND bodies (webdav_network.c): stat, directory listing, statfs.
FINDER_STAT = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:">\n<D:prop>\n'
    b"<D:getlastmodified/>\n<D:getcontentlength/>\n<D:creationdate/>\n<D:resourcetype/>\n"
    b"</D:prop>\n</D:propfind>\n"
)
FINDER_LIST = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:">\n'
    b'<D:prop xmlns:A="http://www.apple.com/webdav_fs/props/">\n'
    b"<D:getlastmodified/>\n<D:getcontentlength/>\n<D:creationdate/>\n<D:resourcetype/>\n"
    b"<A:appledoubleheader/>\n</D:prop>\n</D:propfind>\n"
)
FINDER_STATFS = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:">\n<D:prop>\n'
    b"<D:quota-available-bytes/>\n<D:quota-used-bytes/>\n<D:quota/>\n<D:quotaused/>\n"
    b"</D:prop>\n</D:propfind>\n"
)
FINDER_LOCK = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:lockinfo xmlns:D="DAV:">\n'
    b"<D:lockscope><D:exclusive/></D:lockscope>\n<D:locktype><D:write/></D:locktype>\n"
    b"<D:owner>\n<D:href>http://www.apple.com/webdav_fs/</D:href>\n</D:owner>\n"
    b"</D:lockinfo>\n"
)

# An AppleDouble header (magic 0x00051607, version 2) padded like Finder writes it.
APPLEDOUBLE = (
    b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02"
    + b"\x00\x00\x00\x09\x00\x00\x00\x32\x00\x00\x0e\xb0"
    + b"\x00\x00\x00\x02\x00\x00\x0e\xe2\x00\x00\x01\x1e"
    + bytes(4096 - 50)
)
DS_STORE = b"\x00\x00\x00\x01Bud1" + os.urandom(6140)


@pytest.fixture
def finder(module_server: Server) -> requests.Session:
    return client_session(module_server, UA_FINDER)


def finder_chunked_put(
    srv: Server,
    path: str,
    data: bytes,
    token: str | None = None,
    sizes: tuple[int, ...] = (32768, 1, 4093),
) -> int:
    """PUT with Transfer-Encoding: chunked and X-Expected-Entity-Length, as webdavfs does on
    close; returns the status."""
    headers = [
        ("User-Agent", UA_FINDER),
        ("Accept", "*/*"),
        ("Authorization", srv.auth_header()),
        ("Content-Type", "application/octet-stream"),
        ("Transfer-Encoding", "chunked"),
        ("X-Expected-Entity-Length", str(len(data))),
    ]
    if token:
        headers.append(("If", f"(<{token}>)"))
    with RawClient(srv) as c:
        c.send_head("PUT", path, headers)
        c.send_chunked(data, list(sizes))
        r = c.read_response("PUT")
    assert r.status in (200, 201, 204), (path, r.status, r.body[:300])
    return r.status


def quota(s: requests.Session, url: str, depth: str = "0") -> dict[str, tuple[int, int]]:
    """{href: (used, available)} from Finder's statfs PROPFIND."""
    r = propfind_response(s, url, FINDER_STATFS, depth)
    folders = {href for href, e in propfind(s, url, depth).items() if e.is_collection}
    out = {}
    for href, e in parse_multistatus(r.content).items():
        if href not in folders:
            continue
        used = e.text(D + "quota-used-bytes")
        avail = e.text(D + "quota-available-bytes")
        assert (used or "").isdigit() and (avail or "").isdigit(), (href, used, avail, e.status)
        out[href] = (int(used), int(avail))
    return out


def test_options_says_class_2(module_server: Server, finder: requests.Session) -> None:
    r = finder.options(module_server.dav)
    assert r.status_code == 200, r.status_code
    assert {c.strip() for c in r.headers.get("DAV", "").split(",")} >= {"1", "2"}, r.headers
    allow = {m.strip().upper() for m in r.headers.get("Allow", "").split(",")}
    assert {"LOCK", "UNLOCK", "PROPFIND", "PUT"} <= allow, r.headers.get("Allow")


def test_new_file_sequence(module_server: Server, finder: requests.Session, workdir: str) -> None:
    """Finder's copy: stat (404), PUT 0 bytes, LOCK, PUT chunked with X-Expected-Entity-Length
    and the token, stat (full size), UNLOCK; plus the ._ and .DS_Store side files."""
    path = url_path(workdir)
    data = os.urandom(100_000)
    url = workdir + "Report%20Q3.pdf"

    r = finder.request("PROPFIND", url, headers={"Depth": "0"}, data=FINDER_STAT)
    assert r.status_code == 404, r.status_code
    r = finder.put(url, data=b"")
    assert r.status_code == 201, r.status_code
    r = finder.request(
        "LOCK",
        url,
        data=FINDER_LOCK,
        headers={"Content-Type": "text/xml; charset=utf-8", "Depth": "0", "Timeout": "Second-600"},
    )
    assert r.status_code == 200, (r.status_code, r.text[:300])
    token = r.headers.get("Lock-Token", "").strip().strip("<>")
    assert token, dict(r.headers)

    finder_chunked_put(module_server, path + "Report%20Q3.pdf", data, token=token)
    e = propfind_one(finder, url, FINDER_STAT)
    assert e.size == len(data), e.size
    assert not e.is_collection

    # the AppleDouble file and .DS_Store, chunked as well
    finder_chunked_put(module_server, path + "._Report%20Q3.pdf", APPLEDOUBLE)
    finder_chunked_put(module_server, path + ".DS_Store", DS_STORE, sizes=(1000,))

    r = finder.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, r.status_code

    r = propfind_response(finder, workdir, FINDER_LIST, "1")
    listing = {e.name: e.size for e in parse_multistatus(r.content).values() if not e.is_collection}
    assert listing == {
        "Report Q3.pdf": len(data),
        "._Report Q3.pdf": len(APPLEDOUBLE),
        ".DS_Store": len(DS_STORE),
    }, listing
    assert get_bytes(finder, url) == data
    assert get_bytes(finder, workdir + "._Report%20Q3.pdf") == APPLEDOUBLE
    assert get_bytes(finder, workdir + ".DS_Store") == DS_STORE
    # side files delete like any file
    assert finder.delete(workdir + "._Report%20Q3.pdf").status_code == 204
    assert set(members(finder, workdir)) == {"Report Q3.pdf", ".DS_Store"}


@pytest.mark.parametrize("size", [0, 1, 65536, 200_001])
def test_chunked_put_stores_expected_length(
    module_server: Server, finder: requests.Session, workdir: str, size: int
) -> None:
    data = os.urandom(size)
    status = finder_chunked_put(module_server, url_path(workdir) + "c.bin", data)
    assert status == 201, status
    assert propfind_one(finder, workdir + "c.bin", FINDER_STAT).size == size
    assert get_bytes(finder, workdir + "c.bin") == data


def test_quota_properties_on_every_folder(server: Server) -> None:
    """Finder's free space comes from RFC 4331 quota-used-bytes / quota-available-bytes."""
    s = client_session(server, UA_FINDER)
    home = server.dav
    assert s.request("MKCOL", home + "Photos/").status_code == 201
    assert s.request("MKCOL", home + "Photos/2026/").status_code == 201

    before = quota(s, home)
    ((used0, avail0),) = before.values()
    assert used0 == 0, used0
    assert avail0 > 0, avail0

    r = s.put(home + "notes.txt", data=b"n" * 1234)
    assert r.status_code == 201
    finder_chunked_put(server, "/dav/Photos/2026/img.jpg", os.urandom(70_000))
    expected = 1234 + 70_000

    for folder in (home, home + "Photos/", home + "Photos/2026/"):
        ((used, avail),) = quota(s, folder).values()
        assert used == expected, (folder, used, expected)
        assert avail > 0, (folder, avail)
    # Depth 1: each collection in the listing answers too
    listed = quota(s, home, "1")
    assert set(listed) >= {url_path(home), url_path(home) + "Photos/"}, set(listed)
    assert all(used == expected for used, _ in listed.values()), listed

    assert s.delete(home + "notes.txt").status_code == 204
    ((used, _),) = quota(s, home + "Photos/").values()
    assert used == 70_000, used
    # bob's files are not alice's usage
    bob = client_session(server, UA_FINDER, user="bob")
    assert bob.put(server.dav + "bob.bin", data=b"b" * 999).status_code == 201
    ((bob_used, _),) = quota(bob, server.dav).values()
    assert bob_used == 999, bob_used
    ((used, _),) = quota(s, home).values()
    assert used == 70_000, used
