"""Public links through the in-process app: /s/<token> pages and the /public/<token>/ tree."""

from __future__ import annotations

import base64

import pytest

from davdisk.files.shares import Shares
from davdisk.services import Services
from tests.dav.conftest import Client


@pytest.fixture
def shares(services: Services) -> Shares:
    return Shares(services.db, services.files, 4)


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"anyone:{password}".encode()).decode()


def test_folder_link_listing_download_and_read_only_tree(
    alice: Client, anon: Client, shares: Shares
) -> None:
    alice.mkcol("/dav/Pub/")
    alice.put("/dav/Pub/a b.txt", b"0123456789")
    alice.put("/dav/secret.txt", b"not linked")
    _id, token = shares.add_link("alice", "/Pub")
    page = anon.get(f"/s/{token}/")
    assert page.status == 200 and 'href="a%20b.txt"' in page.text
    r = anon.get(f"/s/{token}/a b.txt", range="bytes=2-4")
    assert r.status == 206 and r.body == b"234"
    assert "attachment" in r.headers["content-disposition"]
    assert anon.propfind(f"/public/{token}/", depth="1").status == 207
    assert anon.get(f"/public/{token}/a b.txt").body == b"0123456789"
    assert anon.put(f"/public/{token}/new.txt", b"x").status == 403
    assert anon.delete(f"/public/{token}/a b.txt").status == 403
    assert anon.get(f"/public/{token}/../secret.txt").status == 404
    assert anon.get(f"/s/{token}/../secret.txt").status == 404


def test_password_expiry_revocation_and_upload(alice: Client, anon: Client, shares: Shares) -> None:
    alice.mkcol("/dav/In/")
    alice.put("/dav/file.txt", b"file")
    share_id, token = shares.add_link("alice", "/file.txt", password="link-password")
    assert anon.get(f"/s/{token}").status == 401
    assert anon.get(f"/s/{token}", authorization=_basic("wrong")).status == 401
    assert anon.get(f"/s/{token}", authorization=_basic("link-password")).body == b"file"
    ok = anon.propfind(f"/public/{token}/", depth="1", authorization=_basic("link-password"))
    assert ok.status == 207 and "file.txt" in ok.text
    shares.remove(share_id)
    assert anon.get(f"/s/{token}", authorization=_basic("link-password")).status == 404
    assert anon.get("/s/made-up-token").status == 404
    _id, expired = shares.add_link("alice", "/file.txt", expires_at=1.0)
    assert anon.get(f"/s/{expired}").status == 404
    _id, drop = shares.add_link("alice", "/In", upload=True)
    assert anon.put(f"/public/{drop}/up.txt", b"uploaded").status == 201
    assert alice.get("/dav/In/up.txt").body == b"uploaded"
    assert anon.delete(f"/public/{drop}/up.txt").status == 403
