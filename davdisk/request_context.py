"""What davdisk knows of one request, beside the WSGI environ: one typed object under one key.

Every layer a request passes through (the HTTP server, the transport policy, the limits, the
login, WebDAV, the audit log) notes here what the later ones need, instead of in loose
``environ["davdisk.*"]`` keys that each module spelled and typed on its own. WsgiDAV's and WSGI's
own keys stay in the environ. :func:`context` returns the request's object, making it on first
use, so a WSGI app called without our server (a test) gets one too. A copy of the environ (a
public-link download handed to WsgiDAV) shares it: it is still the same request.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from davdisk.model import Actor, Node

# The one environ key davdisk writes (tests/unit/test_request_context.py holds it to that).
KEY = "davdisk.context"


class Expectation(Protocol):
    """The ``100 Continue`` a client waits for (``http/connection.py``'s Continue)."""

    pending: bool

    def send(self) -> None: ...


@dataclass(eq=False, slots=True)
class DavMemo:
    """What one WebDAV request learnt while it runs (one provider serves every thread).

    ``resources``, ``children`` and ``props`` describe the tree and are dropped by
    :meth:`forget` once the request has changed it; the rest stays true for the request."""

    # Resources resolved, by request path (None: nothing there).
    resources: dict[str, Any] = field(default_factory=dict)
    # Folder members, and dead properties, by node id.
    children: dict[int, list[Node]] = field(default_factory=dict)
    props: dict[int, dict[str, bytes]] = field(default_factory=dict)
    # The names leading to a node in its owner's home (lock keys of shared nodes), by node id.
    owner_names: dict[int, list[str]] = field(default_factory=dict)
    # (used, available) bytes, by owner (or shared folder).
    usage: dict[Any, tuple[int, int | None] | None] = field(default_factory=dict)
    # The dead-property changes a PROPPATCH tried so far (dry run), by node id.
    proppatch: dict[int, dict[str, bytes | None]] = field(default_factory=dict)
    # Which request path each lock reference URL stood for.
    refs: dict[str, str] = field(default_factory=dict)
    # What the answer to a PUT, COPY or MOVE must say: a new resource (201), X-OC-Mtime taken.
    created: bool = False
    oc_mtime_accepted: bool = False

    def forget(self) -> None:
        """Drop what describes the tree: the request has just changed it."""
        self.resources = {}
        self.children = {}
        self.props = {}


@dataclass(eq=False, slots=True)
class RequestContext:
    # The connection (set by http/connection.py's gateway; None when the app runs without it):
    # close it after the answer without reading the rest of the body; the 100 it waits for.
    close_connection: Callable[[], None] | None = None
    expectation: Expectation | None = None
    # The transport (http/transport.py): the client's address once trusted proxies are
    # accounted for, and whether it spoke HTTPS (to us or to a trusted proxy).
    client_ip: str | None = None
    secure: bool = False
    # The body: how the login reads a non-PUT body the limits left for after it.
    take_body: Callable[[], None] | None = None
    # The login: who acts (a user or a link's holder), and a failed or throttled attempt.
    actor: Actor | None = None
    auth_event: Literal["failed", "throttled"] | None = None
    # Why the request fails: the first cause noted is the one http/errors.py logs.
    error_cause: BaseException | None = None
    dav: DavMemo = field(default_factory=DavMemo)


def context(environ: MutableMapping[str, Any]) -> RequestContext:
    """This request's context (made on first use)."""
    found = environ.get(KEY)
    if found is None:
        found = environ[KEY] = RequestContext()
    return found


def record_cause(environ: MutableMapping[str, Any], exc: BaseException) -> None:
    """Note why this request is failing; the first cause noted is the one logged."""
    ctx = context(environ)
    if ctx.error_cause is None:
        ctx.error_cause = exc
