"""Cyberduck replayed request by request: PUT with Expect: 100-continue, and upload to a
temporary name followed by MOVE over the target."""

from __future__ import annotations

import os
import uuid

import pytest
import requests

from tests.live.clients import (
    UA_CYBERDUCK,
    RawClient,
    RawResponse,
    client_session,
    fileid,
    kept_versions,
    propfind_one,
)
from tests.live.conftest import Server, get_bytes, members, q, url_path

CD_STAT = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="no"?><propfind xmlns="DAV:"><prop>'
    b"<getlastmodified/><getcontentlength/><resourcetype/><getetag/><creationdate/>"
    b"<displayname/></prop></propfind>"
)


@pytest.fixture
def duck(module_server: Server) -> requests.Session:
    return client_session(module_server, UA_CYBERDUCK)


def put_expect_continue(srv: Server, path: str, data: bytes) -> tuple[RawResponse, RawResponse]:
    """Headers first, wait for '100 Continue', then the body. Returns (interim, final)."""
    with RawClient(srv, timeout=15) as c:
        c.send_head(
            "PUT",
            path,
            [
                ("User-Agent", UA_CYBERDUCK),
                ("Authorization", srv.auth_header()),
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", str(len(data))),
                ("Expect", "100-continue"),
                ("Connection", "Keep-Alive"),
                ("Accept-Encoding", "gzip,deflate"),
            ],
        )
        interim = c.read_response("PUT")  # times out (socket timeout) if nothing comes
        if interim.status != 100:
            return interim, interim
        c.send(data)
        final = c.read_response("PUT")
        return interim, final


def test_put_with_expect_100_continue(
    module_server: Server, duck: requests.Session, workdir: str
) -> None:
    data = os.urandom(150_000)
    path = url_path(workdir) + "upload.bin"
    interim, final = put_expect_continue(module_server, path, data)
    assert interim.status == 100, (interim.status, interim.reason, interim.body[:200])
    assert final.status == 201, (final.status, final.body[:300])
    assert get_bytes(duck, workdir + "upload.bin") == data
    # overwrite the same way
    data2 = os.urandom(1000)
    interim, final = put_expect_continue(module_server, path, data2)
    assert interim.status == 100 and final.status in (200, 204), (interim.status, final.status)
    assert get_bytes(duck, workdir + "upload.bin") == data2


@pytest.mark.parametrize("style", ["cyberducktmp", "uuid"])
def test_upload_to_temp_then_move(
    module_server: Server, duck: requests.Session, workdir: str, style: str
) -> None:
    target = "file.txt"
    uploads = (b"first upload\n", b"second upload, replaces the first\n")
    file_id = None
    for round_, content in enumerate(uploads):
        temp = f"{target}.cyberducktmp" if style == "cyberducktmp" else f".{uuid.uuid4()}.tmp"
        r = duck.request("PROPFIND", workdir + target, headers={"Depth": "0"}, data=CD_STAT)
        assert r.status_code == (404 if round_ == 0 else 207), r.status_code
        interim, final = put_expect_continue(module_server, url_path(workdir) + q(temp), content)
        assert interim.status == 100 and final.status == 201, (interim.status, final.status)
        r = duck.request(
            "MOVE",
            workdir + q(temp),
            headers={"Destination": workdir + target, "Overwrite": "T"},
        )
        assert r.status_code == (201 if round_ == 0 else 204), (r.status_code, r.text[:300])
        assert get_bytes(duck, workdir + target) == content
        assert duck.get(workdir + q(temp)).status_code == 404
        assert set(members(duck, workdir)) == {target}
        assert propfind_one(duck, workdir + target, CD_STAT).size == len(content)
        # the MOVE over the file keeps it (its id) and what it replaced (a version)
        file_id = file_id or fileid(duck, workdir + target)
        assert fileid(duck, workdir + target) == file_id
        kept = [size for size, _ in kept_versions(module_server, file_id)]
        assert kept == [len(u) for u in uploads[:round_]], kept
