"""kill -9 the server during 200 MiB PUTs, 20 times at seeded random moments.

Each round restarts the server on the same data dir and PUTs new content over one file, then
SIGKILLs the server at a moment drawn from a shuffled schedule of phases: in the request head,
with only the head sent, mid-body, near the end of the body, right after the last byte, while the
upload's blob has just been linked into place (before the database points at it), and after
the answer. After the restart the file must
read back as exactly its old content or — only if the PUT could have committed (the whole body
was sent) — exactly the new content: never a mix, never a partial file, never another name in
the listing; an answered 2xx means the new content must be there. At the end ``gc`` and ``fsck``
must find a consistent data dir.

The seed is printed and named in every failure; set ``DAVDISK_CRASH_SEED`` to replay a run.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tests.live.conftest import (
    ALICE,
    USERS,
    Server,
    ServerFactory,
    blob_files,
    put,
    read_status,
    sql,
    temp_files,
    wait_until,
)
from tests.live.integrity import content_digest, gc_then_fsck, list_tree

MIB = 1 << 20
SIZE = 200 * MIB
CHUNK = MIB
ROUNDS = 20
# Every phase is covered in every run; only their order and the exact moments are random.
SCHEDULE = (
    ["in-head"] * 1
    + ["head-only"] * 2
    + ["mid-body"] * 5
    + ["body-end"] * 3
    + ["body-sent"] * 2
    + ["blob-linked"] * 3
    + ["committed"] * 2
    + ["answered"] * 2
)
assert len(SCHEDULE) == ROUNDS
# Phases in which every byte of the body reached the socket: the PUT may have committed.
COMPLETE_BODY = {"body-sent", "blob-linked", "committed", "answered"}
# Phases that kill only after the commit was seen: the new content must be there.
COMMITTED = {"committed", "answered"}

SEED = int(os.environ.get("DAVDISK_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))


@dataclass(frozen=True)
class Content:
    """Reproducible pseudo-random content, generated chunk by chunk (never held whole)."""

    seed: int
    size: int

    def chunks(self) -> Iterator[bytes]:
        base = random.Random(self.seed).randbytes(CHUNK)
        for i, off in enumerate(range(0, self.size, CHUNK)):
            # a distinct first 8 bytes per MiB, so a misplaced chunk cannot hash the same
            yield (i.to_bytes(8, "big") + base[8:])[: self.size - off]

    @cached_property
    def hashes(self) -> tuple[str, str]:
        """(sha256, sha1) hex digests."""
        h256, h1 = hashlib.sha256(), hashlib.sha1()
        for chunk in self.chunks():
            h256.update(chunk)
            h1.update(chunk)
        return h256.hexdigest(), h1.hexdigest()


def body_pieces(content: Content, chunked: bool) -> Iterator[bytes]:
    """The request body as it goes on the wire."""
    for chunk in content.chunks():
        yield b"%x\r\n" % len(chunk) + chunk + b"\r\n" if chunked else chunk
    if chunked:
        yield b"0\r\n\r\n"


def wire_size(content: Content, chunked: bool) -> int:
    if not chunked:
        return content.size
    n = -(-content.size // CHUNK)
    last = content.size - (n - 1) * CHUNK
    frame = len(b"%x\r\n\r\n" % CHUNK)
    return (n - 1) * (CHUNK + frame) + last + len(b"%x\r\n\r\n" % last) + len(b"0\r\n\r\n")


def request_head(srv: Server, content: Content, chunked: bool) -> bytes:
    length = ("Transfer-Encoding: chunked" if chunked else f"Content-Length: {content.size}",)
    lines = [
        "PUT /dav/doc.bin HTTP/1.1",
        f"Host: {srv.netloc}",
        f"Authorization: {srv.auth_header(ALICE)}",
        "Content-Type: application/octet-stream",
        *length,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def upload_temp_open(srv: Server) -> bool:
    """Whether the server holds an upload's temp file open (under blobs/tmp)."""
    tmp = str((srv.data_dir / "blobs" / "tmp").resolve())
    return any(t.startswith(tmp + "/") for t in srv.open_fds())


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


@dataclass
class Round:
    number: int
    phase: str
    chunked: bool
    kill_at: int | None  # body bytes on the wire before the kill (None: not a byte count)
    new: Content

    def describe(self) -> str:
        mode = "chunked" if self.chunked else "Content-Length"
        at = f", kill after {self.kill_at} body bytes" if self.kill_at is not None else ""
        return f"round {self.number} (DAVDISK_CRASH_SEED={SEED}): {self.phase}, {mode}{at}"


def plan(rng: random.Random) -> list[Round]:
    phases = list(SCHEDULE)
    rng.shuffle(phases)
    rounds = []
    for n, phase in enumerate(phases):
        chunked = rng.random() < 0.5
        new = Content(rng.randrange(1 << 32), SIZE)
        total = wire_size(new, chunked)
        kill_at = {
            "mid-body": rng.randrange(1, total),
            "body-end": rng.randrange(total - 2 * MIB, total),
            "head-only": 0,
        }.get(phase)
        rounds.append(Round(n, phase, chunked, kill_at, new))
    return rounds


def crash_during_put(srv: Server, rnd: Round, rng: random.Random) -> int | None:
    """Run one round's PUT and kill the server at its moment; the status answered, if any."""
    head = request_head(srv, rnd.new, rnd.chunked)
    blobs_before = set(blob_files(srv.data_dir))
    sock = socket.create_connection((srv.host, srv.port), timeout=60)
    try:
        if rnd.phase == "in-head":
            sock.sendall(head[: rng.randrange(1, len(head))])
            srv.kill()
            return read_status(sock)
        sock.sendall(head)
        if rnd.kill_at == 0:
            wait_until(lambda: upload_temp_open(srv), 10, "the server to start the upload")
            srv.kill()
            return read_status(sock)
        sent = 0
        for piece in body_pieces(rnd.new, rnd.chunked):
            if rnd.kill_at is not None and sent + len(piece) >= rnd.kill_at:
                sock.sendall(piece[: rnd.kill_at - sent])
                srv.kill()
                return read_status(sock)
            sock.sendall(piece)
            sent += len(piece)
        if rnd.phase == "blob-linked":
            # the blob becomes visible under its id just before the database commit that
            # points the file at it: this kill lands between the two
            wait_until(
                lambda: set(blob_files(srv.data_dir)) - blobs_before or readable(sock),
                60,
                "the server to link the upload's blob into place",
                interval=0.001,
            )
        elif rnd.phase == "committed":
            # the replaced content becomes a version in the commit's own transaction: once its
            # row is there, the commit went through, and the answer is not sent yet
            versions_before = kept_versions(srv.data_dir)
            wait_until(
                lambda: kept_versions(srv.data_dir) > versions_before or readable(sock),
                60,
                "the server to commit and keep the replaced content as a version",
                interval=0.001,
            )
        elif rnd.phase == "answered":
            status = read_status(sock)
            srv.kill()
            return status
        srv.kill()
        return read_status(sock)
    finally:
        sock.close()


def kept_versions(data_dir: Path) -> int:
    """Versions rows (distinct blobs) in the data dir's database."""
    (count,) = sql(data_dir, "SELECT count(DISTINCT blob_id) FROM versions")[0]
    return int(str(count))


def test_kill_9_during_large_puts(server_factory: ServerFactory) -> None:
    print(f"DAVDISK_CRASH_SEED={SEED}")
    rng = random.Random(SEED)
    # Every replaced content kept (no thinning of versions made seconds apart), so that the
    # versions left count the PUTs that committed.
    keep_all = server_factory.base / "keep-all.toml"
    keep_all.write_text('[versions]\nretention = "disabled"\n')
    srv = server_factory(users={ALICE: USERS[ALICE]}, config=keep_all)
    data_dir: Path = srv.data_dir
    current = Content(rng.randrange(1 << 32), MIB + 12345)
    put(srv.session(ALICE), srv.dav + "doc.bin", b"".join(current.chunks()), expect=(201,))

    outcomes: Counter[tuple[str, str]] = Counter()
    for rnd in plan(rng):
        ctx = rnd.describe()
        started = time.monotonic()
        try:
            status = crash_during_put(srv, rnd, rng)
        except Exception as e:
            raise AssertionError(f"{ctx}: the PUT failed before the kill: {e!r}") from e
        assert status in (None, 201, 204), f"{ctx}: answered {status}\n{srv.log()}"
        could_commit = rnd.phase in COMPLETE_BODY
        must_commit = rnd.phase in COMMITTED or status is not None

        # checks this round, then serves the next
        srv = server_factory(data_dir=data_dir, config=keep_all)
        s = srv.session(ALICE)
        listing = list_tree(s, srv.dav)
        assert set(listing) == {"doc.bin"}, f"{ctx}: listing {sorted(listing)}"
        digest, size = content_digest(s, srv.dav + "doc.bin")
        if digest == current.hashes[0]:
            outcome = "old"
            assert not must_commit, f"{ctx}: answered {status} or committed, yet old content"
        elif could_commit and digest == rnd.new.hashes[0]:
            outcome, current = "new", rnd.new
        else:
            raise AssertionError(
                f"{ctx}: doc.bin reads back as {size} bytes that are neither the old "
                f"({current.size} bytes) nor {'the new' if could_commit else 'any'} content"
            )
        entry = listing["doc.bin"]
        assert (entry.size, entry.sha1) == (current.size, current.hashes[1]), (
            f"{ctx}: PROPFIND says {entry.size} bytes, sha1 {entry.sha1}, for {outcome} content"
        )
        outcomes[rnd.phase, outcome] += 1
        print(f"{ctx}: {outcome} content ({time.monotonic() - started:.1f} s)")
    srv.stop()
    print("phase/outcome:", dict(sorted(outcomes.items())))
    assert any(o == "new" for _, o in outcomes), f"no PUT ever committed (seed {SEED})"

    leftovers = len(temp_files(data_dir)), len(blob_files(data_dir))
    print(f"before gc: {leftovers[0]} temp files, {leftovers[1]} blob files")
    print(gc_then_fsck(data_dir))
    assert temp_files(data_dir) == [], f"temp files left after gc (seed {SEED})"
    # The current content and the versions committed PUTs kept: nothing else.
    kept = kept_versions(data_dir)
    assert kept == sum(n for (_, o), n in outcomes.items() if o == "new"), (SEED, outcomes)
    assert len(blob_files(data_dir)) == 1 + kept, f"{blob_files(data_dir)} (seed {SEED})"
    srv = server_factory(data_dir=data_dir, config=keep_all)
    s = srv.session(ALICE)
    assert content_digest(s, srv.dav + "doc.bin") == (current.hashes[0], current.size)
