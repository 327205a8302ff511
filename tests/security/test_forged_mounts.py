"""Mounts that pass for another user's (issue 12, item 16).

A share appears in the grantee's top folder under the shared item's own name, or as
``NAME (OWNER)`` when that name is taken. The sharer chooses the name, so carol could share a
folder named ``Photos (bob)`` (which looked exactly like bob's mount), or a look-alike of a name
already there (a curly apostrophe, a Cyrillic letter, a double space, a zero-width space), and
alice could not tell which folder is whose. Now a mount keeps its own name only when it cannot
be mistaken for anything; otherwise it is shown with its real owner's name appended, which no
sharer can produce: a name the sharer chose never ends in that suffix shape.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
import requests

from tests.live.conftest import ALICE, BOB, USERS, Server, ServerFactory, cli, members, q, sql

CAROL = "carol"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    factory = ServerFactory(tmp_path_factory.mktemp("mounts"))
    yield factory(users={**USERS, CAROL: "carol-password-333"})
    factory.finish()


def _share(srv: Server, owner: str, name: str, grantee: str = ALICE) -> None:
    """``owner`` makes a folder ``name`` holding owner.txt (its owner's name) and shares it."""
    s = srv.session(owner, "carol-password-333" if owner == CAROL else None)
    assert s.request("MKCOL", srv.dav + q(name) + "/").status_code == 201, name
    assert s.put(srv.dav + q(name) + "/owner.txt", data=owner.encode()).status_code == 201
    proc = cli(srv.data_dir, "share", "add", owner, "/" + name, "--with", grantee)
    assert proc.returncode == 0, proc.stderr


def _owner_of(alice: requests.Session, srv: Server, mount: str) -> str:
    r = alice.get(srv.dav + q(mount) + "/owner.txt")
    assert r.status_code == 200, (mount, r.status_code)
    return r.content.decode()


def _mounts(alice: requests.Session, srv: Server, marker: str) -> dict[str, str]:
    """Alice's top-folder entries whose name holds ``marker``, with the real owner of each."""
    return {name: _owner_of(alice, srv, name) for name in members(alice, srv.dav) if marker in name}


def test_a_name_shaped_like_a_mount_suffix_is_not_shown_as_one(srv: Server) -> None:
    alice = srv.session(ALICE)
    assert alice.request("MKCOL", srv.dav + "Holiday/").status_code == 201
    _share(srv, CAROL, "Holiday (bob)")  # before bob's real share: first come was first served
    _share(srv, BOB, "Holiday")
    found = _mounts(alice, srv, "Holiday (")
    assert found.get("Holiday (bob)") == BOB, found
    assert found == {"Holiday (bob)": BOB, "Holiday (bob) (carol)": CAROL}, found


@pytest.mark.parametrize(
    "forged",
    [
        "bob\u2019s photos",  # curly apostrophe
        "bob's  photos",  # two spaces
        "b\u043eb's photos",  # Cyrillic o
        "bob's\u200d photos",  # a zero-width joiner (new names may hold one inside)
        "BOB'S PHOTOS",
        "bob's photos\ufe0f",  # a variation selector: a mark, not a format character
    ],
    ids=["apostrophe", "spaces", "cyrillic", "zero-width", "case", "variation-selector"],
)
def test_look_alikes_of_a_share_carry_their_owner(srv: Server, forged: str) -> None:
    tag = str(zlib.crc32(forged.encode()))
    real, fake = f"bob's photos {tag}", forged + f" {tag}"
    if forged.endswith("\ufe0f"):
        fake = f"bob's photos {tag}\ufe0f"
    _share(srv, BOB, real)
    _share(srv, CAROL, fake)
    alice = srv.session(ALICE)
    found = _mounts(alice, srv, tag)
    assert len(found) == 2, found
    for name, owner in found.items():
        assert name.endswith(f" ({owner})"), f"{name!r} is {owner}'s and does not say so"


def test_a_look_alike_of_the_grantees_own_folder_carries_its_owner(srv: Server) -> None:
    alice = srv.session(ALICE)
    assert alice.request("MKCOL", srv.dav + "Taxes/").status_code == 201
    _share(srv, CAROL, "\u0422\u0430\u0445\u0435\u0455")  # Cyrillic only: "Taxes" to the eye
    found = _mounts(alice, srv, "\u0422")
    assert found == {"\u0422\u0430\u0445\u0435\u0455 (carol)": CAROL}, found


@pytest.mark.parametrize(
    "name, shown",
    [
        ("Invo\u200dices", "Invoices (carol)"),
        ("Inv\u043eices", "Inv\u043eices (carol)"),  # Latin and Cyrillic in one word
        ("Invoices (bob)" + " " * 150 + ".", "Invoices (bob) . (carol)"),
        ("Invoices\u2800", "Invoices (carol)"),  # a Braille blank: a symbol nobody sees
        ("Invoices\ufe0f", "Invoices (carol)"),  # an emoji presentation selector
        ("Invoices \u2615\ufe0f", "Invoices \u2615 (carol)"),  # an emoji with its selector
        ("Invoices (bob)\u0301", "Invoices (bob)\u0301 (carol)"),  # a mark on the bracket
    ],
    ids=["zero-width", "mixed-script", "padding", "blank", "vs16", "emoji", "bracket-mark"],
)
def test_a_name_that_hides_something_carries_its_owner(srv: Server, name: str, shown: str) -> None:
    """Alone in the grantee's folder too: such a name is made to pass for something else."""
    _share(srv, CAROL, name, grantee=BOB)
    bob = srv.session(BOB)
    assert _owner_of(bob, srv, shown) == CAROL
    assert name not in members(bob, srv.dav)


def test_an_ordinary_share_keeps_its_name(srv: Server) -> None:
    """The control: nothing to mistake, no suffix (and a request may use either spelling)."""
    _share(srv, BOB, "Caf\u00e9 menus")
    alice = srv.session(ALICE)
    assert _owner_of(alice, srv, "Caf\u00e9 menus") == BOB
    assert _owner_of(alice, srv, "Cafe\u0301 menus") == BOB


@pytest.mark.parametrize(
    "mark",
    ["\u034f", "\ufe00", "\U000e0100", "\u180b", "\u17b4", "\u200b", "\u3164"],
    ids=["cgj", "vs1", "vs17", "mongolian-fvs", "khmer", "zero-width", "filler"],
)
def test_a_trailing_invisible_mark_does_not_make_a_name_look_like_a_suffix(
    server_factory: ServerFactory, mark: str
) -> None:
    """``Holiday (bob)`` + U+034F (or another default-ignorable code point) renders exactly as
    ``Holiday (bob)``. New names may not hold these any more, so the folder is renamed in the
    database, as an older version could have stored it."""
    srv = server_factory(users={**USERS, CAROL: "carol-password-333"})
    _share(srv, BOB, "Holiday")
    carol = srv.session(CAROL, "carol-password-333")
    assert carol.request("MKCOL", srv.dav + "forged/").status_code == 201
    assert carol.put(srv.dav + "forged/owner.txt", data=CAROL.encode()).status_code == 201
    srv.stop()
    sql(srv.data_dir, "UPDATE nodes SET name = :name WHERE name = 'forged'",
        name="Holiday (bob)" + mark)  # fmt: skip
    proc = cli(srv.data_dir, "share", "add", CAROL, "/Holiday (bob)" + mark, "--with", ALICE)
    assert proc.returncode == 0, proc.stderr
    srv = server_factory(srv.data_dir)
    found = _mounts(srv.session(ALICE), srv, "Holiday")
    assert found == {"Holiday": BOB, "Holiday (bob) (carol)": CAROL}, found
