"""Copy a SQLite install's metadata into a PostgreSQL database (``davdisk db migrate``).

The target gets davdisk's schema by the same alembic migrations a first start runs, then every
table of the schema (``TABLES``: all of ``models.py``, so a table added later is copied too) is
copied in foreign-key order, each **whole in one target transaction**: a run that is killed
leaves every table either complete or empty. That makes the move resumable without bookkeeping:
a run finds each target table empty (copy it), equal to the source (done before: skip it) or
different (someone else's data, or a copy made before the source changed: refused, nothing is
touched). Afterwards the id sequences continue above every id the source ever gave out (SQLite's
``sqlite_sequence``, migration 0004: ids are never reused), and every table is verified: equal
row counts and an equal content fingerprint (an order-independent hash of every row, so the two
databases' different collations do not matter).

The source is only read, in one snapshot, with ``query_only`` on. A server must not run on it
(what it wrote after the copy would be lost at the switch): a database another process has open
is refused up front, and a write that slips in during the move is detected at the end.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from davdisk.errors import DavdiskError, UsageError
from davdisk.meta.db import HEAD_REVISION, Database
from davdisk.meta.models import Base

# Every table of the schema, parents before children (users before nodes before properties).
TABLES: tuple[Table, ...] = tuple(Base.metadata.sorted_tables)
# Tables of the database that are no data of an install: alembic's and SQLite's own.
_BOOKKEEPING = {"alembic_version", "sqlite_sequence"}
BATCH = 5000  # rows fetched at a time: bounds memory
_MOD = 1 << 256


class RowCounter(Protocol):
    """What shows the progress of a long table (davdisk.progress.Progress fits)."""

    def advance(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


# Counts rows as a big table is copied: given the table's name and row count, a counter, or
# None to show nothing (a small table).
Counters = Callable[[str, int], RowCounter | None]


class TransferError(DavdiskError):
    """{msg}"""


@dataclass(frozen=True)
class Fingerprint:
    """What verification compares: the row count and an order-independent hash of the rows."""

    rows: int
    digest: int


@dataclass(frozen=True)
class TableDone:
    """One table's outcome, for progress lines: ``copied`` now or found ``already`` copied."""

    name: str
    rows: int
    state: str  # "copied" | "already"
    seconds: float


@dataclass(frozen=True)
class Report:
    tables: int
    rows: int
    seconds: float


def target_url(raw: str) -> URL:
    """The PostgreSQL URL to move to; a plain ``postgresql://`` gets psycopg 3 (the driver
    davdisk installs). Anything else is refused in one line."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise UsageError(
            f"--to {raw!r} is not a database URL: use postgresql+psycopg://USER:PASSWORD@HOST/DB"
        ) from None
    if url.get_backend_name() != "postgresql":
        raise UsageError(
            f"--to must be a PostgreSQL URL (postgresql+psycopg://USER:PASSWORD@HOST/DB), "
            f"not {url.get_backend_name()!r}"
        )
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if not url.database:
        raise UsageError("--to names no database: postgresql+psycopg://USER:PASSWORD@HOST/DB")
    return url


def _row_hash(row: Iterable[Any]) -> int:
    """A row's hash over typed values (True and 1, b"a" and "a" differ), the same for a row
    read from either database through the schema's column types."""
    parts = []
    for value in row:
        if isinstance(value, memoryview):
            value = bytes(value)
        if isinstance(value, float):
            value = value.hex()  # exact
        parts.append(f"{type(value).__name__}:{value!r}")
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest(), "big")


def fingerprint(conn: Connection, table: Table) -> Fingerprint:
    """Row count and the sum (mod 2**256) of every row's hash: equal for equal sets of rows,
    whatever order the database returns them in."""
    rows = 0
    digest = 0
    result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(select(table))
    for row in result:
        rows += 1
        digest = (digest + _row_hash(row)) % _MOD
    return Fingerprint(rows, digest)


def _parent_column(table: Table) -> str | None:
    """The column of ``table`` that points at another row of itself (nodes.parent_id)."""
    for fk in table.foreign_keys:
        if fk.column.table is table:
            return fk.parent.name
    return None


def _in_parent_order(rows: Iterable[Any], key: str, parent: str) -> Iterator[Any]:
    """``rows`` reordered so that each comes after the row its ``parent`` names. Ids alone do
    not give that order: a MOVE puts an old folder under a newer one. Rows wait (only those
    whose parent is not yet out) until their parent has gone out."""
    out: set[Any] = set()
    waiting: dict[Any, list[Any]] = {}
    for row in rows:
        up = row._mapping[parent]
        if up is not None and up not in out:
            waiting.setdefault(up, []).append(row)
            continue
        ready = [row]
        while ready:
            r = ready.pop()
            yield r
            rid = r._mapping[key]
            out.add(rid)
            ready.extend(waiting.pop(rid, ()))
    if waiting:
        orphans = sum(len(v) for v in waiting.values())
        raise TransferError(
            f"{orphans} rows of the source point at a parent that does not exist: "
            "run davdisk fsck on the source first"
        )


# SQLite's "DMS" byte of the -shm file: every connection to a WAL database holds a shared POSIX
# lock on it while open (os_unix.c: UNIX_SHM_DMS, 120 + SQLITE_SHM_NLOCK).
_SHM_DMS = 128
_FLOCK = "hhqqi"  # Linux's struct flock: l_type, l_whence, l_start, l_len, l_pid


def _user_of(db_file: str) -> int | None:
    """The pid of another process that has the SQLite database open (a running server), else
    None. Asks the kernel whether a write lock on the -shm file's DMS byte would conflict, which
    takes no lock and writes nothing. Call it before this process opens the database: closing a
    descriptor drops every POSIX lock the process holds on the file."""
    if not sys.platform.startswith("linux"):  # struct flock is laid out otherwise elsewhere
        return None
    try:
        fd = os.open(db_file + "-shm", os.O_RDONLY)
    except OSError:  # no -shm: nobody has it open in WAL mode
        return None
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _SHM_DMS, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
    except OSError:
        return None
    finally:
        os.close(fd)
    kind, _whence, _start, _len, pid = struct.unpack(_FLOCK, answer[: struct.calcsize(_FLOCK)])
    return pid if kind != fcntl.F_UNLCK else None


class Transfer:
    """One move of the SQLite database ``source_url`` into PostgreSQL ``target``."""

    def __init__(self, source_url: str, target: URL, counters: Counters | None = None) -> None:
        if not source_url.startswith("sqlite"):
            raise UsageError("the install's database is not SQLite: nothing to move")
        self.source_url = source_url
        self.target = target
        self.target_text = target.render_as_string(hide_password=False)
        self.counters: Counters = counters or (lambda _name, _total: None)

    # --- the source: read only, one snapshot --------------------------------------------------

    def _source_engine(self) -> Engine:
        engine = create_engine(self.source_url)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we BEGIN ourselves (one snapshot)
            dbapi_conn.execute("PRAGMA query_only=ON")  # this move never writes its source
            dbapi_conn.execute("PRAGMA busy_timeout=30000")

        return engine

    @staticmethod
    def _data_version(conn: Connection) -> int:
        # Changes when another connection commits to the file (SQLite's data_version).
        return int(conn.exec_driver_sql("PRAGMA data_version").scalar_one())

    def _check_source(self, conn: Connection) -> None:
        names = set(inspect(conn).get_table_names())
        if "alembic_version" not in names:
            raise TransferError(f"{self.source_url} is not a davdisk database")
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        if revision != HEAD_REVISION:
            raise TransferError(
                f"the source database is at schema revision {revision}, this davdisk writes "
                f"{HEAD_REVISION}: start this version's server on it once, stop it, then move"
            )
        unknown = names - _BOOKKEEPING - {t.name for t in TABLES}
        if unknown:  # never leave data behind silently
            raise TransferError(
                f"the source has tables this davdisk does not know: {', '.join(sorted(unknown))}"
            )

    # --- the target ---------------------------------------------------------------------------

    def _prepare_target(self) -> Database:
        try:
            target = Database(self.target_text, pool_size=2)
        except NoSuchModuleError:
            raise UsageError(
                f"no driver for {self.target.drivername}: use postgresql+psycopg://"
            ) from None
        except ImportError:
            raise UsageError(
                "the PostgreSQL driver is not installed: pip install 'davdisk[postgresql]'"
            ) from None
        try:
            revision = target.schema_revision()
            if revision is None:
                with target.reader.connect() as conn:
                    tables = inspect(conn).get_table_names()
                if tables:
                    raise TransferError(
                        f"the target database holds tables that are not davdisk's "
                        f"({', '.join(sorted(tables)[:5])}): use a new, empty database"
                    )
            elif revision != HEAD_REVISION:
                raise TransferError(
                    f"the target database has davdisk's schema at revision {revision}, not "
                    f"{HEAD_REVISION}: use a new, empty database"
                )
            target.migrate()  # creates the schema (or finds it made by an earlier run)
        except DBAPIError as e:
            target.dispose()
            where = self.target.render_as_string(hide_password=True)
            raise TransferError(
                f"cannot use the target database {where}: {_first_line(e)}"
            ) from None
        except BaseException:
            target.dispose()
            raise
        return target

    def _copy_table(self, source: Connection, target: Database, table: Table) -> Fingerprint:
        """Every row of ``table``, in one target transaction (all or nothing); the
        fingerprint of the rows read."""
        key = [c for c in table.primary_key.columns]
        rows: Iterable[Any] = source.execution_options(
            stream_results=True, yield_per=BATCH
        ).execute(select(table).order_by(*key))
        parent = _parent_column(table)
        if parent is not None:
            rows = _in_parent_order(rows, key[0].name, parent)
        import psycopg  # the target's driver: there once the target is open

        rows_read = 0
        digest = 0
        # COPY, not INSERTs: the rows stream to PostgreSQL with no statement per batch (200 000
        # nodes: 9 s instead of 20). psycopg renders each value by its Python type, exactly.
        names = ", ".join(f'"{c.name}"' for c in table.columns)
        sql = f'COPY "{table.name}" ({names}) FROM STDIN'
        try:
            with target.write() as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                total = source.scalar(select(func.count()).select_from(table)) or 0
                counter = self.counters(table.name, total)
                with driver.cursor() as cursor, cursor.copy(sql) as copy:
                    for row in rows:
                        # The fingerprint of what was read, for the verification to compare.
                        rows_read += 1
                        digest = (digest + _row_hash(row)) % _MOD
                        copy.write_row(tuple(row))
                        if counter is not None and rows_read % BATCH == 0:
                            counter.advance(BATCH)
                if counter is not None:
                    counter.advance(rows_read % BATCH)
                    counter.close()
        except (DBAPIError, psycopg.Error) as e:
            message = _first_line(e)
            hint = ""
            if "NUL" in message:  # the hidden top of a folder COPY cut by a crash
                hint = " (run davdisk gc to remove what an interrupted COPY left, then again)"
            raise TransferError(f"cannot copy table {table.name}: {message}{hint}") from None
        return Fingerprint(rows_read, digest)

    def _reset_sequences(self, source: Connection, target: Database) -> None:
        """Each id sequence continues above every id the source gave out, deleted rows' too."""
        given: dict[str, int] = {}
        if inspect(source).has_table("sqlite_sequence"):  # made with the first AUTOINCREMENT id
            rows = source.exec_driver_sql("SELECT name, seq FROM sqlite_sequence")
            given = {str(name): int(seq or 0) for name, seq in rows}
        with target.write() as conn:
            for table in TABLES:
                if table.autoincrement_column is None:
                    continue
                column = table.autoincrement_column.name
                highest = max(
                    given.get(table.name, 0),
                    int(source.scalar(select(func.max(table.c[column]))) or 0),
                )
                sequence = conn.scalar(
                    text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column}
                )
                if sequence is None:
                    continue
                if highest:
                    conn.execute(text("SELECT setval(:s, :v, true)"), {"s": sequence, "v": highest})
                else:
                    conn.execute(text("SELECT setval(:s, 1, false)"), {"s": sequence})

    # --- the move -----------------------------------------------------------------------------

    def run(self, progress: Callable[[TableDone], None] = lambda _d: None) -> Report:
        started = time.perf_counter()
        source_file = make_url(self.source_url).database or ""
        user = _user_of(source_file)
        if user is not None:
            raise TransferError(
                f"{source_file} is open in another process (pid {user}, a running server?): "
                "stop it before moving"
            )
        engine = self._source_engine()
        watch = engine.connect()  # outside the snapshot: sees others' commits
        expected: dict[str, Fingerprint] = {}
        try:
            with engine.connect() as source:
                self._check_source(source)
                target = self._prepare_target()  # before reading: a bad target fails at once
                try:
                    before = self._data_version(watch)
                    # One snapshot from the first read on: every table is read inside it.
                    source.exec_driver_sql("BEGIN")
                    for table in TABLES:
                        done, expected[table.name] = self._move_table(source, target, table)
                        progress(done)
                    self._reset_sequences(source, target)
                    self._verify(target, expected)
                    source.exec_driver_sql("ROLLBACK")  # nothing was written: ends the snapshot
                finally:
                    target.dispose()
            if self._data_version(watch) != before:
                raise TransferError(
                    "the source database changed during the move (is a server running on it?): "
                    "stop it, drop and recreate the target database, and run again"
                )
        finally:
            watch.close()
            engine.dispose()
        total = sum(f.rows for f in expected.values())
        return Report(len(TABLES), total, time.perf_counter() - started)

    def _move_table(
        self, source: Connection, target: Database, table: Table
    ) -> tuple[TableDone, Fingerprint]:
        """Copy ``table`` unless an earlier run did; its outcome and the source's fingerprint."""
        t0 = time.perf_counter()
        with target.read() as conn:
            present = conn.scalar(select(func.count()).select_from(table)) or 0
            found = fingerprint(conn, table) if present else None
        if found is not None:
            want = fingerprint(source, table)
            if found == want:  # copied by an earlier run of this move
                done = TableDone(table.name, want.rows, "already", time.perf_counter() - t0)
                return done, want
            raise TransferError(
                f"table {table.name} of the target holds {found.rows} rows that differ from the "
                "source (another install's data, or a copy made before the source changed): "
                "drop and recreate the target database, then run again"
            )
        copied = self._copy_table(source, target, table)
        return TableDone(table.name, copied.rows, "copied", time.perf_counter() - t0), copied

    def _verify(self, target: Database, expected: dict[str, Fingerprint]) -> None:
        with target.read() as conn:
            for table in TABLES:
                got = fingerprint(conn, table)
                want = expected[table.name]
                if got.rows != want.rows:
                    raise TransferError(
                        f"verification failed: table {table.name} has {got.rows} rows in the "
                        f"target, {want.rows} in the source"
                    )
                if got.digest != want.digest:
                    raise TransferError(
                        f"verification failed: the rows of table {table.name} differ between "
                        "source and target"
                    )


def _first_line(exc: Exception) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__
