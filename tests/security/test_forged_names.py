"""Names that forge what a reader sees (issue 12, item 17).

A folder named with a line feed forged a row in ``share list``; CR/LF, C1 controls and bidi
overrides (which make ``txt.exe`` read as ``exe.txt``) were accepted as names. New names with
them are refused (400), in PUT, MKCOL, MOVE and COPY, and through a share; tab too, since no
client needs it (Windows refuses every control character in names; Finder and the Nextcloud
client never make one). ``share list`` shows any such character of an older name escaped.
Default-ignorable code points (which render as nothing) are refused too, except the joiners and
variation selectors that Persian, Indic, Japanese and Mongolian text and emoji need, and those
only where they can join or vary something.
"""

from __future__ import annotations

import pytest
import requests

from tests.live.conftest import ALICE, BOB, Server, ServerFactory, cli, q, sql

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
    # Default-ignorable code points: they render as nothing, so a name holding one passes for
    # another ("Holiday (bob)" + U+034F reads "Holiday (bob)").
    "CGJ": "Holiday (bob)\u034f",
    "soft hyphen": "in\u00advoice.pdf",
    "ZWSP": "a\u200bb",
    "LRM": "a\u200eb",
    "ALM": "a\u061cb",
    "word joiner": "a\u2060b",
    "BOM": "\ufeffa",
    "Hangul filler": "a\u3164",
    "halfwidth filler": "\uffa0",
    "Khmer inherent": "a\u17b4",
    "tag letter": "a\U000e0041",
    "musical beam": "a\U0001d173",
    "shorthand": "a\U0001bca0",
    "VS after a bracket": "Holiday (bob)\ufe00",
    "VS17 after a space": "a \U000e0100",
    "VS16 first": "\ufe0fa",
    "ZWJ last": "Holiday (bob)\u200d",
    "ZWNJ first": "\u200ca",
}
# Names with default-ignorables that clients do make, which stay allowed.
NEEDED = {
    "emoji": "party \U0001f389.txt",
    "emoji VS16": "\u2764\ufe0f notes",  # macOS and iOS name files like this
    "emoji text VS15": "\u263a\ufe0e.txt",
    "emoji ZWJ": "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",
    "emoji ZWJ after VS16": "\u2764\ufe0f\u200d\U0001f525",
    "keycap": "#\ufe0f\u20e3 list",
    "Persian ZWNJ": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "Hindi ZWJ": "\u0915\u094d\u200d\u0937",
    "Japanese IVS": "\u845b\U000e0100\u98fe\u533a",
    "Mongolian FVS": "\u182d\u180b\u1820",
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


@pytest.mark.parametrize("label", sorted(NEEDED))
def test_names_clients_make_are_kept(server: Server, alice: requests.Session, label: str) -> None:
    """The control: joiners and variation selectors where scripts and emoji need them."""
    name = NEEDED[label]
    assert alice.put(server.dav + q(name), data=b"x").status_code == 201, label
    assert alice.request("MKCOL", server.dav + q(name + " dir") + "/").status_code == 201
    assert alice.get(server.dav + q(name)).content == b"x"


def test_share_list_escapes_what_an_older_name_holds(server_factory: ServerFactory) -> None:
    """A name stored before this check (put here straight into the database) cannot forge a row
    of ``share list``."""
    srv = server_factory()
    s = srv.session(ALICE)
    assert s.request("MKCOL", srv.dav + "folder/").status_code == 201
    srv.stop()
    sql(srv.data_dir, "UPDATE nodes SET name = :name WHERE name = 'folder'", name=FORGING["LF"])
    proc = cli(srv.data_dir, "share", "add", ALICE, "/" + FORGING["LF"], "--with", BOB)
    assert proc.returncode == 0, proc.stderr
    out = cli(srv.data_dir, "share", "list").stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 2, out  # the header and one share: no forged row
    assert "\\n" in lines[1], out
