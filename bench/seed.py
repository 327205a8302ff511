"""Fill folders of a stopped davdisk's data dir directly through its store (fast setup).

Creating tens of thousands of files by PUT takes minutes, so the listing and MOVE phases get
their folders this way: empty files, as ``Files.create_empty`` makes them (no blob), inserted
in one transaction. Run as ``python -m bench.seed DATA_DIR USER FOLDER:COUNT ...`` while the
server is stopped, so it keeps no stale state.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import time

from sqlalchemy import insert

from davdisk import config
from davdisk.meta import store
from davdisk.services import Services


def seed(data_dir: str, user_name: str, specs: list[tuple[str, int]]) -> None:
    services = Services.open(config.load(None, data_dir), create=False)
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
                conn.execute(insert(store.nodes), rows)
    finally:
        services.close()


def main(argv: list[str]) -> None:
    data_dir, user_name, *specs = argv
    pairs = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in specs]
    seed(data_dir, user_name, pairs)


if __name__ == "__main__":
    main(sys.argv[1:])
