"""names in NFC: rename the names older versions stored decomposed

From this version on, every name is stored in Unicode NFC and every request path is read as NFC
(macOS sends ``Café`` decomposed, Windows and Linux composed). A name an older version stored
in another form could no longer be reached, so it is renamed to its NFC spelling. Where a live
sibling already has that spelling (the same name made once from a Mac and once from elsewhere:
two files that looked alike), the decomposed one becomes the first free ``NAME (2).ext``,
``NAME (3).ext``, … so both stay reachable and nothing is lost; each such rename is logged.

Locks whose key is not NFC are dropped: no request can name them any more, and they would keep
a folder above them locked until they expired. Clients lock again when they next write.

Downgrade changes nothing: NFC names are valid names for the older versions too.

Revision ID: 0008
Revises: 0007
"""

import logging
import unicodedata
from urllib.parse import unquote

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

logger = logging.getLogger("davdisk.migrations")
_MAX_NAME_BYTES = 255


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _numbered(name: str, is_dir: bool, n: int) -> str:
    """``name`` with `` (n)`` before its extension (a folder's at its end), within 255 bytes."""
    stem, dot, ext = name.rpartition(".")
    if is_dir or not stem:
        stem, dot, ext = name, "", ""
    suffix = f" ({n}){dot}{ext}"
    while stem and len((stem + suffix).encode("utf-8")) > _MAX_NAME_BYTES:
        stem = stem[:-1]
    return stem + suffix


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, parent_id, name, is_dir, deleted_at FROM nodes")
    ).fetchall()
    live: dict[int, set[str]] = {}
    for _id, parent_id, name, _is_dir, deleted_at in rows:
        if deleted_at is None and parent_id is not None:
            live.setdefault(parent_id, set()).add(name)
    rename = sa.text("UPDATE nodes SET name = :name WHERE id = :id")
    for node_id, parent_id, name, is_dir, deleted_at in rows:
        composed = _nfc(name)
        if composed == name or parent_id is None:
            continue
        if deleted_at is not None:  # not a live member: no name to share with anyone
            bind.execute(rename, {"name": composed, "id": node_id})
            continue
        taken = live[parent_id]
        new = composed
        n = 2
        while new in taken:
            new = _numbered(composed, bool(is_dir), n)
            n += 1
        taken.discard(name)
        taken.add(new)
        bind.execute(rename, {"name": new, "id": node_id})
        if new != composed:
            logger.warning(
                "node %d: its decomposed name %r is renamed %r (%r was taken)",
                node_id,
                name,
                new,
                composed,
            )
    for token, root in bind.execute(sa.text("SELECT token, root FROM locks")).fetchall():
        path = unquote(root)
        if _nfc(path) != path:
            bind.execute(sa.text("DELETE FROM locks WHERE token = :t"), {"t": token})


def downgrade() -> None:
    pass
