"""A BlobStore in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, SeaweedFS, Garage, R2).

Objects are named ``<prefix><id[0:2]>/<id>``; nothing else under the prefix is ours, and listing
skips it. Blobs are immutable and ids never reused, so a blob's first bytes (the envelope header)
are cached in memory after the first read: a Range GET is then one ranged S3 GET.

Writing: the envelope writer's bytes collect in a part buffer. A blob that ends before the buffer
is full is stored by one PutObject at :meth:`BlobUpload.commit`; a bigger one becomes a multipart
upload (CreateMultipartUpload at the first full part, UploadPart per part, and
CompleteMultipartUpload at commit). S3 makes an object visible only whole and durable, so either
call is the durability point, as fsync-then-link is on a local disk; the database commit comes
after it. Parts are ``part_size`` bytes for the first thousand, then twice that for the next
thousand, and so on (capped at 5 GiB): an upload of unknown size never needs more than 10 000
parts, and a small one no big buffer.

Memory: buffers of a full part are taken from one :class:`PartBudget` per process, so 64 uploads
at once hold at most ``memory`` bytes of parts (plus 256 KiB each of unbudgeted head, which is
all a small file ever needs). An upload waits for the budget while it holds none of it, so waiting
cannot deadlock; the client's body waits in TCP meanwhile. A part is in memory once: its buffer is
allocated whole when the budget is taken (growing it would over-allocate and copy) and handed to
boto3 as it is, a bytearray (a ``bytes`` copy would be joined to the request head by botocore
before sending: two more copies of every part in flight).

Reading: a reader fetches windows with ranged GETs: the range a caller announced (``span``, from
an HTTP Range), else windows that double from 4 MiB to 64 MiB, streamed rather than buffered. A
window cut short (a dropped connection) is reopened where it stopped, once.

Crash hygiene: a multipart upload cut by a crash stays in the bucket until aborted;
:meth:`S3BlobStore.remove_stale_uploads` (``davdisk gc``) aborts those whose last part is older
than gc's age limit. Objects stored but never committed to the database are found through the
database's record of pending uploads (files/content.py), or by ``gc --deep``'s listing.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from davdisk.blobs.base import BlobInfo, BlobStore, BlobUpload, check_blob_id
from davdisk.errors import BlobStoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

logger = logging.getLogger(__name__)

_HEAD = 256 << 10  # bytes an upload buffers before it takes a part's worth of the budget
_MAX_PART = 5 << 30  # S3's largest part
_MAX_PARTS = 10_000
_HEADER_BYTES = 96  # the envelope header (crypto/envelope.py HEADER_SIZE), cached per blob
_HEADER_CACHE = 20_000  # headers kept (about 200 bytes each with their keys)
_SKIP = 1 << 20  # bytes of an open window read past rather than opening another
_FIRST_WINDOW = 4 << 20
_MAX_WINDOW = 64 << 20
_TAKEN = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is and how to talk to it (``[blobs]`` of the configuration)."""

    bucket: str
    endpoint_url: str = ""  # "" = AWS
    prefix: str = ""
    region: str = ""
    access_key_id: str = ""  # "" = boto3's own lookup (AWS_ACCESS_KEY_ID, profiles, roles)
    secret_access_key: str = ""
    addressing_style: str = "path"
    part_size: int = 8 << 20
    memory: int = 96 << 20  # part buffers of all uploads of the process together
    delete_delay: float = 3600.0
    connections: int = 72

    def __repr__(self) -> str:  # never the secret
        return f"S3Settings(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r})"


def part_size_for(number: int, base: int) -> int:
    """Size of part ``number`` (1-based): ``base`` for the first thousand, doubling for each
    thousand after, so 10 000 parts hold far more than S3's 5 TiB largest object."""
    return min(_MAX_PART, base << ((number - 1) // 1000))


class PartBudget:
    """Bytes of part buffers all uploads of a process may hold at once (FIFO waiting).

    A request bigger than the whole budget is granted when nothing else is held, so a huge part
    still goes through, alone."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._cond = threading.Condition()
        self._queue: list[object] = []

    def acquire(self, n: int) -> None:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or (self.used and self.used + n > self.limit):
                    self._cond.wait()
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()
            self.used += n
            self.peak = max(self.peak, self.used)

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self._cond.notify_all()


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error", {})
    return str(error.get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


def _is_missing(exc: BaseException) -> bool:
    return _code(exc) in _MISSING


class _PartWriter(io.RawIOBase):
    """What the envelope writer writes to: the upload's part buffer."""

    def __init__(self, upload: _S3Upload) -> None:
        super().__init__()
        self._upload = upload

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._upload.add(memoryview(data).cast("B"))


class _S3Upload(BlobUpload):
    def __init__(self, store: S3BlobStore, blob_id: str) -> None:
        self._store = store
        self._s3 = store.client
        self._bucket = store.settings.bucket
        self._key = store.key_of(blob_id)
        self.file = _PartWriter(self)  # type: ignore[assignment]
        self._buf = bytearray()
        self._filled = 0  # bytes of the part in _buf (allocated whole once reserved)
        self._reserved = 0
        self._upload_id: str | None = None
        self._parts: list[Any] = []
        self._size = 0
        self._done = False

    def _part_limit(self) -> int:
        return part_size_for(len(self._parts) + 1, self._store.settings.part_size)

    def add(self, view: memoryview) -> int:
        if self._done:
            raise ValueError("write to a finished upload")
        n = len(view)
        while view:
            limit = self._part_limit()
            take = view[: limit - self._filled]
            end = self._filled + len(take)
            if not self._reserved and end > _HEAD:
                self._reserved = limit
                self._store.budget.acquire(limit)
                part = bytearray(limit)
                part[: self._filled] = self._buf
                self._buf = part
            if self._reserved:
                self._buf[self._filled : end] = take
            else:
                self._buf += take
            self._filled = end
            view = view[len(take) :]
            if self._filled >= limit:
                self._send_part()
        self._size += n
        return n

    def _body(self) -> bytearray:
        """The part's bytes, without copying (see the module docstring)."""
        del self._buf[self._filled :]
        return self._buf

    def _release(self) -> None:
        if self._reserved:
            self._store.budget.release(self._reserved)
            self._reserved = 0

    def _send_part(self) -> None:
        with self._store.failures(missing=FileNotFoundError):  # an upload gc aborted
            if self._upload_id is None:
                started = self._s3.create_multipart_upload(Bucket=self._bucket, Key=self._key)
                self._upload_id = started["UploadId"]
            number = len(self._parts) + 1
            sent = self._s3.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=cast(Any, self._body()),
            )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})
        self._buf = bytearray()
        self._filled = 0
        self._release()

    def commit(self) -> int:
        if self._done:
            raise RuntimeError("upload already finished")
        try:
            # If-None-Match: "*" stores only if no object has the key (ids are never reused;
            # a server that ignores the header still never meets an existing id in practice).
            if self._upload_id is None:
                with self._store.failures(missing=FileNotFoundError):
                    self._s3.put_object(
                        Bucket=self._bucket,
                        Key=self._key,
                        Body=cast(Any, self._body()),
                        IfNoneMatch="*",
                    )
            else:
                if self._filled:
                    self._send_part()
                # An upload gc aborted meanwhile is missing: FileNotFoundError, an OSError.
                with self._store.failures(missing=FileNotFoundError):
                    self._s3.complete_multipart_upload(
                        Bucket=self._bucket,
                        Key=self._key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                        IfNoneMatch="*",
                    )
        except BaseException:
            self.abort()
            raise
        self._done = True
        self._buf = bytearray()
        self._release()
        return self._size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buf = bytearray()
        self._release()
        if self._upload_id is not None:
            try:
                self._s3.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            except Exception as e:
                # Left in the bucket: gc aborts it once it is older than its age limit.
                logger.warning("could not abort multipart upload of %s: %s", self._key, e)


class _S3Reader(io.RawIOBase):
    """Seekable stored bytes of one blob, fetched by ranged GETs (see the module docstring)."""

    def __init__(
        self, store: S3BlobStore, blob_id: str, size: int | None, span: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self._store = store
        self._id = blob_id
        self._key = store.key_of(blob_id)
        self._header = store.cached_header(blob_id)
        self._head_bytes = bytearray()  # the header as it is read, to cache
        if size is None:
            size = store.object_size(blob_id)
        self._size = size
        self._span = span
        self._pos = 0
        self._body: Any = None
        self._body_pos = 0
        self._body_end = 0
        self._window = _FIRST_WINDOW

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        elif whence == io.SEEK_END:
            self._pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        return self._pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        want = min(len(out), self._size - self._pos)
        if want <= 0:
            return 0
        if self._header is not None and self._pos < len(self._header):
            n = min(want, len(self._header) - self._pos)
            out[:n] = self._header[self._pos : self._pos + n]
            self._pos += n
            return n
        for attempt in (1, 2):
            if self._body is not None and 0 < self._pos - self._body_pos <= _SKIP:
                self._skip_to(self._pos)  # a little ahead in the open window: read past it
            if self._body is None or self._body_pos != self._pos:
                self._open_at(self._pos)
            try:
                data = self._body.read(min(want, self._body_end - self._body_pos))
            except Exception as e:
                if attempt == 2 or _is_missing(e):
                    raise
                logger.info("S3 read of %s cut (%s); reopening at %d", self._key, e, self._pos)
                self._close_body()
                continue
            if data:
                break
            self._close_body()  # the window ended early: open the rest once more
            if attempt == 2:
                raise OSError(f"S3 object {self._key} ended at {self._pos} of {self._size}")
        n = len(data)
        out[:n] = data
        if self._header is None and self._pos < _HEADER_BYTES:
            self._head_bytes += data[: _HEADER_BYTES - self._pos]
            if len(self._head_bytes) >= _HEADER_BYTES:
                self._header = bytes(self._head_bytes[:_HEADER_BYTES])
                self._store.remember_header(self._id, self._header)
        self._pos += n
        self._body_pos += n
        if self._body_pos >= self._body_end:
            self._close_body()  # read whole: the connection goes back to the pool
        return n

    def _open_at(self, pos: int) -> None:
        self._close_body()
        span = self._span
        if span is not None and span[0] <= pos < span[1]:
            end = span[1]
        elif pos < _HEADER_BYTES and span is not None and span[0] >= _HEADER_BYTES:
            # The header, and the announced range with it if it begins near enough: one GET.
            end = span[1] if span[0] - _HEADER_BYTES <= _SKIP else _HEADER_BYTES
        else:
            end = pos + self._window
            self._window = min(self._window * 2, _MAX_WINDOW)
        end = min(end, self._size)
        with self._store.failures(missing=FileNotFoundError):
            got = self._store.client.get_object(
                Bucket=self._store.settings.bucket, Key=self._key, Range=f"bytes={pos}-{end - 1}"
            )
        self._body = got["Body"]
        self._body_pos = pos
        self._body_end = end

    def _skip_to(self, pos: int) -> None:
        try:
            while self._body_pos < pos:
                got = self._body.read(min(pos - self._body_pos, 1 << 16))
                if not got:
                    break
                self._body_pos += len(got)
        except Exception:
            self._close_body()  # reopened where wanted
        if self._body_pos != pos:
            self._close_body()

    def _close_body(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            with contextlib.suppress(Exception):  # a half-read response: its socket goes
                body.close()

    def close(self) -> None:
        self._close_body()
        super().close()


class S3BlobStore(BlobStore):
    tracks_uploads = True
    listing_is_cheap = False
    write_block = 256 << 10  # the part buffer gathers them

    def __init__(self, settings: S3Settings, *, client: S3Client | None = None) -> None:
        self.settings = settings
        self.delete_delay = settings.delete_delay
        prefix = settings.prefix.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._key_re = re.compile(re.escape(self._prefix) + r"[0-9a-f]{2}/([0-9a-f]{32})\Z")
        self.client: S3Client = client or make_client(settings)
        self.budget = PartBudget(settings.memory)
        self._headers: OrderedDict[str, bytes] = OrderedDict()
        self._headers_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3BlobStore({self.where})"

    @property
    def where(self) -> str:
        endpoint = self.settings.endpoint_url or "AWS"
        return f"s3://{self.settings.bucket}/{self._prefix} at {endpoint}"

    def failures(self, missing: type[Exception] | None = None) -> Any:
        return _failures(self, missing)

    def key_of(self, blob_id: str) -> str:
        check_blob_id(blob_id)
        return f"{self._prefix}{blob_id[:2]}/{blob_id}"

    def check(self) -> None:
        """Raise :class:`BlobStoreUnavailable` unless the bucket answers (at start-up)."""
        with self.failures():
            self.client.head_bucket(Bucket=self.settings.bucket)

    # --- headers --------------------------------------------------------------------------

    def cached_header(self, blob_id: str) -> bytes | None:
        with self._headers_lock:
            return self._headers.get(blob_id)

    def remember_header(self, blob_id: str, header: bytes) -> None:
        with self._headers_lock:
            self._headers[blob_id] = header
            if len(self._headers) > _HEADER_CACHE:
                self._headers.popitem(last=False)

    # --- BlobStore ------------------------------------------------------------------------

    def upload(self, blob_id: str) -> BlobUpload:
        return _S3Upload(self, blob_id)

    def open(
        self, blob_id: str, *, size: int | None = None, span: tuple[int, int] | None = None
    ) -> BinaryIO:
        return _S3Reader(self, blob_id, size, span)  # type: ignore[return-value]

    def object_size(self, blob_id: str) -> int:
        with self.failures(missing=FileNotFoundError):
            head = self.client.head_object(Bucket=self.settings.bucket, Key=self.key_of(blob_id))
        return int(head["ContentLength"])

    def stored_at(self, blob_id: str) -> float | None:
        try:
            with self.failures(missing=FileNotFoundError):
                head = self.client.head_object(
                    Bucket=self.settings.bucket, Key=self.key_of(blob_id)
                )
        except FileNotFoundError:
            return None
        return float(head["LastModified"].timestamp())

    def exists(self, blob_id: str) -> bool:
        try:
            self.object_size(blob_id)
        except FileNotFoundError:
            return False
        return True

    def delete(self, blob_id: str) -> bool:
        if not self.exists(blob_id):
            return False
        with self.failures():
            self.client.delete_object(Bucket=self.settings.bucket, Key=self.key_of(blob_id))
        with self._headers_lock:
            self._headers.pop(blob_id, None)
        return True

    def delete_many(self, blob_ids: Iterable[str]) -> int:
        """DeleteObjects, a thousand keys a request (a deleted user's blobs: one request per
        blob, let alone a HEAD first, would take hours for a big account)."""
        blob_ids = list(blob_ids)
        ids = [self.key_of(b) for b in blob_ids]
        removed = 0
        for start in range(0, len(ids), 1000):
            batch = ids[start : start + 1000]
            with self.failures():
                done = self.client.delete_objects(
                    Bucket=self.settings.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            failed = done.get("Errors", [])
            for error in failed[:3]:
                logger.warning("could not delete %s: %s", error.get("Key"), error.get("Message"))
            removed += len(batch) - len(failed)
        with self._headers_lock:
            for blob_id in blob_ids:
                self._headers.pop(blob_id, None)
        return removed

    def iter_blobs(self) -> Iterator[BlobInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.bucket, Prefix=self._prefix
        )
        with self.failures():
            for page in pages:
                for obj in page.get("Contents", []):
                    found = self._key_re.match(obj["Key"])
                    if found:
                        yield BlobInfo(
                            found.group(1), int(obj["Size"]), obj["LastModified"].timestamp()
                        )

    def _multipart_uploads(self) -> Iterator[tuple[str, str, str, float]]:
        """(blob id, key, upload id, time of its last activity) of every unfinished upload."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.settings.bucket, Prefix=self._prefix
        )
        with self.failures():
            for page in pages:
                for up in page.get("Uploads", []):
                    found = self._key_re.match(up["Key"])
                    if found:
                        yield found.group(1), up["Key"], up["UploadId"], up["Initiated"].timestamp()

    def _parts(self, key: str, upload_id: str) -> tuple[float, int]:
        """(time of the newest part or 0, bytes in parts) of one multipart upload."""
        newest, size = 0.0, 0
        pages = self.client.get_paginator("list_parts").paginate(
            Bucket=self.settings.bucket, Key=key, UploadId=upload_id
        )
        for page in pages:
            for part in page.get("Parts", []):
                newest = max(newest, part["LastModified"].timestamp())
                size += int(part["Size"])
        return newest, size

    def temp_uploads(self) -> list[BlobInfo]:
        found = []
        for blob_id, key, upload_id, initiated in self._multipart_uploads():
            try:
                with self.failures(missing=FileNotFoundError):
                    newest, size = self._parts(key, upload_id)
            except FileNotFoundError:
                continue  # finished or aborted meanwhile
            found.append(BlobInfo(f"{blob_id} (upload {upload_id})", size, max(initiated, newest)))
        return found

    def uploads_in_progress(self) -> set[str]:
        return {blob_id for blob_id, _k, _u, _t in self._multipart_uploads()}

    def remove_stale_uploads(self, min_age: float) -> tuple[int, int]:
        count = size = 0
        limit = time.time() - min_age
        for _blob_id, key, upload_id, initiated in list(self._multipart_uploads()):
            try:
                with self.failures(missing=FileNotFoundError):
                    newest, parts = self._parts(key, upload_id)
                    if max(initiated, newest) > limit:
                        continue  # still being written
                    self.client.abort_multipart_upload(
                        Bucket=self.settings.bucket, Key=key, UploadId=upload_id
                    )
            except FileNotFoundError:
                continue
            count += 1
            size += parts
        return count, size

    def free_bytes(self) -> int | None:
        return None


@contextlib.contextmanager
def _failures(store: S3BlobStore, missing: type[Exception] | None) -> Iterator[None]:
    """Maps boto3's errors to davdisk's: a missing object to ``missing`` (if given), anything
    else to :class:`BlobStoreUnavailable` naming the store (503, and one line in the CLI)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        if missing is not None and _is_missing(exc):
            raise missing(str(exc)) from None
        if _code(exc) in _TAKEN:
            raise FileExistsError(str(exc)) from None
        raise BlobStoreUnavailable(str(exc), where=store.where) from exc


def make_client(settings: S3Settings) -> S3Client:
    """One thread-safe client for the process: a connection pool as big as the server's
    threads, standard retries, and checksums only where S3 demands them (boto3 >= 1.36 adds
    CRC checksums to every upload by default, which many S3-compatible servers reject)."""
    import boto3
    from botocore.config import Config

    config = Config(
        region_name=settings.region or "us-east-1",
        signature_version="s3v4",
        s3=cast(Any, {"addressing_style": settings.addressing_style}),
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=settings.connections,
        connect_timeout=10,
        read_timeout=60,
        tcp_keepalive=True,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = boto3.session.Session()
    # None: boto3's own lookup (AWS_ACCESS_KEY_ID and the rest, profiles, instance roles).
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        config=config,
        aws_access_key_id=settings.access_key_id or None,
        aws_secret_access_key=settings.secret_access_key or None,
    )
