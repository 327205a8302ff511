"""What one WebDAV request remembers while it runs (``RequestContext.dav``).

One provider serves every thread, so what a request learns lives in its context: the resources
it resolved (by path), folder members and dead properties, which :func:`forget` drops once the
request has changed the tree; and which request path each reference URL (lock key) stood for,
so a lock found under an owner's key is shown at the path the requester knows it by.
"""

from __future__ import annotations

from typing import Any

from davdisk import lockkeys
from davdisk.request_context import context


def forget(environ: dict[str, Any]) -> None:
    """Drop what this request cached: it has just changed the tree."""
    context(environ).dav.forget()


def remember_ref(environ: dict[str, Any], ref_url: str, path: str) -> None:
    """Note which request path a reference URL stood for, so lock roots found under an
    owner's reference URL can be shown at the path the requester knows them by."""
    context(environ).dav.refs[ref_url.rstrip("/")] = path.rstrip("/") or "/"


def ref_to_path(environ: dict[str, Any] | None, ref_url: str) -> str:
    """The request path of a reference URL: as remembered, else below a remembered one, else
    the path in the key itself (right for the requester's own keys)."""
    ref = ref_url.rstrip("/")
    refs: dict[str, str] = context(environ).dav.refs if environ else {}
    if ref in refs:
        return refs[ref]
    for known, path in refs.items():  # an ancestor of a resource this request touched
        if known.startswith(lockkeys.below(ref)):
            depth = known[len(ref) :].count("/")
            return path.rsplit("/", depth)[0] or "/"
    return lockkeys.path_of(ref)
