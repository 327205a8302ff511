"""Queries on the metadata schema: users, keys, nodes, blobs, dead properties.

Every function takes an open :class:`~sqlalchemy.Connection` (from ``Database.read()`` or
``Database.write()``), so callers decide what one transaction covers. Nodes come back as
:class:`Node` — a plain, immutable snapshot of a row. This module knows nothing of storage,
crypto or HTTP.

Lookups of a node by name (a path, a folder's child) and of a link by its token check the row
they get against the key they asked for. SQLite trusts an index entry once it matched: it takes
the rowid it names, reads the indexed columns from the index itself, and does not test the terms
against the row. A damaged index (one a start's quick check does not see) would hand out another
file or link instead. So these statements join the table a second time by rowid (a table read,
not an index read) and compare that row's name, folder and token; a mismatch is an
:class:`~davdisk.errors.IntegrityError`, logged, never another file's content.

This face hands on the names each module lists in ``__all__``, so callers write
``store.get_node(conn, ...)`` without knowing which module holds it; the lock storage, the
job leases, fsck's checks and the keyring import their module by name.
"""

from davdisk.meta.store.blobs import *  # noqa: F403
from davdisk.meta.store.copies import *  # noqa: F403
from davdisk.meta.store.history import *  # noqa: F403
from davdisk.meta.store.keys import *  # noqa: F403
from davdisk.meta.store.locks import *  # noqa: F403
from davdisk.meta.store.logins import *  # noqa: F403
from davdisk.meta.store.nodes import *  # noqa: F403
from davdisk.meta.store.props import *  # noqa: F403
from davdisk.meta.store.rows import *  # noqa: F403
from davdisk.meta.store.shares import *  # noqa: F403
from davdisk.meta.store.tokens import *  # noqa: F403
from davdisk.meta.store.users import *  # noqa: F403
