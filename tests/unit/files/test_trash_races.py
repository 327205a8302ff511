"""Requests that looked a node up before its folder went to the trash (issue 15).

A delete moves only the top of a tree into the trash; the nodes below keep their rows. A
request that resolved a path below it just before must not write into the trash: its commit
re-reads what it changes and finds it gone (409/404), and every byte stays counted where it is
(found by the soak test: quota drift between used_bytes and trash_bytes).
"""

from __future__ import annotations

import io

import pytest

from davdisk.errors import Conflict, NotFound
from davdisk.files.fsck import Fsck
from davdisk.model import Actor, Node
from davdisk.progress import Progress
from davdisk.services import Services


def _setup(svc: Services) -> tuple[Actor, Node, Node, Node]:
    alice = svc.files.actor("alice")
    assert alice is not None
    home = svc.files.resolve(alice, "/")
    assert home is not None
    folder = svc.files.mkdir(alice, home, "folder")
    sub = svc.files.mkdir(alice, folder, "sub")
    doc = svc.files.write(alice, sub, "doc.txt", b"old content")
    return alice, home, sub, doc


def quiet(label: str, total: int, unit: str) -> Progress:
    return Progress(label, total, unit=unit, stream=io.StringIO())


def _clean(svc: Services) -> None:
    findings = Fsck(svc.admin, min_age=0, progress=quiet).check().findings
    assert findings == [], [f"{f.kind}: {f.where}: {f.detail}" for f in findings]


def test_writes_through_stale_lookups_below_a_trashed_folder_change_nothing(
    svc: Services,
) -> None:
    alice, home, sub, doc = _setup(svc)
    folder = svc.files.resolve(alice, "/folder")
    assert folder is not None
    svc.files.delete(alice, folder)  # sub and doc keep their rows, below the trashed folder

    with pytest.raises(Conflict):
        svc.files.write(alice, sub, "new.txt", b"a new file")  # PUT of a new name
    with (
        pytest.raises(Conflict),
        svc.files.upload(alice, sub, "doc.txt", target=doc) as up,  # PUT over it
    ):
        up.write(b"replaced")
        up.commit()
    with pytest.raises(NotFound):
        svc.files.set_properties(alice, doc, {"{urn:x}colour": b"<x:colour>blue</x:colour>"})
    with pytest.raises(NotFound):
        svc.files.delete(alice, doc)
    with pytest.raises(NotFound):
        svc.files.move(alice, doc, home, "rescued.txt", overwrite=False)
    with pytest.raises(Conflict):
        svc.files.copy(
            alice, svc.files.write(alice, home, "x.txt", b"x"), sub, "x.txt", overwrite=False
        )
    with pytest.raises(Conflict):
        svc.files.mkdir(alice, sub, "made")
    assert svc.files.node(alice, doc.id) is None
    assert [i.path for i in svc.files.history.trash(alice)] == ["/folder"]
    _clean(svc)

    _node, path = svc.files.history.restore(alice, svc.files.history.trash(alice)[0])
    assert path == "/folder"
    with svc.files.open_read(alice, doc) as f:
        assert f.read() == b"old content"
    _clean(svc)


def test_restoring_a_version_the_thinning_drops_keeps_its_content(svc: Services) -> None:
    # Under the default "auto" schedule, the content a restore replaces becomes a version made
    # now, and the walk then drops the restored version (it lies within 2 s of the new one):
    # the restore pointed the file at that version's blob after its row had gone (500,
    # FOREIGN KEY constraint failed; found with curl against scripts/serve's defaults).
    alice, home, _sub, _doc = _setup(svc)
    svc.files.write(alice, home, "note.txt", b"first")
    entry = svc.files.write(alice, home, "note.txt", b"second")
    (first,) = svc.files.history.versions(alice, entry)
    restored = svc.files.history.restore_version(alice, entry, first.id)
    with svc.files.open_read(alice, restored) as f:
        assert f.read() == b"first"
    kept = svc.files.history.versions(alice, restored)
    assert [v.size for v in kept] == [len(b"second")]  # what the restore replaced
    _clean(svc)
