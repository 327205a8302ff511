"""Shares and quotas through the in-process app (the live tier has the full permission matrix)."""

from __future__ import annotations

import pytest

from davdisk.errors import Forbidden, NotFound, UsageError
from davdisk.files.shares import Shares
from davdisk.services import Services
from tests.dav.conftest import Client

LOCK_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
<D:locktype><D:write/></D:locktype></D:lockinfo>"""


@pytest.fixture
def shares(services: Services) -> Shares:
    return Shares(services.db, services.files, 4)


def test_read_only_and_read_write_grantees(
    alice: Client, bob: Client, services: Services, shares: Shares
) -> None:
    services.admin.add_user("carol", "carol-password-3")
    alice.mkcol("/dav/P/")
    alice.put("/dav/P/plan.txt", b"plan")
    shares.add("alice", "/P", "bob", write=False, reshare=False)
    assert bob.get("/dav/P/plan.txt").body == b"plan"
    for r in (
        bob.put("/dav/P/new.txt", b"x"),
        bob.put("/dav/P/plan.txt", b"changed"),
        bob.mkcol("/dav/P/sub/"),
        bob.delete("/dav/P/plan.txt"),
        bob.lock("/dav/P/plan.txt", LOCK_BODY),
        bob.move("/dav/P/plan.txt", destination="http://localhost/dav/mine.txt"),
    ):
        assert r.status == 403
    assert alice.get("/dav/P/plan.txt").body == b"plan"
    assert alice.get("/dav/P/new.txt").status == 404
    assert bob.copy("/dav/P/plan.txt", destination="http://localhost/dav/mine.txt").status == 201
    assert bob.get("/dav/mine.txt").body == b"plan"
    with pytest.raises(Forbidden):
        shares.add("bob", "/P", "carol", write=False, reshare=False)


def test_writes_land_in_the_owner_tree_and_quota(
    alice: Client, bob: Client, services: Services, shares: Shares
) -> None:
    alice.mkcol("/dav/W/")
    bob.mkcol("/dav/W/")  # bob's own W: the share mounts as "W (alice)"
    shares.add("alice", "/W", "bob", write=True, reshare=False)
    assert bob.put("/dav/W (alice)/from-bob.txt", b"hello").status == 201
    assert alice.get("/dav/W/from-bob.txt").body == b"hello"
    services.admin.set_quota("alice", 10)
    assert bob.put("/dav/W (alice)/big.txt", b"x" * 100).status == 507
    assert alice.get("/dav/W/big.txt").status == 404
    r = bob.request("PUT", "/dav/W (alice)/chunked.txt", b"y" * 100, chunked=True)
    assert r.status == 507
    assert bob.put("/dav/W (alice)/small.txt", b"ok").status == 201
    lock = bob.lock("/dav/W (alice)/small.txt", LOCK_BODY)
    assert lock.status == 200
    assert alice.put("/dav/W/small.txt", b"no").status == 423  # one lock for owner and grantee
    assert bob.delete("/dav/W (alice)/").status == 204  # hides the mount
    assert bob.propfind("/dav/W (alice)/", depth="0").status == 404
    assert alice.get("/dav/W/from-bob.txt").body == b"hello"


def test_revoke_and_cli_errors(alice: Client, bob: Client, shares: Shares) -> None:
    alice.put("/dav/note.txt", b"n")
    share_id = shares.add("alice", "/note.txt", "bob", write=True, reshare=False)
    assert bob.get("/dav/note.txt").body == b"n"
    token = bob.lock("/dav/note.txt", LOCK_BODY).headers["lock-token"]
    assert token
    shares.remove(share_id)
    assert bob.get("/dav/note.txt").status == 404
    assert alice.put("/dav/note.txt", b"free").status == 204  # bob's lock went with the share
    with pytest.raises(NotFound):
        shares.remove(share_id)
    with pytest.raises(NotFound):
        shares.add("alice", "/missing", "bob", write=False, reshare=False)
    with pytest.raises(UsageError):
        shares.add("alice", "/note.txt", "alice", write=False, reshare=False)
    with pytest.raises(Forbidden):
        shares.add("alice", "/", "bob", write=False, reshare=False)
