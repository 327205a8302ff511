"""Revoking a share revokes what was shared on through it (issue 12, item 5).

A grantee allowed to re-share made shares and links of the owner's folder; ``share rm`` of the
grantee's own share left them all working (a link the grantee had handed out, or kept for
themselves, still read and wrote the owner's files), and ``share list`` showed them as the
owner's, so the owner could not even tell they were there. Now each share and link records who
made it, ``share list`` shows it, and removing a share - or the user it was made by - removes
everything made through it, down the whole chain.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live.conftest import ALICE, BOB, Server
from tests.live.sharing_helpers import (
    CAROL,
    RW,
    cli_ok,
    mkdirs,
    put_ok,
    sess,
    share_add,
    share_link,
    share_list,
    share_rm,
    start_share_server,
    uid,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "cascade")


def project(srv: Server) -> tuple[str, str]:
    """A folder of alice's with a file in it: (its path, its URL)."""
    alice = sess(srv, ALICE)
    name = f"proj-{uid()}"
    url = f"{srv.dav}{name}/"
    mkdirs(alice, url)
    put_ok(alice, url + "plan.txt", b"alice's plan")
    return f"/{name}", url


def fields_of(srv: Server, share_id: int) -> dict[str, str]:
    """The ``share list`` row of a share, by column name (None if it is not listed)."""
    lines = cli_ok(srv, "share", "list").splitlines()
    header = lines[0].split()
    for line in lines[1:]:
        fields = line.split()
        if fields and fields[0] == str(share_id):
            return dict(zip(header, fields, strict=False))
    return {}


def test_share_rm_removes_reshares_and_links_made_through_it(srv: Server) -> None:
    path, _url = project(srv)
    to_bob = share_add(srv, ALICE, path, BOB, write=True, reshare=True)
    # bob shares on what he received: with carol (who may share on too), and by links.
    to_carol = share_add(srv, BOB, path, CAROL, write=True, reshare=True)
    to_rw = share_add(srv, CAROL, path, RW)
    bobs_link = share_link(srv, BOB, path, upload=True)
    carols_link = share_link(srv, CAROL, path)
    # alice's own link and her own share with carol have nothing to do with bob's share.
    alices_link = share_link(srv, ALICE, path)
    anon = srv.session(None)
    for link in (bobs_link, carols_link, alices_link):
        assert anon.get(link.public + "plan.txt").content == b"alice's plan"
    assert sess(srv, RW).get(f"{srv.dav}{path[1:]}/plan.txt").status_code == 200

    share_rm(srv, to_bob)

    for link in (bobs_link, carols_link):
        r = anon.get(link.public + "plan.txt")
        assert r.status_code == 404, (link.url, r.status_code)
        assert anon.put(link.public + "new.txt", data=b"x").status_code == 404
    for user in (CAROL, RW):
        r = sess(srv, user).get(f"{srv.dav}{path[1:]}/plan.txt")
        assert r.status_code == 404, (user, r.status_code)
    assert fields_of(srv, to_carol) == {} and fields_of(srv, to_rw) == {}
    assert anon.get(alices_link.public + "plan.txt").content == b"alice's plan"


def test_share_list_names_who_made_each(srv: Server) -> None:
    path, _url = project(srv)
    to_bob = share_add(srv, ALICE, path, BOB, write=True, reshare=True)
    to_carol = share_add(srv, BOB, path, CAROL, reshare=True)
    to_rw = share_add(srv, CAROL, path, RW)
    share_link(srv, BOB, path)
    assert fields_of(srv, to_bob).get("BY") == ALICE, fields_of(srv, to_bob)
    assert fields_of(srv, to_carol).get("BY") == BOB, fields_of(srv, to_carol)
    assert fields_of(srv, to_rw).get("BY") == CAROL, fields_of(srv, to_rw)
    assert fields_of(srv, to_carol).get("OWNER") == ALICE  # still alice's folder
    # --user lists what a user made too, links included (fields: ID OWNER BY WITH ...).
    bobs = {f[0]: f for f in (line.split() for line in share_list(srv, BOB))}
    assert {str(to_bob), str(to_carol)} <= set(bobs), bobs
    assert [f[2] for f in bobs.values() if f[3] == "link"] == [BOB], bobs


def test_reshare_kept_while_another_share_still_allows_it(srv: Server) -> None:
    path, _url = project(srv)
    sub = f"{path}/sub"
    mkdirs(sess(srv, ALICE), f"{srv.dav}{sub[1:]}/")
    # bob holds two shares allowing him to share sub: one on the folder, one on sub itself.
    outer = share_add(srv, ALICE, path, BOB, reshare=True)
    share_add(srv, ALICE, sub, BOB, reshare=True)
    link = share_link(srv, BOB, sub)
    share_rm(srv, outer)
    anon = srv.session(None)
    assert anon.request("PROPFIND", link.public, headers={"Depth": "0"}).status_code == 207


def test_user_del_removes_what_the_user_shared_on(srv: Server) -> None:
    path, _url = project(srv)
    dave = f"dave{uid()}"
    cli_ok(srv, "user", "add", dave, "--password-stdin", input="dave-password-12345\n")
    share_add(srv, ALICE, path, dave, write=True, reshare=True)
    to_carol = share_add(srv, dave, path, CAROL, reshare=True)
    to_rw = share_add(srv, CAROL, path, RW)
    daves_link = share_link(srv, dave, path)
    anon = srv.session(None)
    assert anon.get(daves_link.public + "plan.txt").status_code == 200
    cli_ok(srv, "user", "del", dave, "--yes")
    assert anon.get(daves_link.public + "plan.txt").status_code == 404
    assert sess(srv, CAROL).get(f"{srv.dav}{path[1:]}/plan.txt").status_code == 404
    assert sess(srv, RW).get(f"{srv.dav}{path[1:]}/plan.txt").status_code == 404
    assert fields_of(srv, to_carol) == {} and fields_of(srv, to_rw) == {}
    assert all(dave not in line.split() for line in share_list(srv))


def test_losing_the_reshare_right_removes_what_it_allowed(srv: Server) -> None:
    path, _url = project(srv)
    share_add(srv, ALICE, path, BOB, write=True, reshare=True)
    to_carol = share_add(srv, BOB, path, CAROL)
    upload = share_link(srv, BOB, path, upload=True)
    # alice keeps bob's share but takes back the right to share it on.
    share_add(srv, ALICE, path, BOB, write=True)
    assert fields_of(srv, to_carol) == {}
    assert srv.session(None).get(upload.public + "plan.txt").status_code == 404
    assert sess(srv, BOB).get(f"{srv.dav}{path[1:]}/plan.txt").status_code == 200
