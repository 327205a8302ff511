"""ids are never reused (SQLite AUTOINCREMENT on users, nodes, shares, app_tokens)

Without AUTOINCREMENT, SQLite gives a new row the largest id + 1, so deleting the row with the
largest id hands its id to the next insert. A request that looked a node up before it was deleted
would then act on an unrelated new node (found by the concurrency soak test: a MOVE of a stale
file id renamed a freshly made folder; a DELETE could remove the wrong subtree). PostgreSQL's
sequences never hand out an id twice, so this migration changes nothing there.

SQLite cannot add AUTOINCREMENT to a table, so each table is rebuilt the documented way (create
the new table, copy, drop the old, rename, recreate indexes). That needs foreign key enforcement
off, or dropping the old table would cascade into every table that references it;
``Database.migrate`` runs migrations with it off and checks the foreign keys afterwards.

Revision ID: 0004
Revises: 0003
"""

import re

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = ("users", "nodes", "shares", "app_tokens")


def _rebuild_with_autoincrement(table: str) -> None:
    bind = op.get_bind()
    create_sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    if "AUTOINCREMENT" in create_sql:
        return
    index_sqls = [
        row[0]
        for row in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL",
            (table,),
        )
    ]
    new_sql, n_header = re.subn(
        rf"^CREATE TABLE \"?{table}\"? \(", f"CREATE TABLE _new_{table} (", create_sql
    )
    new_sql, n_id = re.subn(
        r"\bid INTEGER NOT NULL,", "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,", new_sql
    )
    new_sql, n_pk = re.subn(r"\s*PRIMARY KEY \(id\),", "", new_sql)
    if (n_header, n_id, n_pk) != (1, 1, 1):
        raise RuntimeError(f"unexpected schema of table {table}: {create_sql}")
    bind.exec_driver_sql(new_sql)
    bind.exec_driver_sql(f"INSERT INTO _new_{table} SELECT * FROM {table}")
    bind.exec_driver_sql(f"DROP TABLE {table}")
    bind.exec_driver_sql(f"ALTER TABLE _new_{table} RENAME TO {table}")
    for sql in index_sqls:
        bind.exec_driver_sql(sql)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        _rebuild_with_autoincrement(table)


def downgrade() -> None:
    pass  # AUTOINCREMENT only constrains future ids; nothing to undo
