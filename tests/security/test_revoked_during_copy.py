"""A share revoked while a grantee's big COPY is being made (issue 12, items 12 and 14).

A COPY of a big folder is built in short batches and attached in a last transaction (so other
writers are not held up). That transaction checked the destination and the locks again, but
not the rights of whoever copied: bob, whose share was removed with ``share rm`` while his copy
of thousands of nodes was being built, still got his copy attached in alice's folder after
she had revoked him. The last transaction now asks again, as an upload's commit does; for an
editable link, whose row the request read when it began, the row is read again there.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from davdisk import config as config_mod
from davdisk.files.revocation import revoke
from davdisk.files.shares import Shares
from davdisk.meta import store
from davdisk.services import Services
from tests.live.conftest import ALICE, BOB, ServerFactory, harness_config, members
from tests.live.sharing_helpers import share_add, share_link
from tests.security.test_long_copy import build_tree, hidden_rows, quota_used


@pytest.mark.parametrize("through", ["share", "link"])
def test_copy_revoked_half_way_is_not_attached(server_factory: ServerFactory, through: str) -> None:
    # The race is staged with SQLite's own write lock (BEGIN IMMEDIATE, busy_timeout): on SQLite
    # even in a run on PostgreSQL.
    data_dir = server_factory.new_data_dir(sqlite=True)
    nodes = build_tree(data_dir, "tree", 200, 100)  # 20 000 nodes: a copy in 20 batches
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

    def copy() -> None:
        r = session.request("COPY", team + "tree/", headers={"Destination": team + "copy/"})
        status.append(r.status_code)

    # ``share rm`` as the CLI runs it (revocation.revoke, in one write transaction), opened
    # beforehand: the CLI's start (about a second) would leave the copy time to finish first.
    # The same transaction sees the copy's rows still hidden, so it lands before the copy's
    # last transaction, whatever the timing.
    svc = Services.open(config_mod.load(harness_config(data_dir), data_dir), create=False)
    if through == "link":
        (share_id,) = [s.id for s in Shares(svc.db, svc.files).list() if s.grantee is None]
    copier = threading.Thread(target=copy)
    try:
        copier.start()
        # A writer of another process waits by polling (busy_timeout), and the copy's batches
        # follow each other too closely for the poll to get in. So the server is paused
        # (SIGSTOP) and the write lock asked for without waiting: paused between two of the
        # copy's transactions, the lock is free and the share is revoked in a transaction that
        # sees the copy still staged; paused inside one, the server runs on a moment.
        deadline = time.monotonic() + 30
        staged = 0
        with svc.db.writer.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA busy_timeout=0")
            while not staged and not status and time.monotonic() < deadline:
                os.kill(srv.pid, signal.SIGSTOP)
                try:
                    driver.execute("BEGIN IMMEDIATE")
                    with conn.begin():
                        staged = conn.scalar(
                            text("SELECT count(*) FROM nodes WHERE deleted_at < 0")
                        )
                        if staged:
                            share = store.get_share(conn, share_id)
                            assert share is not None
                            revoke(conn, [share])
                except sqlite3.OperationalError:
                    pass  # paused inside one of the copy's transactions
                finally:
                    os.kill(srv.pid, signal.SIGCONT)
                time.sleep(0.001)
        assert staged, f"the COPY was attached before the share was removed: {status}"
        print(f"share removed with {staged} of {nodes} nodes copied")
    finally:
        copier.join()
        svc.close()
    assert status and status[0] in (403, 404, 409), status
    assert set(members(alice, srv.dav + "team/")) == {"tree"}
    assert hidden_rows(data_dir) == 0
    assert quota_used(alice, srv.dav) == used
