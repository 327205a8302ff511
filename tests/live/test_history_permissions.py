"""Who may use the owner's versions and trash over WebDAV: the owner alone.

The world: alice owns ``/shared/``, shared read-write with ``rw`` and read-only with ``ro``, and
published as a password link; ``shared/doc.txt`` has one old version and ``shared/gone.txt`` is
in alice's trash. ``bob`` has no share. Each cell is one request of a role against alice's
versions or trash, addressed either through alice's part of the tree (``owner's``) or with
alice's file id / item name under the role's own user name (``own``); it must get the status
in the table, and alice's versions, trash and files must be unchanged afterwards. What a
grantee may do instead: nothing of the owner's history (davdisk is stricter than Nextcloud,
which shows sharees the versions: an old version may hold what the owner removed before
sharing). A grantee's DELETE inside a share goes to the owner's trash, which the owner sees
and restores; the grantee's own trash stays empty. A link has no user to log in as here (its
password is no login: 401) and its own tree shows nothing of the trash.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import requests

from tests.live.conftest import ALICE, BOB, Server, parse_multistatus
from tests.live.history_dav import (
    NC,
    fileid,
    list_trash,
    list_versions,
    move,
    trash_restore_url,
    trash_url,
    version_restore_url,
    versions_url,
)
from tests.live.sharing_helpers import (
    RO,
    RW,
    Link,
    get_ok,
    link_session,
    mkdirs,
    put_ok,
    sess,
    share_add,
    share_link,
    start_share_server,
)

# Expected status per (action, role). "anon" is what a link holder can send here: no user.
MATRIX = """
action                 rw   ro   stranger  anon
list-versions          404  404  404       401
get-version            404  404  404       401
restore-version        404  404  404       401
own-list-versions      404  404  404       401
own-get-version        404  404  404       401
own-restore-version    404  404  404       401
list-trash             404  404  404       401
restore-trash          404  404  404       401
purge-trash            404  404  404       401
empty-trash            404  404  404       401
own-trash-item         404  404  404       401
own-restore-trash      404  404  404       401
own-purge-trash        404  404  404       401
"""

ROWS = [line.split() for line in MATRIX.strip().splitlines()]
ROLES = ROWS[0][1:]
EXPECTED = {
    (row[0], role): int(code) for row in ROWS[1:] for role, code in zip(ROLES, row[1:], strict=True)
}
LINK_PASSWORD = "history-link-pw-7"
USER = {"rw": RW, "ro": RO, "stranger": BOB, "anon": "anyone"}


@dataclass
class World:
    srv: Server
    fid: str  # oc:fileid of shared/doc.txt
    version: str  # the name of its one version
    key: str  # shared/gone.txt in alice's trash
    link: Link
    sessions: dict[str, requests.Session] = field(default_factory=dict)

    def session(self, role: str) -> requests.Session:
        if role not in self.sessions:
            self.sessions[role] = sess(self.srv, None if role == "anon" else USER[role])
        return self.sessions[role]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    gen = start_share_server(tmp_path_factory, "history-perm")
    srv = next(gen)
    a = sess(srv, ALICE)
    mkdirs(a, srv.dav + "shared/")
    put_ok(a, srv.dav + "shared/doc.txt", b"doc, first words")
    put_ok(a, srv.dav + "shared/doc.txt", b"doc, second words")
    put_ok(a, srv.dav + "shared/gone.txt", b"deleted by alice")
    assert a.delete(srv.dav + "shared/gone.txt").status_code == 204
    share_add(srv, ALICE, "/shared", RW, write=True)
    share_add(srv, ALICE, "/shared", RO)
    link = share_link(srv, ALICE, "/shared", password=LINK_PASSWORD)
    fid = fileid(a, srv.dav + "shared/doc.txt")
    (version,) = list_versions(a, versions_url(srv, ALICE, fid))
    (key,) = list_trash(a, trash_url(srv, ALICE))
    yield World(srv, fid, version, key, link)
    next(gen, None)


def _owner_state(w: World) -> tuple[object, ...]:
    """alice's versions (names and bytes), trash (names), and the shared file's bytes."""
    a = sess(w.srv, ALICE)
    vurl = versions_url(w.srv, ALICE, w.fid)
    versions = {
        name: hashlib.sha256(get_ok(a, vurl + name)).hexdigest() for name in list_versions(a, vurl)
    }
    trash = sorted(list_trash(a, trash_url(w.srv, ALICE)))
    return versions, trash, get_ok(a, w.srv.dav + "shared/doc.txt")


Action = Callable[[World, requests.Session, str], requests.Response]


def _own(w: World, user: str) -> tuple[str, str]:
    """The role's own trees, addressed with alice's file id and trash item."""
    return versions_url(w.srv, user, w.fid), trash_url(w.srv, user) + w.key


ACTIONS: dict[str, Action] = {
    "list-versions": lambda w, s, u: s.request(
        "PROPFIND", versions_url(w.srv, ALICE, w.fid), headers={"Depth": "1"}
    ),
    "get-version": lambda w, s, u: s.get(versions_url(w.srv, ALICE, w.fid) + w.version),
    "restore-version": lambda w, s, u: move(
        s, versions_url(w.srv, ALICE, w.fid) + w.version, version_restore_url(w.srv, ALICE)
    ),
    "own-list-versions": lambda w, s, u: s.request(
        "PROPFIND", _own(w, u)[0], headers={"Depth": "1"}
    ),
    "own-get-version": lambda w, s, u: s.get(_own(w, u)[0] + w.version),
    "own-restore-version": lambda w, s, u: move(
        s, _own(w, u)[0] + w.version, version_restore_url(w.srv, u)
    ),
    "list-trash": lambda w, s, u: s.request(
        "PROPFIND", trash_url(w.srv, ALICE), headers={"Depth": "1"}
    ),
    "restore-trash": lambda w, s, u: move(
        s, trash_url(w.srv, ALICE) + w.key, trash_restore_url(w.srv, ALICE, "gone.txt")
    ),
    "purge-trash": lambda w, s, u: s.delete(trash_url(w.srv, ALICE) + w.key),
    "empty-trash": lambda w, s, u: s.delete(trash_url(w.srv, ALICE)),
    "own-trash-item": lambda w, s, u: s.request("PROPFIND", _own(w, u)[1], headers={"Depth": "0"}),
    "own-restore-trash": lambda w, s, u: move(
        s, _own(w, u)[1], trash_restore_url(w.srv, u, "gone.txt")
    ),
    "own-purge-trash": lambda w, s, u: s.delete(_own(w, u)[1]),
}
assert set(ACTIONS) == {row[0] for row in ROWS[1:]}


@pytest.mark.parametrize("role", ROLES)
def test_nobody_but_the_owner_reaches_the_owners_history(world: World, role: str) -> None:
    before = _owner_state(world)
    s = world.session(role)
    got = {}
    for action, act in ACTIONS.items():
        r = act(world, s, USER[role])
        assert b"Traceback" not in r.content
        got[action] = r.status_code
    assert got == {action: EXPECTED[(action, role)] for action in ACTIONS}
    assert _owner_state(world) == before
    if role != "anon":
        # The role's own trash holds nothing of alice's.
        assert world.key not in list_trash(s, trash_url(world.srv, USER[role]))


def test_a_link_reaches_no_history(world: World) -> None:
    s = link_session(world.srv, LINK_PASSWORD, "whoever")
    for url in (versions_url(world.srv, ALICE, world.fid), trash_url(world.srv, ALICE)):
        assert s.request("PROPFIND", url, headers={"Depth": "1"}).status_code == 401, url
    r = s.request("PROPFIND", world.link.public, headers={"Depth": "1"})
    assert r.status_code == 207
    names = {e.name for e in parse_multistatus(r.content).values()}
    assert "gone.txt" not in names and world.key not in names
    assert "doc.txt" in names


def test_a_grantees_delete_lands_in_the_owners_trash(world: World) -> None:
    srv = world.srv
    a, rw = sess(srv, ALICE), sess(srv, RW)
    put_ok(a, srv.dav + "shared/by-rw.txt", b"rw will delete this")
    fid = fileid(a, srv.dav + "shared/by-rw.txt")
    assert rw.delete(srv.dav + "shared/by-rw.txt").status_code == 204
    assert list_trash(rw, trash_url(srv, RW)) == {}

    items = list_trash(a, trash_url(srv, ALICE))
    (key,) = [k for k, v in items.items() if v.text(NC + "trashbin-filename") == "by-rw.txt"]
    item = items[key]
    assert item.text(NC + "trashbin-original-location") == "shared/by-rw.txt"
    assert item.text(NC + "trashbin-deleted-by-id") == RW
    # The grantee cannot take it back; the owner can.
    assert (
        move(rw, trash_url(srv, ALICE) + key, trash_restore_url(srv, ALICE, "x")).status_code == 404
    )
    r = move(a, trash_url(srv, ALICE) + key, trash_restore_url(srv, ALICE, "by-rw.txt"))
    assert r.status_code == 201
    assert get_ok(rw, srv.dav + "shared/by-rw.txt") == b"rw will delete this"
    assert fileid(a, srv.dav + "shared/by-rw.txt") == fid


def test_a_grantees_overwrite_is_a_version_only_the_owner_sees(world: World) -> None:
    srv = world.srv
    a, rw = sess(srv, ALICE), sess(srv, RW)
    put_ok(a, srv.dav + "shared/edited.txt", b"alice wrote this")
    put_ok(rw, srv.dav + "shared/edited.txt", b"rw wrote this")
    # Nextcloud's default schedule keeps one version per 2 s of a file's first 10 s.
    time.sleep(2.5)
    put_ok(a, srv.dav + "shared/edited.txt", b"alice again")
    fid = fileid(a, srv.dav + "shared/edited.txt")
    found = list_versions(a, versions_url(srv, ALICE, fid))
    authors = {
        get_ok(a, versions_url(srv, ALICE, fid) + n): v.text(NC + "version-author")
        for n, v in found.items()
    }
    assert authors == {b"alice wrote this": ALICE, b"rw wrote this": RW}
    assert (
        rw.request("PROPFIND", versions_url(srv, RW, fid), headers={"Depth": "1"}).status_code
        == 404
    )
