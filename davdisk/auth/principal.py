"""The lock principal of a request: who the login found, never what the client typed.

WsgiDAV takes the principal that owns locks (and may UNLOCK them or write through them) from
``wsgidav.auth.user_name``, which its authenticator sets to the user name of the Basic
credentials. Under ``/public/<token>`` any user name goes with the link's password, so a link
holder who typed ``alice`` would be alice to every lock check; lock tokens are no secret
(lockdiscovery shows them to every reader). This middleware, right after the login, replaces
that name with the name of the actor the login found: a user's own name as stored, or
``link:<share id>`` for a public link — user names cannot contain ':', so no user is a link and
no link is a user. Every holder of one link is the same principal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wsgidav.mw.base_mw import BaseMiddleware

from davdisk import wsgidav_compat
from davdisk.request_context import context


class ActorPrincipal(BaseMiddleware):
    def is_disabled(self) -> bool:
        return False

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        actor = context(environ).actor
        # No actor: nobody logged in (an unknown link token), so no one's locks are held.
        wsgidav_compat.set_authenticated_user(environ, actor.name if actor is not None else "")
        return self.next_app(environ, start_response)
