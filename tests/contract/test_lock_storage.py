"""The lock storage contract: what WsgiDAV's ``LockManager`` (and ours, ``SQLLockManager``)
asks of ``davdisk.dav.locks.SQLLockStorage``, the same on every database.

Laid out as WsgiDAV's own lock tests: one base class of tests using a ``storage`` fixture, one
small subclass per backend. Lock roots are lock keys (``/u/<user id>/<quoted path>``,
davdisk/lockkeys.py); raw names with ``%``, ``_`` and non-ASCII letters are tried too, since a
prefix query built with LIKE or a collation that is not bytewise would confuse them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from wsgidav.dav_error import HTTP_INSUFFICIENT_STORAGE, HTTP_LOCKED, DAVError
from wsgidav.lock_man.lock_manager import LockManager

from davdisk import lockkeys
from davdisk.dav import locks as locks_mod
from davdisk.dav.locks import MAX_TIMEOUT, SQLLockManager, SQLLockStorage
from davdisk.meta.db import Database

OWNER = b"<D:href>mailto:joe@example.com</D:href>"
# A lock timeout that runs out within a test, but not before the test's next few statements
# (on a busy machine a write transaction can take a good part of a second).
SHORT = 1.0


def new_lock(
    principal: str = "joe", *, scope: str = "exclusive", depth: str = "infinity", timeout: Any = 60
) -> dict[str, Any]:
    """A lock dictionary as WsgiDAV's LockManager hands it to ``create``."""
    return {
        "type": "write",
        "scope": scope,
        "depth": depth,
        "owner": OWNER,
        "timeout": timeout,
        "principal": principal,
    }


def make(storage: SQLLockStorage, root: str, **kw: Any) -> dict[str, Any]:
    return storage.create(root, new_lock(**kw))


def roots_of(found: list[dict[str, Any]]) -> list[str]:
    return sorted(lock["root"] for lock in found)


def manager_on(storage: SQLLockStorage) -> SQLLockManager:
    """Our lock manager as the server builds it, for URLs that all exist."""
    return SQLLockManager(storage, href_for=lambda ref: ref, exists=lambda conn, ref: True)


def acquire(manager: LockManager, url: str, principal: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "lock_type": "write",
        "lock_scope": "exclusive",
        "lock_depth": "infinity",
        "lock_owner": OWNER,
        "timeout": 60,
        "token_list": [],
    }
    args.update(kw)
    return manager.acquire(url=url, principal=principal, **args)


class LockStorageContract:
    """Tests every lock storage backend must pass; a subclass provides ``db``."""

    @pytest.fixture
    def db(self) -> Database:
        raise NotImplementedError

    @pytest.fixture
    def storage(self, db: Database) -> SQLLockStorage:
        return SQLLockStorage(db)

    # --- one lock -----------------------------------------------------------------------------

    def test_create_then_get(self, storage: SQLLockStorage) -> None:
        before = time.time()
        made = make(storage, "/u/1/docs/", principal="joe", timeout=120)
        assert made["root"] == "/u/1/docs"  # normalised: no trailing slash
        assert isinstance(made["token"], str) and made["token"]
        assert made["timeout"] == 120
        assert before + 120 <= made["expire"] <= time.time() + 120
        got = storage.get(made["token"])
        assert got is not None
        for key in ("token", "root", "type", "scope", "depth", "owner", "principal", "timeout"):
            assert got[key] == made[key], key
        assert got["expire"] == pytest.approx(made["expire"])
        assert storage.get("opaquelocktoken:nothing-like-it") is None

    def test_every_lock_gets_its_own_token(self, storage: SQLLockStorage) -> None:
        tokens = {make(storage, "/u/1/f", scope="shared")["token"] for _ in range(5)}
        assert len(tokens) == 5

    @pytest.mark.parametrize(
        ("asked", "granted"), [(None, MAX_TIMEOUT), (-1, MAX_TIMEOUT), (10**9, MAX_TIMEOUT)]
    )
    def test_timeouts_are_capped(
        self, storage: SQLLockStorage, asked: float | None, granted: float
    ) -> None:
        made = make(storage, "/u/1/f", timeout=asked)
        assert made["timeout"] == granted
        got = storage.get(made["token"])
        assert got is not None and got["timeout"] == granted

    def test_refresh_extends_a_lock(self, storage: SQLLockStorage) -> None:
        made = make(storage, "/u/1/f", timeout=30)
        refreshed = storage.refresh(made["token"], timeout=600)
        assert refreshed["token"] == made["token"] and refreshed["timeout"] == 600
        assert refreshed["expire"] >= made["expire"] + 500
        got = storage.get(made["token"])
        assert got is not None and got["expire"] == pytest.approx(refreshed["expire"])
        assert storage.refresh(made["token"], timeout=10**9)["timeout"] == MAX_TIMEOUT
        with pytest.raises(ValueError):
            storage.refresh("opaquelocktoken:gone", timeout=60)

    def test_delete(self, storage: SQLLockStorage) -> None:
        made = make(storage, "/u/1/f")
        other = make(storage, "/u/1/g")
        assert storage.delete(made["token"]) is True
        assert storage.get(made["token"]) is None
        assert storage.delete(made["token"]) is False
        assert storage.get(other["token"]) is not None

    def test_an_expired_lock_is_gone_everywhere(self, storage: SQLLockStorage) -> None:
        short = make(storage, "/u/1/a/short", timeout=SHORT)
        kept = make(storage, "/u/1/a/kept", timeout=60)
        assert storage.get(short["token"]) is not None
        time.sleep(SHORT + 0.2)
        assert storage.get(short["token"]) is None
        found = storage.get_lock_list(
            "/u/1/a", include_root=True, include_children=True, token_only=True
        )
        assert found == [kept["token"]]
        assert storage.get_locks_on(["/u/1/a/short", "/u/1/a"]) == []
        storage.cleanup()
        assert storage.delete(short["token"]) is False  # cleanup removed the row
        assert storage.get(kept["token"]) is not None

    # --- lists -------------------------------------------------------------------------------

    def test_lock_lists_on_and_under_a_url(self, storage: SQLLockStorage) -> None:
        # Neighbours that share a prefix but no path segment: "ab" (the sibling prefix trap),
        # "a0" ("0" follows "/": a range query's edge), "a." and "a ü".
        for root in ("/u/1", "/u/1/a", "/u/1/a/b", "/u/1/a/b/c", "/u/1/ab", "/u/1/ab/c"):
            make(storage, root, scope="shared")
        for root in ("/u/1/a0", "/u/1/a.", "/u/1/a ü", "/u/10/a"):
            make(storage, root, scope="shared")

        def roots(path: str, **kw: bool) -> list[str]:
            return roots_of(storage.get_lock_list(path, token_only=False, **kw))

        for path in ("/u/1/a", "/u/1/a/", "u/1/a"):
            assert roots(path, include_root=True, include_children=False) == ["/u/1/a"]
            assert roots(path, include_root=False, include_children=True) == [
                "/u/1/a/b",
                "/u/1/a/b/c",
            ]
            assert roots(path, include_root=True, include_children=True) == [
                "/u/1/a",
                "/u/1/a/b",
                "/u/1/a/b/c",
            ]
            assert roots(path, include_root=False, include_children=False) == []
        assert roots("/u/1/ab", include_root=True, include_children=True) == [
            "/u/1/ab",
            "/u/1/ab/c",
        ]
        assert roots("/u/1/nothing", include_root=True, include_children=True) == []
        # A user's home is not a prefix of another user's ("/u/1" vs "/u/10").
        assert "/u/10/a" not in roots("/u/1", include_root=True, include_children=True)

    def test_token_only_lists_tokens(self, storage: SQLLockStorage) -> None:
        on = make(storage, "/u/1/a")
        under = make(storage, "/u/1/a/b", principal="ann")
        tokens = storage.get_lock_list(
            "/u/1/a", include_root=True, include_children=True, token_only=True
        )
        assert sorted(tokens) == sorted([on["token"], under["token"]])
        full = storage.get_lock_list(
            "/u/1/a/b", include_root=True, include_children=False, token_only=False
        )
        assert len(full) == 1
        assert {k: full[0][k] for k in ("token", "principal", "owner", "depth", "type")} == {
            "token": under["token"],
            "principal": "ann",
            "owner": OWNER,
            "depth": "infinity",
            "type": "write",
        }

    @pytest.mark.parametrize(
        ("target", "below", "neighbours"),
        [
            # LIKE wildcards in the name: "_" matches one character, "%" any run.
            ("/u/1/a_b", "/u/1/a_b/in", ["/u/1/axb/in", "/u/1/a_bc", "/u/1/a_b_"]),
            ("/u/1/100%", "/u/1/100%/in", ["/u/1/1000/in", "/u/1/100%x", "/u/1/100"]),
            ("/u/1/%", "/u/1/%/in", ["/u/1/x/in", "/u/1/%%"]),
            # Non-ASCII: raw, and as lock keys quote it; a collation-aware compare must not
            # fold "ü" and "u", nor order "é" away from where bytes put it.
            ("/u/1/ü", "/u/1/ü/in", ["/u/1/u/in", "/u/1/üx", "/u/1/Ü/in"]),
            (
                lockkeys.of_path(1, "/Ünïcødé 名前"),
                lockkeys.of_path(1, "/Ünïcødé 名前/in"),
                [lockkeys.of_path(1, "/Ünïcødé 名前x"), lockkeys.of_path(1, "/Unicode/in")],
            ),
            ("/u/1/é", "/u/1/é/deep/in", ["/u/1/e/in", "/u/1/éa", "/u/1/f/in"]),
        ],
    )
    def test_prefix_queries_match_whole_segments_of_any_name(
        self, storage: SQLLockStorage, target: str, below: str, neighbours: list[str]
    ) -> None:
        for root in (target, below, *neighbours):
            make(storage, root, scope="shared")

        def lists() -> tuple[list[str], list[str], list[str]]:
            return (
                roots_of(
                    storage.get_lock_list(
                        target, include_root=True, include_children=True, token_only=False
                    )
                ),
                roots_of(
                    storage.get_lock_list(
                        target, include_root=False, include_children=True, token_only=False
                    )
                ),
                roots_of(storage.get_locks_on([target])),
            )

        expected = (sorted([target, below]), [below], [target])
        assert lists() == expected
        # The same inside a lock acquisition's transaction (another path to the database).
        with storage.exclusive():
            assert lists() == expected
        storage.remove_under(target)
        left = storage.get_lock_list(
            "/u/1", include_root=True, include_children=True, token_only=False
        )
        assert roots_of(left) == sorted(neighbours)

    def test_locks_on_a_url_and_its_folders(self, storage: SQLLockStorage) -> None:
        for root in ("/u/1", "/u/1/a", "/u/1/a/b", "/u/1/a/b/c", "/u/1/ab", "/u/1/x"):
            make(storage, root, scope="shared")
        chain = locks_mod.lock_chain("/u/1/a/b/")
        assert chain[:3] == ["/u/1/a/b", "/u/1/a", "/u/1"]
        assert roots_of(storage.get_locks_on(chain)) == ["/u/1", "/u/1/a", "/u/1/a/b"]

    def test_remove_under_drops_a_subtree_only(self, storage: SQLLockStorage) -> None:
        for root in ("/u/1/a", "/u/1/a/b", "/u/1/a/b/c", "/u/1/ab", "/u/1/a0", "/u/1"):
            make(storage, root, scope="shared")
        storage.remove_under("/u/1/a/")
        left = storage.get_lock_list(
            "/u/1", include_root=True, include_children=True, token_only=False
        )
        assert roots_of(left) == ["/u/1", "/u/1/a0", "/u/1/ab"]

    # --- limits ------------------------------------------------------------------------------

    def test_a_principal_holds_a_limited_number_of_locks(
        self, storage: SQLLockStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(locks_mod, "MAX_LOCKS_PER_USER", 3)
        short = make(storage, "/u/1/f0", principal="joe", timeout=SHORT)
        first = make(storage, "/u/1/f1", principal="joe")
        make(storage, "/u/1/f2", principal="joe")
        with pytest.raises(DAVError) as refused:
            make(storage, "/u/1/f3", principal="joe")
        assert refused.value.value == HTTP_INSUFFICIENT_STORAGE
        make(storage, "/u/1/f3", principal="ann")  # another principal has room
        time.sleep(SHORT + 0.2)  # an expired lock holds no place
        make(storage, "/u/1/f3", principal="joe")
        with pytest.raises(DAVError):
            make(storage, "/u/1/f4", principal="joe")
        storage.delete(first["token"])
        make(storage, "/u/1/f4", principal="joe")
        assert storage.get(short["token"]) is None

    def test_a_resource_holds_a_limited_number_of_locks(
        self, storage: SQLLockStorage, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(locks_mod, "MAX_LOCKS_PER_RESOURCE", 2)
        make(storage, "/u/1/f", principal="joe", scope="shared")
        make(storage, "/u/1/f", principal="ann", scope="shared")
        with pytest.raises(DAVError) as refused:
            make(storage, "/u/1/f/", principal="bob", scope="shared")
        assert refused.value.value == HTTP_INSUFFICIENT_STORAGE
        make(storage, "/u/1/f/in", principal="bob", scope="shared")  # another resource

    # --- through the lock managers ----------------------------------------------------------

    @pytest.mark.parametrize("manager_class", ["wsgidav", "davdisk"])
    def test_lock_managers_grant_find_refresh_and_release(
        self, storage: SQLLockStorage, manager_class: str
    ) -> None:
        manager = LockManager(storage) if manager_class == "wsgidav" else manager_on(storage)
        lock = acquire(manager, "/u/1/res/", "joe")
        token = lock["token"]
        assert manager.get_lock(token, key="root") == "/u/1/res"
        assert manager.is_token_locked_by_user(token, "joe")
        assert manager.is_url_locked("/u/1/res")
        assert manager.is_url_locked_by_token("/u/1/res/sub", token)
        assert not manager.is_url_locked_by_token("/u/1/ressub", token)
        assert not manager.is_url_locked_by_token("/u/1", token)
        assert [k["token"] for k in manager.get_url_lock_list("/u/1/res")] == [token]
        assert [k["token"] for k in manager.get_indirect_url_lock_list("/u/1/res/a/b")] == [token]
        assert manager.refresh(token, timeout=300)["timeout"] == 300
        manager.release(token)
        assert manager.get_lock(token) is None
        assert not manager.is_url_locked("/u/1/res")

    @pytest.mark.parametrize("manager_class", ["wsgidav", "davdisk"])
    def test_lock_managers_refuse_conflicting_locks(
        self, storage: SQLLockStorage, manager_class: str
    ) -> None:
        manager = LockManager(storage) if manager_class == "wsgidav" else manager_on(storage)
        acquire(manager, "/u/1/res", "joe")
        for url, principal in [
            ("/u/1/res", "ann"),
            ("/u/1/res/", "joe"),
            ("/u/1/res/sub", "ann"),
            ("/u/1/res/sub", "joe"),
            ("/u/1", "joe"),
        ]:
            with pytest.raises(DAVError) as refused:
                acquire(manager, url, principal)
            assert refused.value.value == HTTP_LOCKED, (url, principal)
        acquire(manager, "/u/1/ressub", "ann")  # a sibling, not a member
        acquire(manager, "/u/1/re", "ann")
        shared = acquire(manager, "/u/1/s", "ann", lock_scope="shared")
        acquire(manager, "/u/1/s", "bob", lock_scope="shared")
        with pytest.raises(DAVError):
            acquire(manager, "/u/1/s", "joe")
        manager.release(shared["token"])

    @pytest.mark.parametrize("first_lock", [True, False], ids=["first-lock-ever", "later"])
    def test_concurrent_exclusive_locks_on_one_url_are_granted_once(
        self, db: Database, storage: SQLLockStorage, first_lock: bool
    ) -> None:
        # Two server processes: two Database objects on one database, two threads each. The
        # very first acquisition on a new database is a case of its own (whatever serialises
        # acquisitions may not exist yet).
        if not first_lock:
            acquire(manager_on(storage), "/u/1/elsewhere", "joe")
        other = Database(db.url)
        managers = [manager_on(storage), manager_on(SQLLockStorage(other))] * 2
        start = threading.Barrier(len(managers))
        results: list[Any] = [None] * len(managers)

        def run(i: int) -> None:
            start.wait(timeout=30)
            try:
                results[i] = acquire(managers[i], "/u/1/contested", f"user{i}")["token"]
            except Exception as e:
                results[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(managers))]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
        finally:
            other.dispose()
        granted = [r for r in results if isinstance(r, str)]
        refused = [r for r in results if not isinstance(r, str)]
        assert len(granted) == 1, results
        assert all(isinstance(r, DAVError) and r.value == HTTP_LOCKED for r in refused), results
        assert (
            storage.get_lock_list(
                "/u/1/contested", include_root=True, include_children=True, token_only=True
            )
            == granted
        )


class TestLockStorageOnSQLite(LockStorageContract):
    @pytest.fixture
    def db(self, sqlite_db: Database) -> Iterator[Database]:
        yield sqlite_db


class TestLockStorageOnPostgreSQL(LockStorageContract):
    @pytest.fixture
    def db(self, postgresql_db: Database) -> Iterator[Database]:
        yield postgresql_db
