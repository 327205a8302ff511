"""50 concurrent clients for 60 s of mixed PUT/GET/MOVE/COPY/DELETE/LOCK/PROPFIND/MKCOL on the
same few paths of two users' trees, then a consistency check.

Every PUT sends unique content that names its user and the path it was written to, so whatever a
file holds later identifies the PUT that wrote it. The test asserts: no response is a 5xx (and
none is outside the statuses the races explain); every GET returned the whole content of some
successful PUT; and afterwards every listed file holds exactly the content of a PUT that
succeeded — by the same user, to a path from which the successful MOVEs and COPYs could have
brought it there — with a size and ``oc:checksums`` that match the bytes. Then the server stops
cleanly, ``gc`` and ``fsck`` find the data dir consistent, and the log holds no traceback.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests
from requests import Response

from tests.live.conftest import (
    ALICE,
    BOB,
    LOCK_BODY,
    USERS,
    Server,
    ServerFactory,
    q,
)
from tests.live.integrity import assert_no_traceback, gc_then_fsck, list_tree

DURATION = 60.0
CLIENTS = {ALICE: 40, BOB: 10}

# A small, closed path space so that clients collide all the time: top folders, one sub-folder
# name, five file names. Folder MOVE/COPY go top->top or top/c->top/c only, so every path that
# can ever exist is in this space.
TOPS = ("a", "b", "e")
SUB = "c"
NAMES = ("f0", "f1", "f2", "f3", "f4")
DIRS = ("", *TOPS, *(f"{t}/{SUB}" for t in TOPS))
FILES = tuple(f"{d}/{n}".lstrip("/") for d in DIRS for n in NAMES)

OK = {200, 201, 204, 207}
# What the races explain: gone (404), parent gone (409), exists (405 MKCOL, 412 no-overwrite),
# locked by another client (423), lock token no longer valid (412), and for MOVE/COPY 403 when
# another client moved the source to the destination meanwhile ("onto itself").
ALLOWED: dict[str, set[int]] = {
    "PUT": OK | {409, 412, 423},
    "GET": {200, 404},
    "PROPFIND": {207, 404},
    "MKCOL": {201, 405, 409, 423},
    "MOVE": OK | {403, 404, 409, 412, 423},
    "COPY": OK | {403, 404, 409, 412, 423},
    "DELETE": {204, 404, 423},
    "LOCK": {200, 201, 404, 409, 423},
    "UNLOCK": {204, 404, 409},
}
WEIGHTS = {
    "PUT": 30,
    "GET": 20,
    "PROPFIND": 12,
    "MOVE": 10,
    "COPY": 5,
    "DELETE": 8,
    "LOCK": 8,
    "MKCOL": 7,
}
EMPTY_SHA1 = hashlib.sha1(b"").hexdigest()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@dataclass
class Journal:
    """What one client did and saw (one per thread: no locking needed)."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    puts: dict[str, str] = field(default_factory=dict)  # sha1 -> path it was written to
    empties: set[str] = field(default_factory=set)  # paths a LOCK may have created empty
    relocations: list[tuple[str, str]] = field(default_factory=list)  # MOVE/COPY src -> dst
    read_shas: list[tuple[str, str]] = field(default_factory=list)  # (path, sha1) from GETs
    errors: list[str] = field(default_factory=list)


class Client(threading.Thread):
    def __init__(self, srv: Server, user: str, seed: int, stop_at: float) -> None:
        super().__init__(name=f"soak-{user}-{seed}", daemon=True)
        self.srv, self.user, self.stop_at = srv, user, stop_at
        self.rng = random.Random(seed)
        self.journal = Journal()
        self.current = ""
        self.session = requests.Session()
        self.session.auth = (user, USERS[user])

    def url(self, path: str, folder: bool = False) -> str:
        tail = "/".join(q(n) for n in path.split("/") if n)
        return self.srv.dav + tail + ("/" if folder and tail else "")

    def request(self, method: str, path: str, folder: bool = False, **kw: object) -> int:
        return self.send(method, path, folder, **kw).status_code

    def send(self, method: str, path: str, folder: bool = False, **kw: object) -> Response:
        self.current = f"{method} {path} {kw.get('headers')}"
        r = self.session.request(method, self.url(path, folder), timeout=120, **kw)  # type: ignore[arg-type]
        self.journal.statuses[method, r.status_code] += 1
        if r.status_code >= 500 or r.status_code not in ALLOWED[method]:
            self.journal.errors.append(f"{method} {path}: {r.status_code} {r.text[:200]!r}")
        if method == "GET" and r.status_code == 200:
            self.journal.read_shas.append((path, sha1(r.content)))
        return r

    def run(self) -> None:
        ops = list(WEIGHTS)
        weights = list(WEIGHTS.values())
        try:
            while time.monotonic() < self.stop_at:
                op = self.rng.choices(ops, weights)[0]
                getattr(self, "do_" + op.lower())()
        except Exception as e:  # a dropped connection, a timeout: the test reports it
            self.journal.errors.append(f"{self.name}: {self.current}: {e!r}")
        finally:
            self.session.close()

    # --- operations --------------------------------------------------------------------------

    def body(self, path: str) -> bytes:
        size = self.rng.choice((0, 1, 100, 5000, 70_000, 300_000))
        head = f"{self.user}|{path}|{uuid.uuid4().hex}\n".encode()
        return head + self.rng.randbytes(size)

    def put(self, path: str, headers: dict[str, str] | None = None) -> None:
        data = self.body(path)
        payload: bytes | Iterator[bytes] = data
        if self.rng.random() < 0.3:  # chunked
            payload = iter([data[: len(data) // 2], data[len(data) // 2 :]])
        if self.request("PUT", path, data=payload, headers=headers) in OK:
            self.journal.puts[sha1(data)] = path

    def do_put(self) -> None:
        self.put(self.rng.choice(FILES))

    def do_get(self) -> None:
        self.request("GET", self.rng.choice(FILES))

    def do_propfind(self) -> None:
        self.request(
            "PROPFIND", self.rng.choice(DIRS), folder=True, headers={"Depth": "1"}, data=b""
        )

    def do_mkcol(self) -> None:
        self.request("MKCOL", self.rng.choice(DIRS[1:]), folder=True)

    def do_delete(self) -> None:
        folder = self.rng.random() < 0.15
        path = self.rng.choice(DIRS[1:] if folder else FILES)
        self.request("DELETE", path, folder=folder)

    def relocate(self, method: str) -> None:
        folder = self.rng.random() < 0.2
        if folder:
            src_top, dst_top = self.rng.sample(TOPS, 2)
            sub = self.rng.random() < 0.3
            src, dst = (f"{src_top}/{SUB}", f"{dst_top}/{SUB}") if sub else (src_top, dst_top)
        else:
            src, dst = self.rng.sample(FILES, 2)
        headers = {
            "Destination": self.url(dst, folder),
            "Overwrite": self.rng.choice("TF"),
        }
        if method == "COPY":
            headers["Depth"] = "infinity"
        if self.request(method, src, folder=folder, headers=headers) in OK:
            self.journal.relocations.append((src, dst))

    def do_move(self) -> None:
        self.relocate("MOVE")

    def do_copy(self) -> None:
        self.relocate("COPY")

    def do_lock(self) -> None:
        path = self.rng.choice(FILES)
        r = self.send(
            "LOCK",
            path,
            headers={"Depth": "0", "Timeout": "Second-60", "Content-Type": "application/xml"},
            data=LOCK_BODY.format(scope="exclusive", owner=self.name).encode(),
        )
        if r.status_code != 409:
            # A LOCK on an unmapped URL creates an empty file, before it takes the lock: one
            # that then fails (423: locked, 404: moved away meanwhile) may leave it behind.
            self.journal.empties.add(path)
        if r.status_code not in OK:
            return
        token = r.headers["Lock-Token"].strip()
        if self.rng.random() < 0.5:  # write under the lock, as Office and Explorer do
            self.put(path, headers={"If": f"({token})"})
        self.request("UNLOCK", path, headers={"Lock-Token": token})


def reachable(start: str, relocations: set[tuple[str, str]]) -> set[str]:
    """Every path content put at ``start`` could be at after any sequence of the successful
    MOVEs/COPYs (in any order: the journal cannot order races, so this over-approximates)."""
    by_src: dict[str, set[str]] = defaultdict(set)
    for src, dst in relocations:
        by_src[src].add(dst)
    seen = {start}
    todo = [start]
    while todo:
        path = todo.pop()
        parts = path.split("/")
        for i in range(1, len(parts) + 1):  # the path itself and each of its folders
            src = "/".join(parts[:i])
            for dst in by_src.get(src, ()):
                moved = dst + path[len(src) :]
                if moved not in seen:
                    seen.add(moved)
                    todo.append(moved)
    return seen


def check_final_tree(srv: Server, user: str, journals: list[Journal]) -> int:
    """Every file the user's tree lists holds content some successful PUT of theirs wrote (or
    is an empty file a LOCK created), at a path it could have got to; returns the file count."""
    puts: dict[str, str] = {}
    empties: set[str] = set()
    relocations: set[tuple[str, str]] = set()
    for j in journals:
        puts.update(j.puts)
        empties |= j.empties
        relocations.update(j.relocations)
    s = requests.Session()
    s.auth = (user, USERS[user])
    listing = list_tree(s, srv.dav)
    files = {p: e for p, e in listing.items() if not p.endswith("/")}
    assert set(listing) <= {d + "/" for d in DIRS if d} | set(FILES), sorted(listing)
    for path, entry in files.items():
        r = s.get(srv.dav + "/".join(q(n) for n in path.split("/")))
        assert r.status_code == 200, f"{user}: GET {path} listed but {r.status_code}"
        body = r.content
        digest = sha1(body)
        assert (entry.size, entry.sha1) == (len(body), digest), (
            f"{user}: {path}: PROPFIND says {entry.size} bytes sha1 {entry.sha1}, "
            f"GET gives {len(body)} bytes sha1 {digest}"
        )
        if not body:  # every PUT body has a head line: only a LOCK makes an empty file
            assert any(path in reachable(e, relocations) for e in empties), (
                f"{user}: {path} is empty, and no LOCK created an empty file it could come from"
            )
            continue
        origin = puts.get(digest)
        assert origin is not None, (
            f"{user}: {path} holds {len(body)} bytes ({body[:80]!r}) that no successful PUT "
            f"of {user} wrote"
        )
        assert body.startswith(f"{user}|{origin}|".encode()), (path, body[:80])
        assert path in reachable(origin, relocations), (
            f"{user}: {path} holds content PUT to {origin}, and no successful MOVE/COPY "
            f"could have brought it there"
        )
    s.close()
    return len(files)


def test_fifty_clients_for_a_minute(server_factory: ServerFactory) -> None:
    srv = server_factory()
    stop_at = time.monotonic() + DURATION
    clients = [
        Client(srv, user, seed=n * 1000 + i, stop_at=stop_at)
        for n, (user, count) in enumerate(CLIENTS.items())
        for i in range(count)
    ]
    for c in clients:
        c.start()
    for c in clients:
        c.join(DURATION + 300)
        assert not c.is_alive(), f"{c.name} still running long after the {DURATION:.0f} s"

    statuses: Counter[tuple[str, int]] = Counter()
    errors: list[str] = []
    for c in clients:
        statuses.update(c.journal.statuses)
        errors += c.journal.errors
    total = sum(statuses.values())
    print(f"{total} requests in {DURATION:.0f} s ({total / DURATION:.0f}/s):")
    print(", ".join(f"{m} {s}: {n}" for (m, s), n in sorted(statuses.items())))
    server_errors = {k: n for k, n in statuses.items() if k[1] >= 500}
    assert not server_errors, f"5xx answers: {server_errors}\n" + "\n".join(errors[:20])
    assert not errors, f"{len(errors)} unexpected outcomes:\n" + "\n".join(errors[:30])
    for method in WEIGHTS:
        assert any(m == method and s in OK for m, s in statuses), f"no {method} ever succeeded"

    for user in CLIENTS:
        journals = [c.journal for c in clients if c.user == user]
        known = {h for j in journals for h in j.puts} | {EMPTY_SHA1}
        torn = [(p, h) for j in journals for p, h in j.read_shas if h not in known]
        assert not torn, f"{user}: GETs returned content no successful PUT wrote: {torn[:5]}"
        print(f"{user}: {check_final_tree(srv, user, journals)} files check out")

    srv.stop()
    assert_no_traceback(srv)
    print(gc_then_fsck(srv.data_dir))
