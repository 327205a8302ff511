"""Model-based test: random sequences of WebDAV requests against one live server and a model.

A Hypothesis ``RuleBasedStateMachine`` sends real HTTP requests (PUT, MKCOL, DELETE, MOVE,
COPY, GET, PROPFIND, LOCK, UNLOCK, and restores from the trash) to one ``davdisk serve`` and
keeps, next to it, an in-memory model of the tree (path -> bytes for files, a set of folders,
the locks granted, and the trash: what each DELETE, or a folder replaced by a MOVE or COPY,
took away, with the identity of the folder it was in). For every
request the model predicts the status (RFC 4918) and the tree afterwards; after every step the
server's tree (a PROPFIND Depth 1 walk and a GET of every file) must equal the model's.

Paths come from a tiny alphabet (``a``, ``b``, ``ü x``) nested up to depth 3, so sources and
destinations collide, contain each other and overwrite each other often. Each example works in
its own uniquely named folder of alice's home on the one server the test starts, so examples
do not see each other and no server is restarted between them.

Files have identities (the server's file ids) in the model too, for the one place where they
show in statuses: an editor's save-by-rename (files/copymove.py). A file renamed within its
folder sets its locks aside, and a fresh file moved onto the name it left gives it the name
back, its locks with it; any other MOVE drops the locks of what it moves (RFC 4918 7.5).

Where RFC 4918 leaves the server a choice (403 or 409 for a destination that contains or lies
inside the source; which of several applicable errors comes first), the model accepts the set;
a refused request must still leave the tree exactly as it was.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest
import requests
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.live.conftest import ALICE, BOB, LOCK_BODY, Server, ServerFactory, members, q
from tests.live.history_dav import NC, list_trash, move, trash_restore_url, trash_url
from tests.live.sharing_helpers import share_add

NAMES = ("a", "b", "ü x")
MAX_DEPTH = 3

# Written to alice's own tree, so any of these can be predicted exactly.
CREATED, NO_CONTENT = 201, 204
# RFC 4918 9.8.5 / 9.9.4: a destination that is the source, holds it or lies inside it is
# refused with 403; 409 (the destination's parent "does not exist" as a separate resource) is
# also an answer clients handle, and WsgiDAV gives it for some of these shapes.
SELF_OVERLAP = frozenset({403, 409})

# The PostgreSQL pass of scripts/test runs fewer (DAVDISK_MODEL_EXAMPLES, a share of these):
# the sequences test the protocol, which the first pass covers in full; the second looks for
# what the other database does differently, in the same statements every example makes.
_SHARE = float(os.environ.get("DAVDISK_MODEL_EXAMPLES", "1"))
EXAMPLES = max(1, round(250 * _SHARE))
SHARED_EXAMPLES = max(1, round(60 * _SHARE))
STEPS = 30


# --------------------------------------------------------------------------- model


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def within(root: str, path: str) -> bool:
    """``path`` is ``root`` or lies below it ("" is the example's top folder)."""
    return root == "" or path == root or path.startswith(root + "/")


@dataclass
class Lock:
    root: str
    infinite: bool


@dataclass
class Trashed:
    """What one delete took away: its path then, the identity of the folder it was in, and
    its tree (paths relative to it, "" the item itself), folders with their identities."""

    path: str
    parent: int
    files: dict[str, bytes]
    dirs: dict[str, int]
    file_ids: dict[str, int]


def restored_name(name: str, taken: set[str]) -> str:
    """The name a restore takes when ``name`` is taken (files/history.py)."""
    if name not in taken:
        return name
    stem, ext = posixpath.splitext(name)
    if not stem:
        stem, ext = name, ""
    n = 1
    while True:
        candidate = f"{stem} (restored{'' if n == 1 else f' {n}'}){ext}"
        if candidate not in taken:
            return candidate
        n += 1


@dataclass
class Model:
    """The tree below the example's top folder ("" is the top folder itself)."""

    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    locks: dict[str, Lock] = field(default_factory=dict)  # token -> lock
    # Each node's identity (a restore goes back into the folder, not the path; a file keeps
    # its own through a save-by-rename): path -> id, the top folder 0.
    ids: dict[str, int] = field(default_factory=lambda: {"": 0})
    trash: list[Trashed] = field(default_factory=list)
    # A save-by-rename (every file of an example is younger than the server's 120 s window):
    vacated: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (name left, when)
    parked: dict[tuple[int, str], dict[str, Lock]] = field(default_factory=dict)  # (id, path)
    clock: int = 0  # makes the identities, orders the renames

    def add_dir(self, path: str) -> None:
        self.dirs.add(path)
        self.ids[path] = self.new_id()

    def to_trash(self, path: str) -> None:
        """Remove ``path`` (and what is below it) into the trash."""
        inside = {p: b for p, b in self.files.items() if within(path, p)}
        self.trash.append(
            Trashed(
                path,
                self.ids[parent_of(path)],
                {p[len(path) :]: b for p, b in inside.items()},
                {p[len(path) :]: self.ids[p] for p in self.dirs if within(path, p)},
                {p[len(path) :]: self.ids[p] for p in inside},
            )
        )
        self.remove(path)

    def children(self, folder: str) -> set[str]:
        return {
            p.rsplit("/", 1)[-1]
            for p in (self.dirs | set(self.files))
            if parent_of(p) == folder and p != folder
        }

    def is_dir(self, path: str) -> bool:
        return path == "" or path in self.dirs

    def exists(self, path: str) -> bool:
        return self.is_dir(path) or path in self.files

    def paths(self) -> list[str]:
        return sorted(self.dirs | set(self.files))

    def covered(self, path: str) -> bool:
        """A lock on ``path`` or a Depth infinity lock on one of its ancestors."""
        return any(
            lk.root == path or (lk.infinite and within(lk.root, path) and lk.root != path)
            for lk in self.locks.values()
        )

    def covered_tree(self, path: str) -> bool:
        """``path`` is covered, or something below it is locked (a Depth infinity check)."""
        return self.covered(path) or any(within(path, lk.root) for lk in self.locks.values())

    # --- changes ---

    def write(self, path: str, body: bytes) -> None:
        """PUT: a new file gets a new identity, an existing one keeps its own."""
        if path not in self.files:
            self.ids[path] = self.new_id()
        self.files[path] = body

    def new_id(self) -> int:
        self.clock += 1
        return self.clock

    def remove(self, path: str) -> None:
        """Delete ``path`` and everything below it, with the locks rooted there."""
        self.files = {p: b for p, b in self.files.items() if not within(path, p)}
        self.dirs = {p for p in self.dirs if not within(path, p)}
        self.ids = {p: i for p, i in self.ids.items() if p == "" or not within(path, p)}
        self.locks = {t: lk for t, lk in self.locks.items() if not within(path, lk.root)}

    def copy_tree(self, src: str, dst: str, *, recursive: bool, move: bool = False) -> None:
        """Copy ``src`` (and, if ``recursive``, what is below it) to the free name ``dst``;
        the files keep their identities if it is a ``move``."""

        def moved(p: str) -> str:
            return dst + p[len(src) :]

        def ident(p: str) -> int:
            return self.ids[p] if move else self.new_id()

        if src in self.files:
            self.files[dst] = self.files[src]
            self.ids[dst] = ident(src)
            return
        below = [p for p in self.dirs if p.startswith(src + "/")] if recursive else []
        for p in [src, *below]:
            self.dirs.add(moved(p))
            self.ids[moved(p)] = ident(p)
        if recursive:
            below_files = [p for p in self.files if p.startswith(src + "/")]
            self.files |= {moved(p): self.files[p] for p in below_files}
            self.ids |= {moved(p): ident(p) for p in below_files}

    def vacated_by(self, src: str, dst: str) -> str | None:
        """The path of the file that left ``dst``'s name in ``dst``'s folder most recently, if
        moving the file ``src`` onto the free ``dst`` ends a save-by-rename."""
        name, folder, new = dst.rsplit("/", 1)[-1], parent_of(dst), self.ids[src]
        found = [
            (self.vacated[self.ids[p]][1], p)
            for p in self.files
            if parent_of(p) == folder
            and self.ids[p] != new
            and self.vacated.get(self.ids[p], ("",))[0] == name
        ]
        return max(found)[1] if found else None

    def move(self, src: str, dst: str) -> None:
        """A MOVE that succeeds, as the server makes it."""
        src_id = self.ids[src] if src in self.files else None  # None: a folder
        if src_id is not None and dst in self.files:
            # a file over a file: the destination keeps its identity
            kept = self.ids[dst]
            self.remove(dst)
            self.copy_tree(src, dst, recursive=True, move=True)
            self.remove(src)
            self.ids[dst] = kept
            return
        free = not self.exists(dst)
        original = self.vacated_by(src, dst) if src_id is not None and free else None
        renamed = src_id is not None and free and parent_of(src) == parent_of(dst)
        if renamed and original is None:
            # the locks on the file are set aside for it, not dropped
            assert src_id is not None
            self.parked[src_id, src] = {t: lk for t, lk in self.locks.items() if lk.root == src}
        if not free:
            self.to_trash(dst)  # a folder replaced, or a file by a folder
        self.copy_tree(src, dst, recursive=True, move=True)
        self.remove(src)
        if src_id is None:
            return
        self.vacated.pop(src_id, None)
        if original is None:
            if renamed:
                self.vacated[src_id] = (src.rsplit("/", 1)[-1], self.new_id())
            return
        # the save dance: the original takes its name back, and its locks
        back = self.ids[original]
        self.ids[dst], self.ids[original] = back, src_id
        self.vacated.pop(back, None)
        self.locks.update(self.parked.pop((back, dst), {}))


# --------------------------------------------------------------------------- machine


class DavModel(RuleBasedStateMachine):
    """One example: a fresh top folder, a fresh model, the same server."""

    server: Server  # set by the test before Hypothesis runs the machine
    user = ALICE
    base = ""  # the folder (URL below /dav/, "" or ending in "/") the examples are made in
    restores = True  # the user owns what they delete (a grantee's deletes go to the owner)

    def __init__(self) -> None:
        super().__init__()
        self.s = self.server.session(self.user)
        top = "model-" + uuid.uuid4().hex[:10]
        self.top = self.server.dav + self.base + q(top) + "/"
        # Where the example's items were, as the trash says it (below the home, no "/" first).
        self.location = unquote(self.base) + top + "/"
        r = self.s.request("MKCOL", self.top)
        assert r.status_code == CREATED, (r.status_code, r.text[:300])
        self.model = Model()
        self.log: list[str] = []

    # --- requests ---

    def url(self, path: str) -> str:
        return self.top + "/".join(q(n) for n in path.split("/")) if path else self.top

    def if_header(self, with_token: bool) -> dict[str, str]:
        """Submit every lock the model holds, each tagged with its root (RFC 4918 10.4): a
        tagged list is evaluated only against its own resource, so the request is not refused
        with 412 for tokens that belong to other resources it touches."""
        if not with_token or not self.model.locks:
            return {}
        lists = " ".join(f"<{self.url(lk.root)}> (<{t}>)" for t, lk in self.model.locks.items())
        return {"If": lists}

    def send(
        self, method: str, path: str, expect: set[int] | frozenset[int], **kw: object
    ) -> requests.Response:
        r = self.s.request(method, self.url(path), **kw)  # type: ignore[arg-type]
        hdrs = kw.get("headers") or {}
        self.log.append(f"{method} {path!r} {hdrs} -> {r.status_code}")
        assert r.status_code in expect, (
            f"{method} {path!r} {hdrs}: expected {sorted(expect)}, got {r.status_code} "
            f"{r.text[:300]}\nmodel: files={sorted(self.model.files)} "
            f"dirs={sorted(self.model.dirs)} locks={self.model.locks}\n" + "\n".join(self.log)
        )
        return r

    # --- path choice ---

    def pick(self, data: st.DataObject, label: str) -> str:
        """An existing path, a free name in an existing folder, or any path of the alphabet
        (missing parents, files as parents), so that every outcome comes up often."""
        m = self.model
        kind = data.draw(st.integers(0, 9), label=label + "-kind")
        existing = m.paths()
        if kind < 5 and existing:
            return data.draw(st.sampled_from(existing), label=label)
        if kind < 8:
            folders = [d for d in ["", *sorted(m.dirs)] if d.count("/") < MAX_DEPTH - 1]
            folder = data.draw(st.sampled_from(folders), label=label + "-in")
            name = data.draw(st.sampled_from(NAMES), label=label)
            return f"{folder}/{name}" if folder else name
        names = st.lists(st.sampled_from(NAMES), min_size=1, max_size=MAX_DEPTH)
        return "/".join(data.draw(names, label=label))

    def pick_near(self, data: st.DataObject, src: str, label: str) -> str:
        """A destination for ``src``: often related to it (itself, an ancestor, a child)."""
        kind = data.draw(st.integers(0, 9), label=label + "-kind")
        if kind == 0:
            return src
        if kind == 1 and "/" in src:
            return parent_of(src)
        if kind == 2 and src.count("/") < MAX_DEPTH - 1:
            return src + "/" + data.draw(st.sampled_from(NAMES))
        if kind == 3 and "/" in src:
            return parent_of(src) + "/" + data.draw(st.sampled_from(NAMES))
        return self.pick(data, label)

    # --- rules ---

    @initialize(
        seed=st.lists(
            st.tuples(
                st.lists(st.sampled_from(NAMES), min_size=1, max_size=MAX_DEPTH),
                st.booleans(),
                st.binary(max_size=20),
            ),
            max_size=6,
        )
    )
    def seed_tree(self, seed: list[tuple[list[str], bool, bytes]]) -> None:
        """Start from a small random tree, so that moves, copies and locks have things to
        act on from the first step (rules then start from a populated example)."""
        m = self.model
        for names, is_dir, body in seed:
            path = "/".join(names)
            if any(p in m.files for p in (parent_of(path), path)) or m.exists(path):
                continue
            for i in range(1, len(names)):
                folder = "/".join(names[:i])
                if folder in m.files:
                    break
                if folder not in m.dirs:
                    self.send("MKCOL", folder, {CREATED})
                    m.add_dir(folder)
            else:
                if is_dir:
                    self.send("MKCOL", path, {CREATED})
                    m.add_dir(path)
                else:
                    self.send("PUT", path, {CREATED}, data=body)
                    m.write(path, body)

    @rule(data=st.data(), body=st.binary(max_size=40), with_token=st.booleans())
    def put(self, data: st.DataObject, body: bytes, with_token: bool) -> None:
        m = self.model
        path = self.pick(data, "put")
        errors: set[int] = set()
        if not m.is_dir(parent_of(path)):
            errors.add(409)  # RFC 4918 9.7.1: missing intermediate collection
        elif path in m.dirs:
            errors.add(405)  # RFC 4918 9.7.2: PUT onto a collection
        if not with_token and (m.covered(path) or m.covered(parent_of(path))):
            errors.add(423)
        created = path not in m.files
        self.send(
            "PUT",
            path,
            errors or {CREATED if created else NO_CONTENT},
            data=body,
            headers=self.if_header(with_token),
        )
        if not errors:
            m.write(path, body)

    @rule(data=st.data(), with_token=st.booleans())
    def mkcol(self, data: st.DataObject, with_token: bool) -> None:
        m = self.model
        path = self.pick(data, "mkcol")
        errors: set[int] = set()
        if m.exists(path):
            errors.add(405)  # RFC 4918 9.3.1
        elif not m.is_dir(parent_of(path)):
            errors.add(409)
        if not with_token and (m.covered(path) or m.covered(parent_of(path))):
            errors.add(423)
        self.send("MKCOL", path, errors or {CREATED}, headers=self.if_header(with_token))
        if not errors:
            m.add_dir(path)

    @rule(data=st.data(), with_token=st.booleans())
    def delete(self, data: st.DataObject, with_token: bool) -> None:
        m = self.model
        path = self.pick(data, "delete")
        errors: set[int] = set()
        if not m.exists(path):
            errors.add(404)
        if not with_token and (m.covered(parent_of(path)) or m.covered_tree(path)):
            errors.add(423)
        self.send("DELETE", path, errors or {NO_CONTENT}, headers=self.if_header(with_token))
        if not errors:
            m.to_trash(path)

    def _transfer_errors(self, src: str, dst: str, overwrite: bool) -> set[int]:
        """The errors a MOVE or COPY of ``src`` to ``dst`` must get, locks aside."""
        m = self.model
        if not m.exists(src):
            return {404}
        if within(src, dst) or within(dst, src):
            # An existing destination with Overwrite F may be refused for that reason first.
            return set(SELF_OVERLAP) | ({412} if m.exists(dst) and not overwrite else set())
        errors: set[int] = set()
        if not m.is_dir(parent_of(dst)):
            errors.add(409)  # RFC 4918 9.8.5 / 9.9.4
        elif m.exists(dst) and not overwrite:
            errors.add(412)
        return errors

    @rule(data=st.data(), overwrite=st.booleans(), with_token=st.booleans())
    def move(self, data: st.DataObject, overwrite: bool, with_token: bool) -> None:
        src = self.pick(data, "move-src")
        self._move(src, self.pick_near(data, src, "move-dst"), overwrite, with_token)

    @rule(data=st.data(), with_token=st.booleans())
    def save_by_rename(self, data: st.DataObject, with_token: bool) -> None:
        """An editor's save by rename, a step at a time (random moves seldom make one): a file
        renamed to a free name of its folder, or something moved onto the name a file left."""
        m = self.model

        def child(folder: str, name: str) -> str:
            return f"{folder}/{name}" if folder else name

        left = sorted((p, m.vacated[m.ids[p]][0]) for p in m.files if m.ids[p] in m.vacated)
        if left and data.draw(st.booleans(), label="save-back"):
            path, name = data.draw(st.sampled_from(left), label="save-name")
            dst = child(parent_of(path), name)
            self._move(self.pick(data, "save-src"), dst, False, with_token)
            return
        if not m.files:
            return
        # Editors lock what they save: a locked file often.
        locked = sorted({lk.root for lk in m.locks.values() if lk.root in m.files})
        choice = locked if locked and data.draw(st.booleans(), label="locked") else m.files
        src = data.draw(st.sampled_from(sorted(choice)), label="save-away")
        free = [n for n in NAMES if not m.exists(child(parent_of(src), n))]
        if free:
            name = data.draw(st.sampled_from(free), label="save-temp")
            self._move(src, child(parent_of(src), name), False, with_token)

    def _move(self, src: str, dst: str, overwrite: bool, with_token: bool) -> None:
        m = self.model
        errors = self._transfer_errors(src, dst, overwrite)
        if not with_token and (
            m.covered_tree(src)
            or m.covered(parent_of(src))
            or m.covered(parent_of(dst))
            or m.covered_tree(dst)
        ):
            errors.add(423)
        existed = m.exists(dst)
        headers = {
            "Destination": self.url(dst),
            "Overwrite": "T" if overwrite else "F",
            **self.if_header(with_token),
        }
        self.send("MOVE", src, errors or {NO_CONTENT if existed else CREATED}, headers=headers)
        if not errors:
            # Locks do not move with the resource (RFC 4918 7.5): they are dropped (or set
            # aside, for a save-by-rename).
            m.move(src, dst)

    @rule(data=st.data(), overwrite=st.booleans(), with_token=st.booleans(), shallow=st.booleans())
    def copy(self, data: st.DataObject, overwrite: bool, with_token: bool, shallow: bool) -> None:
        m = self.model
        src = self.pick(data, "copy-src")
        dst = self.pick_near(data, src, "copy-dst")
        errors = self._transfer_errors(src, dst, overwrite)
        if not with_token and (m.covered(parent_of(dst)) or m.covered_tree(dst)):
            errors.add(423)
        existed = m.exists(dst)
        depth = "0" if shallow and m.is_dir(src) else "infinity"
        headers = {
            "Destination": self.url(dst),
            "Overwrite": "T" if overwrite else "F",
            "Depth": depth,
            **self.if_header(with_token),
        }
        self.send("COPY", src, errors or {NO_CONTENT if existed else CREATED}, headers=headers)
        if not errors:
            # a file over a file keeps its identity (its old content becomes a version)
            kept = m.ids.get(dst) if src in m.files and dst in m.files else None
            self._replace(dst, src)
            m.copy_tree(src, dst, recursive=depth == "infinity")
            if kept is not None:
                m.ids[dst] = kept

    def _replace(self, dst: str, src: str) -> None:
        """What a MOVE or COPY of ``src`` does to what stands at ``dst``: a file replaced by a
        file keeps its identity (its old content becomes a version); anything else goes to the
        trash."""
        m = self.model
        if not m.exists(dst):
            return
        if dst in m.files and src in m.files:
            m.remove(dst)
        else:
            m.to_trash(dst)

    @precondition(lambda self: self.restores and self.model.trash)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        """Put an item of the trash back (Nextcloud's trashbin tree): into the folder it was
        in (if that folder is still in the tree, wherever it is now), under a new name if its
        name is taken; into the home, out of the example, if the folder is gone."""
        m = self.model
        index = data.draw(st.integers(0, len(m.trash) - 1), label="restore")
        item = m.trash[index]
        location = self.location + item.path
        same = [t for t in m.trash if t.path == item.path]
        found = sorted(
            (
                (int(e.text(NC + "trashbin-deletion-time") or 0), name)
                for name, e in list_trash(self.s, trash_url(self.server, self.user)).items()
                if e.text(NC + "trashbin-original-location") == location
            ),
        )
        assert len(found) == len(same), (location, found, "\n".join(self.log))
        key = found[same.index(item)][1]
        name = item.path.rsplit("/", 1)[-1]
        r = move(
            self.s,
            trash_url(self.server, self.user) + q(key),
            trash_restore_url(self.server, self.user, name),
        )
        self.log.append(f"RESTORE {item.path!r} ({key}) -> {r.status_code}")
        assert r.status_code == CREATED, (r.status_code, r.text[:300], "\n".join(self.log))
        del m.trash[index]
        folder = next((p for p, i in m.ids.items() if i == item.parent), None)
        if folder is None:
            return  # back in the home, outside the example
        target = f"{folder}/" if folder else ""
        target += restored_name(name, m.children(folder))
        for rel, body in item.files.items():
            m.files[target + rel] = body
            m.ids[target + rel] = item.file_ids[rel]
        for rel, folder_id in item.dirs.items():
            m.dirs.add(target + rel)
            m.ids[target + rel] = folder_id

    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        m = self.model
        path = self.pick(data, "get")
        if path in m.files:
            r = self.send("GET", path, {200})
            assert r.content == m.files[path], (path, r.content, m.files[path])
        elif not m.exists(path):
            self.send("GET", path, {404})

    @rule(data=st.data())
    def propfind(self, data: st.DataObject) -> None:
        m = self.model
        path = self.pick(data, "propfind")
        if not m.exists(path):
            self.send("PROPFIND", path, {404}, headers={"Depth": "1"})
            return
        if path in m.files:
            return  # files are listed by the invariant
        names = set(members(self.s, self.url(path) + "/"))
        want = {p.rsplit("/", 1)[-1] for p in m.paths() if parent_of(p) == path}
        assert names == want, (path, names, want)

    @rule(data=st.data())
    def lock(self, data: st.DataObject) -> None:
        m = self.model
        path = self.pick(data, "lock")
        infinite = m.is_dir(path)
        errors: set[int] = set()
        if not m.exists(path) and not m.is_dir(parent_of(path)):
            errors.add(409)
        elif m.covered_tree(path) if infinite else m.covered(path):
            errors.add(423)
        elif not m.exists(path) and m.covered(parent_of(path)):
            errors.add(423)  # a LOCK on a free name creates a member of a locked folder
        created = not m.exists(path)
        r = self.send(
            "LOCK",
            path,
            errors or {CREATED if created else 200},
            headers={
                "Depth": "infinity" if infinite else "0",
                "Timeout": "Second-600",
                "Content-Type": "application/xml",
            },
            data=LOCK_BODY.format(scope="exclusive", owner="model").encode(),
        )
        if errors:
            return
        token = (r.headers.get("Lock-Token") or "").strip().strip("<>")
        assert token, f"LOCK {path!r} answered {r.status_code} without a Lock-Token"
        if created:
            # RFC 4918 9.10.4: a LOCK on an unmapped URL creates an empty resource.
            m.write(path, b"")
        m.locks[token] = Lock(path, infinite)

    @rule(data=st.data())
    def unlock(self, data: st.DataObject) -> None:
        m = self.model
        if not m.locks:
            return
        # By the order the locks were granted: the tokens are random, so an order by token
        # would make the same draws pick different locks from one run to the next.
        tokens = list(m.locks)
        token = tokens[data.draw(st.integers(0, len(tokens) - 1), label="unlock")]
        path = m.locks[token].root
        self.send("UNLOCK", path, {NO_CONTENT}, headers={"Lock-Token": f"<{token}>"})
        del m.locks[token]

    def teardown(self) -> None:
        """Give the example's locks back (the one server's user may hold only so many, 1000,
        and locks set aside by renames count until they expire) and empty the trash."""
        for token, lk in list(self.model.locks.items()):
            self.send("UNLOCK", lk.root, {NO_CONTENT}, headers={"Lock-Token": f"<{token}>"})
            del self.model.locks[token]
        # Empty the trash (one user's, for every example: kept, it would only grow).
        r = self.s.delete(trash_url(self.server, self.user).rstrip("/"))
        assert r.status_code == NO_CONTENT, r.status_code

    # --- the tree ---

    @invariant()
    def same_tree(self) -> None:
        """The server's tree (Depth 1 walk, every file's bytes) is the model's."""
        m = self.model
        seen_dirs: set[str] = set()
        seen_files: dict[str, bytes] = {}
        todo = [""]
        while todo:
            folder = todo.pop()
            for name, entry in members(self.s, self.url(folder) + ("/" if folder else "")).items():
                path = f"{folder}/{name}" if folder else name
                if entry.is_collection:
                    seen_dirs.add(path)
                    todo.append(path)
                else:
                    seen_files[path] = b""
        for path in seen_files:
            r = self.s.get(self.url(path))
            assert r.status_code == 200, f"GET {path!r} listed but answered {r.status_code}"
            seen_files[path] = r.content
        assert seen_dirs == m.dirs, (
            f"folders differ: server {sorted(seen_dirs)} model {sorted(m.dirs)}\n"
            + "\n".join(self.log)
        )
        assert seen_files == m.files, (
            f"files differ: server {seen_files} model {m.files}\n" + "\n".join(self.log)
        )


class SharedDavModel(DavModel):
    """The same, sent by bob through his mount of a folder alice shared with him (write)."""

    user = BOB
    restores = False

    def teardown(self) -> None:
        """The owner sees what the grantee made (bob's mount has the folder's own name, so
        the example's folder has the same URL for alice)."""
        super().teardown()
        self.s = self.server.session(ALICE)
        self.same_tree()


def run(machine: type[DavModel], examples: int) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            report_multiple_bugs=False,
        ),
    )


@pytest.fixture(scope="module")
def model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    factory = ServerFactory(tmp_path_factory.mktemp("model"))
    yield factory()
    factory.finish()


def test_random_request_sequences_match_the_model(model_server: Server) -> None:
    DavModel.server = model_server
    run(DavModel, EXAMPLES)


def test_random_request_sequences_through_a_share(model_server: Server) -> None:
    name = "shared-" + uuid.uuid4().hex[:8]
    r = model_server.session(ALICE).request("MKCOL", model_server.dav + q(name))
    assert r.status_code == CREATED, r.status_code
    share_add(model_server, ALICE, "/" + name, BOB, write=True)
    SharedDavModel.server = model_server
    SharedDavModel.base = q(name) + "/"
    run(SharedDavModel, SHARED_EXAMPLES)
