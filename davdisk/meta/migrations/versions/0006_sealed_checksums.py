"""content checksums sealed at rest (nodes.checksums); clear md5/sha1 left only to be converted

Until now ``nodes.md5`` and ``nodes.sha1`` held every file's plaintext hashes in clear, so a copy
of the database gave small files away (a 4-digit PIN file fell to 10 000 guesses). The hashes
are now sealed with the owner's key in ``nodes.checksums``. Sealing needs the master key, which
a migration does not have: the first start after this migration seals the rows left in clear and
empties the old columns (``files/checksum_upgrade.py``); the partial index finds those rows
without reading the whole table on every start.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_CLEAR = "md5 IS NOT NULL OR sha1 IS NOT NULL"


def upgrade() -> None:
    op.add_column("nodes", sa.Column("checksums", sa.LargeBinary(), nullable=True))
    op.create_index(
        "ix_nodes_clear_checksums",
        "nodes",
        ["id"],
        sqlite_where=sa.text(_CLEAR),
        postgresql_where=sa.text(_CLEAR),
    )


def downgrade() -> None:
    # The sealed hashes cannot go back into the clear columns without the master key; an older
    # version then simply reports no oc:checksums for those files.
    op.drop_index("ix_nodes_clear_checksums", table_name="nodes")
    # A plain DROP COLUMN (SQLite 3.35+): a batch rebuild would lose AUTOINCREMENT (0004).
    op.drop_column("nodes", "checksums")
