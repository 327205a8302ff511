"""Copy a SQLite install's metadata into a PostgreSQL database (``davdisk db migrate``).

What differs between the two ends (reading one snapshot, finding a running server, streaming
rows in, setting id sequences) is asked of their dialects (meta/dialects/), which say which end
of a move each backend can be.

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

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Table, func, inspect, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from davdisk.errors import DavdiskError, UsageError
from davdisk.meta import dialects
from davdisk.meta.db import HEAD_REVISION, Database
from davdisk.meta.dialects import Dialect, DriverError
from davdisk.meta.models import Base

# Every table of the schema, parents before children (users before nodes before properties).
TABLES: tuple[Table, ...] = tuple(Base.metadata.sorted_tables)
# Alembic's table: no data of an install (nor are the backend's own, Dialect.own_tables).
_BOOKKEEPING = {"alembic_version"}
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
    """The URL of the database to move to (PostgreSQL); where it names no driver, the one
    davdisk installs (psycopg 3). Anything else is refused in one line."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise UsageError(
            f"--to {raw!r} is not a database URL: use postgresql+psycopg://USER:PASSWORD@HOST/DB"
        ) from None
    kind = dialects.kind_of(url)
    if kind is None or not kind.can_be_move_target:
        raise UsageError(
            f"--to must be a PostgreSQL URL (postgresql+psycopg://USER:PASSWORD@HOST/DB), "
            f"not {url.get_backend_name()!r}"
        )
    url = kind.move_target_url(url)
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


class Transfer:
    """One move of the SQLite database ``source_url`` into PostgreSQL ``target``."""

    def __init__(self, source_url: str, target: URL, counters: Counters | None = None) -> None:
        kind = dialects.kind_of(source_url)
        if kind is None or not kind.can_be_move_source:
            raise UsageError("the install's database is not SQLite: nothing to move")
        self.source: type[Dialect] = kind
        self.source_url = source_url
        # Where the source is, for messages: its file (or URL without the password).
        self.source_location = dialects.location(source_url)
        self.target = target
        self.target_text = target.render_as_string(hide_password=False)
        self.counters: Counters = counters or (lambda _name, _total: None)

    # --- the source: read only, one snapshot --------------------------------------------------

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
        unknown = names - _BOOKKEEPING - self.source.own_tables - {t.name for t in TABLES}
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
        rows_read = 0
        digest = 0

        def read(counter: RowCounter | None) -> Iterator[tuple[Any, ...]]:
            nonlocal rows_read, digest
            for row in rows:
                # The fingerprint of what was read, for the verification to compare.
                rows_read += 1
                digest = (digest + _row_hash(row)) % _MOD
                yield tuple(row)
                if counter is not None and rows_read % BATCH == 0:
                    counter.advance(BATCH)

        try:
            with target.write() as conn:
                total = source.scalar(select(func.count()).select_from(table)) or 0
                counter = self.counters(table.name, total)
                target.dialect.bulk_insert(conn, table, read(counter))
                if counter is not None:
                    counter.advance(rows_read % BATCH)
                    counter.close()
        except (DBAPIError, DriverError) as e:
            message = _first_line(e)
            hint = ""
            if "NUL" in message:  # the hidden top of a folder COPY cut by a crash
                hint = " (run davdisk gc to remove what an interrupted COPY left, then again)"
            raise TransferError(f"cannot copy table {table.name}: {message}{hint}") from None
        return Fingerprint(rows_read, digest)

    def _reset_sequences(self, source: Connection, target: Database) -> None:
        """Each id sequence continues above every id the source gave out, deleted rows' too."""
        given = self.source.id_high_water(source)
        with target.write() as conn:
            for table in TABLES:
                if table.autoincrement_column is None:
                    continue
                column = table.autoincrement_column.name
                highest = max(
                    given.get(table.name, 0),
                    int(source.scalar(select(func.max(table.c[column]))) or 0),
                )
                target.dialect.restart_ids(conn, table.name, column, highest)

    # --- the move -----------------------------------------------------------------------------

    def run(self, progress: Callable[[TableDone], None] = lambda _d: None) -> Report:
        started = time.perf_counter()
        user = self.source.opener_elsewhere(self.source_url)
        if user is not None:
            raise TransferError(
                f"{self.source_location} is open in another process (pid {user}, a running "
                "server?): stop it before moving"
            )
        engine = self.source.snapshot_reader(self.source_url)
        watch = engine.connect()  # outside the snapshot: sees others' commits
        expected: dict[str, Fingerprint] = {}
        try:
            with engine.connect() as source:
                self._check_source(source)
                target = self._prepare_target()  # before reading: a bad target fails at once
                try:
                    before = self.source.change_count(watch)
                    # Every table is read inside one snapshot of the source.
                    with self.source.snapshot(source):
                        for table in TABLES:
                            done, expected[table.name] = self._move_table(source, target, table)
                            progress(done)
                        self._reset_sequences(source, target)
                        self._verify(target, expected)
                finally:
                    target.dispose()
            if self.source.change_count(watch) != before:
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
