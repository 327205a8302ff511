"""Names that forge what a reader sees (issue 12, item 17).

A folder named with a line feed forged a row in ``share list``; CR/LF, C1 controls and bidi
overrides (which make ``txt.exe`` read as ``exe.txt``) were accepted as names. New names with
them are refused (400), in PUT, MKCOL, MOVE and COPY, and through a share; tab too, since no
client needs it (Windows refuses every control character in names; Finder and the Nextcloud
client never make one). ``share list`` shows any such character of an older name escaped.
"""

from __future__ import annotations

import sqlite3

import pytest
import requests

from tests.live.conftest import ALICE, BOB, Server, ServerFactory, cli, q

FORGING = {
    "LF": "evil\n   9  alice        bob          read,write",
    "CR": "a\rb",
    "tab": "a\tb",
    "C1 NEL": "a\x85b",
    "C1 CSI": "a\x9bb",
    "RLO": "invoice\u202etxt.exe",
    "LRO": "a\u202db",
    "RLI": "a\u2067b",
    "PDI": "a\u2069b",
}


@pytest.fixture
def alice(server: Server) -> requests.Session:
    return server.session(ALICE)


@pytest.mark.parametrize("label", sorted(FORGING))
def test_forging_names_are_refused(server: Server, alice: requests.Session, label: str) -> None:
    name = q(FORGING[label])
    assert alice.put(server.dav + name, data=b"x").status_code == 400
    assert alice.request("MKCOL", server.dav + name + "/").status_code == 400
    assert alice.put(server.dav + "plain.txt", data=b"x").status_code in (201, 204)
    for method in ("COPY", "MOVE"):
        r = alice.request(
            method, server.dav + "plain.txt", headers={"Destination": server.dav + name}
        )
        assert r.status_code == 400, (label, method, r.status_code)
    listing = alice.request("PROPFIND", server.dav, headers={"Depth": "1"})
    assert listing.status_code == 207
    assert FORGING[label].encode() not in listing.content


def test_share_list_escapes_what_an_older_name_holds(server_factory: ServerFactory) -> None:
    """A name stored before this check (put here straight into the database) cannot forge a row
    of ``share list``."""
    srv = server_factory()
    s = srv.session(ALICE)
    assert s.request("MKCOL", srv.dav + "folder/").status_code == 201
    srv.stop()
    db = sqlite3.connect(srv.data_dir / "davdisk.db")
    with db:
        db.execute("UPDATE nodes SET name = ? WHERE name = 'folder'", (FORGING["LF"],))
    db.close()
    proc = cli(srv.data_dir, "share", "add", ALICE, "/" + FORGING["LF"], "--with", BOB)
    assert proc.returncode == 0, proc.stderr
    out = cli(srv.data_dir, "share", "list").stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 2, out  # the header and one share: no forged row
    assert "\\n" in lines[1], out
