"""Users are isolated: bob can never see, change, lock or copy alice's files, however he
spells the URL; requests without valid credentials get 401."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    BOB,
    USERS,
    D,
    Server,
    get_bytes,
    lock,
    members,
    propfind,
    put,
    raw_request,
)

MARK = "ALICE-" + uuid.uuid4().hex
TOP = f"top secret {MARK}\n".encode()
PLAN = f"the plan {MARK}\n".encode() * 100
BOB_OWN = b"bob's own file\n"

# ways of spelling "alice's secret/plan.txt" from inside bob's URL space (raw, unnormalised)
ALICE_PATHS = [
    "/dav/secret/plan.txt",
    "/dav/./secret/plan.txt",
    "/dav/../dav/secret/plan.txt",
    "/dav/%2e%2e/dav/secret/plan.txt",
    "/dav/%2E%2E/dav/secret/plan.txt",
    "/dav/..%2fdav%2fsecret%2fplan.txt",
    "/dav/secret%2fplan.txt",
    "/dav/%2e%2e%2fdav%2fsecret%2fplan.txt",
    "/dav//secret/plan.txt",
    "//dav/secret/plan.txt",
    "/dav/alice/secret/plan.txt",
    "/dav/../alice/secret/plan.txt",
    "/dav/%2e%2e/alice/secret/plan.txt",
    "/dav/..%2f..%2falice%2fsecret%2fplan.txt",
    "/alice/secret/plan.txt",
    "/u/1/secret/plan.txt",
    "/dav/u/1/secret/plan.txt",
    "/dav/secret/plan.txt%00",
    "/dav/%252e%252e/dav/secret/plan.txt",
]
ALICE_DIRS = [
    "/dav/secret/",
    "/dav/../dav/secret/",
    "/dav/%2e%2e/dav/secret/",
    "/dav/alice/secret/",
    "/u/1/secret/",
]

READ_DENIED = {400, 403, 404, 405}
WRITE_DENIED = {400, 403, 404, 405, 409}
COPY_DENIED = {400, 403, 404, 405, 409, 502}


def snapshot(
    srv: Server, user: str = ALICE
) -> dict[str, tuple[bool, int | None, str | None, bytes | None]]:
    """Every path in ``user``'s tree -> (is_dir, size, etag, content)."""
    s = srv.session(user)
    out = {}
    todo = [srv.dav]
    while todo:
        url = todo.pop()
        for name, e in members(s, url).items():
            if e.is_collection:
                out[e.href] = (True, None, None, None)
                todo.append(url + name + "/")
            else:
                body = get_bytes(s, url + name)
                out[e.href] = (False, e.size, e.text(D + "getetag"), body)
    s.close()
    return out


@pytest.fixture
def homes(server: Server) -> Server:
    a = server.session(ALICE)
    put(a, server.dav + "top.txt", TOP)
    assert a.request("MKCOL", server.dav + "secret/").status_code == 201
    assert a.request("MKCOL", server.dav + "secret/inner/").status_code == 201
    put(a, server.dav + "secret/plan.txt", PLAN)
    put(server.session(BOB), server.dav + "mine.txt", BOB_OWN)
    return server


def assert_bob_clean(srv: Server) -> None:
    """Bob's tree holds only bob's things: no alice names, no alice bytes."""
    for path, (_is_dir, _size, _etag, body) in snapshot(srv, BOB).items():
        assert MARK not in path
        assert body is None or MARK.encode() not in body, f"alice's bytes in bob's {path}"
    r = srv.session(BOB).get(srv.dav + "stolen.txt")
    assert r.status_code == 404


def attempt(
    srv: Server,
    before: dict,
    method: str,
    path: str,
    allowed: set[int],
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> int:
    status, _hdrs, data = raw_request(srv, method, path, headers, body, user=BOB)
    where = f"bob {method} {path} {headers or ''}"
    assert MARK.encode() not in data, f"{where}: response leaks alice's data: {data[:300]!r}"
    assert status in allowed, (
        f"{where}: got {status}, expected one of {sorted(allowed)}: {data[:300]!r}"
    )
    assert snapshot(srv) == before, f"{where}: alice's tree changed"
    return status


def test_bob_sees_only_his_home(homes: Server) -> None:
    srv = homes
    b = srv.session(BOB)
    a = srv.session(ALICE)
    assert set(members(b, srv.dav)) == {"mine.txt"}
    assert set(members(a, srv.dav)) == {"top.txt", "secret"}
    entries = propfind(b, srv.dav, "1")
    assert all(href.startswith("/dav/") for href in entries)
    assert b.get(srv.dav + "top.txt").status_code == 404
    assert b.get(srv.dav + "secret/plan.txt").status_code == 404
    assert b.request("PROPFIND", srv.dav + "secret/", headers={"Depth": "0"}).status_code == 404
    assert a.get(srv.dav + "mine.txt").status_code == 404


def test_bob_cannot_read_alices_files(homes: Server) -> None:
    srv = homes
    before = snapshot(srv)
    for path in ALICE_PATHS:
        attempt(srv, before, "GET", path, READ_DENIED)
        attempt(srv, before, "HEAD", path, READ_DENIED)
        attempt(srv, before, "PROPFIND", path, READ_DENIED, {"Depth": "0"})
    for path in ALICE_DIRS:
        attempt(srv, before, "PROPFIND", path, READ_DENIED, {"Depth": "1"})
        attempt(srv, before, "GET", path, READ_DENIED)
    assert_bob_clean(srv)


def test_bob_cannot_write_delete_or_lock_alices_files(homes: Server) -> None:
    srv = homes
    before = snapshot(srv)
    proppatch = (
        b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">'
        b"<D:set><D:prop><Z:owned>bob</Z:owned></D:prop></D:set></D:propertyupdate>"
    )
    lockinfo = (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        b"</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
    )
    for path in ALICE_PATHS:
        # '%2f' names are refused or land in bob's own home (test_protocol checks which);
        # 423 then means bob's own LOCK of that name from the previous round
        creates = {200, 201, 204, 423} if "%2f" in path.lower() else set()
        attempt(srv, before, "PUT", path, WRITE_DENIED | creates, body=b"bob was here")
        attempt(srv, before, "DELETE", path, WRITE_DENIED | creates)
        multistatus = {207} if creates else set()
        attempt(
            srv,
            before,
            "PROPPATCH",
            path,
            WRITE_DENIED | creates | multistatus,
            {"Content-Type": "application/xml"},
            proppatch,
        )
        attempt(
            srv,
            before,
            "LOCK",
            path,
            WRITE_DENIED | creates,
            {"Content-Type": "application/xml", "Depth": "0", "Timeout": "Second-60"},
            lockinfo,
        )
    for path in ALICE_DIRS:
        attempt(srv, before, "DELETE", path, WRITE_DENIED)
        attempt(srv, before, "MKCOL", path + "bobdir/", WRITE_DENIED)
        attempt(srv, before, "PUT", path + "bob.txt", WRITE_DENIED, body=b"bob")
    # alice can still write her file: nothing of bob's locked it
    put(srv.session(ALICE), srv.dav + "secret/plan.txt", PLAN)
    assert_bob_clean(srv)


def test_bob_cannot_copy_or_move_into_alices_tree(homes: Server) -> None:
    srv = homes
    before = snapshot(srv)
    host = srv.netloc
    dests = [
        f"http://{host}/dav/../dav/secret/plan.txt",
        f"http://{host}/dav/%2e%2e/dav/secret/plan.txt",
        f"http://{host}/dav/..%2fdav%2fsecret%2fplan.txt",
        f"http://{host}/dav/secret/plan.txt",
        f"http://{host}/dav/secret%2fplan.txt",
        f"http://{host}/dav/alice/secret/plan.txt",
        f"http://{host}/dav/../alice/secret/plan.txt",
        f"http://{host}/../dav/secret/plan.txt",
        f"http://{host}/u/1/secret/plan.txt",
        f"http://{host}//dav/secret/plan.txt",
        f"http://{ALICE}:{USERS[ALICE]}@{host}/dav/secret/plan.txt",
        f"http://{ALICE}@{host}/dav/secret/plan.txt",
        "http://evil.example/dav/secret/plan.txt",
        "/dav/secret/plan.txt",
        "/dav/../dav/secret/plan.txt",
        "/dav/%2e%2e/dav/secret/plan.txt",
        f"http://{host}/dav/secret/inner/",
    ]
    for dest in dests:
        for method in ("COPY", "MOVE"):
            attempt(
                srv,
                before,
                method,
                "/dav/mine.txt",
                COPY_DENIED,
                {"Destination": dest, "Overwrite": "T"},
            )
            assert get_bytes(srv.session(BOB), srv.dav + "mine.txt") == BOB_OWN
    assert_bob_clean(srv)


def test_bob_cannot_copy_or_move_out_of_alices_tree(homes: Server) -> None:
    srv = homes
    before = snapshot(srv)
    for dest in (f"http://{srv.netloc}/dav/stolen.txt", "/dav/stolen.txt"):
        for path in ALICE_PATHS:
            for method in ("COPY", "MOVE"):
                attempt(
                    srv, before, method, path, COPY_DENIED, {"Destination": dest, "Overwrite": "T"}
                )
        for path in ALICE_DIRS:
            for method in ("COPY", "MOVE"):
                headers = {"Destination": dest.replace("stolen.txt", "stolen/"), "Overwrite": "T"}
                if method == "COPY":
                    headers["Depth"] = "infinity"
                attempt(srv, before, method, path, COPY_DENIED, headers)
    assert_bob_clean(srv)
    assert bob_has_no(srv, "stolen")


def bob_has_no(srv: Server, name: str) -> bool:
    r = srv.session(BOB).request("PROPFIND", srv.dav + name + "/", headers={"Depth": "0"})
    return r.status_code == 404


def test_locks_do_not_cross_users(homes: Server) -> None:
    """Same paths in two homes are different resources; their locks must not collide."""
    srv = homes
    a = srv.session(ALICE)
    b = srv.session(BOB)

    # alice locks her secret/ folder, depth infinity
    _, alice_token = lock(a, srv.dav + "secret/", depth="infinity")
    assert alice_token
    put(a, srv.dav + "secret/plan.txt", b"no token", expect=(423,))

    # bob's identically named paths are unaffected
    assert b.request("MKCOL", srv.dav + "secret/").status_code == 201
    put(b, srv.dav + "secret/plan.txt", b"bob's plan", expect=(201,))
    put(b, srv.dav + "top.txt", b"bob's top", expect=(201,))
    _, bob_token = lock(b, srv.dav + "secret/plan.txt")
    assert bob_token and bob_token != alice_token
    put(
        b,
        srv.dav + "secret/plan.txt",
        b"bob's plan v2",
        expect=(200, 204),
        headers={"If": f"(<{bob_token}>)"},
    )

    # bob cannot use or remove alice's lock token
    r = b.put(
        srv.dav + "secret/plan.txt",
        data=b"with alice's token",
        headers={"If": f"(<{alice_token}>)"},
    )
    assert r.status_code in (412, 423), (r.status_code, r.text)
    r = b.put(
        srv.dav + "secret/plan.txt",
        data=b"with alice's token, tagged",
        headers={"If": f"<{srv.dav}secret/> (<{alice_token}>)"},
    )
    assert r.status_code in (412, 423), (r.status_code, r.text)
    r = b.request("UNLOCK", srv.dav + "secret/", headers={"Lock-Token": f"<{alice_token}>"})
    assert r.status_code in (400, 403, 409, 412), (r.status_code, r.text)
    r = b.request("UNLOCK", srv.dav + "secret/plan.txt", headers={"Lock-Token": f"<{alice_token}>"})
    assert r.status_code in (400, 403, 409, 412), (r.status_code, r.text)
    # ...so alice's lock is still there, and her file untouched
    put(a, srv.dav + "secret/plan.txt", b"no token", expect=(423,))
    assert get_bytes(a, srv.dav + "secret/plan.txt") == PLAN
    assert get_bytes(b, srv.dav + "secret/plan.txt") == b"bob's plan v2"
    r = a.request("MKCOL", srv.dav + "secret/newdir/", headers={"If": f"(<{alice_token}>)"})
    assert r.status_code == 201, (r.status_code, r.text)
    r = a.request("UNLOCK", srv.dav + "secret/", headers={"Lock-Token": f"<{alice_token}>"})
    assert r.status_code == 204, (r.status_code, r.text)
    r = b.request("UNLOCK", srv.dav + "secret/plan.txt", headers={"Lock-Token": f"<{bob_token}>"})
    assert r.status_code == 204, (r.status_code, r.text)

    # bob's depth-infinity lock on his home does not block alice
    _, bob_root = lock(b, srv.dav, depth="infinity")
    put(a, srv.dav + "top.txt", TOP, expect=(200, 204))
    assert a.request("MKCOL", srv.dav + "alice-new/").status_code == 201
    assert a.request("DELETE", srv.dav + "alice-new/").status_code == 204
    put(b, srv.dav + "top.txt", b"bob without token", expect=(423,))
    r = b.request("UNLOCK", srv.dav, headers={"Lock-Token": f"<{bob_root}>"})
    assert r.status_code == 204, (r.status_code, r.text)
    assert get_bytes(a, srv.dav + "top.txt") == TOP
    assert get_bytes(b, srv.dav + "top.txt") == b"bob's top"
    assert_bob_clean(srv)


BAD_AUTHS = {
    "no credentials": None,
    "wrong password": (ALICE, "wrong-password"),
    "empty password": (ALICE, ""),
    "another user's password": (ALICE, USERS[BOB]),
    "unknown user": ("mallory", "mallory-pass-1"),
    "empty user": ("", ""),
}


def test_bad_credentials_get_401(homes: Server) -> None:
    srv = homes
    before = snapshot(srv)
    lockinfo = (
        b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        b"</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
    )
    calls = [
        ("GET", "", None, {}),
        ("GET", "top.txt", None, {}),
        ("HEAD", "top.txt", None, {}),
        ("PROPFIND", "", None, {"Depth": "1"}),
        ("PUT", "intruder.txt", b"x", {}),
        ("PUT", "top.txt", b"x", {}),
        ("MKCOL", "intruder/", None, {}),
        ("DELETE", "top.txt", None, {}),
        ("LOCK", "top.txt", lockinfo, {"Depth": "0"}),
        ("MOVE", "top.txt", None, {"Destination": srv.dav + "moved.txt"}),
        ("COPY", "top.txt", None, {"Destination": srv.dav + "copied.txt"}),
    ]
    failures = []
    for label, auth in BAD_AUTHS.items():
        for method, path, body, headers in calls:
            # a fresh connection per request: this test is about auth, not keep-alive framing
            r = requests.request(method, srv.dav + path, data=body, headers=headers, auth=auth)
            if r.status_code != 401:
                failures.append(f"{method} /dav/{path} with {label}: {r.status_code}")
            elif "basic" not in r.headers.get("WWW-Authenticate", "").lower():
                failures.append(f"{method} /dav/{path} with {label}: no Basic challenge")
            assert MARK.encode() not in r.content
    assert not failures, "\n".join(failures)
    assert snapshot(srv) == before
