"""The ``davdisk`` command line.

    davdisk [--data-dir DIR] [--config FILE] serve [--host H] [--port P]
    davdisk [--data-dir DIR] user add|passwd NAME [--password-stdin]
    davdisk [--data-dir DIR] user del NAME
    davdisk [--data-dir DIR] user list
    davdisk [--data-dir DIR] gc [--min-age SECONDS]

Errors are one line on stderr and a non-zero exit code (see ``errors.py``); never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Sequence

from davdisk import __version__
from davdisk import config as config_mod
from davdisk.errors import DavdiskError, UsageError

logger = logging.getLogger("davdisk")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("no password on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass("New password: ")
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise UsageError("the passwords do not match")
    return first


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
        help="where the database, blobs and master key live (default: $DAVDISK_DATA_DIR or ./data)",
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
        description="Remove a user, their files, blobs and keys. This cannot be undone.",
    )
    delete.add_argument("name")
    usub.add_parser(
        "list", help="list users", description="List users with their file count and bytes."
    )

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
    return p


def run(args: argparse.Namespace) -> int:
    from davdisk.services import Services

    cfg = config_mod.load(args.config, args.data_dir)
    if args.command == "serve":
        from davdisk.server import serve, setup_logging

        if args.host is not None:
            cfg.set("server", "host", args.host, "--host")
        if args.port is not None:
            cfg.set("server", "port", args.port, "--port")
        setup_logging(cfg.get("logging", "level"))
        services = Services.open(cfg, create=True)
        return serve(services, cfg.get("server", "host"), cfg.get("server", "port"))

    create = args.command == "user" and args.user_command == "add"
    services = Services.open(cfg, create=create)
    try:
        admin = services.admin
        if args.command == "gc":
            if args.min_age < 0:
                raise UsageError("--min-age cannot be negative")
            report = admin.gc(args.min_age)
            print(f"removed {report.blobs} blobs, {_size(report.bytes)} ({report.bytes} bytes)")
        elif args.user_command == "add":
            admin.add_user(args.name, _read_password(args.password_stdin))
            print(f"added user {args.name!r}")
        elif args.user_command == "passwd":
            admin.set_password(args.name, _read_password(args.password_stdin))
            print(f"changed the password of {args.name!r}")
        elif args.user_command == "del":
            removed = admin.delete_user(args.name)
            print(f"removed user {args.name!r} and {removed} blobs")
        elif args.user_command == "list":
            users = admin.list_users()
            width = max([4, *(len(u.name) for u in users)])
            print(f"{'NAME':<{width}}  {'FILES':>7}  {'BYTES':>14}")
            for u in users:
                print(f"{u.name:<{width}}  {u.files:>7}  {u.bytes:>14}")
    finally:
        services.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # Everything davdisk creates (database, blobs, keys) is for its own eyes only.
    os.umask(0o077)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except DavdiskError as e:
        print(f"davdisk: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("davdisk: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        # e.g. an unwritable data dir or a port in use: say what and where, not a traceback.
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"davdisk: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
