"""Attack (issue 12, item 15): the locks of a deleted user outlive it.

bob, who may write in a folder alice shared with him, LOCKs a file in it; then ``user del bob``.
The lock stayed: alice got 423 on her own file and could not UNLOCK it (not her lock), and a new
user named bob — anyone the admin later gives that name — could write through the old token.
Deleting a user must remove every lock it holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live.conftest import ALICE, BOB, Server, add_user, lock
from tests.live.sharing_helpers import (
    PASSWORDS,
    cli_ok,
    mkdirs,
    put_ok,
    sess,
    share_add,
    start_share_server,
    uid,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "deleted-user-locks")


def test_deleting_a_grantee_removes_its_locks(srv: Server) -> None:
    alice = sess(srv, ALICE)
    folder = f"team-{uid()}"
    mkdirs(alice, srv.dav + folder + "/")
    put_ok(alice, srv.dav + folder + "/plan.txt", b"alice's plan")
    share_add(srv, ALICE, "/" + folder, BOB, write=True)

    old_bob = sess(srv, BOB)
    _, token = lock(old_bob, srv.dav + folder + "/plan.txt")
    assert token
    assert alice.put(srv.dav + folder + "/plan.txt", data=b"x").status_code == 423  # it holds

    cli_ok(srv, "user", "del", BOB, "--yes")

    # Someone new gets the name bob (and, later, the folder shared again): the old token is
    # not theirs to write through.
    add_user(srv.data_dir, BOB, PASSWORDS[BOB])
    share_add(srv, ALICE, "/" + folder, BOB, write=True)
    new_bob = sess(srv, BOB)
    r = new_bob.put(srv.dav + folder + "/plan.txt", data=b"new bob", headers={"If": f"(<{token}>)"})
    assert r.status_code == 412, f"a new bob wrote through the old bob's lock: {r.status_code}"

    # The owner's file is hers again, without the old token.
    url = srv.dav + folder + "/plan.txt"
    r = alice.put(url, data=b"alice's new plan")
    assert r.status_code == 204, f"alice's PUT of her own file: {r.status_code} {r.text[:200]}"
    assert alice.get(url).content == b"alice's new plan"
    assert alice.delete(url).status_code == 204
