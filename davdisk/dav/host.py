"""What a WebDAV resource uses of the provider and the request it serves.

:class:`Host` is the provider as resources (``dav/resources.py``, ``dav/uploads.py``) and the
listing (``dav/listing.py``) see it: they are built by ``dav/provider.py``, which imports them,
so they know it only through this protocol. :func:`lock_guard` makes the lock check a write
runs in its transaction; :func:`requested_mtime` reads the ``X-OC-Mtime`` a write asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from davdisk import wsgidav_compat
from davdisk.dav import liveprops
from davdisk.dav.locks import LockGuard, SQLLockManager
from davdisk.files.api import Files
from davdisk.files.guard import NO_GUARD, WriteGuard
from davdisk.request_context import context
from davdisk.wsgidav_compat import DAVResource


class Host(Protocol):
    """What resources (and dav/listing.py) use of their provider, WsgiDAV's
    ``environ["wsgidav.provider"]``: a :class:`~davdisk.dav.provider.DavdiskProvider`."""

    files: Files
    lock_manager: Any
    mount_path: str
    share_path: str

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> DAVResource | None: ...


def lock_guard(
    provider: Host,
    environ: dict[str, Any],
    checks: list[tuple[str, str]],
    drops: Sequence[str] = (),
    lockable: str | None = None,
    *,
    source: str | None = None,
    dest: str | None = None,
) -> WriteGuard:
    """The request's :class:`~davdisk.dav.locks.LockGuard` for a write (see there)."""
    lm = provider.lock_manager
    if not isinstance(lm, SQLLockManager):
        return NO_GUARD
    principal, tokens = wsgidav_compat.lock_credentials(environ)
    return LockGuard(
        lm,
        principal=principal,
        tokens=tokens,
        checks=checks,
        drops=list(drops),
        lockable=lockable,
        source=source,
        dest=dest,
    )


def requested_mtime(environ: dict[str, Any]) -> float | None:
    """``X-OC-Mtime`` of this request; noted so the answer can say it was accepted."""
    mtime = liveprops.oc_mtime(environ)
    if mtime is not None:
        context(environ).dav.oc_mtime_accepted = True
    return mtime
