"""An upload link may add files; it may not destroy any (issue 12, item 2).

DELETE through an upload link was already 403, but a COPY or MOVE with ``Overwrite: T`` onto a
folder deleted the folder and everything in it (204): the same-owner branch of the files API
replaced the destination with no ``delete`` check. Replacing anything now needs the right to
delete it, whoever asks.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live.conftest import ALICE, Server
from tests.live.sharing_helpers import (
    mkdirs,
    put_ok,
    sess,
    share_link,
    snapshot,
    start_share_server,
    uid,
    unchanged,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "linkreplace")


@pytest.mark.parametrize("method", ["COPY", "MOVE"])
@pytest.mark.parametrize("target", ["folder", "folder/", "file.txt"])
def test_upload_link_cannot_replace(srv: Server, method: str, target: str) -> None:
    alice = sess(srv, ALICE)
    name = f"drop-{uid()}"
    top = f"{srv.dav}{name}/"
    mkdirs(alice, top)
    mkdirs(alice, top + "folder/")
    put_ok(alice, top + "folder/precious.txt", b"precious")
    put_ok(alice, top + "file.txt", b"alice's file")
    link = share_link(srv, ALICE, f"/{name}", upload=True)
    anon = srv.session(None)
    # The link may add a file of its own...
    assert anon.put(link.public + "mine.txt", data=b"dropped").status_code == 201
    before = snapshot(alice, top)
    # ...but not put it (or move it) in the place of what is there.
    r = anon.request(
        method,
        link.public + "mine.txt",
        headers={"Destination": link.public + target, "Overwrite": "T"},
    )
    assert r.status_code == 403, (method, target, r.status_code)
    unchanged(before, snapshot(alice, top), f"{method} onto {target} through an upload link")
    assert alice.get(top + "folder/precious.txt").content == b"precious"
    assert alice.get(top + "file.txt").content == b"alice's file"
    # Adding under a new name still works (a MOVE would remove the source: never for a link).
    r = anon.request(
        method, link.public + "mine.txt", headers={"Destination": link.public + "new.txt"}
    )
    assert r.status_code == (201 if method == "COPY" else 403), r.status_code
