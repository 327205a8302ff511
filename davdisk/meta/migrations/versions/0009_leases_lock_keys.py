"""job leases; lock keys compared byte-wise on PostgreSQL

``leases``: one row per background job (gc, expiry), naming the server process that runs it and
until when, so that of several instances on one database exactly one runs each job.

``locks.root`` gets the "C" collation on PostgreSQL: lock keys are paths, compared byte by
byte, and a prefix search (``root >= prefix AND root < prefix_end``) can use the index only
under "C" (under a language collation the range is not a prefix). SQLite compares text
byte-wise already. ``locks.principal`` gets an index: the per-principal lock cap counts by it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("last_run_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_locks_principal", "locks", ["principal"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE locks ALTER COLUMN root TYPE TEXT COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE locks ALTER COLUMN root TYPE TEXT COLLATE "default"')
    op.drop_index("ix_locks_principal", table_name="locks")
    op.drop_table("leases")
