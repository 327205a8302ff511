"""Fixtures every tier may use: the S3 server (tests/s3.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3 import SeaweedServer, s3_server


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    """The S3 server of this session: the one ``DAVDISK_TEST_S3_ENDPOINT`` names (``python -m
    tests.s3 -- pytest ...``), else a SeaweedFS started on first use and stopped at the end
    (under xdist each worker starts its own). Tests take a bucket each (``create_bucket()``)
    or a prefix of their own in a shared one."""
    with s3_server() as server:
        yield server
