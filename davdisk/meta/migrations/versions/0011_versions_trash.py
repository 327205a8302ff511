"""versions and trash: kept content of replaced files; deleted items under a per-user trash root

``versions``: a replaced file's earlier content. A row only names the immutable blob (nothing is
copied); the node's ``ON DELETE CASCADE`` takes a file's history with it when it is purged.

Trash: a deleted item is re-parented under its owner's hidden trash folder
(``users.trash_root_id``, made on first use) and gets ``deleted_at``, ``trashed_by``, and where
it came from (``trash_parent_id``, ``trash_path``): one UPDATE, however big the tree.

``users.version_bytes``/``trash_bytes``: what versions and trash take, apart from
``used_bytes`` (what clients see as used). ``nodes.modified_by``: who wrote the current
content (a version's author). ``nodes.vacated_name``/``vacated_at``: the name a file was
renamed away from, for recognising an editor's save-by-rename (files/copymove.py).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_NODE_COLUMNS = (
    ("trashed_by", sa.Integer),
    ("trash_parent_id", sa.Integer),
    ("trash_path", sa.Text),
    ("modified_by", sa.Integer),
    ("vacated_name", sa.Text),
    ("vacated_at", sa.Float),
)


def upgrade() -> None:
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "node_id",
            sa.Integer(),
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "owner_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("blob_id", sa.String(32), sa.ForeignKey("blobs.id"), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=True),
        sa.Column("checksums", sa.LargeBinary(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("replaced_at", sa.Float(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_versions_node", "versions", ["node_id", "replaced_at"])
    op.create_index("ix_versions_owner", "versions", ["owner_id", "replaced_at"])
    op.create_index("ix_versions_blob", "versions", ["blob_id"])
    for name, kind in _NODE_COLUMNS:
        op.add_column("nodes", sa.Column(name, kind(), nullable=True))
    op.add_column("users", sa.Column("trash_root_id", sa.Integer(), nullable=True))
    for name in ("version_bytes", "trash_bytes"):
        op.add_column("users", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_table("versions")
    with op.batch_alter_table("users") as batch_op:
        for name in ("trash_bytes", "version_bytes", "trash_root_id"):
            batch_op.drop_column(name)
    with op.batch_alter_table("nodes") as batch_op:
        for name, _kind in reversed(_NODE_COLUMNS):
            batch_op.drop_column(name)
