"""``davdisk fsck``: check that metadata, keys and blobs agree (see ``files/fsck.py``)."""

from __future__ import annotations

import argparse

from davdisk.config import Config
from davdisk.errors import UsageError

EXIT_CLEAN = 0
EXIT_PROBLEMS = 8  # errors or fixable problems remain
EXIT_REPAIRED = 9  # problems were found and --repair fixed every one of them


def register(sub: argparse._SubParsersAction) -> None:
    fsck = sub.add_parser(
        "fsck",
        help="check the database, and blobs against it",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check the database's own consistency (SQLite's integrity and foreign-key\n"
        "checks; if it is damaged, nothing else), that every user key unwraps and every file's\n"
        "blob exists, has the right size and its header verifies (--deep: every segment\n"
        "decrypts); report orphan, unreferenced, missing and corrupt blobs, leftover temp\n"
        "files and quota drift.\n"
        "Prints one line per finding, then a summary. Safe while a server runs.",
        epilog="""findings:
  error     user data may be damaged (a damaged database, missing or corrupt blob, a key
            that does not unwrap, inconsistent metadata); never changed by --repair
  fixable   leftovers and drift --repair removes or recomputes
  warning   not a problem: files younger than --min-age, like uploads in progress

exit status:
  0  no errors and nothing fixable (warnings allowed)
  8  errors or fixable problems remain
  9  problems were found and --repair fixed all of them""",
    )
    fsck.add_argument("--deep", action="store_true", help="decrypt and verify every segment")
    fsck.add_argument(
        "--repair",
        action="store_true",
        help="fix what is safe (drop orphan blobs and temp files, unreferenced rows, "
        "recompute usage); never deletes a file or its content",
    )
    fsck.add_argument(
        "--min-age",
        type=float,
        default=900,
        metavar="SECONDS",
        help="leftover files younger than this are warnings and --repair keeps them, as "
        "davdisk gc does, since a running server may be committing them (default 900)",
    )


def run(args: argparse.Namespace, cfg: Config) -> int:
    from davdisk.files.fsck import Fsck, check_database
    from davdisk.meta.db import Database
    from davdisk.services import Services

    if args.min_age < 0:
        raise UsageError("--min-age cannot be negative")
    # The database first, on its own: opening the services already reads it.
    db = Database(cfg.database_url, pool_size=1)
    try:
        damage = check_database(db)
    finally:
        db.dispose()
    if damage.problems:
        for finding in damage.findings:
            print(finding)
        print(damage.summary())
        return EXIT_PROBLEMS
    services = Services.open(cfg, create=False)
    try:
        fsck = Fsck(services.admin, deep=args.deep, min_age=args.min_age)
        report = fsck.check()
        if args.repair and report.problems:
            for finding in report.findings:
                if finding.severity == "fixable":
                    print(f"{finding}", flush=True)
            report = fsck.repair(report)
        for finding in report.findings:
            print(finding)
        print(report.summary())
    finally:
        services.close()
    if report.problems:
        return EXIT_PROBLEMS
    return EXIT_REPAIRED if report.problems_found else EXIT_CLEAN
