"""``davdisk user token add|list|rm``: app passwords (per device, revocable)."""

from __future__ import annotations

import argparse
import sys
import time

from davdisk.config import Config


def register(usub: argparse._SubParsersAction) -> None:
    token = usub.add_parser(
        "token",
        help="app passwords: one per device, revocable",
        description="App passwords work as the Basic-auth password of their user; each can be "
        "revoked on its own. Changing the user's password leaves them alone.",
    )
    tsub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    add = tsub.add_parser(
        "add", help="make an app password", description="Make an app password and print it once."
    )
    add.add_argument("name", help="user name")
    add.add_argument("label", help='what it is for, e.g. "laptop rclone"')
    lst = tsub.add_parser("list", help="list a user's app passwords")
    lst.add_argument("name")
    rm = tsub.add_parser("rm", help="revoke an app password at once")
    rm.add_argument("name")
    rm.add_argument("id", type=int)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t else "never"


def run(args: argparse.Namespace, cfg: Config) -> int:
    from davdisk.auth.app_tokens import AppTokens
    from davdisk.services import Services

    services = Services.open(cfg, create=False)
    try:
        tokens = AppTokens(services.db)
        if args.token_command == "add":
            token_id, token = tokens.add(args.name, args.label)
            # The token alone on stdout, so TOKEN=$(davdisk user token add ...) works.
            print(token)
            print(
                f"app password {token_id} for {args.name!r} ({args.label}); it is shown only now",
                file=sys.stderr,
            )
        elif args.token_command == "list":
            rows = tokens.list_tokens(args.name)
            width = max([5, *(len(r.label) for r in rows)])
            print(f"{'ID':>4}  {'LABEL':<{width}}  {'CREATED':<23}  LAST USED")
            for r in rows:
                print(
                    f"{r.id:>4}  {r.label:<{width}}  {_when(r.created_at):<23}  "
                    f"{_when(r.last_used_at)}"
                )
        elif args.token_command == "rm":
            tokens.remove(args.name, args.id)
            print(f"revoked app password {args.id} of {args.name!r}")
    finally:
        services.close()
    return 0
