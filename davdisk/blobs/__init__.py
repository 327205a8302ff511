"""Blob stores: where encrypted blobs live (base.py says what a store must do).

:func:`load` picks the store the configuration names: ``local`` (a folder, the default) or
``s3`` (a bucket; boto3 is imported only then, so the CLI of a local install starts fast).
"""

from __future__ import annotations

from davdisk.blobs.base import BlobStore
from davdisk.config import Config, parse_size
from davdisk.errors import ConfigError


def load(config: Config) -> BlobStore:
    backend = config.get("blobs", "backend")
    if backend == "local":
        from davdisk.blobs.local import LocalBlobStore

        return LocalBlobStore(config.blob_dir)
    try:
        import boto3  # noqa: F401 (only to ask whether it is there)
    except ImportError:
        raise ConfigError(
            '[blobs] backend = "s3" needs boto3: pip install "davdisk[s3]"', source=config.source
        ) from None
    from davdisk.blobs.s3 import S3BlobStore, S3Settings

    bucket = config.get("blobs", "bucket")
    if not bucket:
        raise ConfigError('[blobs] backend = "s3" needs a bucket', source=config.source)
    settings = S3Settings(
        bucket=bucket,
        endpoint_url=config.get("blobs", "endpoint_url"),
        prefix=config.get("blobs", "prefix"),
        region=config.get("blobs", "region"),
        access_key_id=config.get("blobs", "access_key_id"),
        secret_access_key=config.get("blobs", "secret_access_key"),
        addressing_style=config.get("blobs", "addressing_style"),
        part_size=parse_size(config.get("blobs", "part_size")),
        memory=parse_size(config.get("blobs", "memory")),
        delete_delay=float(config.get("blobs", "delete_delay")),
        # One connection per request thread, and a few for gc and the start-up check.
        connections=config.get("server", "threads") + 8,
    )
    return S3BlobStore(settings)
