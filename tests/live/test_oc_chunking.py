"""ownCloud/Nextcloud chunking v1 (``OC-Chunked: 1``, chunks PUT as
``<name>-chunking-<transfer>-<count>-<index>``) is not implemented: every chunk is refused with
a 400 whose DAV error body says why (the ownCloud and Nextcloud clients show its ``message``),
nothing is stored, and no ETag is sent (those clients take an ETag on a chunk as "the whole file
is uploaded"). A plain PUT of the same file then works.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import requests

from tests.live.conftest import (
    ALICE,
    Server,
    all_files,
    get_bytes,
    members,
    put,
    q,
    temp_files,
)

CHUNK = 1 << 20


def chunk_headers(total: int) -> dict[str, str]:
    return {
        "OC-Chunked": "1",
        "OC-Chunk-Size": str(CHUNK),
        "OC-Total-Length": str(total),
        "X-OC-Mtime": "1700000000",
        "Content-Type": "application/octet-stream",
    }


def assert_refused(r: requests.Response, what: str) -> None:
    assert r.status_code == 400, f"{what}: {r.status_code} {r.text[:300]}"
    assert "etag" not in {k.lower() for k in r.headers}, (what, r.headers)
    assert "oc-etag" not in {k.lower() for k in r.headers}, (what, r.headers)
    root = ET.fromstring(r.content)
    assert root.tag == "{DAV:}error", r.text
    message = next((el.text for el in root.iter() if el.tag.endswith("}message")), None)
    assert message and "chunk" in message.lower() and "one PUT" in message, r.text


def test_chunking_v1_is_refused_and_nothing_is_stored(module_server: Server, workdir: str) -> None:
    s = module_server.session(ALICE)
    data = os.urandom(2 * CHUNK + 12_345)
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
    files_before = all_files(module_server.data_dir)
    for index, chunk in enumerate(chunks):
        url = f"{workdir}{q('big file.bin')}-chunking-4242-{len(chunks)}-{index}"
        assert_refused(s.put(url, data=chunk, headers=chunk_headers(len(data))), f"chunk {index}")
    # the header in another spelling, and a chunked (streamed) body
    url = f"{workdir}{q('big file.bin')}-chunking-4243-1-0"
    headers = {k: v for k, v in chunk_headers(len(data)).items() if k != "OC-Chunked"}
    headers["oc-chunked"] = "1"
    assert_refused(s.put(url, data=iter([data[:1000], data[1000:]]), headers=headers), "streamed")
    # the connection is still usable and nothing was stored, not even a temporary blob
    assert members(s, workdir) == {}
    assert temp_files(module_server.data_dir) == []
    new = set(all_files(module_server.data_dir)) - set(files_before)
    assert {p.name for p in new} <= {"davdisk.db-wal", "davdisk.db-shm"}, sorted(new)
    # the fallback, one PUT of the whole file, works
    put(s, workdir + q("big file.bin"), data)
    assert get_bytes(s, workdir + q("big file.bin")) == data
    assert set(members(s, workdir)) == {"big file.bin"}


def test_chunk_onto_an_existing_file_leaves_it(module_server: Server, workdir: str) -> None:
    """A client whose chunk name is taken (or a one-chunk upload with the header) changes
    nothing."""
    s = module_server.session(ALICE)
    url = workdir + "same.txt"
    put(s, url, b"old content")
    assert_refused(s.put(url, data=b"new", headers=chunk_headers(3)), "PUT onto an existing file")
    assert get_bytes(s, url) == b"old content"
