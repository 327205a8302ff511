"""A share revoked while a grantee's big COPY is being made (issue 12, items 12 and 14).

A COPY of a big folder is built in short batches and attached in a last transaction (so other
writers are not held up). That transaction checked the destination and the locks again, but
not the rights of whoever copied: bob, whose share was removed with ``share rm`` while his copy
of thousands of nodes was being built, still got his copy attached in alice's folder after
she had revoked him. The last transaction now asks again, as an upload's commit does; for an
editable link, whose row the request read when it began, the row is read again there.
"""

from __future__ import annotations

import threading
import time

import pytest

from davdisk import config as config_mod
from davdisk.files.shares import Shares
from davdisk.services import Services
from tests.live.conftest import ALICE, BOB, ServerFactory, members, wait_until
from tests.live.sharing_helpers import share_add, share_link
from tests.security.test_long_copy import build_tree, hidden_rows, quota_used


@pytest.mark.parametrize("through", ["share", "link"])
def test_copy_revoked_half_way_is_not_attached(server_factory: ServerFactory, through: str) -> None:
    data_dir = server_factory.new_data_dir()
    nodes = build_tree(data_dir, "tree", 100, 100)  # about 10 000 nodes: a copy in batches
    srv = server_factory(data_dir)
    alice = srv.session(ALICE)
    assert alice.request("MKCOL", srv.dav + "team/").status_code == 201
    moved = alice.request(
        "MOVE", srv.dav + "tree/", headers={"Destination": srv.dav + "team/tree/"}
    )
    assert moved.status_code == 201, moved.status_code
    used = quota_used(alice, srv.dav)
    if through == "share":
        share_id = share_add(srv, ALICE, "/team", BOB, write=True)
        session, team = srv.session(BOB), srv.dav + "team/"
    else:
        link = share_link(srv, ALICE, "/team", upload=True)
        session, team = srv.session(None), link.public

    status: list[int] = []
    done = threading.Event()

    def copy() -> None:
        try:
            r = session.request("COPY", team + "tree/", headers={"Destination": team + "copy/"})
            status.append(r.status_code)
        finally:
            done.set()

    # ``share rm`` as the CLI runs it, but opened beforehand: the CLI's start (about a second)
    # would leave the copy time to finish first.
    svc = Services.open(config_mod.load(None, data_dir), create=False)
    shares = Shares(svc.files)
    if through == "link":
        (share_id,) = [s.id for s in shares.list() if s.grantee is None]
    copier = threading.Thread(target=copy)
    try:
        copier.start()
        wait_until(lambda: hidden_rows(data_dir) > 0, 30, "the COPY to stage rows")
        t0 = time.monotonic()
        shares.remove(share_id)
        # The revocation must have landed while the copy was still being built, or this test
        # shows nothing.
        assert not done.is_set(), f"the COPY of {nodes} nodes ended before share rm did"
        print(f"share rm took {time.monotonic() - t0:.3f} s, during a COPY of {nodes} nodes")
    finally:
        copier.join()
        svc.close()
    assert status and status[0] in (403, 404, 409), status
    assert set(members(alice, srv.dav + "team/")) == {"tree"}
    assert hidden_rows(data_dir) == 0
    assert quota_used(alice, srv.dav) == used
