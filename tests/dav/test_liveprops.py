"""Client-specific properties and headers: ownCloud/Nextcloud (rclone), Windows, RFC 4331."""

from __future__ import annotations

import email.utils
import hashlib
import re

from lxml import etree

from tests.dav.conftest import Client

OC_PROPFIND = b"""<?xml version="1.0"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
 <d:prop><d:nosuchprop/><d:getlastmodified/><d:getcontentlength/><d:resourcetype/>
 <oc:checksums/><oc:fileid/><oc:permissions/><oc:size/>
 <d:quota-used-bytes/><d:quota-available-bytes/></d:prop></d:propfind>"""

NS = {"d": "DAV:", "oc": "http://owncloud.org/ns", "z": "urn:schemas-microsoft-com:"}


def _responses(body: bytes) -> dict[str, etree._Element]:
    root = etree.fromstring(body)
    return {r.findtext("d:href", namespaces=NS): r for r in root.findall("d:response", NS)}


def _ok_prop(response: etree._Element, path: str) -> str | None:
    for propstat in response.findall("d:propstat", NS):
        if "200" in (propstat.findtext("d:status", namespaces=NS) or ""):
            el = propstat.find(f"d:prop/{path}", NS)
            if el is not None:
                return "".join(el.itertext())
    return None


def _mtime(client: Client, path: str) -> float:
    value = client.head(path).headers["last-modified"]
    return email.utils.parsedate_to_datetime(value).timestamp()


def test_owncloud_properties_and_200_propstat_first(alice: Client) -> None:
    data = b"checksum me" * 1000
    alice.mkcol("/dav/f/")
    alice.put("/dav/f/a.txt", data)
    alice.put("/dav/f/b.txt", b"12345")
    r = alice.propfind("/dav/f/", OC_PROPFIND, depth="1")
    assert r.status == 207
    responses = _responses(r.body)
    for response in responses.values():
        statuses = [s.text for s in response.findall("d:propstat/d:status", NS)]
        assert "200" in statuses[0]  # rclone reads only the first propstat's status
    folder, file = responses["/dav/f/"], responses["/dav/f/a.txt"]
    sha1, md5 = hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest()
    assert _ok_prop(file, "oc:checksums/oc:checksum") == f"SHA1:{sha1} MD5:{md5}"
    assert _ok_prop(folder, "oc:size") == str(len(data) + 5)
    assert _ok_prop(file, "oc:size") == str(len(data))
    assert _ok_prop(folder, "oc:permissions") and _ok_prop(file, "oc:permissions")
    assert _ok_prop(file, "oc:fileid") != _ok_prop(folder, "oc:fileid")
    assert int(_ok_prop(folder, "d:quota-used-bytes") or -1) == len(data) + 5
    assert int(_ok_prop(folder, "d:quota-available-bytes") or 0) > 0
    assert _ok_prop(file, "d:quota-used-bytes") is None  # quotas belong to collections


def test_x_oc_mtime_on_put_move_and_copy(alice: Client) -> None:
    r = alice.put("/dav/m.txt", b"m", x_oc_mtime="1700000000")
    assert r.status == 201 and r.headers["x-oc-mtime"] == "accepted"
    assert _mtime(alice, "/dav/m.txt") == 1700000000
    r = alice.move("/dav/m.txt", destination="http://localhost/dav/n.txt", x_oc_mtime="1600000000")
    assert r.status == 201 and r.headers["x-oc-mtime"] == "accepted"
    assert _mtime(alice, "/dav/n.txt") == 1600000000
    r = alice.copy("/dav/n.txt", destination="http://localhost/dav/o.txt", x_oc_mtime="1500000000")
    assert r.status == 201 and r.headers["x-oc-mtime"] == "accepted"
    assert _mtime(alice, "/dav/o.txt") == 1500000000
    assert _mtime(alice, "/dav/n.txt") == 1600000000
    assert alice.put("/dav/p.txt", b"p", x_oc_mtime="yesterday").status == 400
    assert alice.get("/dav/p.txt").status == 404
    assert "x-oc-mtime" not in alice.put("/dav/q.txt", b"q").headers


def test_oc_checksum_is_verified_before_storing(alice: Client) -> None:
    body = b"verified body"
    good = f"SHA1:{hashlib.sha1(body).hexdigest()}"
    assert alice.put("/dav/c.txt", body, oc_checksum=good).status == 201
    bad = "SHA1:" + "0" * 40
    assert alice.put("/dav/c.txt", b"other body", oc_checksum=bad).status == 400
    assert alice.get("/dav/c.txt").body == body
    assert alice.put("/dav/new.txt", body, oc_checksum="MD5:" + "1" * 32).status == 400
    assert alice.get("/dav/new.txt").status == 404
    md5 = f"MD5:{hashlib.md5(body).hexdigest()} ADLER32:0badc0de"
    assert alice.put("/dav/d.txt", body, oc_checksum=md5).status == 201


def _proppatch(client: Client, path: str, props: str, ns: str = "") -> int:
    body = (
        f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" {ns}>'
        f"<D:set><D:prop>{props}</D:prop></D:set></D:propertyupdate>"
    ).encode()
    r = client.proppatch(path, body)
    assert r.status == 207
    statuses = re.findall(r"HTTP/1.1 (\d+)", r.text)
    assert statuses and all(s == "200" for s in statuses), r.text
    return r.status


def test_proppatch_sets_times(alice: Client) -> None:
    alice.put("/dav/t.txt", b"t")
    _proppatch(alice, "/dav/t.txt", '<lastmodified xmlns="DAV:">1400000000</lastmodified>')
    assert _mtime(alice, "/dav/t.txt") == 1400000000
    _proppatch(
        alice, "/dav/t.txt", "<D:getlastmodified>Wed, 01 Jan 2025 10:00:00 GMT</D:getlastmodified>"
    )
    assert _mtime(alice, "/dav/t.txt") == 1735725600
    r = alice.proppatch(
        "/dav/t.txt",
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        b"<D:getlastmodified>not a date</D:getlastmodified></D:prop></D:set></D:propertyupdate>",
    )
    assert r.status == 207 and "HTTP/1.1 200" not in r.text
    assert _mtime(alice, "/dav/t.txt") == 1735725600


def test_windows_win32_properties(alice: Client) -> None:
    alice.put("/dav/w.docx", b"")
    ns = 'xmlns:Z="urn:schemas-microsoft-com:"'
    _proppatch(
        alice,
        "/dav/w.docx",
        "<Z:Win32CreationTime>Mon, 05 Jan 2026 08:00:00 GMT</Z:Win32CreationTime>"
        "<Z:Win32LastAccessTime>Tue, 06 Jan 2026 09:00:00 GMT</Z:Win32LastAccessTime>"
        "<Z:Win32LastModifiedTime>Tue, 06 Jan 2026 09:30:00 GMT</Z:Win32LastModifiedTime>"
        "<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>",
        ns,
    )
    assert _mtime(alice, "/dav/w.docx") == 1767691800
    r = alice.propfind(
        "/dav/w.docx",
        b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
        b"<D:prop><D:creationdate/><Z:Win32FileAttributes/></D:prop></D:propfind>",
        depth="0",
    )
    response = _responses(r.body)["/dav/w.docx"]
    assert _ok_prop(response, "d:creationdate") == "2026-01-05T08:00:00Z"
    assert _ok_prop(response, "z:Win32FileAttributes") == "00000020"
