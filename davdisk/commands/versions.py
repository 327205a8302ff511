"""``davdisk versions list|restore|pin|unpin|delete OWNER PATH [VERSION]``: a file's earlier
contents, as its owner sees them (files/history.py decides who may)."""

from __future__ import annotations

import argparse
from typing import Any

from davdisk.commands import owners
from davdisk.config import Config
from davdisk.files.names import printable


def register(sub: argparse._SubParsersAction) -> None:
    versions = sub.add_parser(
        "versions",
        help="list, restore and pin earlier contents of a file",
        description="Each time a file's content is replaced, the previous content is kept as a "
        "version until [versions] retention expires it; pinned versions never expire.",
    )
    vsub = versions.add_subparsers(dest="versions_command", metavar="ACTION", required=True)
    lst = vsub.add_parser(
        "list",
        help="list a file's versions",
        description="List a file's versions, newest first: id, when it was replaced, size in "
        "bytes, who wrote it, and whether it is pinned (with its label).",
    )
    restore = vsub.add_parser(
        "restore",
        help="make a version the current content",
        description="Make a version the file's current content; the content it replaces is "
        "kept as a new version.",
    )
    pin = vsub.add_parser(
        "pin", help="keep a version for good", description="Pin a version: no expiry drops it."
    )
    unpin = vsub.add_parser(
        "unpin",
        help="let a version expire again",
        description="Unpin a version (its label goes too): retention applies to it again.",
    )
    drop = vsub.add_parser(
        "delete",
        help="delete a version for good",
        description="Delete one version now, pinned or not (e.g. one fsck reports damaged).",
    )
    for parser in (lst, restore, pin, unpin, drop):
        parser.add_argument("owner", help="the user who owns the file")
        parser.add_argument("path", help="the file, e.g. /Documents/report.odt")
    for parser in (restore, pin, unpin, drop):
        parser.add_argument("version", help="a version id, as versions list shows it")
    pin.add_argument("--label", metavar="TEXT", help="a name for the version, e.g. 'sent'")


def run(args: argparse.Namespace, cfg: Config) -> int:
    from davdisk.services import Services

    services = Services.open(cfg, create=False)
    try:
        return _run(args, services)
    finally:
        services.close()


def _run(args: argparse.Namespace, services: Any) -> int:
    history = services.files.history
    who = owners.actor(services, args.owner)
    entry = owners.entry(services, who, args.path)
    shown = printable(args.path)
    if args.versions_command == "list":
        rows = history.versions(who, entry)
        authors = owners.user_names(services, {v.author_id for v in rows})
        width = max([6, *(len(authors[v.author_id]) for v in rows)])
        print(f"{'ID':>6}  {'REPLACED AT':<25}  {'BYTES':>14}  {'AUTHOR':<{width}}  PINNED")
        for v in rows:
            pinned = ("pinned" + (f" {printable(v.label)}" if v.label else "")) if v.pinned else "-"
            print(
                f"{v.id:>6}  {owners.when(v.replaced_at):<25}  {v.size:>14}  "
                f"{authors[v.author_id]:<{width}}  {pinned}"
            )
        return 0
    version_id = owners.number(args.version, "VERSION")
    if args.versions_command == "restore":
        before = {v.id for v in history.versions(who, entry)}
        history.restore_version(who, entry, version_id)
        print(f"restored version {version_id} of {shown}")
        kept = sorted({v.id for v in history.versions(who, entry)} - before)
        if kept:  # none when the replaced content was empty or the same
            print(f"the content it replaced is version {kept[-1]}")
    elif args.versions_command == "pin":
        version = history.pin_version(who, entry, version_id, pinned=True, label=args.label)
        label = f" as {printable(version.label)!r}" if version.label else ""
        print(f"pinned version {version_id} of {shown}{label}")
    elif args.versions_command == "delete":
        history.delete_version(who, entry, version_id)
        print(f"deleted version {version_id} of {shown}")
    else:
        history.pin_version(who, entry, version_id, pinned=False)
        print(f"unpinned version {version_id} of {shown}")
    return 0
