"""The transaction contract of ``Database.read()`` and ``Database.write()``, the same on every
database: callers rely on it to keep read-check-then-write sequences (does the name exist? then
create it) correct with several threads and several server processes on one database.

- a write that raises leaves nothing behind, and the database stays usable;
- a read is one snapshot: a write that commits meanwhile is not half seen;
- two writes that each check for a row and then create it do not both create it: one waits for
  the other (SQLite's writers' lock) or fails cleanly, as a :class:`DavdiskError` the faces can
  answer (never a raw driver exception, which would be a 500).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, func, select

from davdisk.errors import ConcurrentChange, DavdiskError
from davdisk.meta import store, tables
from davdisk.meta.db import Database
from tests.contract.helpers import add_file, add_node, add_user

Outcome = Any  # "created", "exists", or the exception the transaction raised


def race(
    db: Database, exists: Callable[[Connection], bool], create: Callable[[Connection], object]
) -> list[Outcome]:
    """Run check-then-create in two threads, each in one ``write()``, letting both check
    before either creates where the database allows it (a thread waits up to 0.5 s for the
    other's check: SQLite's second writer cannot check before the first commits). Returns
    each thread's outcome."""
    checked = [threading.Event(), threading.Event()]
    outcomes: list[Outcome] = [None, None]

    def run(i: int) -> None:
        try:
            with db.write() as conn:
                found = exists(conn)
                checked[i].set()
                checked[1 - i].wait(timeout=0.5)
                if found:
                    outcomes[i] = "exists"
                    return
                create(conn)
            outcomes[i] = "created"
        except Exception as e:
            outcomes[i] = e
        finally:
            checked[i].set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a transaction hung"
    return outcomes


def describe(outcome: Outcome) -> str:
    if isinstance(outcome, BaseException):
        first = str(outcome).splitlines()[0] if str(outcome) else ""
        return f"{type(outcome).__module__}.{type(outcome).__name__}: {first}"
    return str(outcome)


def assert_one_created(outcomes: list[Outcome]) -> None:
    shown = [describe(o) for o in outcomes]
    assert outcomes.count("created") == 1, f"not exactly one created: {shown}"
    for o in outcomes:
        assert o in ("created", "exists") or isinstance(o, DavdiskError), (
            f"the other transaction must see the row or fail as a DavdiskError: {shown}"
        )


class MetaTransactionsContract:
    """Tests every metadata backend must pass; a subclass provides the ``db`` fixture."""

    @pytest.fixture
    def db(self) -> Database:
        raise NotImplementedError

    def test_a_write_that_raises_is_rolled_back(self, db: Database) -> None:
        alice = add_user(db, "alice")
        failure = RuntimeError("the caller gave up")
        with pytest.raises(RuntimeError) as raised, db.write() as conn:
            store.create_user(conn, "bob", "h")
            f = add_file(conn, alice.id, alice.root_id, "f")
            store.set_properties(conn, f.id, {"{x:}p": (b"v", 2)})
            store.add_used_bytes(conn, alice.id, 10)
            raise failure
        assert raised.value is failure  # the caller's own error, unchanged
        with db.read() as conn:
            assert store.get_user(conn, "bob") is None
            assert store.child_names(conn, alice.root_id) == []
            assert store.all_blob_rows(conn) == {}
            assert store.get_user(conn, "alice") == alice
        # and the next write works
        with db.write() as conn:
            add_node(conn, alice.id, alice.root_id, "after")
        with db.read() as conn:
            assert store.child_names(conn, alice.root_id) == ["after"]

    def test_a_write_whose_statement_fails_is_rolled_back_whole(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with pytest.raises(ConcurrentChange), db.write() as conn:
            add_node(conn, alice.id, alice.root_id, "first")
            add_node(conn, alice.id, alice.root_id, "dup")
            add_node(conn, alice.id, alice.root_id, "dup")  # the unique index refuses it
        with db.read() as conn:
            assert store.child_names(conn, alice.root_id) == []
        with db.write() as conn:
            add_node(conn, alice.id, alice.root_id, "dup")
        with db.read() as conn:
            assert store.child_names(conn, alice.root_id) == ["dup"]

    def test_a_read_does_not_see_a_write_before_it_commits(self, db: Database) -> None:
        alice = add_user(db, "alice")
        written, release = threading.Event(), threading.Event()

        def writer() -> None:
            with db.write() as conn:
                add_node(conn, alice.id, alice.root_id, "pending")
                written.set()
                release.wait(timeout=30)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert written.wait(timeout=30)
            with db.read() as conn:
                assert store.child_names(conn, alice.root_id) == []
            assert store.resolve_single(db, alice.root_id, ["pending"]) is None
        finally:
            release.set()
            thread.join(timeout=30)
        with db.read() as conn:
            assert store.child_names(conn, alice.root_id) == ["pending"]

    def test_a_read_is_one_snapshot_while_a_write_commits(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            add_file(conn, alice.id, alice.root_id, "old", size=1)

        def move_and_add() -> None:
            with db.write() as conn:
                old = store.get_child(conn, alice.root_id, "old")
                assert old is not None
                store.update_node(conn, old.id, name="renamed")
                add_file(conn, alice.id, alice.root_id, "new", size=2)
                store.create_user(conn, "bob", "h")

        with db.read() as conn:
            before = store.list_children(conn, alice.root_id)
            thread = threading.Thread(target=move_and_add)
            thread.start()
            thread.join(timeout=30)
            assert not thread.is_alive(), "a write waited for a read"
            # Still the state the read began with, in every table.
            seen = [e.name for e in store.list_children(conn, alice.root_id)]
            assert seen == ["old"], f"the read saw a write that committed after it began: {seen}"
            assert store.list_children(conn, alice.root_id) == before
            assert store.get_child(conn, alice.root_id, "renamed") is None
            assert store.get_user(conn, "bob") is None
            assert [u.name for u, _ in store.list_users(conn)] == ["alice"]
        with db.read() as conn:
            assert sorted(store.child_names(conn, alice.root_id)) == ["new", "renamed"]

    def test_two_writes_creating_one_name_in_a_folder_do_not_both_succeed(
        self, db: Database
    ) -> None:
        alice = add_user(db, "alice")
        outcomes = race(
            db,
            lambda conn: store.get_child(conn, alice.root_id, "report.txt") is not None,
            lambda conn: add_node(conn, alice.id, alice.root_id, "report.txt"),
        )
        assert_one_created(outcomes)
        with db.read() as conn:
            assert store.child_names(conn, alice.root_id) == ["report.txt"]

    def test_two_writes_creating_one_user_do_not_both_succeed(self, db: Database) -> None:
        outcomes = race(
            db,
            lambda conn: store.get_user(conn, "carol") is not None,
            lambda conn: store.create_user(conn, "carol", "h"),
        )
        assert_one_created(outcomes)
        with db.read() as conn:
            assert [u.name for u, _ in store.list_users(conn)] == ["carol"]

    def test_two_writes_sharing_one_node_with_one_user_do_not_both_succeed(
        self, db: Database
    ) -> None:
        # No unique constraint stands behind this check (files/shares.py reuses an existing
        # share): only the transactions' isolation keeps a second share out.
        alice, bob = add_user(db, "alice"), add_user(db, "bob")
        with db.write() as conn:
            docs = add_node(conn, alice.id, alice.root_id, "docs", is_dir=True)

        outcomes = race(
            db,
            lambda conn: bool(store.user_shares_of(conn, docs.id, bob.id)),
            lambda conn: store.create_share(
                conn, owner_id=alice.id, node_id=docs.id, grantee_id=bob.id
            ),
        )
        with db.read() as conn:
            count = conn.scalar(select(func.count()).select_from(tables.shares))
        assert_one_created(outcomes)
        assert count == 1


class TestMetaTransactionsOnSQLite(MetaTransactionsContract):
    @pytest.fixture
    def db(self, sqlite_db: Database) -> Database:
        return sqlite_db


class TestMetaTransactionsOnPostgreSQL(MetaTransactionsContract):
    @pytest.fixture
    def db(self, postgresql_db: Database) -> Database:
        return postgresql_db
