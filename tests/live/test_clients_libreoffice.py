"""LibreOffice replayed request by request: open (PROPFIND, LOCK Second-180), the periodic
lock refresh (LOCK with If and no body), save (PUT with the token), close (UNLOCK); and a
lock that is never refreshed expires."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import pytest
import requests

from tests.live.clients import (
    UA_LIBREOFFICE,
    client_session,
    fileid,
    kept_versions,
    propfind_one,
)
from tests.live.conftest import D, Server, get_bytes, parse_multistatus, wait_until

LO_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<propfind xmlns="DAV:"><prop>'
    b"<resourcetype/><supportedlock/><lockdiscovery/><getcontenttype/>"
    b'<IsReadOnly xmlns="http://ucb.openoffice.org/dav/props/"/>'
    b"<getcontentlength/><getlastmodified/><creationdate/>"
    b"</prop></propfind>"
)
LO_LOCK = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<lockinfo xmlns="DAV:">\n'
    b" <lockscope><exclusive/></lockscope>\n <locktype><write/></locktype>\n"
    b" <owner>LibreOffice - Alice Example</owner>\n</lockinfo>\n"
)
ODT_V1 = b"PK\x03\x04mimetypeapplication/vnd.oasis.opendocument.text" + b"x" * 3000
ODT_V2 = b"PK\x03\x04mimetypeapplication/vnd.oasis.opendocument.text" + b"y" * 4000


@pytest.fixture
def lo(module_server: Server) -> requests.Session:
    return client_session(module_server, UA_LIBREOFFICE)


def activelock(body: bytes) -> tuple[str, int]:
    """(token, timeout seconds) of the single activelock in a lockdiscovery response body."""
    root = ET.fromstring(body)
    locks = root.findall(f".//{D}activelock")
    assert len(locks) == 1, body[:500]
    token = (locks[0].findtext(f"{D}locktoken/{D}href") or "").strip()
    timeout = (locks[0].findtext(f"{D}timeout") or "").strip()
    m = re.fullmatch(r"Second-(\d+)", timeout)
    assert m, f"timeout {timeout!r}"
    return token, int(m.group(1))


def lo_lock(s: requests.Session, url: str, timeout: str) -> tuple[str, int]:
    r = s.request(
        "LOCK",
        url,
        data=LO_LOCK,
        headers={
            "Content-Type": "application/xml",
            "Depth": "0",
            "Timeout": timeout,
            "Accept-Encoding": "gzip",
        },
    )
    assert r.status_code == 200, (r.status_code, r.text[:300])
    header_token = r.headers.get("Lock-Token", "").strip().strip("<>")
    token, seconds = activelock(r.content)
    assert header_token == token, (header_token, token)
    return token, seconds


def test_open_refresh_save_close(module_server: Server, lo: requests.Session, workdir: str) -> None:
    url = workdir + "Budget%202026.odt"
    assert lo.put(url, data=ODT_V1).status_code == 201
    file_id = fileid(lo, url)

    # open: the file's props, including whether it can be locked
    e = propfind_one(lo, url, LO_PROPFIND)
    assert e.size == len(ODT_V1)
    sl = e.props.get(D + "supportedlock")
    assert sl is not None, e.status
    scopes = {
        child.tag
        for entry in sl.findall(f"{D}lockentry")
        for child in entry.find(f"{D}lockscope") or []
    }
    assert D + "exclusive" in scopes, scopes

    token, seconds = lo_lock(lo, url, "Second-180")
    assert 0 < seconds <= 180, seconds

    # the refresh LibreOffice sends every ~180 s: no body, the token in If
    r = lo.request("LOCK", url, headers={"If": f"(<{token}>)", "Timeout": "Second-180"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    refreshed, seconds = activelock(r.content)
    assert refreshed == token
    assert 170 <= seconds <= 180, seconds
    # a refresh may ask for a longer lease; lockdiscovery shows the new one
    r = lo.request("LOCK", url, headers={"If": f"(<{token}>)", "Timeout": "Second-600"})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    refreshed, seconds = activelock(r.content)
    assert refreshed == token
    assert 180 < seconds <= 600, seconds
    e = propfind_one(lo, url, LO_PROPFIND)
    held = e.props[D + "lockdiscovery"]
    assert (held.findtext(f".//{D}locktoken/{D}href") or "").strip() == token
    # a refresh with a wrong token fails
    r = lo.request(
        "LOCK",
        url,
        headers={"If": "(<opaquelocktoken:00000000-0000-0000-0000-000000000000>)"},
    )
    assert r.status_code in (412, 423), r.status_code

    # save
    other = client_session(module_server, UA_LIBREOFFICE)
    assert other.put(url, data=b"someone else").status_code == 423
    r = lo.put(url, data=ODT_V2, headers={"If": f"(<{token}>)"})
    assert r.status_code in (200, 204), r.status_code
    assert get_bytes(lo, url) == ODT_V2
    # saved in place: the same file, one version more (the content it replaced)
    assert fileid(lo, url) == file_id
    assert [size for size, _ in kept_versions(module_server, file_id)] == [len(ODT_V1)]

    # close
    r = lo.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, r.status_code
    e = propfind_one(lo, url, LO_PROPFIND)
    ld = e.props.get(D + "lockdiscovery")
    assert ld is None or ld.find(f".//{D}activelock") is None
    assert other.put(url, data=b"someone else").status_code in (200, 204)


def test_unrefreshed_lock_expires(
    module_server: Server, lo: requests.Session, workdir: str
) -> None:
    url = workdir + "short.odt"
    assert lo.put(url, data=ODT_V1).status_code == 201
    token, seconds = lo_lock(lo, url, "Second-2")
    assert seconds <= 2, seconds
    other = client_session(module_server, UA_LIBREOFFICE)
    locked_at = time.monotonic()
    assert other.put(url, data=b"too early").status_code == 423

    def put_succeeds() -> bool:
        r = other.put(url, data=ODT_V2)
        assert r.status_code in (200, 204, 423), r.status_code
        return r.status_code != 423

    wait_until(put_succeeds, timeout=10, what="the 2 s lock to expire", interval=0.25)
    assert time.monotonic() - locked_at >= 1.5  # not released early
    assert get_bytes(other, url) == ODT_V2
    r = lo.request("PROPFIND", url, headers={"Depth": "0"}, data=LO_PROPFIND)
    (e,) = parse_multistatus(r.content).values()
    ld = e.props.get(D + "lockdiscovery")
    assert ld is None or ld.find(f".//{D}activelock") is None
    # the expired token no longer refreshes
    r = lo.request("LOCK", url, headers={"If": f"(<{token}>)", "Timeout": "Second-180"})
    assert r.status_code in (412, 423), r.status_code
