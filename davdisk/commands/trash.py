"""``davdisk trash list|restore|purge|empty OWNER [ITEM]``: what a user deleted, until it is
purged (files/history.py decides who may)."""

from __future__ import annotations

import argparse
from typing import Any

from davdisk.commands import owners
from davdisk.config import Config
from davdisk.files.names import printable


def register(sub: argparse._SubParsersAction) -> None:
    trash = sub.add_parser(
        "trash",
        help="list, restore and purge deleted files and folders",
        description="What a user (or anyone in their shares) deletes stays in their trash "
        "until purged, or until [trash] retention_days expire it.",
    )
    tsub = trash.add_subparsers(dest="trash_command", metavar="ACTION", required=True)
    lst = tsub.add_parser(
        "list",
        help="list a user's trash",
        description="List a user's trash, newest first: id, key, when and by whom each item "
        "was deleted, its size (a folder's: its tree's), and where it was.",
    )
    restore = tsub.add_parser(
        "restore",
        help="put an item back where it was",
        description="Put an item back at its original path; under 'NAME (restored).EXT' if the "
        "name is taken, in the top folder if its folder is gone. Prints where it went.",
    )
    purge = tsub.add_parser(
        "purge", help="delete an item for good", description="Delete a trashed item for good."
    )
    empty = tsub.add_parser(
        "empty", help="purge the whole trash", description="Delete everything in a user's trash."
    )
    for parser in (lst, restore, purge, empty):
        parser.add_argument("owner", help="whose trash")
    for parser in (restore, purge):
        parser.add_argument("item", help="its key (NAME.dSECONDS) or id, as trash list shows")


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
    if args.trash_command == "list":
        items = history.trash(who)
        by = owners.user_names(services, {i.deleted_by for i in items})
        keys = [printable(i.key) for i in items]
        kw = max([3, *(len(k) for k in keys)])
        bw = max([10, *(len(by[i.deleted_by]) for i in items)])
        print(
            f"{'ID':>6}  {'KEY':<{kw}}  {'DELETED AT':<25}  {'BYTES':>14}  {'TYPE':<6}  "
            f"{'DELETED BY':<{bw}}  ORIGINAL PATH"
        )
        for item, key in zip(items, keys, strict=True):
            kind = "folder" if item.is_dir else "file"
            print(
                f"{item.id:>6}  {key:<{kw}}  {owners.when(item.deleted_at):<25}  "
                f"{item.size:>14}  {kind:<6}  {by[item.deleted_by]:<{bw}}  {printable(item.path)}"
            )
    elif args.trash_command == "restore":
        item = history.trash_item(who, args.item)
        _node, path = history.restore(who, item)
        print(f"restored {printable(item.key)} to {printable(path)}")
    elif args.trash_command == "purge":
        item = history.trash_item(who, args.item)
        history.purge(who, item)
        print(f"purged {printable(item.key)} for good")
    else:
        count = history.empty(who)
        print(f"purged {count} item{'' if count == 1 else 's'} from the trash of {who.name!r}")
    return 0
