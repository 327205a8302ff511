"""dead properties count in the quota: properties.size

Each dead property now costs its owner ``len(name) + len(value)`` bytes of quota (issue 12,
item 7; see files/deadprops.py). The cost is kept per row so that deleting and copying a tree
and ``fsck`` can sum it without decrypting values. Existing rows are charged what they store
now (``length`` counts characters of a non-ASCII name, a few bytes short at worst), and their
owners' ``used_bytes`` grow by it; existing plain values are sealed when next written.

Only live nodes are charged, as ``fsck`` counts (files/fsck.py): rows with ``deleted_at`` set
are the hidden rows of a staged copy not yet attached (a crash leaves them to ``davdisk gc``),
charged only when attached; there is no trash. A database from before this revision holds none,
but one being downgraded may.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OWNED = (
    "COALESCE((SELECT SUM(p.size) FROM properties p JOIN nodes n ON n.id = p.node_id"
    " WHERE n.owner_id = users.id AND n.deleted_at IS NULL), 0)"
)


def upgrade() -> None:
    with op.batch_alter_table("properties") as batch:
        batch.add_column(sa.Column("size", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute("UPDATE properties SET size = length(name) + length(value)")
    op.execute(f"UPDATE users SET used_bytes = used_bytes + {_OWNED}")


def downgrade() -> None:
    op.execute(f"UPDATE users SET used_bytes = used_bytes - {_OWNED}")
    with op.batch_alter_table("properties") as batch:
        batch.drop_column("size")
