"""The database's own consistency checks: ``fsck`` runs the full one, ``serve`` the quick one.

SQLite: ``PRAGMA integrity_check`` (every page, every index against its table) or
``quick_check`` (every page's structure, not index contents; linear time, what a start can
afford), and ``PRAGMA foreign_key_check``. They run on a driver connection of their own: the
engines' connect hooks and SQLAlchemy's reflection would fail on a damaged file before a check
could say what is wrong, and a file too damaged to be read at all is itself the finding.

Other databases (PostgreSQL) keep their pages consistent themselves; a check of theirs (e.g.
amcheck) plugs in at :meth:`davdisk.meta.db.Database.integrity_problems`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from davdisk.errors import DavdiskError

# SQLITE_CORRUPT and SQLITE_NOTADB: what a damaged file gives, unlike a locked or unreadable one.
DAMAGED_CODES = (11, 26)


def is_damage_code(code: int | None) -> bool:
    """Whether an SQLite (extended) result code says the file is damaged: Python reports the
    extended code, e.g. SQLITE_CORRUPT_INDEX (779) for an index that disagrees with its table."""
    return code is not None and code & 0xFF in DAMAGED_CODES


def sqlite_problems(path: str, *, quick: bool) -> list[str]:
    """What SQLite finds wrong with the database file at ``path``, one line each; [] if sound
    (or if there is no file yet: nothing to check)."""
    if not path or not os.path.exists(path):
        return []
    try:
        # mode=rw: never create a file here; a check must not change what it checks.
        # (as_uri() escapes the path: a '#', '?' or '%' in it would cut or change a raw URI.)
        uri = Path(path).absolute().as_uri() + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise _unreadable(path, e) from None
    problems: list[str] = []
    try:
        conn.execute("PRAGMA busy_timeout=30000")  # a running server may be writing
        pragma = "quick_check" if quick else "integrity_check"
        for (message,) in conn.execute(f"PRAGMA {pragma}"):
            if message != "ok":
                problems.append(f"{pragma}: {_one_line(message)}")
        if not quick:
            for table, rowid, parent, _fk in conn.execute("PRAGMA foreign_key_check"):
                problems.append(
                    f"foreign_key_check: row {rowid} of {table} refers to a missing {parent} row"
                )
    except sqlite3.DatabaseError as e:
        if not is_damage_code(getattr(e, "sqlite_errorcode", None)):
            raise _unreadable(path, e) from None  # e.g. no permission: not damage
        # "database disk image is malformed", "file is not a database": too damaged to check.
        problems.append(_one_line(str(e)))
    finally:
        conn.close()
    return problems


def _unreadable(path: str, e: sqlite3.Error) -> DavdiskError:
    return DavdiskError(f"cannot check the database {path}: {e}")


def _one_line(message: str) -> str:
    # integrity_check prefixes its first message with "*** in database main ***\n".
    lines = [line.strip() for line in message.splitlines()]
    return "; ".join(line for line in lines if line and not line.startswith("*** in database"))
