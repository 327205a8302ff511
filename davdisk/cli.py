"""The ``davdisk`` command line.

    davdisk [--data-dir DIR] [--config FILE] serve [--host H] [--port P]
    davdisk [--data-dir DIR] user add|passwd NAME [--password-stdin]
    davdisk [--data-dir DIR] user del NAME [--yes]
    davdisk [--data-dir DIR] user list
    davdisk [--data-dir DIR] gc [--min-age SECONDS] [--deep]
    davdisk [--data-dir DIR] db migrate --to postgresql+psycopg://...
    davdisk [--data-dir DIR] versions list|restore|pin|unpin OWNER PATH [VERSION]
    davdisk [--data-dir DIR] trash list|restore|purge|empty OWNER [ITEM]

Errors are one line on stderr and a non-zero exit code (see ``errors.py``); never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from typing import Any

from davdisk import __version__
from davdisk import config as config_mod
from davdisk.commands import cert, db, fsck, keys, share, storage, tokens, trash, versions
from davdisk.commands.prompts import read_password
from davdisk.errors import Conflict, DatabaseUnavailable, DavdiskError, NotFound, UsageError

logger = logging.getLogger("davdisk")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="davdisk",
        description="davdisk: an encrypted, multi-user cloud disk you mount over WebDAV.",
        epilog="Quick start: davdisk user add alice && davdisk serve, "
        "then mount http://127.0.0.1:8080/dav/",
    )
    p.add_argument("--version", action="version", version=f"davdisk {__version__}")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the database and blobs live (default: $DAVDISK_DATA_DIR or ./data); the "
        "master key is kept apart, in DIR.key unless configured",
    )
    p.add_argument("--config", metavar="FILE", help="a TOML settings file (see config/)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the WebDAV server",
        description="Run the WebDAV server. Users mount http://HOST:PORT/dav/.",
    )
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve HTTPS")
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")

    user = sub.add_parser("user", help="add, change, remove and list users")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="add a user", description="Add a user with a password.")
    add.add_argument("name", help="user name (1-64 characters, no '/', ':' or control chars)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    passwd = usub.add_parser(
        "passwd", help="change a user's password", description="Change a user's password."
    )
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    delete = usub.add_parser(
        "del",
        help="remove a user with all their files",
        description="Remove a user, their files, blobs and keys. This cannot be undone: on a "
        "terminal it asks you to type the user name; elsewhere it needs --yes.",
    )
    delete.add_argument("name")
    delete.add_argument(
        "--yes", action="store_true", help="do not ask (needed without a terminal, in scripts)"
    )
    usub.add_parser(
        "list", help="list users", description="List users with their file count and bytes."
    )

    quota = usub.add_parser(
        "quota",
        help="set a user's quota",
        description="Limit the bytes a user's files may take (shares they own included).",
    )
    quota.add_argument("name")
    quota.add_argument("size", help="e.g. 10G, 500M, 64K, 1234; 0 = unlimited")
    tokens.register(usub)

    share.register(sub)
    versions.register(sub)
    trash.register(sub)
    cert.register(sub)
    keys.register(sub)
    fsck.register(sub)
    db.register(sub)
    storage.register(sub)

    gc = sub.add_parser(
        "gc",
        help="remove blobs no file points to",
        description="Remove stored blobs that no file points to (left by crashes and "
        "interrupted uploads) and report how many and how many bytes.",
    )
    gc.add_argument(
        "--min-age",
        type=float,
        default=900,
        metavar="SECONDS",
        help="only remove leftovers older than this, so uploads a running server is "
        "finishing are safe (default 900)",
    )
    gc.add_argument(
        "--deep",
        action="store_true",
        help="also list the whole blob store (an S3 bucket is otherwise checked through the "
        "database's records only) and count blobs missing from it",
    )
    return p


def run(args: argparse.Namespace, cfg: config_mod.Config) -> int:
    from davdisk.files.admin import parse_size
    from davdisk.services import Services

    if args.command == "serve":
        from davdisk.server import serve, setup_logging

        if args.host is not None:
            cfg.set("server", "host", args.host, "--host")
        if args.port is not None:
            cfg.set("server", "port", args.port, "--port")
        if args.tls_cert is not None:
            cfg.set("server", "tls_cert", args.tls_cert, "--tls-cert")
        if args.tls_key is not None:
            cfg.set("server", "tls_key", args.tls_key, "--tls-key")
        setup_logging(cfg.get("logging", "level"))
        services = Services.open(cfg, create=True, check_database=True)
        return serve(services, cfg.get("server", "host"), cfg.get("server", "port"))

    if args.command in ("cert", "key", "fsck", "db", "storage", "versions", "trash"):
        commands = {
            "cert": cert,
            "key": keys,
            "fsck": fsck,
            "db": db,
            "storage": storage,
            "versions": versions,
            "trash": trash,
        }
        return commands[args.command].run(args, cfg)
    if args.command == "user" and args.user_command == "token":
        return tokens.run(args, cfg)
    create = args.command == "user" and args.user_command == "add"
    if args.command == "share":
        return share.run(args, cfg, Services.open(cfg, create=False))
    password = ""
    if args.command == "user" and args.user_command in ("add", "passwd"):
        # asked before the data dir is opened: a prompt that fails must not leave a new one
        password = read_password(args.password_stdin)
    services = Services.open(cfg, create=create)
    try:
        admin = services.admin
        if args.command == "gc":
            if args.min_age < 0:
                raise UsageError("--min-age cannot be negative")
            report = _gc(services, args.min_age, args.deep)
            print(f"removed {report.blobs} blobs, {_size(report.bytes)} ({report.bytes} bytes)")
            print(
                f"of them: {report.uploads} unfinished uploads aborted, {report.pending} objects "
                f"of uploads never committed, {report.orphans} objects no record knew"
            )
            if args.deep:
                print(f"blobs missing from the store: {report.missing}")
                if report.missing:
                    print("run davdisk fsck to see which files they belong to")
                    return 6
        elif args.user_command == "add":
            admin.add_user(args.name, password)
            print(f"added user {args.name!r}")
        elif args.user_command == "passwd":
            admin.set_password(args.name, password)
            print(f"changed the password of {args.name!r}")
        elif args.user_command == "del":
            _confirm_delete(admin, args.name, args.yes)
            removed = admin.delete_user(args.name)
            print(f"removed user {args.name!r} and {removed} blobs")
        elif args.user_command == "quota":
            size = parse_size(args.size)
            admin.set_quota(args.name, size)
            shown = "unlimited" if size == 0 else f"{_size(size)} ({size} bytes)"
            print(f"quota of {args.name!r}: {shown}")
        elif args.user_command == "list":
            users = admin.list_users()
            width = max([4, *(len(u.name) for u in users)])
            print(f"{'NAME':<{width}}  {'FILES':>7}  {'BYTES':>14}  {'QUOTA':>14}")
            for u in users:
                quota = str(u.quota) if u.quota else "unlimited"
                print(f"{u.name:<{width}}  {u.files:>7}  {u.bytes:>14}  {quota:>14}")
    finally:
        services.close()
    return 0


def _gc(services: Any, min_age: float, deep: bool = False) -> Any:
    """gc under the job's lease, so it never runs beside a server's (files/jobs.py); if a
    server's gc holds it, say whose and until when, and fail (exit 4) rather than wait."""

    from davdisk.files.jobs import GC, Lease, gc_under_lease, holder_name

    lease = Lease(services.db, GC, holder_name(), services.config.get("jobs", "lease_seconds"))
    report = gc_under_lease(services.admin, lease, min_age, deep=deep)
    if report is None:
        row = lease.current()
        holder = row.holder if row else "another process"
        left = max(0, round(row.expires_at - time.time())) if row else 0
        raise Conflict(
            f"gc is running in {holder} (its lease ends in {left} s unless renewed); "
            "try again when it is done"
        )
    return report


def _confirm_delete(admin: Any, name: str, yes: bool) -> None:
    """``user del`` cannot be undone: it needs the user's name typed on a terminal, or --yes."""
    found = [u for u in admin.list_users() if u.name == name]
    if not found:
        raise NotFound(f"user {name!r}")  # before asking: no question about a typo
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"user del removes {name!r} and all their files for good; "
            "no terminal to ask for confirmation: add --yes"
        )
    user = found[0]
    print(
        f"This removes user {name!r} with {user.files} files ({_size(user.bytes)}), "
        "their shares, links and keys. It cannot be undone."
    )
    if input("Type the user name to confirm: ") != name:  # Ctrl-D: EOFError, see main()
        raise UsageError("not confirmed: nothing was deleted")


def _database_location(cfg: config_mod.Config) -> str:
    from davdisk.meta import dialects

    return dialects.location(cfg.database_url)


def _known_failure(exc: Exception, cfg: config_mod.Config | None) -> DavdiskError | None:
    """The DavdiskError for a failure of the environment that surfaces as a foreign exception,
    or None for anything else (a bug, which keeps its traceback)."""
    if cfg is None:
        return None
    # The database cannot be opened, read or written (read-only file system, not a database
    # file, I/O error, locked): the driver's "operational" errors and plain DatabaseErrors.
    # Constraint and programming errors are bugs. SQLAlchemy wraps the driver's error; it is
    # only imported if the command used it.
    sa_exc = sys.modules.get("sqlalchemy.exc")
    cause: BaseException | None = None
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):
        if isinstance(exc, sa_exc.OperationalError) or type(exc) is sa_exc.DatabaseError:
            cause = exc.orig
    elif type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError):
        cause = exc  # from the few queries that go to the driver directly
    if cause is None:
        return None
    msg = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return DatabaseUnavailable(where=_database_location(cfg), msg=msg)


def main(argv: Sequence[str] | None = None) -> int:
    # Everything davdisk creates (database, blobs, keys) is for its own eyes only.
    os.umask(0o077)
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg: config_mod.Config | None = None
    try:
        cfg = config_mod.load(args.config, args.data_dir)
        return run(args, cfg)
    except DavdiskError as e:
        return _fail(e)
    except KeyboardInterrupt:
        print("davdisk: interrupted", file=sys.stderr)
        return 130
    except EOFError:  # Ctrl-D at a prompt, which leaves the cursor on the prompt's line
        if sys.stderr.isatty():
            print(file=sys.stderr)
        return _fail(UsageError("no answer: the input ended"))
    except OSError as e:
        # e.g. an unwritable data dir or a port in use: say what and where, not a traceback.
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"davdisk: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except Exception as e:
        from davdisk.meta.db import is_damaged

        if is_damaged(e):
            # The server refuses such a database at start and fsck reports it; the other
            # commands meet it in whatever query they make: one line saying what to do.
            orig = getattr(e, "orig", e)
            print(
                f"davdisk: error: the database is damaged ({orig}): restore it from a backup, "
                "then run davdisk fsck",
                file=sys.stderr,
            )
            return 7
        known = _known_failure(e, cfg)
        if known is None:
            raise
        return _fail(known)


def _fail(e: DavdiskError) -> int:
    print(f"davdisk: error: {e.message}", file=sys.stderr)
    return e.exit_code
