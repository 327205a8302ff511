"""Attack (issue 12, item 20, second half): learn how much an owner stores from a share.

A grantee's PROPFIND of the RFC 4331 quota properties on a folder shared with them answered the
owner's total usage: every file the owner has, shared or not. A grantee now sees as used the
bytes of the shared folder it asks about (which it can list anyway), and as available the
owner's remaining room only if it may write there (a writer needs it, and its uploads are
charged to the owner); a reader is told nothing available.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests

from tests.live.conftest import BOB, Server, parse_multistatus, url_path
from tests.live.sharing_helpers import (
    CAROL,
    QUOTA_BODY,
    RW,
    D,
    mkdirs,
    put_ok,
    quota,
    sess,
    set_quota,
    share_add,
    start_share_server,
    uid,
)

K = 1024
M = 1024 * 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "grantee-usage")


def quota_props(s: requests.Session, url: str, depth: str = "0") -> dict[str, dict[str, str]]:
    """{path: {property: value}} of the quota properties reported (status 200) at ``url``."""
    r = s.request(
        "PROPFIND",
        url,
        headers={"Depth": depth, "Content-Type": "application/xml"},
        data=QUOTA_BODY,
    )
    assert r.status_code == 207, (url, r.status_code, r.text[:300])
    return {
        href.rstrip("/"): {k.removeprefix(D): (v.text or "") for k, v in e.props.items()}
        for href, e in parse_multistatus(r.content).items()
    }


def test_a_grantee_sees_the_share_not_the_owners_usage(srv: Server) -> None:
    owner = sess(srv, RW)
    set_quota(srv, RW, "10M")
    put_ok(owner, srv.dav + f"private-{uid()}.bin", os.urandom(3 * M))  # not shared
    folder = f"project-{uid()}"
    mkdirs(owner, srv.dav + folder + "/")
    mkdirs(owner, srv.dav + folder + "/sub/")
    put_ok(owner, srv.dav + folder + "/plan.bin", os.urandom(100 * K))
    put_ok(owner, srv.dav + folder + "/sub/notes.bin", os.urandom(20 * K))
    share_add(srv, RW, "/" + folder, BOB, write=True)
    share_add(srv, RW, "/" + folder, CAROL)
    owner_used, owner_left = quota(owner, srv.dav)
    assert owner_used == 3 * M + 120 * K

    writer, reader = sess(srv, BOB), sess(srv, CAROL)
    mount = srv.dav + folder + "/"
    # The writer: the shared folder's bytes as used, the owner's room (its uploads fill it).
    assert quota(writer, mount) == (120 * K, owner_left)
    assert quota(writer, mount + "sub/") == (20 * K, owner_left)
    # ... also where the mount is listed, in the grantee's top folder
    listed = quota_props(writer, srv.dav, "1")[url_path(mount).rstrip("/")]
    assert listed == {"quota-used-bytes": str(120 * K), "quota-available-bytes": str(owner_left)}
    # The reader: the shared folder's bytes; nothing to say about room it cannot use.
    for url, used in ((mount, 120 * K), (mount + "sub/", 20 * K)):
        assert quota_props(reader, url)[url_path(url).rstrip("/")] == {
            "quota-used-bytes": str(used)
        }, url
    # The grantees' own numbers are untouched by what is shared with them.
    assert quota(writer, srv.dav)[0] == 0
    # The owner still sees their whole usage everywhere.
    assert quota(owner, srv.dav + folder + "/sub/") == (owner_used, owner_left)
