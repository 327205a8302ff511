"""A public link's holder is never a user: the lock principal of a link request is the link,
whatever user name the client typed with the link's password.

WsgiDAV lets a request UNLOCK a lock, or write through it, when the request's principal is the
lock's and it submits the token. Lock tokens are no secret (any reader sees them in
lockdiscovery), so the principal is what protects a lock: were it the typed name, a link holder
who types ``alice`` would be alice to every lock check.
"""

from __future__ import annotations

import requests

from tests.live.conftest import ALICE, USERS, Server
from tests.live.sharing_helpers import (
    do_lock,
    get_ok,
    link_session,
    lock_tokens,
    mkdirs,
    put_ok,
    share_link,
    token_of,
    unlock,
)

LINK_PASSWORD = "link-password-1234"


def shared_folder(server: Server) -> tuple[requests.Session, str, str]:
    """alice's ``/dav/folder/doc.txt`` and a writable link with a password to ``/folder``:
    (alice's session, the file's /dav URL, the link's WebDAV root)."""
    alice = server.session(ALICE, USERS[ALICE])
    mkdirs(alice, server.dav + "folder/")
    put_ok(alice, server.dav + "folder/doc.txt", b"alice's words\n")
    link = share_link(server, ALICE, "/folder", upload=True, password=LINK_PASSWORD)
    return alice, server.dav + "folder/doc.txt", link.public


def test_link_holder_named_alice_cannot_unlock_or_write_through_alices_lock(
    server: Server,
) -> None:
    alice, doc, public = shared_folder(server)
    r = do_lock(alice, doc)
    assert r.status_code == 200, r.status_code
    token = token_of(r)

    # The link holder types alice's name with the link's password, and reads alice's token
    # from lockdiscovery.
    holder = link_session(server, LINK_PASSWORD, user=ALICE)
    assert lock_tokens(holder, public + "doc.txt") == [token]

    # Refused: WsgiDAV answers a write whose If header submits someone else's token 412 (the
    # condition does not hold for this principal), the same write without it 423.
    r = holder.put(public + "doc.txt", data=b"vandalised\n", headers={"If": f"(<{token}>)"})
    assert r.status_code in (403, 412, 423), f"PUT through alice's lock: {r.status_code}"
    r = unlock(holder, public + "doc.txt", token)
    assert r.status_code in (403, 423), f"UNLOCK of alice's lock: {r.status_code}"
    r = holder.put(public + "doc.txt", data=b"vandalised\n", headers={"If": f"(<{token}>)"})
    assert r.status_code in (403, 412, 423), f"PUT after the UNLOCK: {r.status_code}"
    assert holder.put(public + "doc.txt", data=b"vandalised\n").status_code == 423

    # The holder still acts as the link: it writes where nothing is locked, and may not lock
    # (links never may; see files/access.py).
    r = holder.put(public + "drop.txt", data=b"dropped\n")
    assert r.status_code == 201, r.status_code
    assert get_ok(alice, server.dav + "folder/drop.txt") == b"dropped\n"
    assert do_lock(holder, public + "drop.txt").status_code == 403

    # alice's lock and content are intact, and the lock is still hers.
    assert lock_tokens(alice, doc) == [token]
    assert get_ok(alice, doc) == b"alice's words\n"
    r = alice.put(doc, data=b"alice's new words\n", headers={"If": f"(<{token}>)"})
    assert r.status_code == 204, r.status_code
    assert unlock(alice, doc, token).status_code == 204
