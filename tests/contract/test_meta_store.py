"""The metadata store's contract: what ``davdisk.meta.store`` gives its callers, the same on
every database. Each test runs on SQLite and on PostgreSQL (the subclasses at the end)."""

from __future__ import annotations

import time
import unicodedata

import pytest

from davdisk import lockkeys
from davdisk.errors import ConcurrentChange
from davdisk.meta import store, tables
from davdisk.meta.db import Database
from tests.contract.helpers import add_blob, add_file, add_node, add_user, blob_ids


class MetaStoreContract:
    """Tests every metadata backend must pass; a subclass provides the ``db`` fixture."""

    @pytest.fixture
    def db(self) -> Database:
        raise NotImplementedError

    # --- users and keys ------------------------------------------------------------------

    def test_a_new_user_has_a_home_folder_and_is_found_by_name_and_id(self, db: Database) -> None:
        alice = add_user(db, "alice")
        assert (alice.name, alice.password_hash) == ("alice", "hash-of-alice")
        assert (alice.disabled, alice.quota_bytes, alice.used_bytes) == (False, 0, 0)
        with db.read() as conn:
            assert store.get_user(conn, "alice") == alice
            assert store.get_user_by_id(conn, alice.id) == alice
            assert store.get_user(conn, "Alice") is None  # names are exact
            home = store.get_node(conn, alice.root_id)
        assert store.get_user_single(db, "alice") == alice
        assert store.get_user_single(db, "nobody") is None
        assert home is not None and home.is_dir is True and home.parent_id is None
        assert home.owner_id == alice.id

    def test_user_settings_change_and_list_users_counts_files(self, db: Database) -> None:
        alice, bob = add_user(db, "alice"), add_user(db, "bob")
        with db.write() as conn:
            store.set_password_hash(conn, alice.id, "new-hash")
            store.set_quota(conn, alice.id, 5000)
            store.add_used_bytes(conn, alice.id, 300)
            store.add_used_bytes(conn, alice.id, -100)
            folder = add_node(conn, alice.id, alice.root_id, "f", is_dir=True)
            add_file(conn, alice.id, folder.id, "a")
            add_file(conn, alice.id, alice.root_id, "b")
        with db.read() as conn:
            got = store.get_user(conn, "alice")
            listed = store.list_users(conn)
        assert got is not None
        assert (got.password_hash, got.quota_bytes, got.used_bytes) == ("new-hash", 5000, 200)
        assert [(u.name, files) for u, files in listed] == [("alice", 2), ("bob", 0)]
        assert listed[1][0] == bob

    def test_user_keys_come_newest_first(self, db: Database) -> None:
        alice, bob = add_user(db, "alice"), add_user(db, "bob")
        with db.read() as conn:
            assert store.users_with_keys(conn) == 0
        with db.write() as conn:
            store.add_user_key(conn, alice.id, 1, b"\x00wrapped-1", "mk1")
            store.add_user_key(conn, alice.id, 2, b"\xffwrapped-2", "mk1")
            store.add_user_key(conn, bob.id, 1, b"bob", "mk1")
        with db.read() as conn:
            assert store.get_user_keys(conn, alice.id) == [
                (2, b"\xffwrapped-2"),
                (1, b"\x00wrapped-1"),
            ]
            assert store.users_with_keys(conn) == 2

    def test_deleting_a_user_removes_their_rows_and_returns_their_blobs(self, db: Database) -> None:
        alice, bob = add_user(db, "alice"), add_user(db, "bob")
        with db.write() as conn:
            store.add_user_key(conn, alice.id, 1, b"k", "mk1")
            folder = add_node(conn, alice.id, alice.root_id, "f", is_dir=True)
            one = add_file(conn, alice.id, folder.id, "one")
            two = add_file(conn, alice.id, alice.root_id, "two")
            kept = add_file(conn, bob.id, bob.root_id, "bobs")
            store.set_properties(conn, one.id, {"{x:}p": (b"v", 5)})
        with db.write() as conn:
            gone = store.delete_owner_content(conn, alice.id)
            store.delete_user(conn, alice.id)
        assert sorted(gone) == blob_ids(one, two)
        with db.read() as conn:
            assert store.get_user(conn, "alice") is None
            assert store.get_node(conn, folder.id) is None
            assert store.get_user_keys(conn, alice.id) == []
            assert store.get_properties(conn, one.id) == {}
            assert store.all_blob_rows(conn) == {kept.blob_id: 50}
            assert store.get_node(conn, kept.id) == kept

    def test_deleting_a_user_drops_their_locks_and_those_on_their_tree_only(
        self, db: Database
    ) -> None:
        # User 1's tree is /u/1...; /u/10 and /u/1x belong to others (the sibling prefix trap).
        users = [add_user(db, f"user{i}") for i in range(10)]
        first, tenth = users[0], users[9]
        assert first.id == 1 and tenth.id == 10
        with db.write() as conn:
            for token, root, principal in [
                ("held-by-user0", lockkeys.of_path(tenth.id, "/x"), "user0"),
                ("on-home", lockkeys.home(first.id), "user9"),
                ("in-tree", lockkeys.of_path(first.id, "/a b"), "user9"),
                ("neighbour", lockkeys.of_path(tenth.id, "/y"), "user9"),
                ("not-a-key-of-user-1", lockkeys.home(first.id) + "x", "user9"),
            ]:
                conn.execute(
                    tables.locks.insert().values(
                        token=token,
                        root=root,
                        scope="exclusive",
                        depth="0",
                        owner=b"",
                        principal=principal,
                        timeout=60,
                        expire=time.time() + 60,
                    )
                )
            store.delete_user(conn, first.id)
        with db.read() as conn:
            left = sorted(
                conn.scalars(tables.locks.select().with_only_columns(tables.locks.c.token))
            )
        assert left == ["neighbour", "not-a-key-of-user-1"]

    def test_ids_are_never_reused_after_a_delete(self, db: Database) -> None:
        # Migration 0004: a stale id (in a lock, a log, a client) must find nothing, never a
        # newcomer. Deleting the newest row is the case a plain rowid table gets wrong.
        first = add_user(db, "first")
        with db.write() as conn:
            node = add_node(conn, first.id, first.root_id, "n")
            share = store.create_share(conn, owner_id=first.id, node_id=node.id, token_hash="t1")
            token = store.create_app_token(conn, first.id, "phone", "h1")
        with db.write() as conn:
            store.delete_app_token(conn, first.id, token)
            store.delete_share(conn, share)
            store.delete_subtree(conn, node.id)
        with db.write() as conn:
            node2 = add_node(conn, first.id, first.root_id, "n")
            share2 = store.create_share(conn, owner_id=first.id, node_id=node2.id, token_hash="t2")
            token2 = store.create_app_token(conn, first.id, "phone", "h2")
            reserved = store.reserve_node_ids(conn, 3)
        assert node2.id > node.id and share2 > share and token2 > token
        assert min(reserved) > node2.id and len(set(reserved)) == 3
        with db.write() as conn:
            store.delete_user(conn, first.id)
        second = add_user(db, "second")
        assert second.id > first.id and second.root_id > node2.id

    # --- the node tree ---------------------------------------------------------------------

    def test_nodes_are_found_by_id_by_name_and_by_path(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            a = add_node(conn, alice.id, alice.root_id, "a", is_dir=True)
            b = add_node(conn, alice.id, a.id, "b", is_dir=True)
            f = add_file(conn, alice.id, b.id, "f.txt", size=7)
        assert (f.name, f.size, f.is_dir, f.parent_id, f.owner_id) == ("f.txt", 7, False, b.id, 1)
        assert f.etag == "etag-f.txt" and f.content_type == "application/octet-stream"
        with db.read() as conn:
            assert store.get_node(conn, f.id) == f
            assert store.get_child(conn, b.id, "f.txt") == f
            assert store.get_child(conn, b.id, "F.txt") is None
            assert store.resolve(conn, alice.root_id, ["a", "b", "f.txt"]) == f
            assert store.resolve(conn, alice.root_id, ["a", "b"]) == b
            assert store.resolve(conn, alice.root_id, []) is not None
            assert store.resolve(conn, alice.root_id, ["a", "x"]) is None
            # A file is no folder: nothing is below it.
            assert store.resolve(conn, alice.root_id, ["a", "b", "f.txt", "g"]) is None
            assert store.node_names(conn, f.id) == ["a", "b", "f.txt"]
            assert store.node_names(conn, alice.root_id) == []
        assert store.resolve_single(db, alice.root_id, ["a", "b", "f.txt"]) == f
        assert store.resolve_single(db, alice.root_id, ["a", "nope"]) is None
        home = store.resolve_single(db, alice.root_id, [])
        assert home is not None and home.id == alice.root_id and home.is_dir is True

    def test_deep_paths_resolve_in_steps(self, db: Database) -> None:
        alice = add_user(db, "alice")
        depth = store.RESOLVE_STEP * 2 + 3
        names = [f"d{i}" for i in range(depth)]
        with db.write() as conn:
            parent = alice.root_id
            for name in names:
                parent = add_node(conn, alice.id, parent, name, is_dir=True).id
            leaf = add_file(conn, alice.id, parent, "leaf")
        with db.read() as conn:
            assert store.resolve(conn, alice.root_id, [*names, "leaf"]) == leaf
            assert store.resolve(conn, alice.root_id, [*names[:-1], "x", "leaf"]) is None
            assert store.node_names(conn, leaf.id) == [*names, "leaf"]
        assert store.resolve_single(db, alice.root_id, names[: store.RESOLVE_STEP]) is not None

    @pytest.mark.parametrize(
        "name",
        ["100%", "a_b", "%", "_", "ü", "Ünïcødé 名前 🎉", 'it\'s "quoted"', "back\\slash", "a b"],
    )
    def test_names_are_stored_and_matched_exactly(self, db: Database, name: str) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            node = add_file(conn, alice.id, alice.root_id, name)
            # Neighbours a LIKE or a case/Unicode-folding comparison would confuse with it.
            add_file(conn, alice.id, alice.root_id, name + "x")
            add_file(conn, alice.id, alice.root_id, "x" + name)
        with db.read() as conn:
            assert store.get_child(conn, alice.root_id, name) == node
            assert store.resolve(conn, alice.root_id, [name]) == node
            assert store.node_names(conn, node.id) == [name]
        assert store.resolve_single(db, alice.root_id, [name]) == node

    def test_names_are_not_unicode_normalised(self, db: Database) -> None:
        alice = add_user(db, "alice")
        nfc, nfd = unicodedata.normalize("NFC", "é.txt"), unicodedata.normalize("NFD", "é.txt")
        with db.write() as conn:
            composed = add_file(conn, alice.id, alice.root_id, nfc)
            decomposed = add_file(conn, alice.id, alice.root_id, nfd)
        assert composed.id != decomposed.id
        with db.read() as conn:
            assert store.get_child(conn, alice.root_id, nfd) == decomposed
            assert sorted(store.child_names(conn, alice.root_id)) == sorted([nfc, nfd])

    def test_a_folder_lists_its_live_members_by_name(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            folder = add_node(conn, alice.id, alice.root_id, "f", is_dir=True)
            made = [add_file(conn, alice.id, folder.id, n) for n in ("c", "a", "b")]
            add_file(conn, alice.id, alice.root_id, "elsewhere")
            store.delete_subtree(conn, made[0].id)
        with db.read() as conn:
            listed = store.list_children(conn, folder.id)
            assert [e.name for e in listed] == ["a", "b"]
            assert listed == [made[1], made[2]]
            assert sorted(store.child_names(conn, folder.id)) == ["a", "b"]
            assert store.list_children(conn, listed[0].id) == []

    def test_a_name_is_unique_among_a_folders_members(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            add_file(conn, alice.id, alice.root_id, "same")
            other = add_node(conn, alice.id, alice.root_id, "other", is_dir=True)
            add_file(conn, alice.id, other.id, "same")  # another folder: fine
        with pytest.raises(ConcurrentChange), db.write() as conn:
            add_file(conn, alice.id, alice.root_id, "same")
        with db.read() as conn:
            assert store.child_names(conn, alice.root_id).count("same") == 1

    def test_moving_a_node_takes_its_subtree_along(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            src = add_node(conn, alice.id, alice.root_id, "src", is_dir=True)
            dest = add_node(conn, alice.id, alice.root_id, "dest", is_dir=True)
            inner = add_node(conn, alice.id, src.id, "inner", is_dir=True)
            leaf = add_file(conn, alice.id, inner.id, "leaf")
        with db.write() as conn:
            store.update_node(conn, inner.id, parent_id=dest.id, name="renamed", mtime=1.5)
        with db.read() as conn:
            assert store.resolve(conn, alice.root_id, ["src", "inner"]) is None
            moved = store.resolve(conn, alice.root_id, ["dest", "renamed"])
            assert moved is not None and moved.id == inner.id and moved.mtime == 1.5
            assert store.resolve(conn, alice.root_id, ["dest", "renamed", "leaf"]) == leaf
            assert store.node_names(conn, leaf.id) == ["dest", "renamed", "leaf"]
            assert store.list_children(conn, src.id) == []
            assert store.ancestors(conn, leaf.id) == [leaf.id, inner.id, dest.id, alice.root_id]
            assert store.is_ancestor(conn, dest.id, leaf.id)
            assert not store.is_ancestor(conn, src.id, leaf.id)

    def test_update_node_changes_only_the_given_columns(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            blob = add_blob(conn, alice.id)
            f = add_file(conn, alice.id, alice.root_id, "f")
            store.update_node(
                conn, f.id, size=99, etag="new", current_blob_id=blob, checksums=b"\x00sealed"
            )
            store.update_node(conn, f.id, content_type="text/plain")
            got = store.get_node(conn, f.id)
        assert got is not None
        assert (got.size, got.etag, got.blob_id, got.checksums) == (99, "new", blob, b"\x00sealed")
        assert (got.name, got.parent_id, got.content_type) == ("f", alice.root_id, "text/plain")

    def test_subtree_queries_and_cascading_delete(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            top = add_node(conn, alice.id, alice.root_id, "top", is_dir=True)
            sub = add_node(conn, alice.id, top.id, "sub", is_dir=True)
            f1 = add_file(conn, alice.id, top.id, "f1", size=100)
            f2 = add_file(conn, alice.id, sub.id, "f2", size=20)
            outside = add_file(conn, alice.id, alice.root_id, "outside", size=5)
            store.set_properties(conn, sub.id, {"{x:}p": (b"sealed", 7)})
        with db.read() as conn:
            assert sorted(store.subtree_ids(conn, top.id)) == sorted([top.id, sub.id, f1.id, f2.id])
            by_depth = store.subtree_ids_by_depth(conn, top.id, live=True)
            assert by_depth[0] == top.id and by_depth[-1] == f2.id and len(by_depth) == 4
            assert store.subtree_size(conn, top.id) == 120
            total, charged_blobs = store.subtree_totals(conn, top.id)
            assert total == 127 and sorted(charged_blobs) == blob_ids(f1, f2)
        with db.write() as conn:
            store.delete_subtree(conn, top.id)
        with db.read() as conn:
            for gone in (top, sub, f1, f2):
                assert store.get_node(conn, gone.id) is None
            assert store.get_properties(conn, sub.id) == {}
            assert store.get_node(conn, outside.id) == outside
            # The blob rows stay: whether a blob is still used is the caller's question.
            assert sorted(store.unreferenced_blob_ids(conn)) == blob_ids(f1, f2)

    def test_delete_rows_returns_the_blobs_of_the_rows_it_deletes(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            folder = add_node(conn, alice.id, alice.root_id, "f", is_dir=True)
            a = add_file(conn, alice.id, folder.id, "a")
            b = add_file(conn, alice.id, folder.id, "b")
            gone = store.delete_rows(conn, [a.id, b.id, folder.id])
        assert sorted(gone) == blob_ids(a, b)
        with db.read() as conn:
            assert store.get_node(conn, folder.id) is None

    def test_a_recursive_copy_shares_blobs_and_copies_properties(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            src = add_node(conn, alice.id, alice.root_id, "src", is_dir=True)
            sub = add_node(conn, alice.id, src.id, "sub", is_dir=True)
            f = add_file(conn, alice.id, sub.id, "f", size=3)
            store.set_properties(conn, f.id, {"{x:}p": (b"value", 6)})
            dest = add_node(conn, alice.id, alice.root_id, "dest", is_dir=True)
        with db.write() as conn:
            shallow = store.copy_subtree(conn, src, dest.id, "shallow", recursive=False)
            deep = store.copy_subtree(conn, src, dest.id, "deep", recursive=True)
        with db.read() as conn:
            assert store.list_children(conn, shallow.id) == []
            copied = store.resolve(conn, alice.root_id, ["dest", "deep", "sub", "f"])
            assert copied is not None and copied.id != f.id
            assert (copied.blob_id, copied.size, copied.etag) == (f.blob_id, 3, f.etag)
            assert store.get_properties(conn, copied.id) == {"{x:}p": b"value"}
            assert store.property_sizes(conn, copied.id) == {"{x:}p": 6}
            assert deep.name == "deep" and deep.parent_id == dest.id
            # The source is untouched.
            assert store.resolve(conn, alice.root_id, ["src", "sub", "f"]) == f

    def test_a_staged_copy_stays_hidden_until_revealed(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            src = add_node(conn, alice.id, alice.root_id, "src", is_dir=True)
            sub = add_node(conn, alice.id, src.id, "sub", is_dir=True)
            f = add_file(conn, alice.id, sub.id, "f")
            store.set_properties(conn, f.id, {"{x:}p": (b"v", 2)})
        started = time.time()
        marker = -started  # what Files marks a staged copy's rows with: its negated start
        with db.write() as conn:
            top = store.stage_copy_top(conn, src, alice.root_id, marker)
            ids = store.subtree_ids_by_depth(conn, src.id, live=True)[1:]
            mapping = store.copy_rows(conn, ids, {src.id: top}, marker, started)
        assert set(mapping) == {sub.id, f.id}
        with db.read() as conn:
            assert store.staged_copy_exists(conn, top, marker)
            assert store.get_node(conn, top) is None  # nobody sees it yet
            assert store.child_names(conn, alice.root_id) == ["src"]
            assert store.stale_staged_copies(conn, started + 1) == [top]
            assert store.stale_staged_copies(conn, started - 1) == []
        with db.write() as conn:
            store.update_node(conn, top, name="copy")
            store.reveal_subtree(conn, top, marker)
        with db.read() as conn:
            copied = store.resolve(conn, alice.root_id, ["copy", "sub", "f"])
            assert copied is not None and copied.id == mapping[f.id]
            assert copied.blob_id == f.blob_id
            assert store.get_properties(conn, copied.id) == {"{x:}p": b"v"}
            assert store.stale_staged_copies(conn, started + 1) == []

    # --- blobs ------------------------------------------------------------------------------

    def test_blob_rows_and_their_liveness(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            shared = add_blob(conn, alice.id, 10, key_version=3)
            lonely = add_blob(conn, alice.id, 20)
            a = add_node(conn, alice.id, alice.root_id, "a", size=10, blob_id=shared)
            add_node(conn, alice.id, alice.root_id, "b", size=10, blob_id=shared)
        with db.read() as conn:
            assert store.get_blob_key_version(conn, shared) == 3
            assert store.get_blob_key_version(conn, "0" * 32) is None
            assert store.blob_in_use(conn, shared) and not store.blob_in_use(conn, lonely)
            assert store.unreferenced_blob_ids(conn) == [lonely]
            assert store.all_blob_rows(conn) == {shared: 50, lonely: 60}
        with db.write() as conn:
            # Only rows no node points to go; ids may repeat or be None.
            dropped = store.drop_unreferenced_blobs(conn, [shared, lonely, lonely, None])
        assert dropped == [lonely]
        with db.write() as conn:
            replacement = add_blob(conn, alice.id, 10)
            store.repoint_blob(conn, shared, replacement)
        with db.read() as conn:
            assert store.all_blob_rows(conn) == {replacement: 50}
            moved = store.get_node(conn, a.id)
            assert moved is not None and moved.blob_id == replacement
            assert store.drop_unreferenced_blobs(conn, []) == []

    # --- dead properties ------------------------------------------------------------------

    def test_dead_properties_are_set_replaced_and_removed(self, db: Database) -> None:
        alice = add_user(db, "alice")
        name_a, name_b = "{DAV:}displayname", "{urn:ü%_}x"
        with db.write() as conn:
            f = add_file(conn, alice.id, alice.root_id, "f")
            store.set_properties(conn, f.id, {name_a: (b"\x00\xffA", 10), name_b: (b"B", 4)})
            store.set_properties(conn, f.id, {name_a: (b"A2", 11)})
        with db.read() as conn:
            assert store.get_properties(conn, f.id) == {name_a: b"A2", name_b: b"B"}
            assert store.property_sizes(conn, f.id) == {name_a: 11, name_b: 4}
        with db.write() as conn:
            store.set_properties(conn, f.id, {name_b: None, "{x:}never-set": None})
        with db.read() as conn:
            assert store.get_properties(conn, f.id) == {name_a: b"A2"}

    def test_properties_of_a_folders_children_and_replacing_them(self, db: Database) -> None:
        alice = add_user(db, "alice")
        with db.write() as conn:
            folder = add_node(conn, alice.id, alice.root_id, "f", is_dir=True)
            a = add_file(conn, alice.id, folder.id, "a")
            b = add_file(conn, alice.id, folder.id, "b")
            add_file(conn, alice.id, folder.id, "bare")
            store.set_properties(conn, folder.id, {"{x:}on-folder": (b"F", 1)})
            store.set_properties(conn, a.id, {"{x:}p": (b"A", 1), "{x:}q": (b"Q", 1)})
            store.set_properties(conn, b.id, {"{x:}p": (b"B", 1)})
        with db.read() as conn:
            assert store.get_children_properties(conn, folder.id) == {
                a.id: {"{x:}p": b"A", "{x:}q": b"Q"},
                b.id: {"{x:}p": b"B"},
            }
        with db.write() as conn:
            store.replace_properties(conn, a.id, b.id, move=False)
        with db.read() as conn:
            assert store.get_properties(conn, b.id) == {"{x:}p": b"A", "{x:}q": b"Q"}
            assert store.get_properties(conn, a.id) == {"{x:}p": b"A", "{x:}q": b"Q"}
        with db.write() as conn:
            store.replace_properties(conn, folder.id, a.id, move=True)
        with db.read() as conn:
            assert store.get_properties(conn, a.id) == {"{x:}on-folder": b"F"}
            assert store.get_properties(conn, folder.id) == {}

    # --- shares and links -------------------------------------------------------------------

    def test_user_shares_and_links(self, db: Database) -> None:
        alice, bob, carol = add_user(db, "alice"), add_user(db, "bob"), add_user(db, "carol")
        with db.write() as conn:
            docs = add_node(conn, alice.id, alice.root_id, "docs", is_dir=True)
            to_bob = store.create_share(
                conn, owner_id=alice.id, node_id=docs.id, grantee_id=bob.id, can_write=True
            )
            link = store.create_share(
                conn,
                owner_id=alice.id,
                node_id=docs.id,
                token_hash="a" * 64,
                password_hash="pw",
                expires_at=2e9,
                file_drop=True,
            )
            # bob re-shares alice's folder with carol
            reshare = store.create_share(
                conn,
                owner_id=alice.id,
                node_id=docs.id,
                grantee_id=carol.id,
                created_by=bob.id,
            )
        with db.read() as conn:
            share = store.get_share(conn, to_bob)
            assert share is not None
            assert (share.can_write, share.can_reshare, share.hidden) == (True, False, False)
            assert share.creator_id == alice.id and share.created_by is None
            found = store.share_by_token_hash(conn, "a" * 64)
            assert found is not None and found.id == link
            assert (found.file_drop, found.password_hash, found.expires_at) == (True, "pw", 2e9)
            assert store.share_by_token_hash(conn, "b" * 64) is None
            assert [s.id for s in store.user_shares_of(conn, docs.id, bob.id)] == [to_bob]
            assert [s.id for s in store.list_shares(conn)] == [to_bob, link, reshare]
            assert [s.id for s in store.list_shares(conn, bob.id)] == [to_bob, reshare]
            assert [s.id for s in store.shares_made_by(conn, bob.id)] == [reshare]
            assert [s.id for s in store.shares_of_owner(conn, alice.id)] == [to_bob, link, reshare]
            assert [s.id for s in store.shares_to(conn, carol.id)] == [reshare]
            assert store.get_share(conn, reshare).creator_id == bob.id  # type: ignore[union-attr]
        with db.write() as conn:
            store.update_share(conn, to_bob, can_write=False, can_reshare=True)
            store.delete_share(conn, link)
        with db.read() as conn:
            share = store.get_share(conn, to_bob)
            assert share is not None and (share.can_write, share.can_reshare) == (False, True)
            assert store.get_share(conn, link) is None
            assert store.share_by_token_hash(conn, "a" * 64) is None

    def test_shares_received_leave_out_hidden_ones(self, db: Database) -> None:
        alice, bob = add_user(db, "alice"), add_user(db, "bob")
        with db.write() as conn:
            one = add_node(conn, alice.id, alice.root_id, "one", is_dir=True)
            two = add_file(conn, alice.id, alice.root_id, "two")
            first = store.create_share(conn, owner_id=alice.id, node_id=one.id, grantee_id=bob.id)
            second = store.create_share(conn, owner_id=alice.id, node_id=two.id, grantee_id=bob.id)
        with db.read() as conn:
            received = store.shares_received(conn, bob.id)
            assert [(s.id, e) for s, e in received] == [(first, one), (second, two)]
        with db.write() as conn:
            store.set_share_hidden(conn, first, True)
        with db.read() as conn:
            assert [s.id for s, _ in store.shares_received(conn, bob.id)] == [second]
            # hidden shares still grant: shares_to lists them
            assert [s.id for s in store.shares_to(conn, bob.id)] == [first, second]
            assert store.shares_received(conn, alice.id) == []

    def test_shares_covering_a_node_come_from_it_and_its_ancestors(self, db: Database) -> None:
        alice, bob, carol = add_user(db, "alice"), add_user(db, "bob"), add_user(db, "carol")
        with db.write() as conn:
            a = add_node(conn, alice.id, alice.root_id, "a", is_dir=True)
            b = add_node(conn, alice.id, a.id, "b", is_dir=True)
            f = add_file(conn, alice.id, b.id, "f")
            sibling = add_node(conn, alice.id, alice.root_id, "ab", is_dir=True)
            on_a = store.create_share(conn, owner_id=alice.id, node_id=a.id, grantee_id=bob.id)
            on_f = store.create_share(conn, owner_id=alice.id, node_id=f.id, grantee_id=carol.id)
            link_b = store.create_share(conn, owner_id=alice.id, node_id=b.id, token_hash="t")
            store.create_share(conn, owner_id=alice.id, node_id=sibling.id, grantee_id=bob.id)
        with db.read() as conn:
            assert store.ancestors(conn, f.id) == [f.id, b.id, a.id, alice.root_id]
            assert store.ancestors(conn, alice.root_id) == [alice.root_id]
            every = store.shares_covering(conn, f.id)
            assert sorted(s.id for s in every) == sorted([on_a, on_f, link_b])
            assert [s.id for s in store.shares_covering(conn, f.id, grantee_id=bob.id)] == [on_a]
            assert [s.id for s in store.shares_covering(conn, b.id, share_id=link_b)] == [link_b]
            assert store.shares_covering(conn, b.id, share_id=on_f) == []
            assert store.shares_covering(conn, a.id, grantee_id=carol.id) == []

    def test_a_share_goes_with_its_node(self, db: Database) -> None:
        alice, bob = add_user(db, "alice"), add_user(db, "bob")
        with db.write() as conn:
            a = add_node(conn, alice.id, alice.root_id, "a", is_dir=True)
            inner = add_file(conn, alice.id, a.id, "inner")
            share = store.create_share(conn, owner_id=alice.id, node_id=inner.id, grantee_id=bob.id)
            store.delete_subtree(conn, a.id)
        with db.read() as conn:
            assert store.get_share(conn, share) is None

    # --- app passwords and login throttling -------------------------------------------------

    def test_app_tokens(self, db: Database) -> None:
        alice, bob = add_user(db, "alice"), add_user(db, "bob")
        with db.write() as conn:
            phone = store.create_app_token(conn, alice.id, "phone 📱", "h" * 64)
            laptop = store.create_app_token(conn, alice.id, "laptop", "i" * 64)
            store.create_app_token(conn, bob.id, "bobs", "j" * 64)
            store.touch_app_token(conn, phone, 1234.5)
        with db.read() as conn:
            found = store.app_token_by_hash(conn, "h" * 64)
            assert found is not None
            assert (found.id, found.user_id, found.label) == (phone, alice.id, "phone 📱")
            assert found.last_used_at == 1234.5
            assert store.app_token_by_hash(conn, "k" * 64) is None
            assert [t.id for t in store.list_app_tokens(conn, alice.id)] == [phone, laptop]
        with db.write() as conn:
            assert store.delete_app_token(conn, bob.id, phone) is False  # not bob's
            assert store.delete_app_token(conn, alice.id, phone) is True
            assert store.delete_app_token(conn, alice.id, phone) is False
        with db.read() as conn:
            assert [t.id for t in store.list_app_tokens(conn, alice.id)] == [laptop]
        with pytest.raises(ConcurrentChange), db.write() as conn:
            store.create_app_token(conn, alice.id, "dup", "i" * 64)  # one hash, one token

    def test_login_failures_are_counted_cleared_and_pruned(self, db: Database) -> None:
        now = time.time()
        keys = ["user:alice", "ip:10.0.0.1", "link:7"]
        with db.write() as conn:
            store.save_login_failure(conn, keys[0], store.FailureCount(1, 0.0, now - 100))
            store.save_login_failure(conn, keys[0], store.FailureCount(2, now + 60, now))
            store.save_login_failure(conn, keys[1], store.FailureCount(5, 0.0, now - 1000))
            store.save_login_failure(conn, keys[2], store.FailureCount(1, 0.0, now - 1000))
        with db.read() as conn:
            got = store.login_failures_for(conn, [*keys, "user:nobody"])
        assert got[keys[0]] == store.FailureCount(2, now + 60, now)
        assert set(got) == set(keys)
        with db.write() as conn:
            store.clear_login_failures(conn, [keys[2]])
            # old and locking nothing: forgotten; alice's is recent and locks
            assert store.prune_login_failures(conn, now - 500, now) == 1
        with db.read() as conn:
            assert set(store.login_failures_for(conn, keys)) == {keys[0]}


class TestMetaStoreOnSQLite(MetaStoreContract):
    @pytest.fixture
    def db(self, sqlite_db: Database) -> Database:
        return sqlite_db


class TestMetaStoreOnPostgreSQL(MetaStoreContract):
    @pytest.fixture
    def db(self, postgresql_db: Database) -> Database:
        return postgresql_db
