"""Two ``davdisk serve`` processes on one data dir agree on files and on locks."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.live.conftest import ALICE, ServerFactory, get_bytes, lock, members, put


def test_two_servers_share_files_and_locks(server_factory: ServerFactory) -> None:
    a_srv = server_factory()
    b_srv = server_factory(data_dir=a_srv.data_dir)
    assert a_srv.url != b_srv.url
    a = a_srv.session(ALICE)
    b = b_srv.session(ALICE)

    # a file written through A reads back through B (and the other way round)
    put(a, a_srv.dav + "shared.txt", b"written by A", expect=(201,))
    assert get_bytes(b, b_srv.dav + "shared.txt") == b"written by A"
    assert b.request("MKCOL", b_srv.dav + "from-b/").status_code == 201
    put(b, b_srv.dav + "from-b/x.txt", b"written by B", expect=(201,))
    assert get_bytes(a, a_srv.dav + "from-b/x.txt") == b"written by B"
    assert set(members(a, a_srv.dav)) == set(members(b, b_srv.dav)) == {"shared.txt", "from-b"}

    # an exclusive lock taken through A binds B
    _, token = lock(a, a_srv.dav + "shared.txt")
    assert token
    put(b, b_srv.dav + "shared.txt", b"B without token", expect=(423,))
    r = b.delete(b_srv.dav + "shared.txt")
    assert r.status_code == 423, (r.status_code, r.text)
    lock(b, b_srv.dav + "shared.txt", expect=(423,))
    assert get_bytes(b, b_srv.dav + "shared.txt") == b"written by A"
    put(
        b,
        b_srv.dav + "shared.txt",
        b"B with token",
        expect=(200, 204),
        headers={"If": f"(<{token}>)"},
    )
    assert get_bytes(a, a_srv.dav + "shared.txt") == b"B with token"

    # UNLOCK through B with the token A handed out; then anyone may write again
    r = b.request("UNLOCK", b_srv.dav + "shared.txt", headers={"Lock-Token": f"<{token}>"})
    assert r.status_code == 204, (r.status_code, r.text)
    put(a, a_srv.dav + "shared.txt", b"A after unlock", expect=(200, 204))
    assert get_bytes(b, b_srv.dav + "shared.txt") == b"A after unlock"

    # a depth-infinity lock on a folder through B binds its members through A
    _, dir_token = lock(b, b_srv.dav + "from-b/", depth="infinity")
    assert dir_token
    put(a, a_srv.dav + "from-b/x.txt", b"A without token", expect=(423,))
    put(a, a_srv.dav + "from-b/new.txt", b"A without token", expect=(423,))
    put(
        a,
        a_srv.dav + "from-b/new.txt",
        b"A with token",
        expect=(201,),
        headers={"If": f"(<{dir_token}>)"},
    )
    r = a.request("UNLOCK", a_srv.dav + "from-b/", headers={"Lock-Token": f"<{dir_token}>"})
    assert r.status_code == 204, (r.status_code, r.text)
    put(b, b_srv.dav + "from-b/x.txt", b"B after unlock", expect=(200, 204))

    # a lock-null resource created through A is visible and locked through B
    _, null_token = lock(a, a_srv.dav + "locknull.txt")
    assert null_token
    assert "locknull.txt" in members(b, b_srv.dav)
    put(b, b_srv.dav + "locknull.txt", b"no token", expect=(423,))
    r = b.request("UNLOCK", b_srv.dav + "locknull.txt", headers={"Lock-Token": f"<{null_token}>"})
    assert r.status_code == 204, (r.status_code, r.text)

    a_srv.stop()
    assert get_bytes(b, b_srv.dav + "from-b/new.txt") == b"A with token"


def _at_once(calls: list[Callable[[], int]]) -> list[int]:
    """Run ``calls`` in threads released together; their HTTP statuses."""
    start = threading.Barrier(len(calls))
    statuses: list[int] = []

    def run(call: Callable[[], int]) -> None:
        start.wait(10)
        statuses.append(call())

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return statuses


def test_two_servers_racing_to_create_one_name_never_fail(server_factory: ServerFactory) -> None:
    """MKCOL and PUT of the same new name through two servers at the same moment: one creates
    it, the other finds it made (MKCOL 405; PUT overwrites). Before, on PostgreSQL (no writers'
    lock), both checked that the name was free and the second insert broke the unique index on
    the folder's names: a 500 ("mkcol-1/": [201, 500])."""
    a_srv = server_factory()
    b_srv = server_factory(data_dir=a_srv.data_dir)
    clients = [(a_srv.session(ALICE), a_srv.dav), (b_srv.session(ALICE), b_srv.dav)]

    def call(i: int, method: str, name: str) -> Callable[[], int]:
        session, base = clients[i]
        body = b"" if method == "MKCOL" else f"from {i}".encode()
        return lambda: session.request(method, base + name, data=body).status_code

    for round_ in range(15):
        statuses = _at_once([call(i, "MKCOL", f"dir-{round_}/") for i in range(2)])
        assert sorted(statuses) == [201, 405], (f"dir-{round_}/", statuses)
        statuses = _at_once([call(i, "PUT", f"file-{round_}.txt") for i in range(2)])
        # the second may have decided "new" before the first committed: 201 too
        assert 201 in statuses and set(statuses) <= {201, 204}, (f"file-{round_}", statuses)
    for srv in (a_srv, b_srv):
        assert "Traceback" not in srv.log()
