"""A refused LOCK on an unmapped URL leaves nothing behind.

RFC 4918 9.10.4: a LOCK on an unmapped URL creates an empty, locked resource. When the LOCK is
refused (423), nothing may have been created: WsgiDAV made the empty file first and only then
asked for the lock, so a LOCK of ``d/new`` inside a folder someone else had locked answered
423 and still left an empty ``d/new`` in the locked folder (found by test_model.py).
Adding a member to a locked folder needs the folder's lock token (RFC 4918 7.4), as for PUT;
and an exclusive Depth infinity lock on the folder refuses a lock below it even to its holder,
so that LOCK must fail without creating anything too.
"""

from __future__ import annotations

import pytest
import requests

from tests.live.conftest import ALICE, Server, lock, members, q


@pytest.mark.parametrize(
    ("folder_depth", "submit_token"),
    [("infinity", False), ("infinity", True), ("0", False)],
)
def test_refused_lock_on_a_free_name_creates_nothing(
    module_server: Server, workdir: str, folder_depth: str, submit_token: bool
) -> None:
    s = module_server.session(ALICE)
    folder = workdir + q("d") + "/"
    assert s.request("MKCOL", folder).status_code == 201
    _, token = lock(s, folder, depth=folder_depth)
    headers = {"Depth": "0", "Timeout": "Second-600", "Content-Type": "application/xml"}
    if submit_token:
        headers["If"] = f"<{folder}> (<{token}>)"
    r = _lock_new(s, folder + "new", headers)
    assert r.status_code == 423, (r.status_code, r.text[:300])
    assert members(s, folder) == {}, "a refused LOCK created the file"
    assert s.get(folder + "new").status_code == 404


def test_lock_on_a_free_name_in_a_folder_locked_depth_0_with_its_token(
    module_server: Server, workdir: str
) -> None:
    """The holder of a Depth 0 folder lock may create a locked member (the control case)."""
    s = module_server.session(ALICE)
    folder = workdir + q("d") + "/"
    assert s.request("MKCOL", folder).status_code == 201
    _, token = lock(s, folder, depth="0")
    headers = {
        "Depth": "0",
        "Timeout": "Second-600",
        "Content-Type": "application/xml",
        "If": f"<{folder}> (<{token}>)",
    }
    r = _lock_new(s, folder + "new", headers)
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert set(members(s, folder)) == {"new"}


def _lock_new(s: requests.Session, url: str, headers: dict[str, str]) -> requests.Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
        "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
        "<D:owner><D:href>second</D:href></D:owner></D:lockinfo>"
    )
    return s.request("LOCK", url, headers=headers, data=body.encode())
