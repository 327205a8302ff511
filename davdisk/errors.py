"""The one error hierarchy of davdisk.

Every failure a user can cause or meet is a :class:`DavdiskError`. The class docstring is the
message template (``str.format`` fields filled from the constructor's keyword arguments), and each
class carries the HTTP status the WebDAV face answers with and the exit code the CLI ends with.
Faces map these in one place (``dav/errors.py``, ``cli.py``); nothing else decides a status.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DavdiskError(Exception):
    """Error: {msg}"""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, msg: str = "", **kwargs: Any) -> None:
        self.kwargs = {"msg": msg, **kwargs}
        super().__init__(self.message)

    @property
    def message(self) -> str:
        template = (self.__doc__ or "{msg}").strip().splitlines()[0]
        try:
            return template.format(**self.kwargs)
        except (KeyError, IndexError):
            return str(self.kwargs.get("msg") or template)


class UsageError(DavdiskError):
    """{msg}"""

    http_status = 400
    exit_code = 2


class InvalidName(UsageError):
    """invalid name {name!r}: {why}"""


class ConfigError(DavdiskError):
    """configuration error in {source}: {msg}"""

    exit_code = 2


class DatabaseUnavailable(DavdiskError):
    """cannot use the database at {where}: {msg}"""


class BlobStoreUnavailable(DavdiskError):
    """the blob store {where} failed: {msg}"""

    http_status = 503


class NotFound(DavdiskError):
    """not found: {msg}"""

    http_status = 404
    exit_code = 3


class AlreadyExists(DavdiskError):
    """already exists: {msg}"""

    http_status = 405
    exit_code = 4


class Conflict(DavdiskError):
    """conflict: {msg}"""

    http_status = 409
    exit_code = 4


class ConcurrentChange(Conflict):
    """conflict: a concurrent change got there first, try again ({msg})"""


class Forbidden(DavdiskError):
    """forbidden: {msg}"""

    http_status = 403
    exit_code = 5


class PreconditionFailed(DavdiskError):
    """precondition failed: {msg}"""

    http_status = 412
    exit_code = 4


class Locked(DavdiskError):
    """locked: {msg}"""

    http_status = 423
    exit_code = 4


class IncompleteBody(DavdiskError):
    """request body ended after {got} of {expected} bytes"""

    http_status = 400


class TooLarge(DavdiskError):
    """too large: {msg}"""

    http_status = 413


class ChecksumMismatch(DavdiskError):
    """{algo} checksum mismatch: the client sent {expected}, the body hashes to {actual}"""

    http_status = 400


class InsufficientStorage(DavdiskError):
    """insufficient storage: {msg}"""

    http_status = 507
    exit_code = 6


class IntegrityError(DavdiskError):
    """integrity check failed: {msg}"""

    http_status = 500
    exit_code = 7


class BadHeader(IntegrityError):
    """blob {blob}: bad envelope header: {msg}"""


class BadSegment(IntegrityError):
    """blob {blob}: segment {index} failed authentication"""


class BadLength(IntegrityError):
    """blob {blob}: stored length is inconsistent: {msg}"""


class KeyMaterialError(DavdiskError):
    """key error: {msg}"""

    exit_code = 7


class UnknownKeyVersion(KeyMaterialError):
    """no key version {version} for user {user_id}"""
