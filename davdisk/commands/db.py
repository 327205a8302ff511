"""``davdisk db migrate --to URL``: move an install's metadata from SQLite to PostgreSQL.

The copying and checking is ``meta/transfer.py``; here are the command's words. Blobs and the
master key stay where they are: only the database moves.
"""

from __future__ import annotations

import argparse

from davdisk.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="move the metadata database to PostgreSQL")
    dsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = dsub.add_parser(
        "migrate",
        help="copy this install's SQLite database into PostgreSQL",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Copy the install's metadata (users, keys, files and folders, shares,\n"
        "links, app passwords, locks, properties) from its SQLite database into an empty\n"
        "PostgreSQL database, then verify every table (row count and content). Stop the\n"
        "server first. The SQLite database is only read. If the move is interrupted, run\n"
        "the same command again: it continues. Blobs and the master key stay where they\n"
        "are; afterwards set [storage] database_url to the printed value.",
    )
    migrate.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the target, e.g. postgresql+psycopg://davdisk:PASSWORD@db.example/davdisk",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    from davdisk.meta.transfer import TableDone, Transfer, target_url
    from davdisk.progress import Progress

    def counter(name: str, total: int) -> Progress | None:
        # A bar (on stderr) for the tables that take a while: 50 000 rows take ~2 s.
        return Progress(f"  copying {name}", total, unit="rows") if total >= 50_000 else None

    target = target_url(args.to)
    transfer = Transfer(cfg.database_url, target, counter)
    shown = target.render_as_string(hide_password=True)
    print(f"moving {transfer.source_location} to {shown}", flush=True)

    def progress(done: TableDone) -> None:
        what = "copied" if done.state == "copied" else "already copied"
        print(f"  {done.name}: {done.rows} rows {what} ({done.seconds:.1f} s)", flush=True)

    report = transfer.run(progress)
    print(
        f"verified {report.tables} tables, {report.rows} rows: counts and contents equal "
        f"({report.seconds:.1f} s)"
    )
    print("Set this in your config file (blobs and the master key stay where they are):")
    print("  [storage]")
    print(f'  database_url = "{target.render_as_string(hide_password=False)}"')
    return 0
