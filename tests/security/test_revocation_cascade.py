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

from tests.live.conftest import ALICE, BOB, Server, cli
from tests.live.sharing_helpers import (
    CAROL,
    RO,
    RW,
    assert_clean_error,
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


def test_circular_reshares_go_with_the_owners_share(srv: Server) -> None:
    # bob re-shares sub to carol, and carol shares sub back to bob: a share of bob's that does
    # not come from alice. Asked "may bob share sub?", the share from carol said yes, and
    # carol's said yes to hers through bob's: the pair held each other up after alice's went.
    path, url = project(srv)
    leaf = f"sub-{uid()}"  # its mount name for carol
    sub = f"{path}/{leaf}"
    mkdirs(sess(srv, ALICE), f"{url}{leaf}/")
    put_ok(sess(srv, ALICE), f"{url}{leaf}/notes.txt", b"alice's notes")
    to_bob = share_add(srv, ALICE, path, BOB, write=True, reshare=True)
    bob_to_carol = share_add(srv, BOB, sub, CAROL, write=True, reshare=True)
    carol_to_bob = share_add(srv, CAROL, f"/{leaf}", BOB, write=True, reshare=True)
    assert carol_to_bob not in (to_bob, bob_to_carol)
    bobs_link = share_link(srv, BOB, sub)
    anon = srv.session(None)
    assert anon.get(bobs_link.public + "notes.txt").content == b"alice's notes"

    share_rm(srv, to_bob)

    assert fields_of(srv, bob_to_carol) == {} and fields_of(srv, carol_to_bob) == {}
    assert anon.get(bobs_link.public + "notes.txt").status_code == 404
    for user in (BOB, CAROL):
        s = sess(srv, user)
        for where in (f"{srv.dav}{sub[1:]}/notes.txt", f"{srv.dav}{leaf}/notes.txt"):
            r = s.get(where)
            assert r.status_code == 404, (user, where, r.status_code)


def test_only_the_owner_or_its_maker_changes_a_share(srv: Server) -> None:
    # carol, who may re-share, ran ``share add`` for a share alice had made for ro: she became
    # its maker (and set its rights), so it went when carol's own share did.
    path, _url = project(srv)
    to_ro = share_add(srv, ALICE, path, RO, write=True)
    to_carol = share_add(srv, ALICE, path, CAROL, write=True, reshare=True)
    err = assert_clean_error(cli(srv.data_dir, "share", "add", CAROL, path, "--with", RO))
    assert ALICE in err, err
    assert fields_of(srv, to_ro).get("BY") == ALICE, fields_of(srv, to_ro)
    assert "write" in fields_of(srv, to_ro).get("PERMISSIONS", ""), fields_of(srv, to_ro)
    share_rm(srv, to_carol)
    assert fields_of(srv, to_ro).get("BY") == ALICE, fields_of(srv, to_ro)
    put_ok(sess(srv, RO), f"{srv.dav}{path[1:]}/from-ro.txt", b"ro still writes")
    # Its maker may change it, and stays its maker; the owner changing it takes it over.
    share_add(srv, ALICE, path, BOB, reshare=True)
    to_rw = share_add(srv, BOB, path, RW)
    assert share_add(srv, BOB, path, RW, reshare=True) == to_rw
    assert fields_of(srv, to_rw).get("BY") == BOB, fields_of(srv, to_rw)
    assert share_add(srv, ALICE, path, RW) == to_rw
    assert fields_of(srv, to_rw).get("BY") == ALICE, fields_of(srv, to_rw)
