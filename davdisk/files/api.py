"""Files: THE one API for what users do with files, whatever the face (WebDAV, CLI, later web).

A thin facade over the modules that do the work, each with one job:

- files/namespace.py: resolving paths (shares mounted in a user's top folder), listing, dead
  properties, folders, empty files, deletes, usage;
- files/transfer.py: opening verified plaintext for reading, starting uploads;
- files/copymove.py: MOVE and COPY (staged for big folders, re-encrypted across owners);
- files/content.py: the one owner of content — which blob a node points at, which blobs are no
  longer used, and the only way to the blob store.

Access checks live in files/access.py (:func:`~davdisk.files.access.allow`), asked by each of
them. The write path never holds a database transaction while a request body is read: the blob
is written and made durable first, then one short transaction points the node at it, so a crash
or a cut connection leaves the old content and, at most, an orphan blob for ``davdisk gc``.
"""

from __future__ import annotations

from davdisk.files import access, deadprops
from davdisk.files.checksums import Checksums
from davdisk.files.content import Content
from davdisk.files.copymove import CopyMove
from davdisk.files.history import History
from davdisk.files.keyring import Keyring
from davdisk.files.namespace import Namespace
from davdisk.files.transfer import Transfer
from davdisk.files.upload import Upload
from davdisk.meta.db import Database
from davdisk.model import Action, Actor, Node

__all__ = ["Action", "Actor", "Files", "Upload"]


class Files:
    """Thread-safe; one per application. Its methods are those of the modules above (their
    docstrings say what each does); it holds no state of its own."""

    def __init__(self, db: Database, content: Content, keyring: Keyring) -> None:
        self._db = db
        props = deadprops.PropertyCrypt(keyring)
        # Faces reveal a file's hashes with it (files/checksums.py).
        self.checksums = Checksums(keyring)
        namespace = Namespace(db, content, props)
        transfer = Transfer(db, content, keyring, self.checksums)
        copymove = CopyMove(db, content, props, namespace, transfer)
        # versions and trash: files/history.py
        self.history = History(db, content, transfer)

        # who and what
        self.actor = namespace.actor
        self.login_record = namespace.login_record
        self.link_share = namespace.link_share
        self.resolve = namespace.resolve
        self.node = namespace.node
        self.exists_at_lock_root = namespace.exists_at_lock_root
        self.mounts = namespace.mounts
        self.share_of_mount = namespace.share_of_mount
        self.parent_of = namespace.parent_of
        self.owner_names = namespace.owner_names
        # listing and sizes
        self.children = namespace.children
        self.children_with_properties = namespace.children_with_properties
        self.walk_entries = namespace.walk_entries
        self.tree_size = namespace.tree_size
        self.usage = namespace.usage
        # dead properties and times
        self.properties = namespace.properties
        self.check_properties = namespace.check_properties
        self.set_properties = namespace.set_properties
        self.set_times = namespace.set_times
        # changes of the namespace
        self.mkdir = namespace.mkdir
        self.create_empty = namespace.create_empty
        self.delete = namespace.delete
        self.move = copymove.move
        self.copy = copymove.copy
        self.drop_staged_copy = copymove.drop_staged_copy
        # content
        self.open_read = transfer.open_read
        self.open_current = transfer.open_current
        self.upload = transfer.upload
        self.write = transfer.write

    def may(self, actor: Actor, entry: Node, action: Action) -> bool:
        """Whether ``actor`` may do ``action`` on ``entry`` (for faces that show permissions)."""
        return access.allowed(self._db, actor, entry, action)
