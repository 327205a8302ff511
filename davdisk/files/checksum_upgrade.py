"""Sealing the content checksums an older version left in clear (migration 0005).

Before 0005 every file's MD5 and SHA-1 sat in ``nodes.md5``/``nodes.sha1`` in clear. Sealing
them needs the users' keys, so the migration only adds the sealed column; this runs when a data
dir is opened (server start, any CLI command) with the keys at hand. It finds the rows through a
partial index, so with nothing left it costs one indexed query. The rows are sealed in batches,
each its own short write transaction (a second server on the same database is not held up), and
an interrupted run simply continues at the next start.

Emptying a column does not erase the old bytes from the database file: SQLite leaves them in
free pages and in the write-ahead log. So after converting anything the database is rewritten
(VACUUM) and the log checkpointed and truncated, once.
"""

from __future__ import annotations

import logging

from davdisk.files.checksums import Checksums
from davdisk.meta import store
from davdisk.meta.db import Database

logger = logging.getLogger(__name__)

_BATCH = 500  # rows per transaction: a few milliseconds of AES each


def _hex(value: str | None, length: int) -> str | None:
    if value is None or len(value) != length:
        return None
    try:
        bytes.fromhex(value)
    except ValueError:
        return None
    return value.lower()


def seal_clear_checksums(db: Database, checksums: Checksums) -> int:
    """Seal every row's clear hashes and empty the clear columns; returns the files sealed."""
    sealed_files = touched = 0
    while True:
        with db.write() as conn:
            rows = store.nodes_with_clear_checksums(conn, _BATCH)
            for row in rows:
                md5, sha1 = _hex(row.md5, 32), _hex(row.sha1, 40)
                sealed = None  # empty content and folders need none; unreadable hashes go
                if not row.is_dir and row.size > 0 and md5 and sha1:
                    sealed = checksums.seal_current(row.owner_id, md5=md5, sha1=sha1)
                    sealed_files += 1
                store.replace_clear_checksums(conn, row.id, sealed)
            touched += len(rows)
        if len(rows) < _BATCH:
            break
    if touched:
        _erase_freed_pages(db)
        logger.warning(
            "checksums an older version stored in clear: %d rows converted, %d sealed",
            touched,
            sealed_files,
        )
    return sealed_files


def _erase_freed_pages(db: Database) -> None:
    """Rewrite the database without the space that held the clear values, where the backend
    can (SQLite: VACUUM and a truncated WAL; PostgreSQL: VACUUM FULL is the operator's call)."""
    db.dialect.erase_freed_space()
