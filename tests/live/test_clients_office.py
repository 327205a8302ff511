"""Microsoft Office (Word) replayed request by request: discovery, exclusive lock, the save
dance through temp files, and MOVE/COPY onto an existing file keeping its node."""

from __future__ import annotations

import pytest
import requests

from tests.live.clients import (
    OC,
    UA_OFFICE_DISCOVERY,
    UA_WORD,
    client_session,
    dead_prop_body,
    fileid,
    http_date,
    kept_versions,
    prop_request,
    propfind_one,
    proppatch,
    trashed,
)
from tests.live.conftest import ALICE, BOB, D, Server, get_bytes, members, sql
from tests.live.sharing_helpers import share_add

WORD_LOCK = (
    b'<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:">'
    b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
    b"<D:owner><D:href>CONTOSO\\alice</D:href></D:owner></D:lockinfo>"
)
XML = {"Content-Type": 'text/xml; charset="utf-8"'}
DOCX_V1 = b"PK\x03\x04" + b"version one of the document " * 100
DOCX_V2 = b"PK\x03\x04" + b"version TWO, saved by Word " * 120

TEST_NS = "urn:davdisk-office-test"
COLOR = "{" + TEST_NS + "}color"
SHAPE = "{" + TEST_NS + "}shape"


@pytest.fixture
def word(module_server: Server) -> requests.Session:
    return client_session(module_server, UA_WORD)


def word_lock(s: requests.Session, url: str) -> str:
    r = s.request("LOCK", url, data=WORD_LOCK, headers={**XML, "Timeout": "Second-3600"})
    assert r.status_code == 200, (url, r.status_code, r.text[:300])
    token = r.headers.get("Lock-Token", "").strip().strip("<>")
    assert token, dict(r.headers)
    return token


@pytest.mark.parametrize("where", ["home", "folder"])
def test_existence_discovery(module_server: Server, workdir: str, where: str) -> None:
    s = client_session(module_server, UA_OFFICE_DISCOVERY)
    folder = module_server.dav if where == "home" else workdir
    r = s.options(folder)
    assert r.status_code == 200, r.status_code
    assert r.headers.get("MS-Author-Via") == "DAV", dict(r.headers)
    assert "2" in {c.strip() for c in r.headers.get("DAV", "").split(",")}
    w = client_session(module_server, UA_WORD)
    assert w.put(workdir + "exists.docx", data=DOCX_V1).status_code == 201
    r = s.head(workdir + "exists.docx")
    assert r.status_code == 200, r.status_code
    assert int(r.headers["Content-Length"]) == len(DOCX_V1)
    assert s.head(workdir + "missing.docx").status_code == 404


def test_exclusive_lock_blocks_others_not_other_users(
    module_server: Server, word: requests.Session, workdir: str
) -> None:
    url = workdir + "doc.docx"
    assert word.put(url, data=DOCX_V1).status_code == 201
    token = word_lock(word, url)

    # a second client of the same user, without the token
    other = client_session(module_server, UA_WORD)
    assert other.put(url, data=b"clobber").status_code == 423
    r = other.request("LOCK", url, data=WORD_LOCK, headers={**XML, "Timeout": "Second-3600"})
    assert r.status_code == 423, r.status_code
    assert other.delete(url).status_code == 423
    assert get_bytes(other, url) == DOCX_V1
    # a lock token from the wrong resource does not help
    decoy = workdir + "decoy.docx"
    assert word.put(decoy, data=b"decoy").status_code == 201
    decoy_token = word_lock(word, decoy)
    r = other.put(url, data=b"clobber", headers={"If": f"(<{decoy_token}>)"})
    assert r.status_code in (412, 423), r.status_code
    assert get_bytes(other, url) == DOCX_V1

    # bob, in his own home, on the identically named path: unaffected, and vice versa
    bob = client_session(module_server, UA_WORD, user=BOB)
    bob_folder = module_server.dav + workdir.rstrip("/").rsplit("/", 1)[1] + "/"
    r = bob.request("MKCOL", bob_folder)
    assert r.status_code == 201, r.status_code
    bob_url = bob_folder + "doc.docx"
    assert bob.put(bob_url, data=b"bob's doc").status_code == 201
    bob_token = word_lock(bob, bob_url)
    assert bob_token != token
    assert bob.put(bob_url, data=b"bob's doc v2", headers={"If": f"(<{bob_token}>)"}).ok
    assert get_bytes(bob, bob_url) == b"bob's doc v2"
    r = bob.request("UNLOCK", bob_url, headers={"Lock-Token": f"<{bob_token}>"})
    assert r.status_code == 204, r.status_code
    assert get_bytes(word, url) == DOCX_V1
    # alice's token means nothing in bob's home
    assert bob.put(bob_url, data=b"bob v3").status_code in (200, 204)
    r = word.put(url, data=DOCX_V2, headers={"If": f"(<{token}>)"})
    assert r.status_code in (200, 204), r.status_code
    assert get_bytes(word, url) == DOCX_V2
    assert get_bytes(bob, bob_url) == b"bob v3"
    r = word.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, r.status_code
    r = word.request("UNLOCK", decoy, headers={"Lock-Token": f"<{decoy_token}>"})
    assert r.status_code == 204, r.status_code


def test_word_save_dance(module_server: Server, word: requests.Session, workdir: str) -> None:
    """Word saves by writing ~WRD0001.tmp, renaming the locked original (with its token) to
    ~WRL0002.tmp, renaming the temp to the original name and deleting the old copy. The
    document keeps its file id, its lock, its dead properties and its history, gaining one
    version; the old copy Word deletes is a throwaway holding the pre-save content."""
    url = workdir + "doc.docx"
    assert word.put(url, data=DOCX_V1).status_code == 201
    doc_id = fileid(word, url)
    assert proppatch(word, url, dead_prop_body(TEST_NS, {"color": "red"})) == {COLOR: 200}
    token = word_lock(word, url)
    if_token = {"If": f"(<{token}>)"}

    r = word.put(workdir + "~WRD0001.tmp", data=DOCX_V2)
    assert r.status_code == 201, r.status_code
    temp = workdir + "~WRD0001.tmp"
    assert proppatch(word, temp, dead_prop_body(TEST_NS, {"shape": "new"})) == {SHAPE: 200}
    r = word.request(
        "MOVE",
        url,
        headers={"Destination": workdir + "~WRL0002.tmp", "Overwrite": "F", **if_token},
    )
    assert r.status_code == 201, (r.status_code, r.text[:300])
    r = word.request("MOVE", temp, headers={"Destination": url, "Overwrite": "F"})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    r = word.request("DELETE", workdir + "~WRL0002.tmp")
    assert r.status_code == 204, r.status_code

    assert get_bytes(word, url) == DOCX_V2
    assert set(members(word, workdir)) == {"doc.docx"}
    assert word.get(temp).status_code == 404
    assert word.get(workdir + "~WRL0002.tmp").status_code == 404
    after = propfind_one(word, url, STATE)
    assert (after.text(OC + "fileid") or "").strip() == doc_id
    assert after.text(COLOR) == "red", after.status  # the document's own property stays
    assert after.text(SHAPE) == "new", after.status  # what the saved file set comes along
    # exactly one version, the content before the save; the trash holds the same content
    (version,) = kept_versions(module_server, doc_id)
    assert version[0] == len(DOCX_V1)
    ((thrown_id, thrown_size, thrown_blob),) = trashed(module_server, "~WRL0002.tmp")
    assert str(thrown_id) != doc_id
    assert (thrown_size, thrown_blob) == version

    # the lock is still Word's, on the document: others are kept out, the token works
    other = client_session(module_server, UA_WORD)
    assert other.put(url, data=b"clobber").status_code == 423
    r = word.put(url, data=DOCX_V2 + b"!", headers=if_token)
    assert r.status_code in (200, 204), r.status_code
    assert kept_versions(module_server, doc_id)[-1][0] == len(DOCX_V2)
    r = word.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, r.status_code
    assert other.put(url, data=b"now free").status_code in (200, 204)


def test_word_save_dance_through_a_share(module_server: Server, workdir: str) -> None:
    """Bob saves alice's document in a folder she shares with him: the document keeps its
    file id, gains a version, and bob's lock holds for alice too afterwards."""
    name = workdir.rstrip("/").rsplit("/", 1)[1]
    share_add(module_server, ALICE, "/" + name, BOB, write=True)
    alice = client_session(module_server, UA_WORD)
    bob = client_session(module_server, UA_WORD, user=BOB)
    mine, his = workdir + "doc.docx", module_server.dav + name + "/"
    assert alice.put(mine, data=DOCX_V1).status_code == 201
    doc_id = fileid(alice, mine)
    token = word_lock(bob, his + "doc.docx")

    assert bob.put(his + "~WRD0001.tmp", data=DOCX_V2).status_code == 201
    r = bob.request(
        "MOVE",
        his + "doc.docx",
        headers={"Destination": his + "~WRL0002.tmp", "Overwrite": "F", "If": f"(<{token}>)"},
    )
    assert r.status_code == 201, (r.status_code, r.text[:300])
    r = bob.request(
        "MOVE", his + "~WRD0001.tmp", headers={"Destination": his + "doc.docx", "Overwrite": "F"}
    )
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert bob.delete(his + "~WRL0002.tmp").status_code == 204

    assert fileid(alice, mine) == doc_id
    assert get_bytes(alice, mine) == DOCX_V2
    assert [size for size, _ in kept_versions(module_server, doc_id)] == [len(DOCX_V1)]
    assert alice.put(mine, data=b"clobber").status_code == 423
    r = bob.request("UNLOCK", his + "doc.docx", headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, r.status_code
    assert alice.put(mine, data=b"now free").status_code in (200, 204)


def test_renames_that_are_no_save_dance(
    module_server: Server, word: requests.Session, workdir: str
) -> None:
    """Only a fresh file moved onto a name its folder's file left moments ago takes that
    file's place: an old file, a folder, another folder's name keep their own identity; and
    a locked file renamed for good leaves no lock behind, on either name (RFC 4918 7.5)."""

    def move(src: str, dest: str, **headers: str) -> None:
        r = word.request("MOVE", workdir + src, headers={"Destination": workdir + dest, **headers})
        assert r.status_code == 201, (src, dest, r.status_code, r.text[:300])

    def put(name: str, data: bytes) -> str:
        assert word.put(workdir + name, data=data).status_code == 201
        return fileid(word, workdir + name)

    # a user renames a.txt to b.txt, then moves a file written an hour ago onto a.txt
    a_id = put("a.txt", b"a")
    old_id = put("old.txt", b"an old file")
    sql(
        module_server.data_dir,
        "UPDATE nodes SET ctime = ctime - 3600 WHERE id = :id",
        id=int(old_id),
    )
    move("a.txt", "b.txt")
    move("old.txt", "a.txt")
    assert fileid(word, workdir + "a.txt") == old_id
    assert get_bytes(word, workdir + "a.txt") == b"an old file"
    assert fileid(word, workdir + "b.txt") == a_id
    assert kept_versions(module_server, old_id) == kept_versions(module_server, a_id) == []

    # a folder renamed away, a fresh file moved onto its name
    assert word.request("MKCOL", workdir + "sub").status_code == 201
    move("sub", "sub-away")
    f_id = put("f.txt", b"f")
    move("f.txt", "sub")
    assert fileid(word, workdir + "sub") == f_id

    # a file moved to another folder, a fresh file onto the name it left
    assert word.request("MKCOL", workdir + "other").status_code == 201
    c_id = put("c.txt", b"c")
    move("c.txt", "other/c.txt")
    y_id = put("y.txt", b"y")
    move("y.txt", "c.txt")
    assert fileid(word, workdir + "c.txt") == y_id
    assert fileid(word, workdir + "other/c.txt") == c_id

    # a locked file renamed for good: no lock on its new name, nor on the old one
    url = workdir + "locked.txt"
    assert word.put(url, data=b"locked").status_code == 201
    token = word_lock(word, url)
    move("locked.txt", "renamed.txt", If=f"(<{token}>)")
    other = client_session(module_server, UA_WORD)
    assert other.put(workdir + "renamed.txt", data=b"changed").status_code in (200, 204)
    assert other.put(url, data=b"a new file").status_code == 201
    assert word.put(url, data=b"a new file, again").status_code in (200, 204)


def _setup_pair(s: requests.Session, workdir: str) -> tuple[str, str]:
    a, b = workdir + "a.txt", workdir + "b.txt"
    r = s.put(a, data=b"content of a", headers={"X-OC-Mtime": "1600000000"})
    assert r.status_code == 201, r.status_code
    r = s.put(b, data=b"b's old, longer content", headers={"X-OC-Mtime": "1650000000"})
    assert r.status_code == 201, r.status_code
    status = proppatch(s, a, dead_prop_body(TEST_NS, {"color": "red", "shape": "round"}))
    assert status == {COLOR: 200, SHAPE: 200}, status
    status = proppatch(s, b, dead_prop_body(TEST_NS, {"color": "blue"}))
    assert status == {COLOR: 200}, status
    return a, b


STATE = prop_request(
    "D:getlastmodified",
    "D:getcontentlength",
    "oc:fileid",
    "Z:color",
    "Z:shape",
    namespaces={"Z": TEST_NS},
)


@pytest.mark.parametrize("method", ["MOVE", "COPY"])
def test_overwrite_keeps_destination_node(
    word: requests.Session, workdir: str, method: str
) -> None:
    a, b = _setup_pair(word, workdir)
    id_a, id_b = fileid(word, a), fileid(word, b)
    assert id_a != id_b
    src = propfind_one(word, a, STATE)
    assert src.text(D + "getlastmodified") == http_date(1600000000), src.text(D + "getlastmodified")

    r = word.request(method, a, headers={"Destination": b, "Overwrite": "T"})
    assert r.status_code == 204, (method, r.status_code, r.text[:300])

    dst = propfind_one(word, b, STATE)
    assert get_bytes(word, b) == b"content of a"
    assert dst.size == len(b"content of a")
    assert (dst.text(OC + "fileid") or "").strip() == id_b, (method, id_b, dst.status)
    assert dst.text(D + "getlastmodified") == http_date(1600000000), dst.text(D + "getlastmodified")
    assert dst.text(COLOR) == "red", dst.status
    assert dst.text(SHAPE) == "round", dst.status
    if method == "MOVE":
        assert word.get(a).status_code == 404
        assert set(members(word, workdir)) == {"b.txt"}
    else:
        assert get_bytes(word, a) == b"content of a"
        after = propfind_one(word, a, STATE)
        assert (after.text(OC + "fileid") or "").strip() == id_a
        assert after.text(COLOR) == "red"
        assert set(members(word, workdir)) == {"a.txt", "b.txt"}
