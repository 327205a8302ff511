"""A delete of a 10 000-file folder is one cheap step into the trash, and a restore brings it
all back as it was (issue 15).

The tree is built in-process (10 100 nodes over ten real blobs, as COPY shares them), the
DELETE goes through the live server and is timed there, and the restore is checked file by
file through the server: same ids, same ETags, the same bytes.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from davdisk import config as config_mod
from davdisk.meta import store
from davdisk.services import Services
from tests.live.conftest import ALICE, ServerFactory, harness_config, propfind

pytestmark = pytest.mark.serial  # measures time

FOLDERS = 100
FILES_PER_FOLDER = 100
OC = "{http://owncloud.org/ns}"
D = "{DAV:}"
PROPS = (
    b'<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">'
    b"<d:prop><d:getetag/><d:getcontentlength/><oc:fileid/></d:prop></d:propfind>"
)


def open_services(data_dir: Path) -> Services:
    return Services.open(config_mod.load(harness_config(data_dir), data_dir), create=False)


def build_tree(data_dir: Path) -> dict[str, bytes]:
    """/tree/fNN/gNNNN.bin: 100 folders of 100 files, each file one of ten contents (its own
    node on a shared blob, as a COPY makes). Returns path -> content."""
    svc = open_services(data_dir)
    try:
        actor = svc.files.actor(ALICE)
        assert actor is not None
        home = svc.files.resolve(actor, "/")
        assert home is not None
        root = svc.files.mkdir(actor, home, "tree")
        contents = [f"content {i} ".encode() * (100 + i) for i in range(10)]
        seeds = [svc.files.write(actor, root, f"seed{i}.bin", c) for i, c in enumerate(contents)]
        wanted = {f"/tree/seed{i}.bin": c for i, c in enumerate(contents)}
        now = time.time()
        total = 0
        with svc.db.write() as conn:
            for i in range(FOLDERS):
                folder = store.insert_node(
                    conn,
                    owner_id=actor.id,
                    parent_id=root.id,
                    name=f"f{i:02d}",
                    is_dir=True,
                    size=0,
                    mtime=now,
                    ctime=now,
                    etag="",
                )
                for j in range(FILES_PER_FOLDER):
                    seed = seeds[(i + j) % 10]
                    store.insert_node(
                        conn,
                        owner_id=actor.id,
                        parent_id=folder.id,
                        name=f"g{j:04d}.bin",
                        is_dir=False,
                        size=seed.size,
                        mtime=now,
                        ctime=now,
                        etag=seed.etag,
                        content_type="application/octet-stream",
                        checksums=seed.checksums,
                        current_blob_id=seed.blob_id,
                    )
                    total += seed.size
                    wanted[f"/tree/f{i:02d}/g{j:04d}.bin"] = contents[(i + j) % 10]
            store.add_used_bytes(conn, actor.id, total)
        return wanted
    finally:
        svc.close()


def snapshot(s: requests.Session, dav: str) -> dict[str, tuple[str, str, int]]:
    """path below the home -> (fileid, etag, size) of every file of /tree, through PROPFIND."""
    found: dict[str, tuple[str, str, int]] = {}
    folders = ["tree/"]
    while folders:
        folder = folders.pop()
        r = s.request("PROPFIND", dav + folder, headers={"Depth": "1"}, data=PROPS, timeout=60)
        assert r.status_code == 207, (folder, r.status_code, r.text[:300])
        for resp in ET.fromstring(r.content).findall(D + "response"):
            href = requests.utils.unquote(resp.findtext(D + "href") or "")
            rel = href.split("/dav/", 1)[1]
            if rel.rstrip("/") == folder.rstrip("/"):
                continue
            if href.endswith("/"):
                folders.append(rel)
                continue
            prop = resp.find(f"{D}propstat/{D}prop")
            assert prop is not None
            found["/" + rel] = (
                prop.findtext(OC + "fileid") or "",
                prop.findtext(D + "getetag") or "",
                int(prop.findtext(D + "getcontentlength") or -1),
            )
    return found


def test_deleting_10_000_files_is_one_quick_trash_item_and_restores_whole(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory()
    wanted = build_tree(srv.data_dir)
    s = srv.session(ALICE)
    before = snapshot(s, srv.dav)
    assert len(before) == FOLDERS * FILES_PER_FOLDER + 10
    used = int(
        propfind(s, srv.dav, "0")[next(iter(propfind(s, srv.dav, "0")))].text(
            D + "quota-used-bytes"
        )
        or 0
    )

    started = time.perf_counter()
    r = s.delete(srv.dav + "tree/")
    elapsed = time.perf_counter() - started
    assert r.status_code == 204, r.text[:300]
    print(f"DELETE of {len(before)} files and {FOLDERS + 1} folders: {elapsed * 1000:.1f} ms")
    assert elapsed < 0.1, f"DELETE took {elapsed * 1000:.0f} ms"
    assert s.request("PROPFIND", srv.dav + "tree/", headers={"Depth": "0"}).status_code == 404
    home = next(iter(propfind(s, srv.dav, "0").values()))
    assert int(home.text(D + "quota-used-bytes") or 0) == 0 < used  # live usage only

    svc = open_services(srv.data_dir)
    try:
        actor = svc.files.actor(ALICE)
        assert actor is not None
        (item,) = svc.files.history.trash(actor)
        assert (item.name, item.path, item.is_dir, item.size) == ("tree", "/tree", True, used)
        node, path = svc.files.history.restore(actor, item)
        assert (node.id, path) == (item.id, "/tree")
    finally:
        svc.close()
    assert snapshot(s, srv.dav) == before
    # Every file's bytes, eight connections at a time.
    sessions = threading.local()

    def fetch(item: tuple[str, bytes]) -> str | None:
        if not hasattr(sessions, "s"):
            sessions.s = srv.session(ALICE)
        path, content = item
        r = sessions.s.get(srv.dav + path.lstrip("/"))
        return None if r.status_code == 200 and r.content == content else path

    with ThreadPoolExecutor(8) as pool:
        wrong = [p for p in pool.map(fetch, wanted.items()) if p is not None]
    assert wrong == [], wrong[:10]

    # Deleted again, and a new "tree" made meanwhile: the restore takes a name of its own.
    assert s.delete(srv.dav + "tree/").status_code == 204
    assert s.request("MKCOL", srv.dav + "tree/").status_code == 201
    svc = open_services(srv.data_dir)
    try:
        actor = svc.files.actor(ALICE)
        assert actor is not None
        (item,) = svc.files.history.trash(actor)
        _node, path = svc.files.history.restore(actor, item)
        assert path == "/tree (restored)"
    finally:
        svc.close()
    listing = propfind(s, srv.dav + "tree%20(restored)/f07/", "1")
    assert len(listing) == FILES_PER_FOLDER + 1
