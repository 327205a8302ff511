"""WebDAV semantics through the in-process app: status codes, bodies and stored effects."""

from __future__ import annotations

import hashlib
import re

from davdisk.services import Services
from tests.dav.conftest import Client

PROPPATCH_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x-test:">
  <D:set><D:prop><Z:color>blue</Z:color></D:prop></D:set>
</D:propertyupdate>"""

PROPFIND_COLOR = b"""<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:Z="urn:x-test:"><D:prop><Z:color/></D:prop></D:propfind>"""

LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>"""


def _token(resp_headers: dict[str, str]) -> str:
    return resp_headers["lock-token"].strip("<>")


def test_options_is_anonymous_and_advertises_class_2(anon: Client) -> None:
    for path in ("/", "/dav/", "/dav"):
        r = anon.options(path)
        assert r.status == 200
        assert r.headers["dav"].replace(" ", "") == "1,2"
        assert r.headers["ms-author-via"] == "DAV"
        assert "LOCK" in r.headers["allow"]


def test_everything_else_needs_credentials(anon: Client, app: object) -> None:
    assert anon.propfind("/dav/", depth="1").status == 401
    assert anon.get("/dav/").status == 401
    wrong = Client(app, "alice")
    wrong.user = "alice"
    assert anon.put("/dav/x", b"data").status == 401


def test_put_get_head_and_etag(alice: Client) -> None:
    data = bytes(range(256)) * 1000
    r = alice.put("/dav/a.bin", data)
    assert r.status == 201
    etag = r.headers["etag"]
    assert not etag.startswith("W/")
    g = alice.get("/dav/a.bin")
    assert g.status == 200 and g.body == data
    assert g.headers["etag"] == etag
    h = alice.head("/dav/a.bin")
    assert h.status == 200 and h.headers["content-length"] == str(len(data)) and h.body == b""
    assert alice.get("/dav/a.bin", if_none_match=etag).status == 304
    assert alice.get("/dav/a.bin", if_match='"nope"').status == 412
    r2 = alice.put("/dav/a.bin", b"new")
    assert r2.status == 204
    assert r2.headers["etag"] != etag
    assert alice.get("/dav/a.bin").body == b"new"


def test_range_reads_cross_segment_boundaries(alice: Client) -> None:
    data = hashlib.sha256(b"seed").digest() * 8192  # 256 KiB, 4 segments
    alice.put("/dav/r.bin", data)
    for start, end in [(0, 0), (65535, 65536), (100, 200_000), (len(data) - 1, len(data) - 1)]:
        r = alice.get("/dav/r.bin", range=f"bytes={start}-{end}")
        assert r.status == 206
        assert r.body == data[start : end + 1]
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"


def test_chunked_put_stores_exactly(alice: Client) -> None:
    body = b"chunky" * 50_000
    r = alice.request("PUT", "/dav/c.txt", body, chunked=True)
    assert r.status == 201
    assert alice.get("/dav/c.txt").body == body


def test_short_body_stores_nothing(alice: Client, services: Services) -> None:
    alice.put("/dav/keep.txt", b"old content")
    # Content-Length promises more bytes than arrive (what a cut connection looks like).
    r = alice.request("PUT", "/dav/keep.txt", b"partial", {"Content-Length": "100"})
    assert r.status >= 400
    assert alice.get("/dav/keep.txt").body == b"old content"
    r = alice.request("PUT", "/dav/new.txt", b"partial", {"Content-Length": "100"})
    assert r.status >= 400
    assert alice.get("/dav/new.txt").status == 404
    assert list((services.config.blob_dir / "tmp").iterdir()) == []


def test_propfind_depth_infinity_is_refused(alice: Client) -> None:
    r = alice.propfind("/dav/", depth="infinity")
    assert r.status == 403
    assert "propfind-finite-depth" in r.text


def test_propfind_without_depth_is_depth_0_on_a_file_and_1_on_a_folder(alice: Client) -> None:
    """RFC 4918 reads a missing Depth as infinity; clients (webdav4) leave it out to ask about
    one resource, so the server answers as Depth 0 on a file and Depth 1 on a folder."""
    alice.mkcol("/dav/top/")
    alice.mkcol("/dav/top/sub/")
    alice.put("/dav/top/f.txt", b"1")
    alice.put("/dav/top/sub/deep.txt", b"2")
    r = alice.propfind("/dav/top/f.txt")
    assert r.status == 207 and r.text.count("<D:response>") == 1, r.text
    r = alice.propfind("/dav/top/")
    assert r.status == 207, r.text
    assert r.text.count("<D:response>") == 3 and "deep.txt" not in r.text, r.text


def test_mkcol_and_listing(alice: Client) -> None:
    assert alice.mkcol("/dav/folder/").status == 201
    assert alice.mkcol("/dav/folder/").status == 405
    assert alice.mkcol("/dav/missing/child/").status == 409
    alice.put("/dav/folder/x y ü.txt", b"1")
    r = alice.propfind("/dav/folder/", depth="1")
    assert r.status == 207
    assert "x%20y%20%C3%BC.txt" in r.text


def test_move_keeps_dead_properties_and_answers_201_or_204(alice: Client) -> None:
    alice.put("/dav/p.txt", b"props")
    assert alice.proppatch("/dav/p.txt", PROPPATCH_BODY).status == 207
    r = alice.move("/dav/p.txt", destination="http://localhost/dav/q.txt")
    assert r.status == 201
    assert alice.get("/dav/p.txt").status == 404
    found = alice.propfind("/dav/q.txt", PROPFIND_COLOR, depth="0")
    assert "blue" in found.text
    alice.put("/dav/other.txt", b"other")
    r = alice.move("/dav/other.txt", destination="http://localhost/dav/q.txt")
    assert r.status == 204
    assert alice.get("/dav/q.txt").body == b"other"
    assert "blue" not in alice.propfind("/dav/q.txt", PROPFIND_COLOR, depth="0").text


def test_overwrite_false_and_copy_depth_zero(alice: Client) -> None:
    alice.mkcol("/dav/src/")
    alice.put("/dav/src/inner.txt", b"inner")
    alice.put("/dav/exists.txt", b"x")
    alice.put("/dav/file.txt", b"y")
    r = alice.copy("/dav/file.txt", destination="http://localhost/dav/exists.txt", overwrite="F")
    assert r.status == 412
    r = alice.move("/dav/file.txt", destination="http://localhost/dav/exists.txt", overwrite="F")
    assert r.status == 412
    assert alice.get("/dav/exists.txt").body == b"x"
    r = alice.copy("/dav/src/", destination="http://localhost/dav/shallow/", depth="0")
    assert r.status == 201
    assert "inner.txt" not in alice.propfind("/dav/shallow/", depth="1").text
    r = alice.copy("/dav/src/", destination="http://localhost/dav/deep/", depth="infinity")
    assert r.status == 201
    assert alice.get("/dav/deep/inner.txt").body == b"inner"
    alice.put("/dav/src/inner.txt", b"changed")
    assert alice.get("/dav/deep/inner.txt").body == b"inner"


def test_move_folder_into_itself_is_refused(alice: Client) -> None:
    alice.mkcol("/dav/a/")
    alice.mkcol("/dav/a/b/")
    r = alice.move("/dav/a/", destination="http://localhost/dav/a/b/c/")
    assert r.status in (403, 409)
    assert alice.propfind("/dav/a/b/", depth="0").status == 207


def test_lock_blocks_writes_without_token(alice: Client, bob: Client) -> None:
    alice.put("/dav/doc.txt", b"v1")
    r = alice.lock("/dav/doc.txt", LOCK_BODY, timeout="Second-600")
    assert r.status == 200
    token = _token(r.headers)
    assert alice.put("/dav/doc.txt", b"v2").status == 423
    assert alice.delete("/dav/doc.txt").status == 423
    assert alice.put("/dav/doc.txt", b"v2", **{"if": f"(<{token}>)"}).status == 204
    assert alice.unlock("/dav/doc.txt", lock_token=f"<{token}>").status == 204
    assert alice.put("/dav/doc.txt", b"v3").status == 204
    # bob's identical path is another resource: alice's lock there would not bind him.
    r = alice.lock("/dav/doc.txt", LOCK_BODY)
    assert r.status == 200
    assert bob.put("/dav/doc.txt", b"bob's").status == 201


def test_lock_on_unmapped_url_creates_empty_file(alice: Client) -> None:
    r = alice.lock("/dav/lockednull.txt", LOCK_BODY)
    assert r.status in (200, 201)
    g = alice.get("/dav/lockednull.txt")
    assert g.status == 200 and g.body == b""


def test_delete_folder_with_locked_member_is_refused(alice: Client) -> None:
    alice.mkcol("/dav/d/")
    alice.put("/dav/d/f.txt", b"f")
    token = _token(alice.lock("/dav/d/f.txt", LOCK_BODY).headers)
    assert alice.delete("/dav/d/").status == 423
    assert alice.get("/dav/d/f.txt").body == b"f"
    tagged = f"<http://localhost/dav/d/f.txt> (<{token}>)"
    assert alice.delete("/dav/d/", **{"if": tagged}).status == 204
    assert alice.propfind("/dav/d/", depth="0").status == 404


def test_users_see_only_their_own_home(alice: Client, bob: Client) -> None:
    alice.put("/dav/secret.txt", b"alice only")
    assert bob.get("/dav/secret.txt").status == 404
    listing = bob.propfind("/dav/", depth="1").text
    assert "secret.txt" not in listing
    for path in ("/dav/../dav/secret.txt", "/dav/%2e%2e/secret.txt"):
        assert bob.get(path).status == 404
    r = bob.copy("/dav/secret.txt", destination="http://localhost/dav/stolen.txt")
    assert r.status == 404


def test_used_bytes_follow_writes_and_deletes(alice: Client, services: Services) -> None:
    def used() -> int:
        return {u.name: u.bytes for u in services.admin.list_users()}["alice"]

    alice.put("/dav/one", b"x" * 1000)
    alice.put("/dav/two", b"y" * 500)
    assert used() == 1500
    alice.put("/dav/one", b"z" * 10)
    assert used() == 510
    alice.copy("/dav/two", destination="http://localhost/dav/three")
    assert used() == 1010
    alice.delete("/dav/two")
    alice.move("/dav/three", destination="http://localhost/dav/one")
    assert used() == 500
    assert re.fullmatch(r"y{500}", alice.get("/dav/one").text)
