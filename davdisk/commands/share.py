"""``davdisk share add|link|list|rm``: shares with other users and public links."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from typing import Any

from davdisk import config as config_mod
from davdisk.commands.prompts import read_password
from davdisk.files.names import printable


def register(sub: argparse._SubParsersAction) -> None:
    share = sub.add_parser("share", help="share files with users or by public link")
    ssub = share.add_subparsers(dest="share_command", metavar="ACTION", required=True)
    sadd = ssub.add_parser(
        "add",
        help="share a file or folder with another user",
        description="Share PATH (in OWNER's files) with another user; prints the share id. "
        "It appears in their top folder under its name (with ' (OWNER)' on a clash).",
    )
    sadd.add_argument("owner", help="who shares (the owner, or a grantee allowed to re-share)")
    sadd.add_argument("path", help="e.g. /Projects or /notes.txt")
    sadd.add_argument("--with", dest="grantee", required=True, metavar="USER")
    sadd.add_argument("--write", action="store_true", help="allow changes (default read-only)")
    sadd.add_argument("--reshare", action="store_true", help="allow the grantee to share it on")
    slink = ssub.add_parser(
        "link",
        help="make a public link",
        description="Make a public link to PATH and print its URL (shown only now). Anyone "
        "holding the URL may, by default, read PATH (read-only link); with --upload, read, add "
        "and change files in the folder, but not delete or replace anything (editable link); "
        "with --file-drop, only add new files and folders, without seeing or changing anything "
        "in it, what they added included (upload-only link, e.g. to collect files).",
    )
    slink.add_argument("owner")
    slink.add_argument("path")
    slink.add_argument("--expires", metavar="WHEN", help="7d, 12h, 30m or a date 2026-12-31")
    slink.add_argument(
        "--password-stdin", action="store_true", help="protect the link with a password"
    )
    # Not an argparse group: its error is a usage block; add_link says it in one line.
    slink.add_argument(
        "--upload",
        action="store_true",
        help="editable link: read, add and change files in the folder",
    )
    slink.add_argument(
        "--file-drop",
        action="store_true",
        help="upload-only link: add new files and folders; list, read, change nothing",
    )
    slink.add_argument(
        "--base-url",
        metavar="URL",
        help="how clients reach the server (default: [server] public_url, else host and port)",
    )
    slist = ssub.add_parser(
        "list",
        help="list shares",
        description="List shares and links: OWNER owns the item, BY made the share (the "
        "owner, or a grantee who shared it on).",
    )
    slist.add_argument("--user", metavar="NAME", help="only shares NAME owns, receives or made")
    srm = ssub.add_parser(
        "rm",
        help="revoke a share",
        description="Revoke a share or link by its id, with the shares and links its grantee "
        "made through it (and theirs, down the chain).",
    )
    srm.add_argument("id", type=int)


def run(args: argparse.Namespace, cfg: config_mod.Config, services: Any) -> int:
    from davdisk.files.admin import check_password_policy
    from davdisk.files.shares import Shares, parse_expiry

    try:
        shares = Shares(services.db, services.files, cfg.get("auth", "bcrypt_cost"))
        if args.share_command == "add":
            print(
                shares.add(
                    args.owner, args.path, args.grantee, write=args.write, reshare=args.reshare
                )
            )
        elif args.share_command == "link":
            if args.base_url is not None:  # checked like the setting it stands in for
                cfg.set("server", "public_url", args.base_url, "--base-url")
            expires = parse_expiry(args.expires) if args.expires else None
            password = read_password(True) if args.password_stdin else None
            if password is not None:
                check_password_policy(password)
            _id, token = shares.add_link(
                args.owner,
                args.path,
                expires_at=expires,
                password=password,
                upload=args.upload,
                file_drop=args.file_drop,
            )
            print(f"{_link_base(cfg)}/s/{token}")
        elif args.share_command == "list":
            rows = shares.list(args.user)
            print(
                f"{'ID':>4}  {'OWNER':<12} {'BY':<12} {'WITH':<12} {'PERMISSIONS':<20} "
                f"{'EXPIRES':<20} PATH"
            )
            for r in rows:
                until = (
                    time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r.expires_at))
                    if r.expires_at
                    else "-"
                )
                grantee = r.grantee or "link"
                perms = ",".join(r.permissions) + (" (hidden)" if r.hidden else "")
                path = printable(r.path)  # an older name with a line feed forges no row
                print(
                    f"{r.id:>4}  {r.owner:<12} {r.made_by:<12} {grantee:<12} {perms:<20} "
                    f"{until:<20} {path}"
                )
        elif args.share_command == "rm":
            also = shares.remove(args.id)
            print(f"removed share {args.id}")
            if also:  # re-shares and links made through it
                print(f"and what was shared on through it: {', '.join(map(str, also))}")
    finally:
        services.close()
    return 0


def _link_base(cfg: config_mod.Config) -> str:
    """Where printed links point: [server] public_url (or --base-url), else a guess from the
    configured host and port, which a proxy, another port or a firewall can make wrong: say so."""
    public: str = cfg.get("server", "public_url")
    if public:
        return public
    guess = _default_base_url(cfg)
    print(
        f"davdisk: note: link built from [server] host and port ({guess}); set [server] "
        "public_url (or --base-url) to the address clients use",
        file=sys.stderr,
    )
    return guess


def _default_base_url(cfg: config_mod.Config) -> str:
    host = cfg.get("server", "host")
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    port = cfg.get("server", "port")
    scheme = "https" if cfg.get("server", "tls_cert") else "http"
    return f"{scheme}://{host}:{port}"
