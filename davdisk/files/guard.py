"""What a face decides together with a write, inside the write's own transaction.

The files layer knows nothing of WebDAV locks, yet a lock granted by a concurrent request (in
this process or another) must either stop a write or see it. So a face hands the files API a
:class:`WriteGuard`, which the files layer runs inside the transaction that makes the change.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Connection


class WriteGuard(Protocol):
    """What a face needs decided in the same transaction as a write (WebDAV: the locks).

    ``check`` runs first inside the write transaction, before anything changes, and refuses
    the write by raising a :class:`~davdisk.errors.DavdiskError`; ``done`` runs inside it
    after the change (and so commits or rolls back with it). With both in the writer's
    transaction, a lock granted by a concurrent request, in this process or another, is either
    seen by ``check`` or sees the change."""

    def check(self, conn: Connection) -> None: ...

    def done(self, conn: Connection) -> None: ...

    def vacated(self, conn: Connection, node_id: int, until: float) -> None:
        """Before ``done``: the move renamed file ``node_id`` within its folder, and it may
        come back to its old name by ``until`` (an editor's save-by-rename): what the face
        keeps on the old name (WebDAV: locks) is set aside for it rather than dropped."""

    def reclaimed(self, conn: Connection, node_id: int) -> None:
        """After ``done``: file ``node_id`` took back the move's destination name, which it had
        vacated (the save's last step): what was set aside for it comes back on that name."""


class _NoGuard:
    def check(self, conn: Connection) -> None:
        pass

    def done(self, conn: Connection) -> None:
        pass

    def vacated(self, conn: Connection, node_id: int, until: float) -> None:
        pass

    def reclaimed(self, conn: Connection, node_id: int) -> None:
        pass


NO_GUARD: WriteGuard = _NoGuard()
