"""The permission matrix: every method x every role x (file, folder, file inside the shared
folder) against one live server, each cell asserting the exact status, the effect where the
request is allowed, and that the owner's tree is unchanged where it is refused.

The world: alice owns ``/shared/`` holding ``inside.txt`` and ``sub/deep.txt``; it is shared
read-write with ``rw`` and read-only with ``ro`` (both see it as ``/dav/shared/``), and published
as a read-only link, a password link and an expired link (all seen as ``/public/<token>/``).
``bob`` has no share (the stranger: the same paths in his home do not exist).

Targets, as each role addresses them: ``file`` = ``inside.txt``, ``folder`` = the shared folder
itself (the grantee's mount, the link's root), ``inside`` = ``sub/deep.txt``. Since PUT and MKCOL
on an existing collection mean nothing, their ``folder`` (and MKCOL's ``inside``) cells create a
new member in that folder instead, and MKCOL's ``file`` cell is a MKCOL on the existing file's
URL: 405 (RFC 4918: MKCOL only on an unmapped URL) for every role that can see the file.
COPY and MOVE go to a fresh sibling of the target (for the folder of a user: a new name in
that user's own root; for a link: a new name inside the link).
UNLOCK uses the role's own lock where the role may lock, else the owner's token.

Cells that change things undo their change; DELETE of the folder itself gets a fresh world.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests

from tests.live.conftest import ALICE, BOB, Server, parse_multistatus, url_path, wait_until
from tests.live.sharing_helpers import (
    RO,
    RW,
    TEST,
    Link,
    do_lock,
    get_ok,
    link_session,
    mkdirs,
    proppatch,
    proppatch_statuses,
    put_ok,
    sess,
    share_add,
    share_link,
    snapshot,
    start_share_server,
    token_of,
    uid,
    unchanged,
    unlock,
)

# Expected status of each cell. "a/b/c" gives file/folder/inside separately.
MATRIX = """
method     owner        rw           ro           stranger     anon  link         pwlink       expired  wrongpw
GET        200          200          200          404          401   200          200          404      401
HEAD       200          200          200          404          401   200          200          404      401
PROPFIND   207          207          207          404          401   207          207          404      401
PROPPATCH  207          207          403          404          401   403          403          404      401
PUT        204/201/204  204/201/204  403          409          401   403          403          404      401
MKCOL      405/201/201  405/201/201  405/403/403  409          401   405/403/403  405/403/403  404      401
DELETE     204          204          403/204/403  404          401   403          403          404      401
COPY       201          201          403/201/403  404          401   403          403          404      401
MOVE       201          201/403/201  403          404          401   403          403          404      401
LOCK       200          200          403          409/201/409  401   403          403          404      401
UNLOCK     204          204          403          404          401   403          403          404      401
"""  # noqa: E501 - a table reads best on one line per method

TARGETS = ("file", "folder", "inside")


def _parse(table: str) -> dict[tuple[str, str, str], int]:
    rows = [line.split() for line in table.strip().splitlines()]
    roles = rows[0][1:]
    out = {}
    for method, *cells in rows[1:]:
        assert len(cells) == len(roles), method
        for role, cell in zip(roles, cells, strict=True):
            codes = cell.split("/")
            if len(codes) == 1:
                codes *= 3
            for target, code in zip(TARGETS, codes, strict=True):
                out[(method, role, target)] = int(code)
    return out


EXPECTED = _parse(MATRIX)
ROLES = MATRIX.strip().splitlines()[0].split()[1:]
METHODS = [line.split()[0] for line in MATRIX.strip().splitlines()[1:]]
CELLS = list(itertools.product(METHODS, ROLES, TARGETS))

INSIDE = b"inside.txt: the file directly in the shared folder\n"
DEEP = b"sub/deep.txt: a file one level further down\n"
LINK_PASSWORD = "link-pass-word-9"
REL = {"file": "inside.txt", "folder": "", "inside": "sub/deep.txt"}
CONTENT = {"file": INSIDE, "inside": DEEP}


@dataclass
class World:
    srv: Server
    name: str  # the shared folder in alice's root (and the grantees' mount name)
    link: Link | None = None
    pwlink: Link | None = None
    expired: Link | None = None
    sessions: dict[str, requests.Session] = field(default_factory=dict)

    @property
    def owner(self) -> requests.Session:
        return self.session("owner")

    @property
    def obase(self) -> str:
        return self.srv.dav + self.name + "/"

    def session(self, key: str) -> requests.Session:
        if key not in self.sessions:
            self.sessions[key] = {
                "owner": lambda: sess(self.srv, ALICE),
                "rw": lambda: sess(self.srv, RW),
                "ro": lambda: sess(self.srv, RO),
                "stranger": lambda: sess(self.srv, BOB),
                "anon": lambda: sess(self.srv, None),
                "link": lambda: link_session(self.srv, None),
                "pwlink": lambda: link_session(self.srv, LINK_PASSWORD, "whoever"),
                "expired": lambda: link_session(self.srv, None),
                "wrongpw": lambda: link_session(self.srv, "not-the-password", "whoever"),
            }[key]()
        return self.sessions[key]

    def base(self, role: str) -> str:
        """The URL of the shared folder as ``role`` addresses it."""
        if role in ("owner", "rw", "ro", "stranger", "anon"):
            return self.srv.dav + self.name + "/"
        link = {
            "link": self.link,
            "pwlink": self.pwlink,
            "expired": self.expired,
            "wrongpw": self.pwlink,
        }[role]
        assert link is not None
        return link.public

    def own_root(self, role: str) -> str:
        """Where a copy of the whole folder goes for ``role``: its own root, or the link."""
        if role in ("owner", "rw", "ro", "stranger", "anon"):
            return self.srv.dav
        return self.base(role)


def build_world(srv: Server, name: str, *, links: bool) -> World:
    w = World(srv, name)
    o = w.owner
    mkdirs(o, w.obase)
    put_ok(o, w.obase + "inside.txt", INSIDE)
    mkdirs(o, w.obase + "sub/")
    put_ok(o, w.obase + "sub/deep.txt", DEEP)
    share_add(srv, ALICE, "/" + name, RW, write=True)
    share_add(srv, ALICE, "/" + name, RO)
    if links:
        w.link = share_link(srv, ALICE, "/" + name)
        w.pwlink = share_link(srv, ALICE, "/" + name, password=LINK_PASSWORD)
        w.expired = make_expired_link(srv, "/" + name)
    return w


def make_expired_link(srv: Server, path: str) -> Link:
    """A link that has expired: created with the shortest expiry the CLI takes, then waited for
    (a bounded poll until the server refuses it)."""
    link = share_link(srv, ALICE, path, expires="1s")
    anon = link_session(srv, None)

    def gone() -> bool:
        return anon.request("PROPFIND", link.public, headers={"Depth": "0"}).status_code == 404

    wait_until(gone, 10, f"link {link.token} to expire")
    return link


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    yield from start_share_server(tmp_path_factory, "matrix")


@pytest.fixture(scope="module")
def world(srv: Server) -> World:
    return build_world(srv, "shared", links=True)


# --------------------------------------------------------------------------- the cells


def owner_sees(w: World, rel: str) -> int:
    return w.owner.request("PROPFIND", w.obase + rel, headers={"Depth": "0"}).status_code


def check_401(r: requests.Response) -> None:
    if r.status_code == 401:
        assert "basic" in r.headers.get("WWW-Authenticate", "").lower(), r.headers


@dataclass
class Cell:
    w: World
    s: requests.Session
    role: str
    target: str
    url: str
    base: str
    u: str
    expected: int
    before: dict
    cleanup: list[Callable[[], None]]


def run_cell(w: World, method: str, role: str, target: str) -> None:
    expected = EXPECTED[(method, role, target)]
    s = w.session(role)
    base = w.base(role)
    url = base + REL[target]
    u = uid()
    o = w.owner
    before = snapshot(o, w.obase)
    cleanup: list[Callable[[], None]] = []
    what = f"{role} {method} {url}"
    try:
        c = Cell(w, s, role, target, url, base, u, expected, before, cleanup)
        r = CELL_RUNNERS[method](c)
        what = f"{role} {method} {r.request.url}"
        assert r.status_code == expected, (
            f"{what}: expected {expected}, got {r.status_code} {r.text[:300]}"
        )
        check_401(r)
        if expected >= 300 or method in ("GET", "HEAD", "PROPFIND"):
            unchanged(c.before, snapshot(o, w.obase), what)
    finally:
        for undo in reversed(cleanup):
            undo()


def cell_get(c: Cell) -> requests.Response:
    r = c.s.get(c.url)
    if r.status_code == 200 and c.target != "folder":
        assert r.content == CONTENT[c.target], r.content[:200]
    return r


def cell_head(c: Cell) -> requests.Response:
    r = c.s.head(c.url)
    assert r.content == b""
    return r


def cell_propfind(c: Cell) -> requests.Response:
    r = c.s.request("PROPFIND", c.url, headers={"Depth": "1"})
    if r.status_code == 207:
        names = {e.name for e in parse_multistatus(r.content).values()}
        if c.target == "folder":
            assert {"inside.txt", "sub"} <= names, names
        else:
            assert url_path(c.url).rsplit("/", 1)[-1] in names, names
    return r


def cell_proppatch(c: Cell) -> requests.Response:
    w, rel, name = c.w, REL[c.target], "p" + c.u
    r = proppatch(c.s, c.url, name, "value-" + c.u)
    if r.status_code == 207 and c.expected != 207:
        # a 207 whose propstats all say 403 is still not the 403 the contract asks for
        raise AssertionError(
            f"{c.role} PROPPATCH {c.url}: expected {c.expected}, got 207 with property "
            f"statuses {sorted(proppatch_statuses(r))}"
        )
    if r.status_code == 207:
        assert proppatch_statuses(r) == {200}, r.text[:500]
        item = snapshot(w.owner, w.obase)[rel or "."]
        assert (TEST + name, "value-" + c.u) in item.dead, item
        c.cleanup.append(
            lambda: assert_status(proppatch(w.owner, w.obase + rel, name, "", True), 207)
        )
    return r


def cell_put(c: Cell) -> requests.Response:
    w = c.w
    data = b"written by " + c.role.encode() + b" " + c.u.encode()
    if c.target == "folder":
        rel = f"new-{c.u}.txt"
        r = c.s.put(c.base + rel, data=data)
        if r.status_code == 201:
            assert get_ok(w.owner, w.obase + rel) == data
            c.cleanup.append(lambda: assert_status(w.owner.delete(w.obase + rel), 204))
        return r
    rel, old = REL[c.target], CONTENT[c.target]
    r = c.s.put(c.url, data=data)
    if r.status_code in (200, 201, 204):
        assert get_ok(w.owner, w.obase + rel) == data
        c.cleanup.append(lambda: put_ok(w.owner, w.obase + rel, old))
    return r


def cell_mkcol(c: Cell) -> requests.Response:
    w = c.w
    if c.target == "file":
        return c.s.request("MKCOL", c.url)
    rel = f"mk-{c.u}/" if c.target == "folder" else f"sub/mk-{c.u}/"
    r = c.s.request("MKCOL", c.base + rel)
    if r.status_code == 201:
        assert owner_sees(w, rel) == 207
        c.cleanup.append(lambda: assert_status(w.owner.delete(w.obase + rel), 204))
    return r


def cell_delete(c: Cell) -> requests.Response:
    w = c.w
    if c.target == "folder" and c.expected == 204:
        return delete_folder_in_fresh_world(w.srv, c.role)
    rel, old = REL[c.target], CONTENT.get(c.target, b"")
    r = c.s.delete(c.url)
    if r.status_code == 204:
        assert owner_sees(w, rel) == 404
        c.cleanup.append(lambda: put_ok(w.owner, w.obase + rel, old))
    return r


def _dest(c: Cell, verb: str) -> tuple[str, str]:
    """(destination URL, its path relative to the shared folder, or '' when outside it)."""
    if c.target == "file":
        rel = f"{verb}-{c.u}.txt"
        return c.base + rel, rel
    if c.target == "inside":
        rel = f"sub/{verb}-{c.u}.txt"
        return c.base + rel, rel
    return c.w.own_root(c.role) + f"{c.w.name}-{verb}-{c.u}/", ""


def cell_copy(c: Cell) -> requests.Response:
    w, s = c.w, c.s
    dest, rel = _dest(c, "copy")
    r = s.request("COPY", c.url, headers={"Destination": dest, "Overwrite": "F"})
    if r.status_code == 201:
        if c.target == "folder":
            assert get_ok(s, dest + "inside.txt") == INSIDE
            assert get_ok(s, dest + "sub/deep.txt") == DEEP
            if c.role != "owner":  # a copy in the grantee's own tree, not in alice's
                unchanged(c.before, snapshot(w.owner, w.obase), f"{c.role} COPY of the mount")
        else:
            assert get_ok(w.owner, w.obase + rel) == CONTENT[c.target]
        c.cleanup.append(lambda: assert_status(s.delete(dest), 204))
    return r


def cell_move(c: Cell) -> requests.Response:
    w = c.w
    dest, rel = _dest(c, "moved")
    r = c.s.request("MOVE", c.url, headers={"Destination": dest, "Overwrite": "F"})
    if r.status_code == 201:
        if c.target == "folder":  # only the owner may: the shares follow the folder
            assert get_ok(w.owner, dest + "inside.txt") == INSIDE
            back = {"Destination": w.obase}
            c.cleanup.append(
                lambda: assert_status(w.owner.request("MOVE", dest, headers=back), 201)
            )
        else:
            orig = REL[c.target]
            assert owner_sees(w, orig) == 404
            assert get_ok(w.owner, w.obase + rel) == CONTENT[c.target]
            back = {"Destination": w.obase + orig}
            c.cleanup.append(
                lambda: assert_status(w.owner.request("MOVE", w.obase + rel, headers=back), 201)
            )
    return r


def cell_lock(c: Cell) -> requests.Response:
    w, s, url = c.w, c.s, c.url
    r = do_lock(s, url)
    if r.status_code in (200, 201):
        token = token_of(r)
        if c.role == "stranger":  # a lock-null resource in bob's own home: remove it
            c.cleanup.append(lambda: assert_status(s.delete(url), 204))
        else:
            item = snapshot(w.owner, w.obase)[REL[c.target] or "."]
            assert token in item.locks, (token, item)
        c.cleanup.append(lambda: assert_status(unlock(s, url, token), 204))
    return r


def cell_unlock(c: Cell) -> requests.Response:
    w, s, url = c.w, c.s, c.url
    if c.role in ("owner", "rw"):  # its own lock
        token = token_of(do_lock(s, url))
        r = unlock(s, url, token)
        if r.status_code == 204:
            item = snapshot(w.owner, w.obase)[REL[c.target] or "."]
            assert item.locks == (), item
        else:
            c.cleanup.append(lambda: assert_status(unlock(s, url, token), 204))
        return r
    owner_url = w.obase + REL[c.target]  # the owner's token
    lr = do_lock(w.owner, owner_url)
    assert lr.status_code == 200, lr.status_code
    token = token_of(lr)
    c.cleanup.append(lambda: assert_status(unlock(w.owner, owner_url, token), 204))
    c.before = snapshot(w.owner, w.obase)  # "unchanged" now means: the owner's lock stays
    return unlock(s, url, token)


def assert_status(r: requests.Response, *codes: int) -> None:
    assert r.status_code in codes, (
        f"{r.request.method} {r.request.url}: expected {codes}, got {r.status_code} {r.text[:300]}"
    )


CELL_RUNNERS = {
    "GET": cell_get,
    "HEAD": cell_head,
    "PROPFIND": cell_propfind,
    "PROPPATCH": cell_proppatch,
    "PUT": cell_put,
    "MKCOL": cell_mkcol,
    "DELETE": cell_delete,
    "COPY": cell_copy,
    "MOVE": cell_move,
    "LOCK": cell_lock,
    "UNLOCK": cell_unlock,
}


def delete_folder_in_fresh_world(srv: Server, role: str) -> requests.Response:
    """DELETE of the shared folder itself by the owner (gone for everyone) or by a grantee (the
    mount is hidden from that grantee; alice's data and the other grantee are untouched)."""
    w = build_world(srv, "shared-del-" + uid(), links=False)
    before = snapshot(w.owner, w.obase)
    s = w.session(role)
    r = s.delete(w.base(role))
    if r.status_code != 204:
        return r
    if role == "owner":
        assert owner_sees(w, "") == 404
        for grantee in ("rw", "ro"):
            st = w.session(grantee).request("PROPFIND", w.obase, headers={"Depth": "0"})
            assert st.status_code == 404, (grantee, st.status_code)
    else:
        unchanged(before, snapshot(w.owner, w.obase), f"{role} DELETE of its mount")
        gone = s.request("PROPFIND", w.base(role), headers={"Depth": "0"})
        assert gone.status_code == 404, f"{role} still sees its mount after DELETE"
        other = "ro" if role == "rw" else "rw"
        assert get_ok(w.session(other), w.base(other) + "inside.txt") == INSIDE
    return r


@pytest.mark.parametrize(
    ("method", "role", "target"), CELLS, ids=[f"{r}-{m}-{t}" for m, r, t in CELLS]
)
def test_cell(world: World, method: str, role: str, target: str) -> None:
    run_cell(world, method, role, target)


def test_matrix_is_complete() -> None:
    assert set(METHODS) == set(CELL_RUNNERS)
    assert len(EXPECTED) == len(METHODS) * len(ROLES) * len(TARGETS) == 297
