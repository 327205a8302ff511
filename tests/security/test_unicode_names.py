"""One name, two spellings (issue 12, item 16): ``Café.txt`` in NFC and in NFD were two files.

macOS sends names decomposed (NFD: ``e`` + U+0301), Windows and Linux composed (NFC: U+00E9).
Both spellings must address the same file: a PUT of either overwrites it, a GET of either reads
it, a lock taken through one holds against the other, and a listing shows the name once, in
NFC. Names stored decomposed by an older version are renamed to NFC when the database is
migrated (to a numbered free name where NFC is taken, so both stay reachable).
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config as AlembicConfig

from davdisk.meta.db import MIGRATIONS
from tests.live.conftest import (
    ALICE,
    BOB,
    Server,
    ServerFactory,
    cli,
    database_url,
    lock,
    members,
    propfind,
    q,
    sql,
)

NFC = "Caf\u00e9.txt"
NFD = "Cafe\u0301.txt"
NFC_DIR = "R\u00e9sum\u00e9s"
NFD_DIR = "Re\u0301sume\u0301s"


def test_both_spellings_address_one_file(server: Server) -> None:
    alice = server.session(ALICE)
    assert alice.put(server.dav + q(NFC), data=b"composed").status_code == 201
    r = alice.put(server.dav + q(NFD), data=b"decomposed")
    assert r.status_code == 204, f"a PUT of the NFD spelling made a new file: {r.status_code}"
    for name in (NFC, NFD):
        r = alice.get(server.dav + q(name))
        assert r.status_code == 200 and r.content == b"decomposed", (name, r.status_code)
    names = sorted(members(alice, server.dav))
    assert names == [NFC], names
    assert alice.request("DELETE", server.dav + q(NFD)).status_code == 204
    assert alice.get(server.dav + q(NFC)).status_code == 404


def test_new_names_are_stored_composed(server: Server) -> None:
    alice = server.session(ALICE)
    assert alice.request("MKCOL", server.dav + q(NFD_DIR) + "/").status_code == 201
    assert alice.request("MKCOL", server.dav + q(NFC_DIR) + "/").status_code == 405
    assert alice.put(server.dav + q(NFD_DIR) + "/" + q(NFD), data=b"x").status_code == 201
    assert sorted(members(alice, server.dav)) == [NFC_DIR]
    assert sorted(members(alice, server.dav + q(NFC_DIR) + "/")) == [NFC]
    # MOVE and COPY to a decomposed Destination land on the composed name
    assert alice.put(server.dav + "plain.txt", data=b"p").status_code == 201
    r = alice.request(
        "COPY", server.dav + "plain.txt", headers={"Destination": server.dav + q(NFD)}
    )
    assert r.status_code == 201, r.status_code
    r = alice.request(
        "MOVE",
        server.dav + "plain.txt",
        headers={"Destination": server.dav + q(NFC), "Overwrite": "F"},
    )
    assert r.status_code == 412, f"MOVE onto the other spelling of a file: {r.status_code}"
    assert sorted(members(alice, server.dav)) == sorted([NFC_DIR, NFC, "plain.txt"])
    hrefs = propfind(alice, server.dav + q(NFD_DIR) + "/", depth="0")
    assert list(hrefs) == ["/dav/" + NFC_DIR + "/"], list(hrefs)


def test_a_lock_holds_against_the_other_spelling(server: Server) -> None:
    alice = server.session(ALICE)
    # a lock on a name that is not there yet (Word's lock-then-PUT), through the NFD spelling
    _, token = lock(alice, server.dav + q(NFD))
    assert token
    r = alice.put(server.dav + q(NFC), data=b"no token")
    assert r.status_code == 423, f"a PUT of the NFC spelling ignored the lock: {r.status_code}"
    r = alice.put(server.dav + q(NFD), data=b"no token")
    assert r.status_code == 423, r.status_code


def test_share_add_finds_either_spelling(server: Server) -> None:
    alice = server.session(ALICE)
    assert alice.request("MKCOL", server.dav + q(NFC_DIR) + "/").status_code == 201
    proc = cli(server.data_dir, "share", "add", ALICE, "/" + NFD_DIR, "--with", BOB, "--write")
    assert proc.returncode == 0, proc.stderr
    bob = server.session(BOB)
    assert sorted(members(bob, server.dav)) == [NFC_DIR]
    assert bob.put(server.dav + q(NFD_DIR) + "/" + q(NFD), data=b"b").status_code == 201
    assert sorted(members(alice, server.dav + q(NFC_DIR) + "/")) == [NFC]


def _as_older_version(srv: Server, renames: dict[str, str]) -> None:
    """Store names as an older version did (decomposed) and mark the database as of that version,
    so the next start migrates it."""
    srv.stop()
    # Alembic's own downgrade to the revision before 0008_nfc_names: what later revisions made
    # (0009's leases table) goes too, so that the next start runs them as on an old install.
    migrations = AlembicConfig()
    migrations.set_main_option("script_location", str(MIGRATIONS))
    migrations.set_main_option("sqlalchemy.url", database_url(srv.data_dir).replace("%", "%%"))
    command.downgrade(migrations, "0007")
    for old, new in renames.items():
        renamed = sql(
            srv.data_dir, "UPDATE nodes SET name = :new WHERE name = :old RETURNING id",
            new=new, old=old,
        )  # fmt: skip
        assert len(renamed) == 1, (old, renamed)


def test_decomposed_names_of_an_older_version_are_migrated(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory()
    alice = srv.session(ALICE)
    assert alice.request("MKCOL", srv.dav + "dir/").status_code == 201
    assert alice.put(srv.dav + "dir/a.txt", data=b"lonely").status_code == 201
    assert alice.put(srv.dav + q(NFC), data=b"composed").status_code == 201
    assert alice.put(srv.dav + "b.txt", data=b"twin").status_code == 201
    _as_older_version(srv, {"dir": NFD_DIR, "a.txt": NFD, "b.txt": NFD})
    srv = server_factory(srv.data_dir)
    alice = srv.session(ALICE)
    # alone in its folder: renamed to NFC, reachable by both spellings
    for name in (NFC_DIR, NFD_DIR):
        r = alice.get(srv.dav + q(name) + "/" + q(NFD))
        assert r.status_code == 200 and r.content == b"lonely", (name, r.status_code)
    # its NFC twin was there first: both stay, the decomposed one under a numbered name
    top = sorted(members(alice, srv.dav))
    twin = "Caf\u00e9 (2).txt"
    assert top == sorted([NFC_DIR, NFC, twin]), top
    assert alice.get(srv.dav + q(NFC)).content == b"composed"
    assert alice.get(srv.dav + q(twin)).content == b"twin"
    fsck = cli(srv.data_dir, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_listing_of_a_decomposed_request_answers_composed(server: Server) -> None:
    alice = server.session(ALICE)
    assert alice.put(server.dav + q(NFC), data=b"x").status_code == 201
    r = alice.request("PROPFIND", server.dav + q(NFD), headers={"Depth": "0"})
    assert r.status_code == 207, r.status_code
    assert NFD.encode() not in r.content and q(NFD).encode() not in r.content
