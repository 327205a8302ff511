"""The one place where davdisk errors become WebDAV (HTTP) errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from wsgidav.dav_error import DAVError

from davdisk.errors import DavdiskError, IntegrityError

logger = logging.getLogger(__name__)


def to_dav_error(e: DavdiskError) -> DAVError:
    if isinstance(e, IntegrityError):
        # Logged with detail here; the client only learns that the server failed.
        logger.error("%s", e.message)
        return DAVError(e.http_status, "stored data failed verification")
    return DAVError(e.http_status, e.message)


@contextmanager
def dav_errors() -> Iterator[None]:
    """Re-raise any :class:`DavdiskError` of the enclosed block as a ``DAVError``."""
    try:
        yield
    except DavdiskError as e:
        raise to_dav_error(e) from None
