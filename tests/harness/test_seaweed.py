"""The SeaweedFS test server (tests/s3.py) does the S3 calls davdisk's S3 store makes:
multipart upload, listing and aborting unfinished uploads, ranged GET, ListObjectsV2,
DeleteObject; and ``python -m tests.s3 -- CMD`` hands it to CMD and leaves nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.s3 import ACCESS_KEY_ENV, ENDPOINT_ENV, SECRET_KEY_ENV, SeaweedServer

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def test_multipart_range_listing_abort(seaweed: SeaweedServer) -> None:
    s3 = seaweed.client()
    bucket = seaweed.create_bucket()
    data = os.urandom(12 * MIB)
    part_size = 5 * MIB

    upload = s3.create_multipart_upload(Bucket=bucket, Key="blobs/big")["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), part_size), start=1):
        done = s3.upload_part(
            Bucket=bucket,
            Key="blobs/big",
            UploadId=upload,
            PartNumber=number,
            Body=data[offset : offset + part_size],
        )
        parts.append({"PartNumber": number, "ETag": done["ETag"]})
    assert len(parts) == 3
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix="blobs/").get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("blobs/big", upload)]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="blobs/big", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    # A range across the first part boundary.
    got = s3.get_object(
        Bucket=bucket, Key="blobs/big", Range=f"bytes={part_size - 10}-{part_size + 9}"
    )
    assert got["ContentRange"] == f"bytes {part_size - 10}-{part_size + 9}/{len(data)}"
    assert got["Body"].read() == data[part_size - 10 : part_size + 10]
    assert s3.get_object(Bucket=bucket, Key="blobs/big")["Body"].read() == data

    # An unfinished upload is listed until it is aborted.
    left = s3.create_multipart_upload(Bucket=bucket, Key="blobs/left")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="blobs/left", UploadId=left, PartNumber=1, Body=b"x" * 100)
    listed = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("blobs/left", left)]
    s3.abort_multipart_upload(Bucket=bucket, Key="blobs/left", UploadId=left)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    s3.put_object(Bucket=bucket, Key="blobs/small", Body=b"small")
    s3.put_object(Bucket=bucket, Key="other", Body=b"o")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="blobs/")
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [
        ("blobs/big", len(data)),
        ("blobs/small", 5),
    ]
    s3.delete_object(Bucket=bucket, Key="blobs/big")
    with pytest.raises(ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="blobs/big")
    assert missing.value.response["Error"]["Code"] == "404"
    listing = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listing["Contents"]] == ["blobs/small", "other"]


def test_requests_are_signed_and_checked(seaweed: SeaweedServer) -> None:
    """A wrong secret is refused: the server checks signatures, as a real store does."""
    wrong = SeaweedServer(seaweed.endpoint, seaweed.access_key, seaweed.secret_key + "x")
    with pytest.raises(ClientError) as refused:
        wrong.client().list_buckets()
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_program_hands_server_to_command_and_cleans_up(tmp_path: Path) -> None:
    """``python -m tests.s3 -- CMD``: CMD gets a working server in its environment and its
    exit code is the program's; afterwards weed, its dir and its /tmp sockets are gone."""
    script = tmp_path / "use.py"
    script.write_text(
        "import os, sys\n"
        "from tests.s3 import s3_server\n"
        "with s3_server() as server:\n"
        "    assert server.process is None  # the given server, none started\n"
        "    bucket = server.create_bucket()\n"
        "    server.client().put_object(Bucket=bucket, Key='k', Body=b'v')\n"
        f"print(os.environ['{ENDPOINT_ENV}'], os.environ['{ACCESS_KEY_ENV}'],"
        f" os.environ['{SECRET_KEY_ENV}'])\n"
        "sys.exit(7)\n"
    )
    temp = tmp_path / "temp"
    temp.mkdir()
    # Its dir goes into TMPDIR; its gRPC sockets into /tmp whatever TMPDIR says (weed's choice).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    for name in (ENDPOINT_ENV, ACCESS_KEY_ENV, SECRET_KEY_ENV):
        env.pop(name, None)
    sockets_before = _weed_sockets()
    done = subprocess.run(
        [sys.executable, "-m", "tests.s3", "--", sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 7, done.stderr
    printed, given = done.stdout.splitlines()
    endpoint, access_key, secret_key = given.split()
    assert endpoint == printed
    assert endpoint.startswith("http://127.0.0.1:") and access_key and secret_key
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(endpoint.rsplit(":", 1)[1])), timeout=5)
    assert list(temp.iterdir()) == []
    # Sockets of a weed that is gone: their port is free again. (Other weeds, still running,
    # hold theirs; dead ones from before this test are not this test's.)
    assert [s for s in _weed_sockets() - sockets_before if _port_free(s)] == []


def _weed_sockets() -> set[str]:
    return {p for p in os.listdir("/tmp") if p.startswith("seaweedfs-") and p.endswith(".sock")}


def _port_free(sock_name: str) -> bool:
    port = int(sock_name.rsplit("-", 1)[1].removesuffix(".sock"))
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
