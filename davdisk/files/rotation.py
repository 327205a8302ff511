"""Key rotation: a new master key for every user key, a new key version for one user, and the
re-encryption of a user's older blobs. Used by ``davdisk key``.

Every step is small, idempotent and safe beside running servers, so an interrupted run (crash,
Ctrl-C, kill -9) is finished by running the command again:

- **Master key** (:class:`MasterKeyRotation`): the new key is written to ``<keyfile>.new``
  (0600, fsynced, created atomically; a rerun finds and reuses it). Each ``user_keys`` row not yet
  under it is rewrapped in its own short transaction (compare-and-set on the row's
  ``master_key_id``). When none is left, the new key replaces the key file (rename + fsync of the
  folder) inside a write transaction, which excludes processes adding a user key at that moment
  (they choose the wrapping key inside their own write transaction). Servers read rows under
  either key meanwhile (:class:`~davdisk.crypto.keys.MasterKeys`).
- **User key** (:func:`rotate_user_key`): one row, version N+1; servers use it for the next upload.
- **Re-encryption** (:class:`Reencryption`): each blob under an older version is decrypted and
  encrypted again into a new blob (streaming, 1 MiB buffer), then one short transaction points
  every node still on the old blob at the new one (nothing if a concurrent write replaced it),
  records the new blob row and drops the old; the old file is removed after the commit. A crash
  leaves at most an unreferenced blob file, which ``gc`` / ``fsck --repair`` remove. ETags stay:
  the content is the same, so clients need not download it again.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from davdisk.crypto import keys
from davdisk.crypto.envelope import EnvelopeWriter
from davdisk.errors import Conflict, DavdiskError, KeyMaterialError, NotFound
from davdisk.files.content import Content
from davdisk.files.keyring import Keyring
from davdisk.meta import store
from davdisk.meta.db import Database
from davdisk.meta.store import keys as key_rows
from davdisk.progress import Progress

logger = logging.getLogger(__name__)

_COPY_BUFFER = 1 << 20
_MAX_PASSES = 5  # passes over what is left; more only if writers keep adding old-version rows

ProgressFactory = Callable[[str, int, str], Progress]


def default_progress(label: str, total: int, unit: str) -> Progress:
    return Progress(label, total, unit=unit)


# --- master key ------------------------------------------------------------------------------


@dataclass
class MasterRotationReport:
    new_key_id: str
    resumed: bool
    rewrapped: int


class MasterKeyRotation:
    """Rotate the master key of ``key_file``. ``run()`` does it all; the steps are public so a
    test can stop anywhere in between, as a crash would."""

    def __init__(self, db: Database, key_file: Path) -> None:
        self.db = db
        self.key_file = Path(key_file)
        self.pending_file = keys.pending_key_path(self.key_file)
        self.masters: keys.MasterKeys | None = None
        self.new_key = b""
        self.new_id = ""

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Refuse a second rotation of the same key file while this one runs."""
        fd = os.open(self.key_file, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise Conflict(
                        f"another key rotate-master is running on {self.key_file}"
                    ) from None
                raise
            yield
        finally:
            os.close(fd)

    def start(self) -> bool:
        """Make the new key, or take the one an interrupted run left; True if resuming."""
        resumed = self.pending_file.exists()
        keys.load_master_key(self.key_file, create=False)  # the current key must be sound
        self.new_key = keys.load_master_key(self.pending_file, create=True)
        self.new_id = keys.master_key_id(self.new_key)
        self.masters = keys.MasterKeys.load(self.key_file, create=False)
        return resumed

    def pending(self) -> list[tuple[int, int]]:
        """(user id, version) of every row not yet wrapped under the new key."""
        with self.db.read() as conn:
            return key_rows.keys_not_under(conn, self.new_id)

    def rewrap(self, user_id: int, version: int) -> bool:
        """Rewrap one row under the new key (its own transaction); False if already done."""
        assert self.masters is not None, "start() first"
        with self.db.write() as conn:
            row = key_rows.wrapped_key(conn, user_id, version)
            if row is None or row[1] == self.new_id:
                return False  # the user was removed, or this row is done
            wrapped_key, master_id = row
            old = self.masters.get(master_id)
            wrapped = keys.rewrap_user_key(
                old, self.new_key, wrapped_key, user_id=user_id, version=version
            )
            key_rows.rewrap(
                conn,
                user_id,
                version,
                old_master_id=master_id,
                wrapped=wrapped,
                new_master_id=self.new_id,
            )
        return True

    def finish(self) -> bool:
        """If every row is under the new key, make it the key file; False if rows are left."""
        with self.db.write() as conn:
            if key_rows.count_keys_not_under(conn, self.new_id):
                return False
            keys.replace_key_file(self.pending_file, self.key_file)
        return True

    def run(self, progress: ProgressFactory = default_progress) -> MasterRotationReport:
        with self.exclusive():
            resumed = self.start()
            report = MasterRotationReport(self.new_id, resumed, 0)
            for _ in range(_MAX_PASSES):
                rows = self.pending()
                failed: list[str] = []
                with progress("rewrapping user keys", len(rows), "keys") as bar:
                    for user_id, version in rows:
                        try:
                            report.rewrapped += self.rewrap(user_id, version)
                        except KeyMaterialError as e:
                            failed.append(f"user {user_id} version {version}: {e.message}")
                        bar.advance()
                if failed:
                    raise KeyMaterialError(
                        f"{len(failed)} user keys could not be rewrapped ("
                        + "; ".join(failed[:3])
                        + (", ..." if len(failed) > 3 else "")
                        + f"); the new key stays in {self.pending_file} until they are"
                    )
                if self.finish():
                    return report
            raise Conflict("user keys under the old master key keep appearing; run it again")


# --- user keys -------------------------------------------------------------------------------


def rotate_user_key(db: Database, keyring: Keyring, name: str) -> tuple[int, int]:
    """Give user ``name`` a new key version; returns (user id, new version)."""
    with db.write() as conn:
        user = store.get_user(conn, name)
        if user is None:
            raise NotFound(f"user {name!r}")
        version = keyring.add_version(conn, user.id)
    return user.id, version


@dataclass(frozen=True)
class OldBlob:
    id: str
    node_id: int | None
    key_version: int
    size_plain: int


@dataclass(frozen=True)
class NewBlob:
    id: str
    key_version: int
    size_cipher: int


@dataclass
class ReencryptReport:
    version: int
    rewritten: int = 0
    bytes: int = 0
    skipped: int = 0  # replaced or deleted by a concurrent write meanwhile
    failed: list[str] = field(default_factory=list)


class Reencryption:
    """Rewrite every blob of one user that is under an older key version with the newest."""

    def __init__(self, content: Content, keyring: Keyring, user_id: int) -> None:
        """``content``: the blob store and which blobs are used, only through it."""
        self.content = content
        self.keyring = keyring
        self.user_id = user_id

    def pending(self) -> list[OldBlob]:
        """Blobs of the user under an older version than the newest that a node points at
        (unreferenced ones are garbage for gc, not worth rewriting)."""
        rows = self.content.on_older_keys(self.user_id)
        return [OldBlob(r.id, r.node_id, r.key_version, r.size_plain) for r in rows]

    def rewrite(self, old: OldBlob) -> NewBlob:
        """Decrypt ``old`` and encrypt it under the newest version into a new, committed blob
        that nothing points at yet. Memory stays at one buffer whatever the size."""
        version, key = self.keyring.current(self.user_id)
        new_id = secrets.token_hex(16)
        reader = self.keyring.reader(
            self.content.open(old.id), self.user_id, old.id, old.size_plain
        )
        with reader, self.content.new_blob(new_id) as upload:
            writer = EnvelopeWriter(
                upload.file,
                user_key=key,
                user_id=self.user_id,
                key_version=version,
                blob_id=bytes.fromhex(new_id),
            )
            buf = bytearray(_COPY_BUFFER)
            view = memoryview(buf)
            while n := reader.readinto(buf):
                writer.write(view[:n])
            writer.close()
            size = upload.commit()
        return NewBlob(new_id, version, size)

    def swap(self, old: OldBlob, new: NewBlob) -> bool:
        """Point every node still on ``old`` at ``new`` in one short transaction and drop the
        old row; then remove the file no longer needed. False (and ``new`` removed) if no node
        points at ``old`` any more: a concurrent write replaced or deleted it."""
        return self.content.swap(
            old.id,
            new.id,
            owner_id=self.user_id,
            node_id=old.node_id,
            key_version=new.key_version,
            size_plain=old.size_plain,
            size_cipher=new.size_cipher,
        )

    def run(self, progress: ProgressFactory = default_progress) -> ReencryptReport:
        """Rewrite everything pending, in passes until nothing is left (uploads that began
        before the new version existed may still land with the old one during a pass)."""
        report = ReencryptReport(self.keyring.current(self.user_id)[0])
        failed_ids: set[str] = set()
        for _ in range(_MAX_PASSES):
            todo = [b for b in self.pending() if b.id not in failed_ids]
            if not todo:
                break
            with progress("re-encrypting", len(todo), "blobs") as bar:
                for old in todo:
                    self._one(old, report, failed_ids)
                    bar.advance(nbytes=old.size_plain)
        return report

    def _one(self, old: OldBlob, report: ReencryptReport, failed_ids: set[str]) -> None:
        try:
            new = self.rewrite(old)
        except (DavdiskError, OSError) as e:
            if not self.content.in_use(old.id):
                report.skipped += 1  # removed while we read it: nothing to do
                return
            failed_ids.add(old.id)
            why = e.message if isinstance(e, DavdiskError) else (e.strerror or str(e))
            report.failed.append(f"blob {old.id}: {why}")
            return
        if self.swap(old, new):
            report.rewritten += 1
            report.bytes += old.size_plain
        else:
            report.skipped += 1
