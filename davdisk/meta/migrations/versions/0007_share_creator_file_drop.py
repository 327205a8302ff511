"""shares record who made them, and links may be file drops

``created_by``: the user who made a share or link - its owner, or a grantee re-sharing through
the share they received. Removing that grantee's share (or the grantee) removes what they made
through it (``files/revocation.py``); ``share list`` shows it. Rows from before stay NULL, read
as "made by the owner": nothing recorded says otherwise.

``file_drop``: a link that may only add new files and folders (``share link --file-drop``).

Both are plain added columns: no table is rebuilt, so ids and AUTOINCREMENT (0004) stay.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "shares",
        sa.Column("file_drop", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with a foreign key in place (alembic would rebuild the table).
        op.execute(
            "ALTER TABLE shares ADD COLUMN created_by INTEGER "
            "REFERENCES users (id) ON DELETE CASCADE"
        )
    else:
        op.add_column(
            "shares",
            sa.Column(
                "created_by",
                sa.Integer(),
                sa.ForeignKey("users.id", ondelete="CASCADE"),
                nullable=True,
            ),
        )
    op.create_index("ix_shares_created_by", "shares", ["created_by"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_shares_created_by", table_name="shares")
    with op.batch_alter_table("shares") as batch_op:
        batch_op.drop_column("created_by")
        batch_op.drop_column("file_drop")
