"""Writing a file's content: the stream WsgiDAV writes a PUT body into, and the resource of a PUT
to a name where nothing is yet (:class:`PendingFile`, which exists once its body is stored).

The body goes into a ``Files`` upload (encrypted and hashed as it arrives; committed, atomically,
when WsgiDAV closes the stream). Where WsgiDAV's reader allows it, the upload reads the body
itself, straight into its buffers (``wsgidav_compat.py``, ``take_over_put_body``).
"""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol

from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_NOT_FOUND, DAVError
from wsgidav.dav_provider import DAVNonCollection

from davdisk import lockkeys, wsgidav_compat
from davdisk.dav import liveprops
from davdisk.dav.errors import dav_errors
from davdisk.dav.host import Host, lock_guard, requested_mtime
from davdisk.dav.memo import forget
from davdisk.files.api import Files, Upload
from davdisk.model import Actor, Node


class Owner(Protocol):
    """The resource an upload stream writes for: told the entry its content was committed as."""

    environ: dict[str, Any]

    def _committed(self, entry: Node) -> None: ...


class Parent(Protocol):
    """The folder a :class:`PendingFile` is to appear in (a ``dav/resources.py`` Folder)."""

    entry: Node
    actor: Actor

    def get_ref_url(self) -> str: ...


class UploadStream:
    """What WsgiDAV writes a PUT body into; closing it commits the upload."""

    def __init__(self, owner: Owner, upload: Upload) -> None:
        self._owner = owner
        self._upload = upload

    def write(self, data: bytes) -> int:
        with dav_errors():  # e.g. 507 when a chunked body outgrows the quota
            return self._upload.write(data)

    def writelines(self, chunks: Any) -> None:
        # Straight from the body into the upload's buffers, when WsgiDAV's reader allows it.
        body = wsgidav_compat.take_over_put_body(self._owner.environ, chunks)
        if body is not None:
            with dav_errors():
                self._upload.write_from(body)
            return
        with dav_errors():
            self._upload.writelines(chunks)

    def close(self) -> None:
        with dav_errors():
            entry = self._upload.commit()
        self._owner._committed(entry)

    def abort(self) -> None:
        self._upload.abort()


def _expected_length(environ: dict[str, Any]) -> int | None:
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    raw = environ.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise DAVError(HTTP_BAD_REQUEST, "bad Content-Length") from None


def _size_hint(environ: dict[str, Any]) -> int | None:
    """Finder's ``X-Expected-Entity-Length`` for chunked bodies: a hint, used for early quota
    refusal only (the body itself decides the size)."""
    raw = environ.get("HTTP_X_EXPECTED_ENTITY_LENGTH")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class WritableMixin:
    environ: dict[str, Any]
    provider: Host
    _stream: UploadStream | None

    def _start_upload(
        self,
        parent: Node,
        name: str,
        actor: Actor,
        content_type: str | None,
        target: Node | None = None,
    ) -> UploadStream:
        files: Files = self.provider.files
        with dav_errors():
            upload = files.upload(
                actor,
                parent,
                name,
                target=target,
                content_type=content_type,
                expected_size=_expected_length(self.environ),
                size_hint=_size_hint(self.environ),
                mtime=requested_mtime(self.environ),
                checksums=liveprops.oc_checksums(self.environ),
                guard=lock_guard(self.provider, self.environ, self._write_checks()),
            )
        self._stream = UploadStream(self, upload)  # type: ignore[arg-type]
        return self._stream

    def _write_checks(self) -> list[tuple[str, str]]:
        """What must not be locked against this request when new content is committed."""
        raise NotImplementedError

    def end_write(self, *, with_errors: bool) -> None:
        if with_errors and self._stream is not None:
            self._stream.abort()
        self._stream = None
        forget(self.environ)


class PendingFile(WritableMixin, DAVNonCollection):
    """The target of a PUT to a new name: exists only once the body is stored."""

    def __init__(self, path: str, environ: dict[str, Any], parent: Parent, name: str) -> None:
        DAVNonCollection.__init__(self, path, environ)
        self._parent = parent
        self._name = name
        self._entry: Node | None = None
        self._stream = None

    def get_ref_url(self) -> str:
        return lockkeys.child(self._parent.get_ref_url(), self._name)

    def _write_checks(self) -> list[tuple[str, str]]:
        # A new member changes its folder; a LOCK may also have created the name meanwhile.
        return [(self._parent.get_ref_url(), "0"), (self.get_ref_url(), "0")]

    def get_content_length(self) -> int:
        return self._entry.size if self._entry else 0

    def get_content_type(self) -> str:
        return "application/octet-stream"

    def get_etag(self) -> str | None:
        return self._entry.etag if self._entry else None

    def support_etag(self) -> bool:
        return True

    def get_last_modified(self) -> float | None:
        return self._entry.mtime if self._entry else None

    def get_content(self) -> BinaryIO:
        raise DAVError(HTTP_NOT_FOUND)

    def begin_write(self, *, content_type: str | None = None) -> UploadStream:
        return self._start_upload(self._parent.entry, self._name, self._parent.actor, content_type)

    def _committed(self, entry: Node) -> None:
        self._entry = entry
