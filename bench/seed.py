"""Fill folders of a stopped davdisk's data dir directly through its store (fast setup).

Creating tens of thousands of files by PUT takes minutes, so the listing and MOVE phases get
their folders this way: empty files, as ``Files.create_empty`` makes them (no blob), inserted
in one transaction. Run as ``python -m bench.seed [--config FILE] DATA_DIR USER FOLDER:COUNT ...``
while the server is stopped, so it keeps no stale state.

``seed_tree`` grows a user's tree to a given number of nodes (up to a million in well under a
minute) for ``scripts/bench --scale``: rows with explicit ids, many per executemany, in one
transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import time
from collections import deque
from dataclasses import dataclass

from sqlalchemy import Connection, Table, func, insert, select

from davdisk import config
from davdisk.meta import store, tables
from davdisk.services import Services

EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()
EMPTY_SHA1 = hashlib.sha1(b"", usedforsecurity=False).hexdigest()


def seed(
    data_dir: str, user_name: str, specs: list[tuple[str, int]], config_file: str | None = None
) -> None:
    services = Services.open(config.load(config_file, data_dir), create=False)
    now = time.time()
    md5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()
    sha1 = hashlib.sha1(b"", usedforsecurity=False).hexdigest()
    try:
        with services.db.write() as conn:
            user = store.get_user(conn, user_name)
            assert user is not None, user_name
            for folder, count in specs:
                parent = store.insert_node(
                    conn,
                    owner_id=user.id,
                    parent_id=user.root_id,
                    name=folder,
                    is_dir=True,
                    size=0,
                    mtime=now,
                    ctime=now,
                    etag="",
                )
                rows = [
                    {
                        "owner_id": user.id,
                        "parent_id": parent.id,
                        "name": f"f{i:06d}.txt",
                        "is_dir": False,
                        "size": 0,
                        "mtime": now,
                        "ctime": now,
                        "etag": secrets.token_hex(16),
                        "content_type": "text/plain",
                        "md5": md5,
                        "sha1": sha1,
                    }
                    for i in range(count)
                ]
                conn.execute(insert(tables.nodes), rows)
    finally:
        services.close()


# --- a whole tree, for ``scripts/bench --scale`` ------------------------------------------------

# The tree every scale DB shares: a spine of 9 folders ("scale/level01/.../level08"), so that a
# file in the last one is 10 path segments deep, and the rest of the node budget in a wide tree
# under "bulk". Every folder holds FOLDER_SIZE entries, SUBFOLDERS of them folders; the last
# spine folder is the PROPFIND target and gets its 100th entry (the GET file) by WebDAV PUT.
SPINE = ("scale", *(f"level{i:02d}" for i in range(1, 9)))
FOLDER_SIZE = 100
SUBFOLDERS = 10
# Every PROP_EVERY-th file carries a dead property, as Windows' client sets on what it uploads.
PROP_EVERY = 10
PROP_NAME = "{urn:schemas-microsoft-com:}Win32FileAttributes"
PROP_VALUE = (
    b'<ns0:Win32FileAttributes xmlns:ns0="urn:schemas-microsoft-com:">'
    b"00000020</ns0:Win32FileAttributes>"
)
BATCH = 50_000  # rows per executemany: bounds memory, costs nothing in speed


@dataclass
class TreeStats:
    nodes: int  # nodes in the database afterwards (the home included)
    properties: int
    seconds: float


# Every column of a node, in the order _TreeWriter.add builds its rows.
NODE_COLUMNS = (
    "id",
    "owner_id",
    "parent_id",
    "name",
    "is_dir",
    "size",
    "mtime",
    "ctime",
    "etag",
    "content_type",
    "md5",
    "sha1",
    "current_blob_id",
    "deleted_at",
)
PROP_COLUMNS = ("node_id", "name", "value")


def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    """A positional (SQLite) INSERT of ``columns`` into ``table``; naming each column through
    the table object fails here, not in the database, if the schema has changed."""
    names = ", ".join(table.c[name].name for name in columns)
    return f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})"


class _TreeWriter:
    """Hands out node ids (explicit, so children can name parents without a round trip) and
    writes the buffered rows with one executemany per BATCH, inside the caller's transaction.

    Rows are plain tuples sent through the driver: SQLAlchemy's per-row parameter processing
    would double the time of a million-row seed.
    """

    def __init__(self, conn: Connection, owner_id: int, first_id: int) -> None:
        self.conn = conn
        self.owner_id = owner_id
        self.next_id = first_id
        self.now = time.time()
        self.nodes: list[tuple[object, ...]] = []
        self.props: list[tuple[object, ...]] = []
        self.node_sql = _insert_sql(tables.nodes, NODE_COLUMNS)
        self.prop_sql = _insert_sql(tables.props, PROP_COLUMNS)
        self.properties = 0

    def add(self, parent_id: int, name: str, *, is_dir: bool) -> int:
        node_id = self.next_id
        self.next_id += 1
        # Every column, as Files.mkdir / Files.create_empty fill them (an empty file has no
        # blob); live nodes, so deleted_at is NULL.
        if is_dir:
            row = (node_id, self.owner_id, parent_id, name, 1, 0, self.now, self.now, "")
            self.nodes.append((*row, None, None, None, None, None))
        else:
            etag = secrets.token_hex(16)
            row = (node_id, self.owner_id, parent_id, name, 0, 0, self.now, self.now, etag)
            self.nodes.append((*row, "text/plain", EMPTY_MD5, EMPTY_SHA1, None, None))
            if node_id % PROP_EVERY == 0:
                self.props.append((node_id, PROP_NAME, PROP_VALUE))
        if len(self.nodes) >= BATCH:
            self.flush()
        return node_id

    def fill(self, parent_id: int, entries: int, dirs: int) -> list[int]:
        """``entries`` members in a folder, the first ``dirs`` of them folders; the folders' ids."""
        folders = [
            self.add(parent_id, f"dir{j:02d}", is_dir=True) for j in range(min(dirs, entries))
        ]
        for j in range(len(folders), entries):
            self.add(parent_id, f"file{j:03d}.txt", is_dir=False)
        return folders

    def flush(self) -> None:
        if self.nodes:
            self.conn.exec_driver_sql(self.node_sql, self.nodes)
        if self.props:  # after their nodes: the foreign key checks them
            self.conn.exec_driver_sql(self.prop_sql, self.props)
            self.properties += len(self.props)
        self.nodes, self.props = [], []


def seed_tree(data_dir: str, user_name: str, total: int) -> TreeStats:
    """Grow the user's tree to ``total`` nodes (the home and anything already there included):
    the spine, then the bulk tree breadth first. One transaction."""
    started = time.perf_counter()
    services = Services.open(config.load(None, data_dir), create=False)
    try:
        with services.db.write() as conn:
            # Room for the whole transaction in the page cache: spilling it to the WAL midway
            # would write each index page many times over. (This connection is discarded with
            # the services below, so the server never runs with it.)
            conn.exec_driver_sql("PRAGMA cache_size = -400000")  # KiB
            user = store.get_user(conn, user_name)
            assert user is not None, user_name
            assert services.db.dialect.name == "sqlite", (
                "the scale seed writes SQLite (positional ?) SQL"
            )
            existing = conn.scalar(select(func.count()).select_from(tables.nodes)) or 0
            first_id = (conn.scalar(select(func.max(tables.nodes.c.id))) or 0) + 1
            writer = _TreeWriter(conn, user.id, first_id)
            budget = total - existing
            parent = user.root_id
            for name in SPINE:
                folder = writer.add(parent, name, is_dir=True)
                # 99 fillers: the next spine folder (or the GET file) is the 100th entry.
                writer.fill(folder, FOLDER_SIZE - 1, SUBFOLDERS - 1)
                parent = folder
            queue = deque([writer.add(user.root_id, "bulk", is_dir=True)])
            while writer.next_id - first_id < budget:
                room = budget - (writer.next_id - first_id)
                queue.extend(writer.fill(queue.popleft(), min(room, FOLDER_SIZE), SUBFOLDERS))
            writer.flush()
            count = conn.scalar(select(func.count()).select_from(tables.nodes)) or 0
    finally:
        services.close()
    return TreeStats(count, writer.properties, time.perf_counter() - started)


def main(argv: list[str]) -> None:
    config_file = None
    if argv[:1] == ["--config"]:  # the data dir's config, e.g. its database elsewhere
        config_file, argv = argv[1], argv[2:]
    data_dir, user_name, *specs = argv
    pairs = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in specs]
    seed(data_dir, user_name, pairs, config_file)


if __name__ == "__main__":
    main(sys.argv[1:])
