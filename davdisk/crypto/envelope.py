"""DAVENC v1: the streaming encrypted envelope every stored blob is wrapped in.

This module turns a plaintext stream into one self-describing ciphertext blob
(:class:`EnvelopeWriter`) and gives verified, seekable plaintext back
(:class:`EnvelopeReader`). It knows nothing of users, paths, storage or HTTP:
callers hand it a user root key (URK), the user id and the blob id.

Blob layout (all integers big-endian)::

    off  len  field
    0    6    magic b"DAVENC"
    6    1    format version (1; readers accept SUPPORTED_VERSIONS)
    7    1    AEAD id: 1 = AES-256-GCM
    8    1    log2 of the plaintext segment size: 16 -> 64 KiB
    9    3    zero (reserved)
    12   4    user-key version (which URK of the user encrypted this blob)
    16   32   random salt, fresh per blob
    48   16   blob id (raw bytes; also the blob's storage key)
    64   32   HMAC-SHA256(HK, bytes 0..63)
    96   ...  segments: AES-256-GCM(CK, nonce = 11-byte segment index || final flag byte),
              no associated data; each is ciphertext || 16-byte tag

Per-blob keys are derived, never stored::

    CK || HK = HKDF-SHA256(URK, length=64, salt=salt,
                           info=b"davenc/v1" || user_id (8 bytes) || header[0:64])

Every plaintext segment is SEGMENT_SIZE bytes except the last, which carries
final flag 1; an empty plaintext is one empty final segment (a bare tag).
Because the final flag and the index are in the nonce, truncation at a
segment boundary, appended or reordered segments, and any flipped bit all fail
authentication. Ciphertext size is a pure function of plaintext size
(:func:`cipher_size` / :func:`plain_size`), so a reader can find any segment
without an index and a range read decrypts only the segments it touches.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
from collections.abc import Callable
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from davdisk.errors import BadHeader, BadLength, BadSegment, KeyMaterialError

MAGIC = b"DAVENC"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
AEAD_AES256GCM = 1
SEGMENT_SHIFT = 16
SEGMENT_SIZE = 1 << SEGMENT_SHIFT
HEADER_SIZE = 96
TAG_SIZE = 16
SALT_SIZE = 32
BLOB_ID_SIZE = 16
KEY_SIZE = 32

_MAC_OFFSET = 64  # header bytes 0..63 are authenticated by the MAC stored at 64..95
_CIPHER_SEGMENT = SEGMENT_SIZE + TAG_SIZE
_BATCH = 16  # encrypted segments a writer collects before writing them out (1 MiB), by default
_INFO_PREFIX = b"davenc/v1"
_FINAL = b"\x01"
_NOT_FINAL = b"\x00"


# --- sizes -------------------------------------------------------------------------------


def segment_count(plain_size: int) -> int:
    """Number of segments for a plaintext of ``plain_size`` bytes (an empty file has one)."""
    return max(1, -(-plain_size // SEGMENT_SIZE))


def cipher_size(plain_size: int) -> int:
    """Exact blob size for a plaintext of ``plain_size`` bytes."""
    if plain_size < 0:
        raise ValueError(f"negative plaintext size {plain_size}")
    return HEADER_SIZE + plain_size + TAG_SIZE * segment_count(plain_size)


def plain_size(cipher_size: int, *, blob: str = "?") -> int:
    """Inverse of :func:`cipher_size`; raises :class:`BadLength` for sizes no plaintext yields."""
    body = cipher_size - HEADER_SIZE
    if body < TAG_SIZE:
        raise BadLength(f"{cipher_size} bytes is too short for a DAVENC blob", blob=blob)
    count = -(-body // _CIPHER_SEGMENT)
    last = body - (count - 1) * _CIPHER_SEGMENT
    # Only a lone segment may be empty: a bare tag after full segments means the writer
    # would have marked the previous segment final instead.
    if last < TAG_SIZE or (count > 1 and last == TAG_SIZE):
        raise BadLength(f"{cipher_size} bytes is not a possible DAVENC blob size", blob=blob)
    return body - TAG_SIZE * count


def cipher_span(start: int, end: int, plain_size: int) -> tuple[int, int]:
    """The stored bytes [start, end) a reader needs, after the header, to return plaintext
    bytes [start, end) of a blob of ``plain_size`` (whole segments; a span that reaches the
    end takes the final segment, whose flag proves the end)."""
    end = min(end, plain_size)
    if start >= end:
        last = segment_count(plain_size) - 1
        return HEADER_SIZE + last * _CIPHER_SEGMENT, cipher_size(plain_size)
    first, last = start // SEGMENT_SIZE, (end - 1) // SEGMENT_SIZE
    stop = HEADER_SIZE + (last + 1) * _CIPHER_SEGMENT
    return HEADER_SIZE + first * _CIPHER_SEGMENT, min(stop, cipher_size(plain_size))


# --- header and keys -----------------------------------------------------------------------


def _build_header(key_version: int, salt: bytes, blob_id: bytes) -> bytes:
    """The first 64 header bytes (everything the MAC covers)."""
    return b"".join(
        (
            MAGIC,
            bytes((VERSION, AEAD_AES256GCM, SEGMENT_SHIFT)),
            bytes(3),
            key_version.to_bytes(4, "big"),
            salt,
            blob_id,
        )
    )


def _derive(user_key: bytes, user_id: int, header64: bytes) -> tuple[bytes, bytes]:
    """Per-blob (CK, HK) from the user root key and the header being written or read."""
    if len(user_key) != KEY_SIZE:
        raise KeyMaterialError(f"user key must be {KEY_SIZE} bytes, got {len(user_key)}")
    salt = header64[16:48]
    info = _INFO_PREFIX + user_id.to_bytes(8, "big") + header64
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=info).derive(user_key)
    return okm[:32], okm[32:]


def _mac(hk: bytes, header64: bytes) -> bytes:
    return hmac.new(hk, header64, hashlib.sha256).digest()


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (_FINAL if final else _NOT_FINAL)


def _check_range(name: str, value: int, nbytes: int) -> None:
    if not 0 <= value < 1 << (8 * nbytes):
        raise ValueError(f"{name} {value} does not fit in {nbytes} bytes")


# --- writer ---------------------------------------------------------------------------------


class EnvelopeWriter:
    """Encrypts a plaintext stream of unknown length into ``out``.

    The header is written at construction. Data may arrive in chunks of any size;
    one segment is always held back so that the last one can be marked final when
    :meth:`close` says the stream ended. Not closing leaves a blob without a final
    segment, which every reader rejects — exactly what an aborted upload should be.
    ``out`` must consume the bytes passed to ``out.write`` before returning (all
    standard files do): the segment buffer is reused.
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        user_key: bytes,
        user_id: int,
        key_version: int,
        blob_id: bytes,
        salt: bytes | None = None,
        batch: int = _BATCH,
    ) -> None:
        """``batch``: segments collected before one write to ``out`` (fewer system calls to a
        file; an ``out`` that buffers by itself needs no big batch)."""
        if len(blob_id) != BLOB_ID_SIZE:
            raise ValueError(f"blob id must be {BLOB_ID_SIZE} bytes, got {len(blob_id)}")
        if salt is None:
            salt = os.urandom(SALT_SIZE)
        elif len(salt) != SALT_SIZE:
            raise ValueError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
        _check_range("user id", user_id, 8)
        _check_range("key version", key_version, 4)
        header64 = _build_header(key_version, bytes(salt), bytes(blob_id))
        ck, hk = _derive(user_key, user_id, header64)
        self._out = out
        self._batch = max(1, batch)
        self._aead = AESGCM(ck)
        self._pending = bytearray(SEGMENT_SIZE)  # the held-back segment
        self._fill = 0
        # Encrypted segments collect here and go out in one write per call (or per _BATCH
        # segments): one system call per MiB rather than one per segment. Room for one
        # segment until a write brings more (a small file needs no MiB).
        self._cbuf = memoryview(bytearray(_CIPHER_SEGMENT))
        self._cfill = 0
        self._index = 0
        self._closed = False
        self._cipher_bytes = 0
        self.plain_bytes = 0
        self._write_all(memoryview(header64 + _mac(hk, header64)))

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Accept ``data`` (any length); returns ``len(data)`` in bytes."""
        if self._closed:
            raise ValueError("write to a closed EnvelopeWriter")
        mv = memoryview(data).cast("B")
        n = len(mv)
        if n > SEGMENT_SIZE and len(self._cbuf) < self._batch * _CIPHER_SEGMENT and not self._cfill:
            self._cbuf = memoryview(bytearray(self._batch * _CIPHER_SEGMENT))
        pos = 0
        while pos < n:
            if self._fill == SEGMENT_SIZE:
                # More bytes exist, so the held-back segment is not the last one.
                self._emit(self._pending, final=False)
                self._fill = 0
            if self._fill == 0 and n - pos > SEGMENT_SIZE:
                # A whole segment with bytes after it: encrypt straight from the caller's buffer.
                self._emit(mv[pos : pos + SEGMENT_SIZE], final=False)
                pos += SEGMENT_SIZE
                continue
            take = min(SEGMENT_SIZE - self._fill, n - pos)
            self._pending[self._fill : self._fill + take] = mv[pos : pos + take]
            self._fill += take
            pos += take
        self._flush()
        self.plain_bytes += n
        return n

    def close(self) -> int:
        """Write the final segment; returns the blob's total size. Leaves ``out`` open."""
        if not self._closed:
            self._emit(memoryview(self._pending)[: self._fill], final=True)
            self._flush()
            self._closed = True
            self._fill = 0
        return self._cipher_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    def _emit(self, plain: bytes | bytearray | memoryview, *, final: bool) -> None:
        if self._cfill + _CIPHER_SEGMENT > len(self._cbuf):
            self._flush()
        end = self._cfill + len(plain) + TAG_SIZE
        self._aead.encrypt_into(
            _nonce(self._index, final), plain, None, self._cbuf[self._cfill : end]
        )
        self._index += 1
        self._cfill = end

    def _flush(self) -> None:
        if self._cfill:
            # Forget the batch before writing: a failed write (disk full) must not be retried
            # by a later flush and so put segments out of order.
            view, self._cfill = self._cbuf[: self._cfill], 0
            self._write_all(view)

    def _write_all(self, view: memoryview) -> None:
        # Raw (unbuffered) files may write short; buffered ones return len or None.
        while view:
            written = self._out.write(view)
            if written is None or written >= len(view):
                self._cipher_bytes += len(view)
                return
            self._cipher_bytes += written
            view = view[written:]


# --- reader ---------------------------------------------------------------------------------


class EnvelopeReader(io.RawIOBase):
    """Verified, seekable plaintext view of a DAVENC blob.

    The header is checked at construction; each read decrypts only the segments it
    covers and raises before handing out a byte of a segment that does not verify.
    One decrypted segment is cached for sequential and small reads. The reader owns
    ``src``: closing the reader (or a failed construction) closes it. Not thread-safe.
    """

    def __init__(
        self,
        src: BinaryIO,
        *,
        key_for_version: Callable[[int], bytes],
        user_id: int,
        blob_id: bytes,
        expected_plain_size: int | None = None,
    ) -> None:
        super().__init__()
        self._src = src
        self._blob = bytes(blob_id).hex()
        try:
            self._open(key_for_version, user_id, bytes(blob_id), expected_plain_size)
        except BaseException:
            src.close()
            raise

    def _open(
        self,
        key_for_version: Callable[[int], bytes],
        user_id: int,
        blob_id: bytes,
        expected: int | None,
    ) -> None:
        self._src.seek(0)
        # Like segments, the header may arrive in short reads from a raw source.
        buf = bytearray(HEADER_SIZE)
        header = bytes(buf[: _read_exact(self._src, memoryview(buf))])
        self.key_version = self._parse_header(header, blob_id)
        header64 = header[:_MAC_OFFSET]
        ck, hk = _derive(key_for_version(self.key_version), user_id, header64)
        if not hmac.compare_digest(_mac(hk, header64), header[_MAC_OFFSET:HEADER_SIZE]):
            raise BadHeader("MAC mismatch (wrong key, user or tampered header)", blob=self._blob)
        self._aead = AESGCM(ck)
        total = self._src.seek(0, io.SEEK_END)
        self._src_pos = total
        self.size = plain_size(total, blob=self._blob)
        if expected is not None and expected != self.size:
            raise BadLength(
                f"ciphertext holds {self.size} plaintext bytes, expected {expected}",
                blob=self._blob,
            )
        self._count = segment_count(self.size)
        self._pos = 0
        self._cbuf = memoryview(bytearray(_CIPHER_SEGMENT))
        self._cache = memoryview(bytearray(SEGMENT_SIZE))
        self._cache_index = -1
        self._end_verified = False  # set once the final segment has authenticated
        if self.size == 0:
            # No read would ever touch the lone empty segment; verify its tag now.
            self._decrypt(0, self._cache[:0])

    def _parse_header(self, header: bytes, blob_id: bytes) -> int:
        """Structural header checks (before any key is looked up); returns the key version."""
        problem = None
        if len(header) < HEADER_SIZE:
            problem = f"only {len(header)} header bytes"
        elif header[:6] != MAGIC:
            problem = "bad magic"
        elif header[6] not in SUPPORTED_VERSIONS:
            problem = f"unsupported version {header[6]}"
        elif header[7] != AEAD_AES256GCM:
            problem = f"unknown AEAD id {header[7]}"
        elif header[8] != SEGMENT_SHIFT:
            problem = f"unsupported segment size 2**{header[8]}"
        elif header[9:12] != bytes(3):
            problem = "reserved bytes are not zero"
        elif header[48:64] != blob_id:
            problem = f"header names blob {header[48:64].hex()}"
        if problem:
            raise BadHeader(problem, blob=self._blob)
        return int.from_bytes(header[12:16], "big")

    # io.RawIOBase interface

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            new = offset
        elif whence == io.SEEK_CUR:
            new = self._pos + offset
        elif whence == io.SEEK_END:
            new = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if new < 0:
            raise ValueError(f"negative seek position {new}")
        self._pos = new
        return new

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self._check_open()
        if self._pos >= self.size and not self._end_verified:
            # End of file is a claim too: a blob cut at a segment boundary has a valid
            # length, and only the final segment's flag tells that it was cut short.
            self._fill_cache(self._count - 1)
        out = memoryview(buffer).cast("B")
        want = min(len(out), self.size - self._pos)
        done = 0
        while done < want:
            index, offset = divmod(self._pos, SEGMENT_SIZE)
            seg_len = self._segment_len(index)
            n = min(seg_len - offset, want - done)
            if n == seg_len and index != self._cache_index:
                # The caller wants the whole segment: decrypt straight into its buffer.
                self._decrypt(index, out[done : done + n])
            else:
                self._fill_cache(index)
                out[done : done + n] = self._cache[offset : offset + n]
            done += n
            self._pos += n
        return done

    def readall(self) -> bytes:
        # RawIOBase.readall would loop in 8 KiB reads; read the rest in one go instead.
        rest = bytearray(max(0, self.size - self._pos))
        n = self.readinto(rest)
        del rest[n:]
        return bytes(rest)

    def close(self) -> None:
        if not self.closed:
            try:
                self._src.close()
            finally:
                super().close()

    # internals

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed EnvelopeReader")

    def _segment_len(self, index: int) -> int:
        if index < self._count - 1:
            return SEGMENT_SIZE
        return self.size - (self._count - 1) * SEGMENT_SIZE

    def _fill_cache(self, index: int) -> None:
        if index == self._cache_index:
            return
        self._cache_index = -1  # a failed decryption must not leave a "valid" cache behind
        self._decrypt(index, self._cache[: self._segment_len(index)])
        self._cache_index = index

    def _decrypt(self, index: int, dest: memoryview) -> None:
        """Read segment ``index`` from ``src`` and decrypt it into ``dest`` (exactly its size)."""
        clen = len(dest) + TAG_SIZE
        where = HEADER_SIZE + index * _CIPHER_SEGMENT
        if self._src_pos != where:
            self._src.seek(where)
        cbuf = self._cbuf[:clen]
        got = _read_exact(self._src, cbuf)
        self._src_pos = where + got
        if got != clen:
            raise BadLength(f"ciphertext ended inside segment {index}", blob=self._blob)
        final = index == self._count - 1
        try:
            self._aead.decrypt_into(_nonce(index, final), cbuf, None, dest)
        except InvalidTag:
            # decrypt_into has already written unverified plaintext: wipe it.
            dest[:] = bytes(len(dest))
            raise BadSegment(blob=self._blob, index=index) from None
        self._end_verified = self._end_verified or final


def _read_exact(src: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``src`` unless EOF comes first; returns the bytes read."""
    readinto = getattr(src, "readinto", None)
    done = 0
    while done < len(view):
        if readinto is not None:
            n = readinto(view[done:])
        else:
            chunk = src.read(len(view) - done)
            n = len(chunk)
            view[done : done + n] = chunk
        if not n:
            break
        done += n
    return done
