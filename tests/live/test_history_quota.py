"""Versions and trash live in the room the quota leaves (issue 15): clients see live usage and
free space only; a write never fails for history's sake, which makes room by dropping the
oldest unpinned versions, then the oldest trash, down to ``[versions] history_share`` of the
quota; a 507 comes only when the live bytes alone would exceed the quota.
"""

from __future__ import annotations

import os
from pathlib import Path

import requests

from tests.live.conftest import ALICE, ServerFactory, cli, describe, propfind, sql

K = 1024
D = "{DAV:}"
# Trashed items: the tops of deleted trees (the trash folder itself has no parent).
ITEMS = "SELECT count(*) FROM nodes WHERE deleted_at > 0 AND parent_id IS NOT NULL"


def quota(s: requests.Session, dav: str) -> tuple[int, int]:
    home = next(iter(propfind(s, dav, "0").values()))
    return (
        int(home.text(D + "quota-used-bytes") or 0),
        int(home.text(D + "quota-available-bytes") or 0),
    )


def history(data_dir: Path) -> tuple[int, int, int]:
    """(versions kept, their bytes, trash items) in the database."""
    n, size = sql(data_dir, "SELECT count(*), coalesce(sum(size), 0) FROM versions")[0]
    (items,) = sql(data_dir, ITEMS)[0]
    return int(str(n)), int(str(size)), int(str(items))


def test_history_makes_room_and_only_live_bytes_get_507(server_factory: ServerFactory) -> None:
    srv = server_factory()
    proc = cli(srv.data_dir, "user", "quota", ALICE, "100K")
    assert proc.returncode == 0, describe(proc)
    s = srv.session(ALICE)
    blob = [os.urandom(40 * K) for _ in range(4)]

    assert s.put(srv.dav + "a.bin", data=blob[0]).status_code == 201
    assert s.put(srv.dav + "a.bin", data=blob[1]).status_code == 204
    assert history(srv.data_dir) == (1, 40 * K, 0)  # 40 live + 40 kept fit in 100
    # 40 live + 80 kept would not: the oldest version goes, down to 50 % of the quota.
    assert s.put(srv.dav + "a.bin", data=blob[2]).status_code == 204
    assert history(srv.data_dir) == (1, 40 * K, 0)
    assert quota(s, srv.dav) == (40 * K, 60 * K)  # clients see live bytes only

    # A deleted file goes to the trash, and out of the live count.
    assert s.put(srv.dav + "b.bin", data=blob[3]).status_code == 201
    assert s.delete(srv.dav + "b.bin").status_code == 204
    assert quota(s, srv.dav) == (40 * K, 60 * K)
    # 40 live + 40 kept + 40 trashed > 100: after this write (80 live) history may keep only
    # 20: the version goes first, then the trash.
    assert s.put(srv.dav + "c.bin", data=blob[0]).status_code == 201
    assert history(srv.data_dir) == (0, 0, 0)
    assert quota(s, srv.dav) == (80 * K, 20 * K)

    # An overwrite at quota succeeds; the content it replaced is kept only as far as room
    # allows (80 live + 40 kept > 100: none here).
    assert s.put(srv.dav + "c.bin", data=blob[1]).status_code == 204
    assert quota(s, srv.dav) == (80 * K, 20 * K)
    assert history(srv.data_dir) == (0, 0, 0)

    # Live bytes alone beyond the quota: 507, nothing stored, nothing dropped.
    before = history(srv.data_dir)
    r = s.put(srv.dav + "d.bin", data=os.urandom(30 * K))
    assert r.status_code == 507, r.status_code
    assert s.head(srv.dav + "d.bin").status_code == 404
    assert history(srv.data_dir) == before
    assert s.get(srv.dav + "c.bin").content == blob[1]
