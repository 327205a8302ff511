"""``davdisk key rotate-master|rotate-user|reencrypt``: key rotation (see ``files/rotation.py``)."""

from __future__ import annotations

import argparse

from davdisk.config import Config
from davdisk.errors import IntegrityError, NotFound


def register(sub: argparse._SubParsersAction) -> None:
    key = sub.add_parser(
        "key",
        help="rotate encryption keys",
        description="Rotate the master key or a user's key. Safe while servers run. An "
        "interrupted rotate-master is finished by running it again, an interrupted "
        "rotate-user --reencrypt by key reencrypt NAME.",
    )
    ksub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    ksub.add_parser(
        "rotate-master",
        help="replace the master key, rewrapping every user key",
        description="Make a new master key (kept in <keyfile>.new meanwhile) and rewrap every "
        "user key under it; then the new key replaces the key file and the old key is gone. "
        "Blobs are untouched. Safe to run again if interrupted: it resumes with the same new "
        "key. Never delete <keyfile>.new by hand, and back up the key file afterwards.",
    )
    ru = ksub.add_parser(
        "rotate-user",
        help="give a user a new key version",
        description="New writes of NAME use a new key version, also in running servers; old "
        "blobs stay readable with their version.",
    )
    ru.add_argument("name")
    ru.add_argument(
        "--reencrypt",
        action="store_true",
        help="also rewrite every older blob with the new key (if interrupted, finish with "
        "davdisk key reencrypt NAME)",
    )
    re = ksub.add_parser(
        "reencrypt",
        help="rewrite a user's older blobs with their newest key",
        description="Rewrite every blob of NAME still under an older key version with the "
        "newest one, without adding a version: finishes an interrupted rotate-user --reencrypt.",
    )
    re.add_argument("name")


def run(args: argparse.Namespace, cfg: Config) -> int:
    from davdisk.crypto import keys
    from davdisk.errors import UsageError
    from davdisk.files import rotation
    from davdisk.meta import store
    from davdisk.services import Services

    services = Services.open(cfg, create=False)
    try:
        if args.key_command == "rotate-master":
            if keys.master_key_from_env() is not None:
                raise UsageError(
                    f"the master key comes from ${keys.MASTER_KEY_ENV}: rotate-master works on "
                    "a key file; run it with the key in a file (unset the variable), then "
                    "give every server the new key"
                )
            report = rotation.MasterKeyRotation(services.db, cfg.master_key_file).run()
            how = "resumed: " if report.resumed else ""
            print(
                f"{how}rewrapped {report.rewrapped} user keys; {cfg.master_key_file} now holds "
                f"master key {report.new_key_id} and the old key is gone (back this one up)"
            )
            return 0
        if args.key_command == "rotate-user":
            user_id, version = rotation.rotate_user_key(services.db, services.keyring, args.name)
            print(f"user {args.name!r} now writes with key version {version}")
            if not args.reencrypt:
                return 0
        else:
            with services.db.read() as conn:
                user = store.get_user(conn, args.name)
            if user is None:
                raise NotFound(f"user {args.name!r}")
            user_id = user.id
        result = rotation.Reencryption(services.content, services.keyring, user_id).run()
        print(
            f"re-encrypted {result.rewritten} blobs ({result.bytes} bytes) of {args.name!r} "
            f"with key version {result.version}"
            + (f"; {result.skipped} replaced meanwhile" if result.skipped else "")
        )
        if result.failed:
            for line in result.failed:
                print(f"failed: {line}")
            raise IntegrityError(
                f"{len(result.failed)} blobs could not be re-encrypted (run davdisk fsck)"
            )
        return 0
    finally:
        services.close()
