"""``davdisk storage migrate --to s3``: move an install's blobs from the local folder into the
S3 bucket ``[blobs]`` describes. The copying and checking is ``files/relocation.py``."""

from __future__ import annotations

import argparse

from davdisk.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    storage = sub.add_parser("storage", help="move the blobs to another store")
    ssub = storage.add_subparsers(dest="storage_command", metavar="ACTION", required=True)
    migrate = ssub.add_parser(
        "migrate",
        help="copy this install's blobs into an S3 bucket",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Copy every blob from the local blob folder into the bucket that the\n"
        "[blobs] settings name (endpoint_url, bucket, prefix, credentials), then read each\n"
        "copy back and compare. The folder is only read and the server may keep running.\n"
        "Interrupted? Run it again: it continues. To switch: stop the server(s), run it once\n"
        'more (it copies what came meanwhile), set [blobs] backend = "s3", start them.',
    )
    migrate.add_argument("--to", required=True, choices=["s3"], help="the target store")


def run(args: argparse.Namespace, cfg: Config) -> int:
    from davdisk.files.relocation import move_blobs, target_store
    from davdisk.progress import Progress
    from davdisk.services import Services

    target = target_store(cfg, args.to)
    services = Services.open(cfg, create=False)
    try:
        total = len(services.content.blob_sizes())
        print(f"moving {total} blobs to {target}", flush=True)
        with Progress("  copying", total, unit="blobs") as bar:
            report = move_blobs(services.content, target, lambda n: bar.advance(nbytes=n))
    finally:
        services.close()
    print(
        f"copied {report.copied} blobs ({report.bytes_copied} bytes), each read back "
        f"identical; {report.present} were there already (at their full size)"
    )
    if report.extra:
        print(f"{report.extra} objects in the target belong to no file (davdisk gc --deep)")
    if report.missing:
        print(f"{len(report.missing)} blobs are missing from the source: run davdisk fsck")
        return 6
    print('Now stop the server(s), run this again, then set [blobs] backend = "s3".')
    return 0
