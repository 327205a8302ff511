"""Windows Explorer (the WebClient "mini-redirector") replayed request by request."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.live.clients import (
    MS,
    MS_NS,
    OC,
    UA_WINDOWS,
    client_session,
    parse_http_date,
    parse_iso_date,
    prop_request,
    propfind_one,
)
from tests.live.conftest import D, Server, get_bytes, members, parse_multistatus, url_path

# Every request the mini-redirector sends carries these.
WIN_HEADERS = {"translate": "f", "Connection": "Keep-Alive"}
# ... and LOCK/PROPPATCH also these.
WIN_XML_HEADERS = {
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "Content-Type": 'text/xml; charset="utf-8"',
}

WIN_LOCK_BODY = (
    b'<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:">'
    b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    b"<D:owner><D:href>DESKTOP-4KJ2M\\alice</D:href></D:owner></D:lockinfo>"
)

CREATED = "Thu, 01 Jan 2026 10:00:00 GMT"
ACCESSED = "Thu, 01 Jan 2026 10:30:00 GMT"
MODIFIED = "Thu, 01 Jan 2026 10:15:00 GMT"
MODIFIED_AFTER_WRITE = "Fri, 02 Jan 2026 08:45:07 GMT"
ATTRIBUTES = "00000020"

WIN32_PROPS = (
    "Win32CreationTime",
    "Win32LastAccessTime",
    "Win32LastModifiedTime",
    "Win32FileAttributes",
)


def win32_proppatch_body(**values: str) -> bytes:
    sets = "".join(f"<Z:{k}>{v}</Z:{k}>" for k, v in values.items())
    return (
        f'<?xml version="1.0" encoding="utf-8" ?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:Z="{MS_NS}"><D:set><D:prop>{sets}</D:prop></D:set></D:propertyupdate>'
    ).encode()


@pytest.fixture
def win(module_server: Server) -> requests.Session:
    return client_session(module_server, UA_WINDOWS, **WIN_HEADERS)


@pytest.mark.parametrize("path", ["/", "/dav/"])
def test_anonymous_options(module_server: Server, path: str) -> None:
    s = client_session(module_server, UA_WINDOWS, user=None, **WIN_HEADERS)
    r = s.options(module_server.url + path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    classes = {c.strip() for c in r.headers.get("DAV", "").split(",")}
    assert {"1", "2"} <= classes, r.headers.get("DAV")
    assert r.headers.get("MS-Author-Via") == "DAV", dict(r.headers)


def test_first_propfind_challenges_then_lists(module_server: Server) -> None:
    """The redirector sends PROPFIND without a body (= allprop) and only authenticates after a
    401 with a Basic challenge."""
    anon = client_session(module_server, UA_WINDOWS, user=None, **WIN_HEADERS)
    r = anon.request("PROPFIND", module_server.dav, headers={"Depth": "0", "Content-Length": "0"})
    assert r.status_code == 401, r.status_code
    assert "basic" in r.headers.get("WWW-Authenticate", "").lower(), dict(r.headers)
    s = client_session(module_server, UA_WINDOWS, **WIN_HEADERS)
    r = s.request("PROPFIND", module_server.dav, headers={"Depth": "0", "Content-Length": "0"})
    assert r.status_code == 207, (r.status_code, r.text[:300])
    (entry,) = parse_multistatus(r.content).values()
    assert entry.is_collection and url_path(module_server.dav).rstrip("/") == entry.href.rstrip("/")


def test_new_file_sequence(win: requests.Session, workdir: str) -> None:
    """Explorer's 'copy a file in': PUT 0 bytes, LOCK, PROPPATCH Win32*, HEAD, PUT body with the
    lock token, PROPPATCH Win32LastModifiedTime, UNLOCK."""
    url = workdir + "New%20Text%20Document.txt"
    body = b"written by explorer\r\n" * 200

    r = win.put(url, data=b"", headers={"Content-Length": "0"})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    # (asserted at the end, so that a missing oc:fileid does not hide the rest)
    id_placeholder = propfind_one(win, url, prop_request("oc:fileid")).text(OC + "fileid")

    r = win.request(
        "LOCK",
        url,
        data=WIN_LOCK_BODY,
        headers={**WIN_XML_HEADERS, "Timeout": "Second-3600"},
    )
    assert r.status_code == 200, (r.status_code, r.text[:300])
    token = r.headers.get("Lock-Token", "").strip().strip("<>")
    assert token, dict(r.headers)
    if_header = f"(<{token}>)"

    r = win.request(
        "PROPPATCH",
        url,
        data=win32_proppatch_body(
            Win32CreationTime=CREATED,
            Win32LastAccessTime=ACCESSED,
            Win32LastModifiedTime=MODIFIED,
            Win32FileAttributes=ATTRIBUTES,
        ),
        headers={**WIN_XML_HEADERS, "If": if_header},
    )
    assert r.status_code == 207, (r.status_code, r.text[:500])
    (result,) = parse_multistatus(r.content).values()
    assert result.status == {MS + p: 200 for p in WIN32_PROPS}, r.text

    r = win.head(url)
    assert r.status_code == 200, r.status_code
    assert r.headers.get("Content-Length") == "0", dict(r.headers)

    r = win.put(url, data=body, headers={"If": if_header})
    assert r.status_code in (200, 201, 204), (r.status_code, r.text[:300])

    r = win.request(
        "PROPPATCH",
        url,
        data=win32_proppatch_body(Win32LastModifiedTime=MODIFIED_AFTER_WRITE),
        headers={**WIN_XML_HEADERS, "If": if_header},
    )
    assert r.status_code == 207, (r.status_code, r.text[:500])
    (result,) = parse_multistatus(r.content).values()
    assert result.status == {MS + "Win32LastModifiedTime": 200}, r.text

    r = win.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, (r.status_code, r.text[:300])

    # the resulting state
    assert get_bytes(win, url) == body
    listing = members(win, workdir)
    assert set(listing) == {"New Text Document.txt"}, set(listing)
    e = propfind_one(
        win,
        url,
        prop_request(
            "D:getlastmodified",
            "D:creationdate",
            "D:getcontentlength",
            "D:lockdiscovery",
            "Z:Win32FileAttributes",
            "oc:fileid",
            namespaces={"Z": MS_NS},
        ),
    )
    assert e.size == len(body), e.size
    assert parse_http_date(e.text(D + "getlastmodified") or "") == parse_http_date(
        MODIFIED_AFTER_WRITE
    ), (e.text(D + "getlastmodified"), MODIFIED_AFTER_WRITE)
    assert parse_iso_date(e.text(D + "creationdate") or "") == parse_http_date(CREATED), (
        e.text(D + "creationdate"),
        CREATED,
    )
    assert e.text(MS + "Win32FileAttributes") == ATTRIBUTES, e.status
    # the placeholder and the written file are one node
    assert id_placeholder, "no oc:fileid on the 0-byte placeholder"
    assert e.text(OC + "fileid") == id_placeholder, (id_placeholder, e.text(OC + "fileid"))
    # unlocked: nothing in lockdiscovery, and a plain PUT works again
    ld = e.props.get(D + "lockdiscovery")
    assert ld is None or ld.find(f".//{D}activelock") is None
    r = win.put(url, data=b"after unlock")
    assert r.status_code in (200, 204), r.status_code


def test_win32_last_modified_time_alone_sets_mtime(win: requests.Session, workdir: str) -> None:
    """Explorer's 'touch' of an existing file without a lock."""
    url = workdir + "existing.txt"
    r = win.put(url, data=b"old file")
    assert r.status_code == 201, r.status_code
    r = win.request(
        "PROPPATCH",
        url,
        data=win32_proppatch_body(Win32LastModifiedTime="Mon, 15 Dec 2025 23:59:59 GMT"),
        headers=WIN_XML_HEADERS,
    )
    assert r.status_code == 207, r.status_code
    (result,) = parse_multistatus(r.content).values()
    assert result.status == {MS + "Win32LastModifiedTime": 200}, r.text
    e = propfind_one(win, url, prop_request("D:getlastmodified"))
    assert e.text(D + "getlastmodified") == "Mon, 15 Dec 2025 23:59:59 GMT", e.status


N_CLIENTS = 50
N_FILES = 8


def test_fifty_parallel_connections(module_server: Server, workdir: str) -> None:
    """Explorer opens many connections at once; none may stall."""
    setup = client_session(module_server, UA_WINDOWS, **WIN_HEADERS)
    contents = {f"small-{i}.txt": os.urandom(100 + 37 * i) for i in range(N_FILES)}
    for name, data in contents.items():
        r = setup.put(workdir + name, data=data)
        assert r.status_code == 201, r.status_code
    sessions = [client_session(module_server, UA_WINDOWS, **WIN_HEADERS) for _ in range(N_CLIENTS)]
    for s in sessions:
        s.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1))
    barrier = threading.Barrier(N_CLIENTS, timeout=30)
    expected_hrefs = {url_path(workdir).rstrip("/")} | {
        url_path(workdir) + name for name in contents
    }

    def client(i: int) -> str | None:
        s = sessions[i]
        barrier.wait()
        r = s.request(
            "PROPFIND", workdir, headers={"Depth": "1", "Content-Length": "0"}, timeout=60
        )
        if r.status_code != 207:
            return f"client {i}: PROPFIND {r.status_code}"
        hrefs = {h.rstrip("/") for h in parse_multistatus(r.content)}
        if hrefs != expected_hrefs:
            return f"client {i}: PROPFIND listed {sorted(hrefs)}"
        for k in range(3):
            name = f"small-{(i + k) % N_FILES}.txt"
            r = s.get(workdir + name, timeout=60)
            if r.status_code != 200 or r.content != contents[name]:
                return f"client {i}: GET {name} {r.status_code} {len(r.content)} bytes"
        return None

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=N_CLIENTS) as pool:
        results = list(pool.map(client, range(N_CLIENTS)))
    elapsed = time.monotonic() - start
    failures = [r for r in results if r]
    assert not failures, "\n".join(failures)
    assert elapsed < 60, f"{N_CLIENTS} parallel clients took {elapsed:.1f}s"
    assert module_server.running()
    # and the server still answers a new client afterwards
    assert get_bytes(setup, workdir + "small-0.txt") == contents["small-0.txt"]
