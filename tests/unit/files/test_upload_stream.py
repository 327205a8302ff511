"""``Upload.write_from``: a body pulled in blocks (hashed on a worker thread) stores exactly the
bytes of the source, with the same hashes and checks as ``write``."""

from __future__ import annotations

import hashlib
import os

import pytest

from davdisk.errors import ChecksumMismatch, IncompleteBody, InsufficientStorage
from davdisk.model import Actor, Node
from davdisk.services import Services

MIB = 1 << 20


class Trickle:
    """A source whose ``readinto`` hands out at most ``step`` bytes per call, like a socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._view = memoryview(data)
        self._step = step
        self.calls = 0

    def readinto(self, buffer: memoryview) -> int:
        self.calls += 1
        n = min(len(buffer), self._step, len(self._view))
        buffer[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


def _home(svc: Services) -> tuple[Actor, Node]:
    alice = svc.files.actor("alice")
    assert alice is not None
    home = svc.files.resolve(alice, "/")
    assert home is not None
    return alice, home


def _blob_count(svc: Services) -> int:
    return sum(1 for _ in svc.content.stored())


@pytest.mark.parametrize(
    ("size", "step", "announced"),
    [
        (0, 1000, True),
        (1, 1000, True),
        (5000, 7, False),
        (MIB - 1, 65_524, True),
        (MIB, 65_524, False),
        (MIB + 1, 1 << 20, True),
        (3 * MIB + 12_345, 200_000, False),
        (3 * MIB + 12_345, 3 * MIB, True),
    ],
)
def test_stores_the_source_with_its_hashes(
    svc: Services, size: int, step: int, announced: bool
) -> None:
    alice, home = _home(svc)
    data = os.urandom(size)
    up = svc.files.upload(alice, home, "f.bin", expected_size=size if announced else None)
    with up:
        assert up.write_from(Trickle(data, step)) == size
        entry = up.commit()
    assert entry.size == size
    assert svc.files.checksums.reveal(entry) == (
        hashlib.md5(data).hexdigest(),
        hashlib.sha1(data).hexdigest(),
    )
    with svc.files.open_read(alice, entry) as f:
        assert f.read() == data


def test_mixes_with_write(svc: Services) -> None:
    alice, home = _home(svc)
    head, body = b"head-", os.urandom(2 * MIB + 3)
    with svc.files.upload(alice, home, "m.bin", expected_size=None) as up:
        up.write(head)
        up.write_from(Trickle(body, 300_000))
        entry = up.commit()
    assert svc.files.checksums.reveal(entry) == (
        hashlib.md5(head + body).hexdigest(),
        hashlib.sha1(head + body).hexdigest(),
    )
    with svc.files.open_read(alice, entry) as f:
        assert f.read() == head + body


def test_short_body_is_refused_and_stores_nothing(svc: Services) -> None:
    alice, home = _home(svc)
    before = _blob_count(svc)
    with svc.files.upload(alice, home, "s.bin", expected_size=2 * MIB) as up:
        up.write_from(Trickle(os.urandom(MIB + 5), 100_000))
        with pytest.raises(IncompleteBody):
            up.commit()
    assert svc.files.resolve(alice, "/s.bin") is None
    assert _blob_count(svc) == before


def test_checksum_is_verified(svc: Services) -> None:
    alice, home = _home(svc)
    data = os.urandom(MIB + 77)
    wrong = {"sha1": hashlib.sha1(b"other").hexdigest()}
    with svc.files.upload(alice, home, "c.bin", expected_size=None, checksums=wrong) as up:
        up.write_from(Trickle(data, MIB))
        with pytest.raises(ChecksumMismatch):
            up.commit()
    assert svc.files.resolve(alice, "/c.bin") is None
    right = {"md5": hashlib.md5(data).hexdigest(), "sha1": hashlib.sha1(data).hexdigest()}
    with svc.files.upload(alice, home, "c.bin", expected_size=None, checksums=right) as up:
        up.write_from(Trickle(data, MIB))
        assert up.commit().size == len(data)


def test_quota_stops_the_stream_part_way(svc: Services) -> None:
    svc.admin.set_quota("alice", 3 * MIB)
    alice, home = _home(svc)
    before = _blob_count(svc)
    source = Trickle(os.urandom(8 * MIB), MIB)
    with (
        svc.files.upload(alice, home, "q.bin", expected_size=None) as up,
        pytest.raises(InsufficientStorage),
    ):
        up.write_from(source)
    assert source.calls < 8  # refused on the block that went over, not at the end
    assert svc.files.resolve(alice, "/q.bin") is None
    assert _blob_count(svc) == before
