"""A share revoked while a grantee's upload is arriving (issue 12, item 14).

Access was checked when the PUT started; the body then took its time, the owner ran
``share rm``, and the upload still committed into the owner's tree afterwards. The commit now
asks again, in its own transaction: the upload is refused (403) and the owner's file keeps its
content.
"""

from __future__ import annotations

import time

import pytest

from tests.live.conftest import ALICE, BOB, RawConnection, ServerFactory, put
from tests.live.sharing_helpers import share_add, share_rm


@pytest.mark.parametrize("existing", [True, False])
def test_upload_revoked_half_way_does_not_land(
    server_factory: ServerFactory, existing: bool
) -> None:
    srv = server_factory()
    alice = srv.session(ALICE)
    assert alice.request("MKCOL", srv.dav + "team/").status_code == 201
    if existing:
        put(alice, srv.dav + "team/plan.txt", b"alice's plan", expect=(201,))
    share_id = share_add(srv, ALICE, "/team", BOB, write=True)
    body = b"b" * 400_000
    up = RawConnection(srv)
    try:
        up.send_head(
            "PUT",
            "/dav/team/plan.txt",
            {"Authorization": srv.auth_header(BOB), "Content-Length": str(len(body))},
        )
        up.send(body[:200_000])
        time.sleep(0.5)  # the server has let the PUT in and is reading its body
        share_rm(srv, share_id)
        up.send(body[200_000:])
        status = up.read_status()
    finally:
        up.abort()
    assert status in (403, 404, 409), status
    r = alice.get(srv.dav + "team/plan.txt")
    if existing:
        assert r.content == b"alice's plan"
    else:
        assert r.status_code == 404, r.status_code
