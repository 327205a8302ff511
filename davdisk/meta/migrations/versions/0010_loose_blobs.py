"""loose blobs (pending uploads and deferred deletes of an object store); drop mutexes

``loose_blobs``: blobs in the store no blob row accounts for: an upload under way (``pending``)
or a blob no node uses any more, kept a while for downloads already reading it (``dead``). A
bucket cannot be listed cheaply, so gc finds what a crash left through these rows.

``mutexes`` has been unused since every write transaction takes the writers' lock.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loose_blobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
    )
    op.create_index("ix_loose_blobs_since", "loose_blobs", ["since"])
    op.drop_table("mutexes")


def downgrade() -> None:
    op.create_table("mutexes", sa.Column("name", sa.String(32), primary_key=True))
    op.drop_index("ix_loose_blobs_since", table_name="loose_blobs")
    op.drop_table("loose_blobs")
