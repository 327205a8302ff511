"""Unit tests for the DAVENC v1 envelope (davdisk.crypto.envelope).

Round trips over segment-boundary sizes and chunkings, range reads, every kind of
tampering the format claims to detect, the size arithmetic, and a known-answer
vector checked against an independent reference implementation of the spec.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from davdisk.crypto.envelope import (
    HEADER_SIZE,
    SEGMENT_SIZE,
    SUPPORTED_VERSIONS,
    TAG_SIZE,
    EnvelopeReader,
    EnvelopeWriter,
    cipher_size,
    plain_size,
)
from davdisk.errors import (
    BadHeader,
    BadLength,
    BadSegment,
    IntegrityError,
    KeyMaterialError,
    UnknownKeyVersion,
)

S = SEGMENT_SIZE
CSEG = S + TAG_SIZE  # ciphertext bytes of a full segment
URK = bytes(range(100, 132))
USER = 42
VERSION = 3
BLOB = bytes.fromhex("00112233445566778899aabbccddeeff")


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def seal(
    plain: bytes,
    chunk: int | None = None,
    *,
    key: bytes = URK,
    user_id: int = USER,
    version: int = VERSION,
    blob_id: bytes = BLOB,
    salt: bytes | None = None,
) -> bytes:
    out = io.BytesIO()
    w = EnvelopeWriter(
        out, user_key=key, user_id=user_id, key_version=version, blob_id=blob_id, salt=salt
    )
    chunk = chunk or max(1, len(plain))
    for i in range(0, len(plain), chunk):
        assert w.write(plain[i : i + chunk]) == len(plain[i : i + chunk])
    total = w.close()
    assert total == len(out.getvalue())
    assert w.plain_bytes == len(plain)
    return out.getvalue()


def keys_for(version: int = VERSION, key: bytes = URK):
    def lookup(v: int) -> bytes:
        if v != version:
            raise UnknownKeyVersion(version=v, user_id=USER)
        return key

    return lookup


def any_version(v: int) -> bytes:
    # Hands out the key whatever the header says, so that only the envelope's own
    # checks stand between a tampered blob and the caller.
    return URK


def open_blob(blob: bytes, **kw) -> EnvelopeReader:
    kw.setdefault("key_for_version", keys_for())
    kw.setdefault("user_id", USER)
    kw.setdefault("blob_id", BLOB)
    return EnvelopeReader(io.BytesIO(blob), **kw)


def decrypt_all(blob: bytes, **kw) -> bytes:
    with open_blob(blob, **kw) as r:
        return r.read()


def segment_slice(index: int) -> slice:
    start = HEADER_SIZE + index * CSEG
    return slice(start, start + CSEG)


# --- round trips ----------------------------------------------------------------------------

SIZES = [0, 1, S - 1, S, S + 1, 2 * S, 3 * S + 12345]
CHUNKS = [1, 1000, S - 1, S + 1, None]  # None: one write of everything
ROUND_TRIPS = [(n, c) for n in SIZES for c in CHUNKS if c != 1 or n <= S + 1]


@pytest.mark.parametrize(("size", "chunk"), ROUND_TRIPS)
def test_round_trip(size: int, chunk: int | None) -> None:
    plain = payload(size, seed=size)
    blob = seal(plain, chunk, salt=b"s" * 32)
    assert len(blob) == cipher_size(size)
    assert plain_size(len(blob)) == size
    # Chunking must not change the bytes: segmenting depends only on the stream.
    assert blob == seal(plain, None, salt=b"s" * 32)
    with open_blob(blob, expected_plain_size=size) as r:
        assert r.size == size
        assert r.read() == plain
        assert r.read() == b""


def test_writer_accepts_any_buffer_type() -> None:
    plain = payload(3 * S + 5)
    out = io.BytesIO()
    w = EnvelopeWriter(out, user_key=URK, user_id=USER, key_version=VERSION, blob_id=BLOB)
    w.write(bytearray(plain[:10]))
    w.write(memoryview(plain)[10 : 2 * S])
    w.write(memoryview(plain[2 * S : 2 * S + 8]).cast("Q"))  # non-byte item format
    w.write(plain[2 * S + 8 :])
    w.close()
    assert decrypt_all(out.getvalue()) == plain


class ShortWriter(io.RawIOBase):
    """An unbuffered sink that writes at most 1000 bytes per call, like a raw socket."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        chunk = bytes(b[:1000])
        self.data += chunk
        return len(chunk)


def test_writer_handles_short_writes() -> None:
    plain = payload(S + 777)
    sink = ShortWriter()
    w = EnvelopeWriter(sink, user_key=URK, user_id=USER, key_version=VERSION, blob_id=BLOB)  # type: ignore[arg-type]
    w.write(plain)
    assert w.close() == len(sink.data) == cipher_size(len(plain))
    assert decrypt_all(bytes(sink.data)) == plain


def test_writer_close_is_idempotent_and_leaves_output_open() -> None:
    out = io.BytesIO()
    w = EnvelopeWriter(out, user_key=URK, user_id=USER, key_version=VERSION, blob_id=BLOB)
    w.write(b"hello")
    first = w.close()
    assert w.close() == first == cipher_size(5)
    assert len(out.getvalue()) == first
    assert not out.closed
    assert w.closed
    with pytest.raises(ValueError):
        w.write(b"more")


def test_header_is_written_at_construction_with_the_documented_layout() -> None:
    out = io.BytesIO()
    salt = bytes(range(200, 232))
    EnvelopeWriter(out, user_key=URK, user_id=USER, key_version=0x01020304, blob_id=BLOB, salt=salt)
    head = out.getvalue()
    assert len(head) == HEADER_SIZE
    assert head[:6] == b"DAVENC"
    assert head[6:9] == bytes([1, 1, 16])
    assert head[9:12] == bytes(3)
    assert head[12:16] == bytes([1, 2, 3, 4])
    assert head[16:48] == salt
    assert head[48:64] == BLOB
    assert SUPPORTED_VERSIONS == (1,)


def test_salt_is_fresh_per_blob() -> None:
    a, b = seal(b"same"), seal(b"same")
    assert a[16:48] != b[16:48]
    assert a[HEADER_SIZE:] != b[HEADER_SIZE:]


def test_writer_rejects_bad_parameters() -> None:
    out = io.BytesIO()
    base = dict(user_key=URK, user_id=USER, key_version=VERSION, blob_id=BLOB)
    with pytest.raises(KeyMaterialError):
        EnvelopeWriter(out, **{**base, "user_key": URK[:31]})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EnvelopeWriter(out, **{**base, "blob_id": BLOB[:15]})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EnvelopeWriter(out, **base, salt=b"short")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EnvelopeWriter(out, **{**base, "key_version": 1 << 32})  # type: ignore[arg-type]


# --- reading ----------------------------------------------------------------------------------

RANGE_PLAIN = payload(4 * S + 321, seed=7)
RANGE_BLOB = seal(RANGE_PLAIN)


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(0, len(RANGE_PLAIN) + 10),
    length=st.one_of(st.integers(0, 300), st.integers(0, len(RANGE_PLAIN) + 10)),
)
def test_random_ranges(start: int, length: int) -> None:
    with open_blob(RANGE_BLOB) as r:
        assert r.seek(start) == start
        assert r.read(length) == RANGE_PLAIN[start : start + length]
        assert r.tell() == min(start + length, max(start, len(RANGE_PLAIN)))


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 3 * S), min_size=1, max_size=12))
def test_sequential_reads_of_varying_size(sizes: list[int]) -> None:
    got = bytearray()
    with open_blob(RANGE_BLOB) as r:
        for n in sizes:
            got += r.read(n)
    assert bytes(got) == RANGE_PLAIN[: len(got)]
    assert len(got) == min(sum(sizes), len(RANGE_PLAIN))


def test_seek_whence_and_bounds() -> None:
    with open_blob(RANGE_BLOB) as r:
        assert r.seekable() and r.readable() and not r.writable()
        assert r.seek(-10, io.SEEK_END) == len(RANGE_PLAIN) - 10
        assert r.read() == RANGE_PLAIN[-10:]
        assert r.seek(-5, io.SEEK_CUR) == len(RANGE_PLAIN) - 5
        assert r.read(100) == RANGE_PLAIN[-5:]
        assert r.seek(len(RANGE_PLAIN) + 99) == len(RANGE_PLAIN) + 99
        assert r.read(10) == b""
        with pytest.raises(ValueError):
            r.seek(-1)
        with pytest.raises(ValueError):
            r.seek(0, 7)


def test_readinto_and_buffered_wrapper() -> None:
    with open_blob(RANGE_BLOB) as r:
        buf = bytearray(S + 3)
        assert r.readinto(buf) == S + 3
        assert buf == RANGE_PLAIN[: S + 3]
        view = memoryview(bytearray(160)).cast("I")  # 40 items of 4 bytes
        assert r.readinto(view) == 160
        assert view.tobytes() == RANGE_PLAIN[S + 3 : S + 163]
    with io.BufferedReader(open_blob(RANGE_BLOB), buffer_size=S) as b:
        b.seek(S - 2)
        assert b.read(4) == RANGE_PLAIN[S - 2 : S + 2]
        assert b.read() == RANGE_PLAIN[S + 2 :]


class CountingSource(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.bytes_read += len(data)
        return data

    def readinto(self, b) -> int:
        n = super().readinto(b)
        self.bytes_read += n
        return n


def test_range_read_decrypts_only_needed_segments() -> None:
    src = CountingSource(RANGE_BLOB)
    with EnvelopeReader(src, key_for_version=keys_for(), user_id=USER, blob_id=BLOB) as r:
        r.seek(3 * S + 100)
        assert r.read(10) == RANGE_PLAIN[3 * S + 100 : 3 * S + 110]
        assert src.bytes_read == HEADER_SIZE + CSEG
        # Small sequential reads inside the same segment come from the cache.
        for _ in range(50):
            r.read(100)
        assert src.bytes_read == HEADER_SIZE + CSEG


def test_close_closes_source_and_blocks_io() -> None:
    src = io.BytesIO(RANGE_BLOB)
    r = EnvelopeReader(src, key_for_version=keys_for(), user_id=USER, blob_id=BLOB)
    r.close()
    r.close()
    assert src.closed
    with pytest.raises(ValueError):
        r.read(1)
    with pytest.raises(ValueError):
        r.seek(0)


def test_expected_plain_size_mismatch() -> None:
    with pytest.raises(BadLength) as exc:
        open_blob(RANGE_BLOB, expected_plain_size=len(RANGE_PLAIN) - 1)
    assert BLOB.hex() in str(exc.value)


# --- tampering --------------------------------------------------------------------------------

THREE = payload(2 * S + 100, seed=3)  # segments of S, S, 100 bytes
THREE_BLOB = seal(THREE, salt=b"t" * 32)


def test_truncation_at_segment_boundary() -> None:
    cut = THREE_BLOB[: HEADER_SIZE + 2 * CSEG]  # drop the whole final segment
    with open_blob(cut) as r:
        assert r.size == 2 * S
        with pytest.raises(BadSegment):
            r.read()  # segment 1 was written non-final
    with pytest.raises(BadLength):
        open_blob(cut, expected_plain_size=len(THREE))


@pytest.mark.parametrize("drop", [1, 50, 99, 100, 101, 115])
def test_truncation_mid_segment(drop: int) -> None:
    cut = THREE_BLOB[:-drop]
    with pytest.raises((BadLength, BadSegment)):
        decrypt_all(cut)


def test_truncation_to_less_than_a_segment_is_rejected_at_open() -> None:
    for n in (0, 10, HEADER_SIZE, HEADER_SIZE + TAG_SIZE - 1, HEADER_SIZE + CSEG + 5):
        with pytest.raises((BadHeader, BadLength)):
            open_blob(THREE_BLOB[:n])


def test_appended_garbage_segment() -> None:
    with pytest.raises((BadLength, BadSegment)):
        decrypt_all(THREE_BLOB + THREE_BLOB[segment_slice(1)])
    with pytest.raises((BadLength, BadSegment)):
        decrypt_all(THREE_BLOB + os.urandom(500))


def test_appended_validly_encrypted_segment() -> None:
    # Same key, salt and blob id, longer plaintext: its segment 2 is a genuine
    # final segment at index 2. Grafted behind a 2-segment blob, the old final
    # segment 1 is no longer last and must fail.
    salt = b"g" * 32
    short_plain = payload(2 * S, seed=11)
    long_plain = short_plain + b"appended by an attacker"
    short_blob = seal(short_plain, salt=salt)
    long_blob = seal(long_plain, salt=salt)
    assert long_blob[: HEADER_SIZE + CSEG] == short_blob[: HEADER_SIZE + CSEG]
    grafted = short_blob + long_blob[HEADER_SIZE + 2 * CSEG :]
    with pytest.raises(BadSegment):
        decrypt_all(grafted)
    with pytest.raises(BadLength):
        open_blob(grafted, expected_plain_size=len(short_plain))


def test_swapped_segments() -> None:
    blob = bytearray(THREE_BLOB)
    blob[segment_slice(0)], blob[segment_slice(1)] = blob[segment_slice(1)], blob[segment_slice(0)]
    with open_blob(bytes(blob)) as r:
        with pytest.raises(BadSegment) as exc:
            r.read(10)
        assert exc.value.kwargs["index"] == 0
        assert BLOB.hex() in str(exc.value)


@pytest.mark.parametrize("offset", range(HEADER_SIZE))
def test_flipped_header_byte(offset: int) -> None:
    blob = bytearray(THREE_BLOB)
    blob[offset] ^= 0x01
    with pytest.raises(BadHeader):
        decrypt_all(bytes(blob), key_for_version=any_version)


@pytest.mark.parametrize(
    "offset",
    [
        HEADER_SIZE,  # first ciphertext byte
        HEADER_SIZE + S + 3,  # inside segment 0's tag
        HEADER_SIZE + CSEG + 1000,  # segment 1 body
        len(THREE_BLOB) - 1,  # last tag byte
    ],
)
def test_flipped_segment_byte(offset: int) -> None:
    blob = bytearray(THREE_BLOB)
    blob[offset] ^= 0x80
    index = (offset - HEADER_SIZE) // CSEG
    with open_blob(bytes(blob)) as r:
        r.seek(index * S)
        with pytest.raises(BadSegment):
            r.read(1)  # partial read: goes through the cache
        with pytest.raises(BadSegment):
            r.read(1)  # a failed segment is never cached as good
        # Other segments are unaffected.
        other = (index + 1) % 3
        r.seek(other * S)
        assert r.read(50) == THREE[other * S : other * S + 50]


def test_failed_segment_does_not_corrupt_the_cache() -> None:
    blob = bytearray(THREE_BLOB)
    blob[HEADER_SIZE + CSEG + 10] ^= 0x01  # segment 1 is bad
    with open_blob(bytes(blob)) as r:
        assert r.read(10) == THREE[:10]  # segment 0 now cached
        r.seek(S + 5)
        with pytest.raises(BadSegment):
            r.read(10)  # decrypts segment 1 into the cache buffer, fails
        r.seek(20)
        assert r.read(10) == THREE[20:30]


def test_failed_segment_leaves_no_plaintext_in_caller_buffer() -> None:
    # A whole-segment read decrypts straight into the caller's buffer; a failed tag
    # must not leave the (unauthenticated, almost correct) plaintext there.
    blob = bytearray(THREE_BLOB)
    blob[HEADER_SIZE + 10] ^= 0x01
    buf = bytearray(b"\xaa" * S)
    with open_blob(bytes(blob)) as r, pytest.raises(BadSegment):
        r.readinto(buf)
    assert THREE[:64] not in buf
    assert buf.count(0) + buf.count(0xAA) == S


def test_flipped_tag_of_empty_blob_fails_at_open() -> None:
    blob = bytearray(seal(b""))
    blob[-1] ^= 1
    with pytest.raises(BadSegment):
        open_blob(bytes(blob))


def test_wrong_user_id() -> None:
    with pytest.raises(BadHeader):
        open_blob(THREE_BLOB, user_id=USER + 1)


def test_wrong_blob_id() -> None:
    with pytest.raises(BadHeader) as exc:
        open_blob(THREE_BLOB, blob_id=bytes(16))
    assert bytes(16).hex() in str(exc.value)


def test_unknown_key_version_propagates_and_closes_source() -> None:
    src = io.BytesIO(THREE_BLOB)
    with pytest.raises(UnknownKeyVersion):
        EnvelopeReader(src, key_for_version=keys_for(version=9), user_id=USER, blob_id=BLOB)
    assert src.closed


def test_wrong_user_key() -> None:
    with pytest.raises(BadHeader):
        open_blob(THREE_BLOB, key_for_version=keys_for(key=bytes(32)))


@pytest.mark.parametrize(
    ("offset", "value", "problem"),
    [
        (6, 2, "unsupported version"),
        (7, 2, "AEAD"),
        (8, 17, "segment size"),
        (9, 1, "reserved"),
        (11, 1, "reserved"),
    ],
)
def test_structural_checks_hold_even_under_a_valid_mac(offset: int, value: int, problem: str):
    # Someone holding the key could forge a MAC for a header this reader does not
    # understand; it must still be refused for what it is, not misread.
    header = bytearray(THREE_BLOB[:64])
    header[offset] = value
    _, hk = reference_keys(URK, USER, bytes(header))
    forged = bytes(header) + hmac.new(hk, header, hashlib.sha256).digest() + THREE_BLOB[96:]
    with pytest.raises(BadHeader, match=problem):
        open_blob(forged)


def test_header_fields_bind_the_key_version() -> None:
    # Re-labelling a blob with another key version that maps to the same key still fails.
    blob = bytearray(THREE_BLOB)
    blob[15] = VERSION + 1
    with pytest.raises(BadHeader):
        decrypt_all(bytes(blob), key_for_version=any_version)


# --- sizes ------------------------------------------------------------------------------------


@given(st.integers(0, 1 << 44))
def test_plain_size_inverts_cipher_size(n: int) -> None:
    assert plain_size(cipher_size(n)) == n
    assert cipher_size(n + 1) > cipher_size(n)


def test_impossible_sizes_are_rejected_exhaustively() -> None:
    limit = HEADER_SIZE + 3 * CSEG + 10
    valid = {cipher_size(n) for n in range(3 * S + 1)}
    for c in range(limit):
        if c in valid:
            assert cipher_size(plain_size(c)) == c
        else:
            with pytest.raises(BadLength):
                plain_size(c, blob="cafe")


def test_specific_sizes() -> None:
    assert cipher_size(0) == HEADER_SIZE + TAG_SIZE
    assert cipher_size(S) == HEADER_SIZE + CSEG
    assert cipher_size(S + 1) == HEADER_SIZE + CSEG + 1 + TAG_SIZE
    with pytest.raises(BadLength) as exc:
        plain_size(HEADER_SIZE + CSEG + TAG_SIZE, blob="cafe")  # bare tag after a full segment
    assert "cafe" in str(exc.value)
    with pytest.raises(ValueError):
        cipher_size(-1)


# --- fuzzing: never wrong bytes -------------------------------------------------------------

FUZZ_PLAIN = payload(S + 200, seed=5)
FUZZ_BLOB = seal(FUZZ_PLAIN)


def outcome(blob: bytes) -> bytes | None:
    """The plaintext, or None if the reader refused with an integrity error."""
    try:
        return decrypt_all(blob, key_for_version=any_version)
    except IntegrityError:
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, len(FUZZ_BLOB) - 1), st.integers(1, 255)), max_size=4),
    cut=st.integers(0, len(FUZZ_BLOB)),
    tail=st.binary(max_size=64),
)
def test_mutated_blob_never_yields_wrong_bytes(
    flips: list[tuple[int, int]], cut: int, tail: bytes
) -> None:
    blob = bytearray(FUZZ_BLOB)
    for pos, mask in flips:
        blob[pos] ^= mask
    mutated = bytes(blob[:cut]) + tail
    result = outcome(mutated)
    assert result is None or result == FUZZ_PLAIN
    if mutated != FUZZ_BLOB:
        assert result is None


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2 * CSEG))
def test_random_bytes_are_refused(data: bytes) -> None:
    assert outcome(data) is None


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=CSEG + 40))
def test_valid_header_with_random_body_is_refused(body: bytes) -> None:
    assert outcome(FUZZ_BLOB[:HEADER_SIZE] + body) is None


# --- known answer -----------------------------------------------------------------------------

KAT_URK = bytes(range(32))
KAT_USER = 7
KAT_VERSION = 1
KAT_BLOB_ID = bytes(range(16))
KAT_SALT = bytes(range(32, 64))
KAT_PLAIN = b"davdisk known answer" * 5000  # 100 000 bytes: one full and one partial segment
KAT_SHA256 = "88e18bc97ed3d1858ff35f86e4947256ee26489e02230f0b5b571a9dea6408e7"


def reference_keys(urk: bytes, user_id: int, header: bytes) -> tuple[bytes, bytes]:
    """(CK, HK) per DESIGN.md: HKDF-SHA256 over the first 64 header bytes."""
    info = b"davenc/v1" + user_id.to_bytes(8, "big") + header
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=header[16:48], info=info).derive(urk)
    return okm[:32], okm[32:]


def reference_seal(urk: bytes, user_id: int, version: int, blob_id: bytes, salt: bytes,
                   plain: bytes) -> bytes:  # fmt: skip
    """DAVENC v1 written straight from DESIGN.md, sharing no code with envelope.py."""
    header = b"DAVENC" + bytes([1, 1, 16, 0, 0, 0]) + version.to_bytes(4, "big") + salt + blob_id
    ck, hk = reference_keys(urk, user_id, header)
    out = [header, hmac.new(hk, header, hashlib.sha256).digest()]
    pieces = [plain[i : i + 65536] for i in range(0, len(plain), 65536)] or [b""]
    for i, piece in enumerate(pieces):
        nonce = i.to_bytes(11, "big") + (b"\x01" if i == len(pieces) - 1 else b"\x00")
        out.append(AESGCM(ck).encrypt(nonce, piece, None))
    return b"".join(out)


def test_known_answer_vector() -> None:
    blob = seal(
        KAT_PLAIN,
        1000,
        key=KAT_URK,
        user_id=KAT_USER,
        version=KAT_VERSION,
        blob_id=KAT_BLOB_ID,
        salt=KAT_SALT,
    )
    reference = reference_seal(KAT_URK, KAT_USER, KAT_VERSION, KAT_BLOB_ID, KAT_SALT, KAT_PLAIN)
    assert blob == reference
    assert hashlib.sha256(blob).hexdigest() == KAT_SHA256
    reader = EnvelopeReader(
        io.BytesIO(reference),
        key_for_version=lambda v: KAT_URK,
        user_id=KAT_USER,
        blob_id=KAT_BLOB_ID,
    )
    with reader:
        assert reader.read() == KAT_PLAIN


@pytest.mark.parametrize("size", [0, 1, S, S + 1])
def test_reference_agrees_at_boundaries(size: int) -> None:
    plain = payload(size)
    assert seal(plain, salt=KAT_SALT) == reference_seal(URK, USER, VERSION, BLOB, KAT_SALT, plain)
