"""shares: user-to-user shares and public links

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("grantee_id", sa.Integer(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("can_write", sa.Boolean(), nullable=False),
        sa.Column("can_reshare", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=100), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["grantee_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("shares", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shares_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_shares_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_shares_grantee_id"), ["grantee_id"], unique=False)


def downgrade() -> None:
    op.drop_table("shares")
