"""An editor's save-by-rename ("save dance", Word's: write a temp file, rename the original
away, rename the temp onto the name, delete the original) keeps the document's node, its
properties and its history (files/copymove.py); other renames are left as they are."""

from __future__ import annotations

import pytest

from davdisk.files.fsck import Fsck
from davdisk.meta import store
from davdisk.model import Actor, Node
from davdisk.services import Services
from tests.unit.files.test_fsck import quiet

OLD = b"the document as it was " * 50
NEW = b"the document as Word saved it " * 60


def _alice(svc: Services) -> tuple[Actor, Node]:
    alice = svc.files.actor("alice")
    assert alice is not None
    home = svc.files.resolve(alice, "/")
    assert home is not None
    return alice, home


def _clean(svc: Services) -> None:
    """fsck --deep finds nothing: blobs, counters of live, version and trash bytes agree."""
    report = Fsck(svc.admin, deep=True, min_age=900, progress=quiet).check()
    assert report.problems == 0, report.findings


def _read(svc: Services, actor: Actor, entry: Node) -> bytes:
    with svc.files.open_read(actor, entry) as f:
        return f.read()


def _age(svc: Services, entry: Node, seconds: float, *columns: str) -> None:
    """Make ``columns`` (ctime, vacated_at) of a node ``seconds`` older, as time passing would."""
    with svc.db.write() as conn:
        for column in columns:
            now = conn.exec_driver_sql(
                f"SELECT {column} FROM nodes WHERE id = {int(entry.id)}"
            ).scalar_one()
            assert now is not None, column
            store.update_node(conn, entry.id, **{column: now - seconds})


def _dance(
    svc: Services, folder: Node, *, before_swap: float = 0, temp_age: float = 0
) -> tuple[Node, Node]:
    """Word's save of ``folder``/doc.docx; returns (the original node, what doc.docx is now).
    ``before_swap``: seconds that pass between the rename away and the rename back;
    ``temp_age``: how old the temp file is when it is renamed onto the name."""
    alice, _ = _alice(svc)
    doc = svc.files.write(alice, folder, "doc.docx", OLD)
    temp = svc.files.write(alice, folder, "~WRD0001.tmp", NEW)
    if temp_age:
        _age(svc, temp, temp_age, "ctime")
    away, created = svc.files.move(alice, doc, folder, "~WRL0002.tmp", overwrite=False)
    assert created and away.id == doc.id
    if before_swap:
        _age(svc, away, before_swap, "vacated_at")
    back, created = svc.files.move(alice, temp, folder, "doc.docx", overwrite=False)
    assert created  # a move to a free name: 201 for the client
    thrown = svc.files.resolve(
        alice, "/".join(["", *svc.files.owner_names(folder), "~WRL0002.tmp"])
    )
    assert thrown is not None
    svc.files.delete(alice, thrown)
    assert _read(svc, alice, back) == NEW
    return doc, back


def test_word_dance_keeps_the_document_node_and_history(svc: Services) -> None:
    alice, home = _alice(svc)
    folder = svc.files.mkdir(alice, home, "docs")
    doc, back = _dance(svc, folder)
    assert back.id == doc.id
    versions = svc.files.history.versions(alice, back)
    assert len(versions) == 1
    assert svc.files.history.open_version(alice, back, versions[0]).read() == OLD
    # the throwaway copy went to the trash, holding the pre-save content
    (item,) = svc.files.history.trash(alice)
    assert item.name == "~WRL0002.tmp" and item.size == len(OLD)
    assert item.id != doc.id
    assert {m.name for m in svc.files.children(alice, folder)} == {"doc.docx"}
    # the vacated name is forgotten once taken back (by both files)
    with svc.db.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT vacated_name, vacated_at FROM nodes"
            f" WHERE id IN ({int(doc.id)}, {int(item.id)})"
        ).all()
    assert [tuple(r) for r in rows] == [(None, None)] * 2
    _clean(svc)


def test_two_saves_two_versions(svc: Services) -> None:
    alice, home = _alice(svc)
    doc, back = _dance(svc, home)
    with svc.db.write() as conn:  # a day ago: retention keeps it beside a newer one
        conn.exec_driver_sql("UPDATE versions SET replaced_at = replaced_at - 86400")
    # the temp file was renamed once itself: that record goes with the swap
    temp = svc.files.write(alice, home, "x.tmp", b"third " * 10)
    temp, _ = svc.files.move(alice, temp, home, "~WRD0003.tmp", overwrite=False)
    svc.files.move(alice, back, home, "~WRL0004.tmp", overwrite=False)
    again, _ = svc.files.move(alice, temp, home, "doc.docx", overwrite=False)
    assert again.id == doc.id
    fresh = svc.files.write(alice, home, "fresh", b"fresh")
    moved, _ = svc.files.move(alice, fresh, home, "x.tmp", overwrite=False)
    assert moved.id == fresh.id
    newest, oldest = svc.files.history.versions(alice, again)
    assert svc.files.history.open_version(alice, again, newest).read() == NEW
    assert svc.files.history.open_version(alice, again, oldest).read() == OLD
    assert _read(svc, alice, again) == b"third " * 10


def test_dead_properties_the_new_file_set_win_others_stay(svc: Services) -> None:
    alice, home = _alice(svc)
    doc = svc.files.write(alice, home, "doc.docx", OLD)
    temp = svc.files.write(alice, home, "~WRD0001.tmp", NEW)
    svc.files.set_properties(alice, doc, {"{urn:t}label": b"draft", "{urn:t}when": b"old"})
    svc.files.set_properties(alice, temp, {"{urn:t}when": b"new"})
    svc.files.move(alice, doc, home, "~WRL0002.tmp", overwrite=False)
    back, _ = svc.files.move(alice, temp, home, "doc.docx", overwrite=False)
    assert back.id == doc.id
    assert svc.files.properties(alice, back) == {"{urn:t}label": b"draft", "{urn:t}when": b"new"}
    _clean(svc)


@pytest.mark.parametrize(
    ("before_swap", "temp_age"),
    [(121, 0), (0, 121), (3 * 3600, 0)],
    ids=["vacated-too-long-ago", "temp-file-too-old", "hours-later"],
)
def test_no_swap_outside_the_window(svc: Services, before_swap: float, temp_age: float) -> None:
    alice, home = _alice(svc)
    doc, back = _dance(svc, home, before_swap=before_swap, temp_age=temp_age)
    assert back.id != doc.id
    assert svc.files.history.versions(alice, back) == []
    (item,) = svc.files.history.trash(alice)
    assert item.id == doc.id  # the original went to the trash, as any deleted file


def test_user_rename_then_old_file_onto_the_name_is_no_dance(svc: Services) -> None:
    alice, home = _alice(svc)
    a = svc.files.write(alice, home, "a.txt", b"a")
    old = svc.files.write(alice, home, "old.txt", b"an old file")
    _age(svc, old, 3600, "ctime")
    svc.files.move(alice, a, home, "b.txt", overwrite=False)
    moved, created = svc.files.move(alice, old, home, "a.txt", overwrite=False)
    assert created and moved.id == old.id
    assert _read(svc, alice, moved) == b"an old file"
    b = svc.files.resolve(alice, "/b.txt")
    assert b is not None and b.id == a.id and _read(svc, alice, b) == b"a"


def test_other_folders_and_folders_are_no_dance(svc: Services) -> None:
    alice, home = _alice(svc)
    one = svc.files.mkdir(alice, home, "one")
    two = svc.files.mkdir(alice, home, "two")
    # moved to another folder: nothing vacated
    a = svc.files.write(alice, one, "a.txt", b"a")
    svc.files.move(alice, a, two, "a-moved.txt", overwrite=False)
    y = svc.files.write(alice, home, "y.txt", b"y")
    moved, _ = svc.files.move(alice, y, one, "a.txt", overwrite=False)
    assert moved.id == y.id
    # a name vacated in one folder is not taken back in another
    b = svc.files.write(alice, one, "b.txt", b"b")
    svc.files.move(alice, b, one, "b-away.txt", overwrite=False)
    z = svc.files.write(alice, home, "z.txt", b"z")
    moved, _ = svc.files.move(alice, z, two, "b.txt", overwrite=False)
    assert moved.id == z.id
    # folders: neither a renamed folder nor a folder moved onto its name
    sub = svc.files.mkdir(alice, one, "sub")
    svc.files.move(alice, sub, one, "sub-away", overwrite=False)
    f = svc.files.write(alice, home, "f", b"f")
    moved, _ = svc.files.move(alice, f, one, "sub", overwrite=False)
    assert moved.id == f.id
    c = svc.files.write(alice, one, "c.txt", b"c")
    svc.files.move(alice, c, one, "c-away.txt", overwrite=False)
    new_dir = svc.files.mkdir(alice, home, "new-dir")
    moved, _ = svc.files.move(alice, new_dir, one, "c.txt", overwrite=False)
    assert moved.id == new_dir.id and moved.is_dir
    assert all(svc.files.history.versions(alice, n) == [] for n in (a, b, c))


def test_a_renamed_file_that_moved_on_is_not_taken_back(svc: Services) -> None:
    """The record of a vacated name goes when the file is moved again (another folder here)."""
    alice, home = _alice(svc)
    other = svc.files.mkdir(alice, home, "other")
    a = svc.files.write(alice, home, "a.txt", b"a")
    away, _ = svc.files.move(alice, a, home, "a-away.txt", overwrite=False)
    svc.files.move(alice, away, other, "a-away.txt", overwrite=False)
    y = svc.files.write(alice, other, "y.txt", b"y")
    moved, _ = svc.files.move(alice, y, other, "a.txt", overwrite=False)
    assert moved.id == y.id
