"""Property tests for the DAVENC v1 reader: it never returns a byte it has not verified.

Random plaintexts (empty up to four segments, sizes clustered around the 64 KiB segment
boundaries, since the format fixes the segment size) round-trip through every read API the
reader offers, whether the writer got them in one piece or streamed in random chunks.

Mutated blobs are judged by an oracle written from the format spec, independent of the
reader: :func:`first_damaged_segment` names the first segment whose bytes, index or final-flag
role differ from what the writer produced (0 when the header differs). Whatever the reader
returns before it raises must be the writer's plaintext at that position; it must raise at the
latest when a read reaches the damaged segment; segments before it must stay readable; and
the only exceptions allowed are integrity errors (or, at open, an unknown key version).

Everything uses the real crypto. Hypothesis is derandomized with no example database, so CI
runs the same examples every time.
"""

from __future__ import annotations

import bisect
import io
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from davdisk.crypto.envelope import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    TAG_SIZE,
    EnvelopeReader,
    EnvelopeWriter,
    cipher_size,
    plain_size,
)
from davdisk.errors import BadHeader, BadLength, BadSegment, IntegrityError, UnknownKeyVersion

S = SEGMENT_SIZE
CSEG = S + TAG_SIZE  # ciphertext bytes of a full segment
URK = bytes(range(100, 132))
OTHER_URK = bytes(range(1, 33))  # the same user's next key version
USER = 42
VERSION = 3
BLOB = bytes.fromhex("00112233445566778899aabbccddeeff")
OTHER_BLOB = bytes.fromhex("ffeeddccbbaa99887766554433221100")
SALT = b"\x5a" * 32
SENTINEL = 0xA5  # fills caller buffers so untouched bytes are recognisable

# Timing deadlines would make CI flaky on shared cores; max_examples bounds the runtime.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


# --- building blobs -------------------------------------------------------------------------


def payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def seal(
    plain: bytes,
    chunks: list[int] | None = None,
    *,
    key: bytes = URK,
    version: int = VERSION,
    blob_id: bytes = BLOB,
    salt: bytes = SALT,
) -> bytes:
    """Encrypt ``plain``: in one write when ``chunks`` is None (the length known up front),
    else streamed as writes of those sizes (empty ones included), the rest in a last write."""
    out = io.BytesIO()
    w = EnvelopeWriter(
        out, user_key=key, user_id=USER, key_version=version, blob_id=blob_id, salt=salt
    )
    pos = 0
    for n in chunks or []:
        pos += w.write(plain[pos : pos + n])
    w.write(plain[pos:])
    assert w.plain_bytes == len(plain)
    assert w.close() == len(out.getvalue())
    return out.getvalue()


def keyring(version: int) -> bytes:
    """The user's keys as the server's keyring hands them out."""
    keys = {VERSION: URK, VERSION + 1: OTHER_URK}
    if version not in keys:
        raise UnknownKeyVersion(version=version, user_id=USER)
    return keys[version]


def any_version(version: int) -> bytes:
    # A keyring that answers every version with the blob's key: only the envelope's own
    # checks stand between a tampered key-version field and the caller.
    return URK


LOOKUPS: dict[str, Callable[[int], bytes]] = {"keyring": keyring, "any": any_version}


class TrickleSource(io.RawIOBase):
    """A raw source that returns at most ``step`` bytes per call, as a socket or pipe may."""

    def __init__(self, data: bytes, step: int) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._data.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        return self._data.readinto(view[: self._step])


def open_reader(
    blob: bytes,
    *,
    expected: int | None = None,
    lookup: Callable[[int], bytes] = keyring,
    user_id: int = USER,
    blob_id: bytes = BLOB,
    step: int | None = None,
) -> EnvelopeReader:
    src = io.BytesIO(blob) if step is None else TrickleSource(blob, step)
    return EnvelopeReader(
        src,  # type: ignore[arg-type]
        key_for_version=lookup,
        user_id=user_id,
        blob_id=blob_id,
        expected_plain_size=expected,
    )


# --- strategies -----------------------------------------------------------------------------

# Segment count times S plus an offset: mostly right at a boundary, sometimes anywhere.
plain_sizes = st.builds(
    lambda segments, offset: max(0, segments * S + offset),
    st.integers(0, 3),
    st.one_of(st.integers(-2, 2), st.integers(-S + 1, S - 1)),
)
seeds = st.integers(0, 2**32 - 1)
# Write sizes for streaming; None means one write of everything.
chunkings = st.one_of(
    st.none(),
    st.lists(st.one_of(st.integers(0, 3), st.integers(0, 2 * S + 1)), max_size=8),
)
read_sizes = st.lists(
    st.one_of(st.integers(0, 3), st.integers(S - 2, S + 2), st.integers(1, 3 * S)),
    min_size=1,
    max_size=6,
)
steps = st.one_of(st.none(), st.integers(50, 5000))


@st.composite
def ranges(draw: st.DrawFn, size: int) -> list[tuple[int, int, int]]:
    """(whence, offset, length) triples that land anywhere in or just past ``size`` bytes."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.one_of(st.integers(0, size + 3), st.sampled_from([0, S, 2 * S, 3 * S])))
        start = draw(st.sampled_from([start, max(0, start - 1)]))
        length = draw(st.one_of(st.integers(0, 5), st.integers(0, size + 3)))
        whence = draw(st.sampled_from([io.SEEK_SET, io.SEEK_CUR, io.SEEK_END]))
        out.append((whence, start, length))
    return out


def seek_to(reader: io.RawIOBase, whence: int, start: int, size: int) -> None:
    """Position ``reader`` at ``start`` using ``whence`` (``size`` is what the reader thinks)."""
    base = {io.SEEK_SET: 0, io.SEEK_CUR: reader.tell(), io.SEEK_END: size}[whence]
    assert reader.seek(start - base, whence) == start
    assert reader.tell() == start


# --- round trips ----------------------------------------------------------------------------


@fuzz(60)
@given(size=plain_sizes, seed=seeds, chunks=chunkings, step=steps)
def test_round_trip_whole_reads_and_sizes(
    size: int, seed: int, chunks: list[int] | None, step: int | None
) -> None:
    plain = payload(size, seed)
    blob = seal(plain, chunks)
    # Chunking never changes the bytes, and the size is a pure function of the plaintext size.
    assert blob == seal(plain)
    assert len(blob) == cipher_size(size)
    assert plain_size(len(blob)) == size
    for expected in (None, size):
        with open_reader(blob, expected=expected, step=step) as r:
            assert r.size == size
            assert r.read() == plain
            assert r.read() == b""
            assert r.tell() == size
        with open_reader(blob, expected=expected, step=step) as r:
            assert r.read(-1) == plain
            assert r.seek(0) == 0
            assert r.readall() == plain


@fuzz(60)
@given(size=plain_sizes, seed=seeds, chunks=chunkings, sizes=read_sizes, step=steps)
def test_round_trip_sequential_read_and_readinto(
    size: int, seed: int, chunks: list[int] | None, sizes: list[int], step: int | None
) -> None:
    plain = payload(size, seed)
    blob = seal(plain, chunks)
    with open_reader(blob, step=step) as r:
        got = bytearray()
        for n in cycle_until_eof(sizes, size):
            got += r.read(n)
        assert got == plain
        assert r.read(1) == b""
    with open_reader(blob, step=step) as r:
        pos = 0
        for n in cycle_until_eof(sizes, size):
            buf = bytearray([SENTINEL]) * n
            m = r.readinto(buf)
            assert m == min(n, size - pos)
            assert buf[:m] == plain[pos : pos + m]
            assert buf[m:] == bytes([SENTINEL]) * (n - m)
            pos += m
        assert r.readinto(bytearray(5)) == 0


def cycle_until_eof(sizes: list[int], total: int) -> Iterator[int]:
    """Read sizes, repeated a few times, then reads of a little more than a segment (so a
    run of tiny reads cannot make an example slow), until one read past ``total`` bytes."""
    done = 0
    for n in sizes * 3:
        yield n
        done += n
    while done <= total:
        yield S + 7
        done += S + 7


@fuzz(60)
@given(data=st.data(), size=plain_sizes, seed=seeds, chunks=chunkings, step=steps)
def test_round_trip_ranges(
    data: st.DataObject, size: int, seed: int, chunks: list[int] | None, step: int | None
) -> None:
    plain = payload(size, seed)
    blob = seal(plain, chunks)
    with open_reader(blob, expected=size, step=step) as r:
        for whence, start, length in data.draw(ranges(size)):
            seek_to(r, whence, start, size)
            assert r.read(length) == plain[start : start + length]
            assert r.tell() == max(start, min(start + length, size))


@fuzz(40)
@given(
    size=plain_sizes,
    seed=seeds,
    chunks=chunkings,
    buffer_size=st.sampled_from([4096, S - 1, S, S + 1]),
)
def test_round_trip_buffered(
    size: int, seed: int, chunks: list[int] | None, buffer_size: int
) -> None:
    # The server reads through io.BufferedReader (files.upload.VerifiedReader).
    plain = payload(size, seed)
    blob = seal(plain, chunks)
    with io.BufferedReader(open_reader(blob), buffer_size=buffer_size) as b:
        assert b"".join(b) == plain  # line iteration, peek-based
        b.seek(size // 2)
        assert b.read() == plain[size // 2 :]


# --- the mutation oracle --------------------------------------------------------------------


def split_segments(blob: bytes) -> list[bytes]:
    """The ciphertext segments a blob's own length implies (fixed stride from the header on)."""
    body = blob[HEADER_SIZE:]
    return [body[i : i + CSEG] for i in range(0, len(body), CSEG)] or [b""]


def first_damaged_segment(original: bytes, mutated: bytes) -> int | None:
    """None if nothing changed, else the first segment index the reader cannot vouch for.

    Segments before it are byte-for-byte the writer's, at the same index and with the same
    final-flag role (a segment is final iff it is the last one), so they decrypt to the
    original plaintext. From this segment on, the reader must refuse what changed.
    """
    if mutated == original:
        return None
    if mutated[:HEADER_SIZE] != original[:HEADER_SIZE]:
        return 0
    orig, mut = split_segments(original), split_segments(mutated)
    for i, seg in enumerate(mut):
        was_final, is_final = i == len(orig) - 1, i == len(mut) - 1
        if i >= len(orig) or seg != orig[i] or was_final != is_final:
            return i
    raise AssertionError("unreachable: equal segments in equal roles make equal blobs")


@dataclass
class Case:
    """A mutated blob, the plaintext its original carried, and how to open it."""

    plain: bytes
    original: bytes
    mutated: bytes
    lookup: Callable[[int], bytes]
    expected: int | None

    @property
    def damaged(self) -> int | None:
        return first_damaged_segment(self.original, self.mutated)

    @property
    def trusted_end(self) -> int:
        """Plaintext offset up to which reads must succeed (everything if unchanged)."""
        k = self.damaged
        return len(self.plain) if k is None else k * S

    def open(self) -> EnvelopeReader | None:
        """The reader, or None if opening refused the blob (with an allowed error)."""
        try:
            return open_reader(self.mutated, expected=self.expected, lookup=self.lookup)
        except UnknownKeyVersion as e:
            # Only a key-version field naming a version the keyring does not have.
            assert self.lookup is keyring
            assert int.from_bytes(self.mutated[12:16], "big") not in (VERSION, VERSION + 1)
            assert e.kwargs["version"] == int.from_bytes(self.mutated[12:16], "big")
            return None
        except IntegrityError:
            assert self.damaged is not None, "an untouched blob must open"
            return None


@contextmanager
def refused(case: Case) -> Iterator[None]:
    """Run a read plan; an IntegrityError ends it, and is allowed only for a damaged blob."""
    try:
        yield
    except IntegrityError:
        assert case.damaged is not None, "an untouched blob must read back"


def check_sequential_reads(case: Case, sizes: list[int]) -> None:
    r = case.open()
    if r is None:
        return
    got = bytearray()
    with r, refused(case):
        for n in cycle_until_eof(sizes, r.size):
            got += r.read(n)
            # Every byte handed out so far is the writer's own, and none from a damaged segment.
            assert got == case.plain[: len(got)]
            assert len(got) <= case.trusted_end
        assert case.damaged is None, "a damaged blob was read to EOF without an error"
        assert got == case.plain


def check_readinto(case: Case, sizes: list[int]) -> None:
    r = case.open()
    if r is None:
        return
    with r:
        pos = 0
        for n in cycle_until_eof(sizes, r.size):
            buf = bytearray([SENTINEL]) * n
            try:
                m = r.readinto(buf)
            except IntegrityError:
                assert case.damaged is not None
                assert_no_unverified_bytes(buf, pos, case.plain, r.size)
                return
            assert buf[:m] == case.plain[pos : pos + m]
            assert buf[m:] == bytes([SENTINEL]) * (n - m)
            pos += m
            assert pos <= case.trusted_end
        assert case.damaged is None, "a damaged blob was read to EOF without an error"
        assert pos == len(case.plain)


def assert_no_unverified_bytes(buf: bytearray, pos: int, plain: bytes, size: int) -> None:
    """After a failed readinto at ``pos`` of a reader that thinks the file has ``size`` bytes,
    each segment-aligned piece of ``buf`` must be the original plaintext, untouched, or wiped:
    never bytes of a segment that failed. Past ``size`` nothing may be touched."""
    filled = max(0, min(len(buf), size - pos))
    assert buf[filled:] == bytes([SENTINEL]) * (len(buf) - filled)
    done = 0
    while done < filled:
        at = pos + done
        width = min(filled - done, S - at % S)
        piece = bytes(buf[done : done + width])
        assert piece in (plain[at : at + width], bytes([SENTINEL]) * width, bytes(width)), (
            f"unverified bytes at plaintext offset {at}"
        )
        done += width


def check_ranges(case: Case, plan: list[tuple[int, int, int]]) -> None:
    r = case.open()
    if r is None:
        return
    with r:
        for whence, start, length in plan:
            seek_to(r, whence, start, r.size)
            try:
                got = r.read(length)
            except IntegrityError:
                assert case.damaged is not None
                assert length == 0 or start + length > case.trusted_end, (
                    f"bytes {start}..{start + length} lie before the damage yet were refused"
                )
                continue
            assert got == case.plain[start : start + length], (
                f"range {start}+{length} returned {len(got)} bytes that are not the original"
            )


def check_buffered(case: Case, sizes: list[int], buffer_size: int) -> None:
    r = case.open()
    if r is None:
        return
    got = bytearray()
    with io.BufferedReader(r, buffer_size=buffer_size) as b, refused(case):
        for n in cycle_until_eof(sizes, r.size):
            got += b.read(n)
            assert got == case.plain[: len(got)]
            assert len(got) <= case.trusted_end
        assert case.damaged is None, "a damaged blob was read to EOF without an error"


def check_every_read_api(case: Case, data: st.DataObject) -> None:
    sizes = data.draw(read_sizes, label="read sizes")
    check_sequential_reads(case, sizes)
    check_readinto(case, sizes)
    check_ranges(case, data.draw(ranges(len(case.plain)), label="ranges"))
    check_buffered(case, sizes, data.draw(st.sampled_from([4096, S]), label="buffer"))
    r = case.open()
    if r is not None:
        with r, refused(case):
            assert r.read() == case.plain


# --- mutations ------------------------------------------------------------------------------

MUTATIONS = [
    "flip bits",
    "set byte",  # may write the value already there: the untouched case
    "truncate",
    "append",
    "insert",
    "delete range",
    "swap segments",
    "duplicate segment",
    "drop segment",
    "sibling header",
    "sibling segment",
    "append sibling segments",
    "key version",
    "replace body",
]

# Mostly two to four segments, so that damage can sit behind good segments.
mutation_sizes = st.one_of(
    plain_sizes,
    st.builds(lambda segments, offset: segments * S + offset, st.integers(1, 3), st.integers(1, S)),
)


def put_segments(blob: bytes, segments: list[bytes]) -> bytes:
    return blob[:HEADER_SIZE] + b"".join(segments)


def positions(blob: bytes) -> st.SearchStrategy[int]:
    """Byte offsets in ``blob``: anywhere, or at the edges and tag of a segment."""
    last = len(blob) - 1
    near_edge = st.builds(
        lambda i, off: min(last, HEADER_SIZE + i * CSEG + off),
        st.sampled_from(range(len(split_segments(blob)))),
        st.sampled_from([0, 1, S - 1, S, S + 1, CSEG - 1]),
    )
    return st.one_of(st.integers(0, last), near_edge)


@st.composite
def mutated(draw: st.DrawFn, kind: str, blob: bytes, plain: bytes) -> bytes:
    """``blob`` after one attack of the given kind."""
    segs = split_segments(blob)
    index = st.sampled_from(range(len(segs)))
    anywhere = positions(blob)
    junk = st.builds(payload, st.one_of(st.integers(1, 40), st.integers(1, CSEG + 20)), seeds)
    out = bytearray(blob)
    if kind == "flip bits":
        for pos, mask in draw(
            st.lists(st.tuples(anywhere, st.integers(1, 255)), min_size=1, max_size=3)
        ):
            out[pos] ^= mask
    elif kind == "set byte":
        out[draw(anywhere)] = draw(st.integers(0, 255))
    elif kind == "truncate":
        del out[draw(anywhere) :]
    elif kind == "append":
        out += draw(junk)
    elif kind == "insert":
        at = draw(anywhere)
        out[at:at] = draw(junk)
    elif kind == "delete range":
        at = draw(anywhere)
        del out[at : at + draw(st.one_of(st.integers(1, 20), st.integers(1, CSEG + 1)))]
    elif kind == "swap segments":
        i = draw(index)
        j = draw(st.sampled_from([j for j in range(len(segs)) if j != i] or [i]))
        segs[i], segs[j] = segs[j], segs[i]
        out[:] = put_segments(blob, segs)
    elif kind == "duplicate segment":
        segs.insert(draw(st.integers(0, len(segs))), segs[draw(index)])
        out[:] = put_segments(blob, segs)
    elif kind == "drop segment":
        del segs[draw(index)]
        out[:] = put_segments(blob, segs)
    elif kind == "key version":
        new = draw(st.one_of(st.sampled_from([VERSION + 1, 0]), st.integers(0, 2**32 - 1)))
        out[12:16] = new.to_bytes(4, "big")
    elif kind == "replace body":
        out[HEADER_SIZE:] = draw(st.one_of(st.binary(max_size=40), junk))
    else:
        # Another blob of the same user under the same key, with its own salt as every write
        # has, and either this blob's id or its own.
        sibling = seal(
            payload(max(0, len(plain) + draw(st.integers(-20, S))), draw(seeds)),
            blob_id=draw(st.sampled_from([BLOB, OTHER_BLOB])),
            salt=bytes(b ^ 0xFF for b in SALT),
        )
        theirs = split_segments(sibling)
        if kind == "sibling header":
            out[:HEADER_SIZE] = sibling[:HEADER_SIZE]
        elif kind == "sibling segment":
            i = draw(st.integers(0, min(len(segs), len(theirs)) - 1))
            segs[i] = theirs[i]
            out[:] = put_segments(blob, segs)
        elif kind == "append sibling segments":
            out += b"".join(theirs[draw(st.integers(0, len(theirs) - 1)) :])
        else:
            raise AssertionError(f"unknown mutation {kind}")
    return bytes(out)


@pytest.mark.parametrize("kind", MUTATIONS)
@fuzz(30)
@given(
    data=st.data(),
    size=mutation_sizes,
    seed=seeds,
    lookup=st.sampled_from(sorted(LOOKUPS)),
    pass_size=st.booleans(),
)
def test_mutated_blob_never_yields_unverified_bytes(
    kind: str, data: st.DataObject, size: int, seed: int, lookup: str, pass_size: bool
) -> None:
    plain = payload(size, seed)
    blob = seal(plain)
    attacked = data.draw(mutated(kind, blob, plain), label="mutated blob")
    case = Case(plain, blob, attacked, LOOKUPS[lookup], size if pass_size else None)
    # --hypothesis-show-statistics shows where the damage landed.
    event("untouched" if case.damaged is None else f"damaged from segment {case.damaged}")
    check_every_read_api(case, data)


@fuzz(60)
@given(
    size=plain_sizes,
    seed=seeds,
    user_id=st.integers(0, 2**64 - 1).filter(lambda u: u != USER),
    key=st.binary(min_size=32, max_size=32).filter(lambda k: k != URK),
    blob_id=st.binary(min_size=16, max_size=16).filter(lambda b: b != BLOB),
)
def test_wrong_user_key_or_id_is_refused_at_open(
    size: int, seed: int, user_id: int, key: bytes, blob_id: bytes
) -> None:
    blob = seal(payload(size, seed))
    attempts: list[dict[str, Any]] = [
        {"user_id": user_id},
        {"lookup": lambda v: key},
        {"lookup": lambda v: OTHER_URK},  # the same user's other key version
        {"blob_id": blob_id},
    ]
    for wrong in attempts:
        try:
            open_reader(blob, **wrong).close()
        except BadHeader:
            continue
        raise AssertionError(f"opened with {wrong}")


# --- regressions found by the properties above ------------------------------------------------


def test_end_of_file_of_a_blob_cut_at_a_segment_boundary_is_refused() -> None:
    # Dropping the final segment leaves a valid blob length; the reader used to answer a
    # read at its (shorter) end with b"" as if the file ended there.
    plain = payload(2 * S + 100, seed=1)
    cut = seal(plain)[: HEADER_SIZE + 2 * CSEG]
    with open_reader(cut) as r:
        assert r.size == 2 * S
        assert r.read(10) == plain[:10]  # segment 0 is genuine
        r.seek(2 * S)
        with pytest.raises(BadSegment):
            r.read(10)
        r.seek(5 * S)
        with pytest.raises(BadSegment):
            r.read()


def test_end_of_file_of_a_genuine_blob_costs_one_final_segment_check() -> None:
    plain = payload(2 * S + 100, seed=2)
    with open_reader(seal(plain)) as r:
        r.seek(3 * S)
        assert r.read(10) == b""
        assert r.read() == b""
        r.seek(0)
        assert r.read() == plain


def test_header_may_arrive_in_short_reads() -> None:
    # The reader used to read the header with one read() call, refusing a genuine blob
    # from a raw source that returns fewer bytes than asked.
    plain = payload(S + 1, seed=3)
    with open_reader(seal(plain), step=7) as r:
        assert r.read() == plain


# --- garbage ---------------------------------------------------------------------------------

GOOD_HEADER = seal(b"")[:HEADER_SIZE]


@fuzz(150)
@given(
    prefix=st.sampled_from([b"", b"DAVENC", GOOD_HEADER[:12], GOOD_HEADER]),
    head=st.binary(max_size=120),
    tail=st.one_of(st.just(0), st.integers(0, 3 * CSEG)),
    seed=seeds,
    lookup=st.sampled_from(sorted(LOOKUPS)),
    expected=st.one_of(st.none(), plain_sizes),
)
def test_random_garbage_is_never_accepted(
    prefix: bytes, head: bytes, tail: int, seed: int, lookup: str, expected: int | None
) -> None:
    # A believable start (nothing, the magic, a structurally valid or a genuine header) then
    # random bytes: whatever the length, the reader refuses before yielding anything.
    garbage = prefix + head + payload(tail, seed)
    try:
        r = open_reader(garbage, expected=expected, lookup=LOOKUPS[lookup])
    except IntegrityError:
        return
    except UnknownKeyVersion:
        assert lookup == "keyring"
        return
    with r:
        for start in (0, r.size // 2, max(0, r.size - 1), r.size):
            r.seek(start)
            try:
                got = r.read(1)
            except IntegrityError:
                continue
            raise AssertionError(f"garbage yielded {got!r} at offset {start}")


# --- sizes -----------------------------------------------------------------------------------


sizes_and_lengths = st.one_of(
    st.integers(0, 5 * CSEG),
    st.integers(0, 1 << 50),
    # Blob lengths just off a valid one, where an off-by-one in the layout would show.
    st.builds(
        lambda segments, d: max(0, cipher_size(segments * S) + d),
        st.integers(0, 4),
        st.one_of(st.sampled_from([-TAG_SIZE, -1, 0, 1, TAG_SIZE]), st.integers(-40, 40)),
    ),
)


@fuzz(200)
@given(n=sizes_and_lengths, c=sizes_and_lengths)
def test_cipher_size_is_a_pure_function_of_plain_size(n: int, c: int) -> None:
    # An independent statement of the layout: header, the plaintext, one tag per segment.
    assert cipher_size(n) == HEADER_SIZE + n + TAG_SIZE * max(1, -(-n // S))
    assert plain_size(cipher_size(n)) == n
    # Any other blob length is refused, never rounded to a nearby plaintext size.
    # cipher_size is strictly increasing, so bisection finds the only candidate.
    candidate = bisect.bisect_left(range(c + 1), c, key=cipher_size)
    try:
        p = plain_size(c)
    except BadLength:
        assert cipher_size(candidate) != c
    else:
        assert p == candidate
        assert cipher_size(p) == c
