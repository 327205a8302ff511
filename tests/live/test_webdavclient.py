"""Round trips through webdavclient3, including a 300 MiB file under a memory ceiling."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from webdav3.client import Client

from tests.live.conftest import (
    ALICE,
    USERS,
    Server,
    ServerFactory,
    make_random_file,
    members,
    propfind,
    q,
    sha256_file,
)

BIG = 300 * 1024 * 1024
RSS_LIMIT_KIB = 150 * 1024


def make_client(srv: Server, user: str = ALICE, *, disable_check: bool = False) -> Client:
    return Client(
        {
            "webdav_hostname": srv.url,
            "webdav_login": user,
            "webdav_password": USERS[user],
            "webdav_root": "/dav/",
            "webdav_timeout": 300,
            "webdav_disable_check": disable_check,
        }
    )


def names(client: Client, path: str) -> set[str]:
    return {n.rstrip("/") for n in client.list(path)}


def download(client: Client, path: str) -> bytes:
    buf = io.BytesIO()
    client.download_from(buf, path)
    return buf.getvalue()


def test_head_on_collections(server: Server) -> None:
    """webdavclient3's check() - used by mkdir, upload_file, list, copy, move - is a HEAD on
    the folder that must answer 200."""
    s = server.session(ALICE)
    assert s.request("MKCOL", server.dav + "folder/").status_code == 201
    for url in (server.dav, server.dav + "folder/"):
        r = s.head(url)
        assert r.status_code == 200, f"HEAD {url}: {r.status_code}"
    assert s.head(server.dav + "missing/").status_code == 404


def test_round_trips(server: Server) -> None:
    c = make_client(server)
    s = server.session(ALICE)

    assert names(c, "/") == set()
    c.mkdir("docs")
    c.mkdir("docs/a")
    c.mkdir("docs/a/b")
    c.mkdir("docs/a/b/c")
    assert names(c, "/") == {"docs"}
    assert names(c, "docs/a/b") == {"c"}
    assert c.is_dir("docs/a/b/c")

    c.upload_to(b"hello world\n", "docs/hello.txt")
    c.upload_to(b"deep", "docs/a/b/c/deep.bin")
    assert names(c, "docs") == {"a", "hello.txt"}
    assert download(c, "docs/hello.txt") == b"hello world\n"
    assert download(c, "docs/a/b/c/deep.bin") == b"deep"
    info = c.info("docs/hello.txt")
    assert int(info["size"]) == 12
    assert c.check("docs/hello.txt")
    assert not c.check("docs/nope.txt")

    # overwrite
    c.upload_to(b"hello again", "docs/hello.txt")
    assert download(c, "docs/hello.txt") == b"hello again"

    # Unicode and spaces, in folder and file names
    uni = "Über straße ✓"
    c.mkdir(uni)
    c.upload_to("grüße ✓\n".encode(), f"{uni}/a b c.txt")
    c.upload_to(b"spaced", "a b c.txt")
    assert names(c, "/") == {"docs", uni, "a b c.txt"}
    assert names(c, uni) == {"a b c.txt"}
    assert download(c, f"{uni}/a b c.txt") == "grüße ✓\n".encode()
    assert download(c, "a b c.txt") == b"spaced"
    # the name is stored exactly as sent (percent-encoded UTF-8 on the wire)
    listing = members(s, server.dav)
    assert set(listing) == {"docs", uni, "a b c.txt"}
    assert listing[uni].is_collection and not listing["a b c.txt"].is_collection

    # move (rename) a file and a folder with everything in it
    c.move("docs/hello.txt", f"{uni}/hällo wörld.txt")
    assert names(c, "docs") == {"a"}
    assert download(c, f"{uni}/hällo wörld.txt") == b"hello again"
    c.move("docs/a", "moved a")
    assert names(c, "docs") == set()
    assert download(c, "moved a/b/c/deep.bin") == b"deep"

    # copy a file and a folder tree
    c.copy("a b c.txt", "docs/copy of a b c.txt")
    assert download(c, "docs/copy of a b c.txt") == b"spaced"
    assert download(c, "a b c.txt") == b"spaced"
    c.copy("moved a", "docs/tree copy", depth="infinity")
    assert download(c, "docs/tree copy/b/c/deep.bin") == b"deep"
    c.upload_to(b"changed", "docs/tree copy/b/c/deep.bin")
    assert download(c, "moved a/b/c/deep.bin") == b"deep", "copy must not share content"

    # delete a file and a non-empty folder
    c.clean("a b c.txt")
    assert not c.check("a b c.txt")
    c.clean("moved a")
    assert not c.check("moved a/b/c/deep.bin")
    assert names(c, "/") == {"docs", uni}
    assert names(c, "docs") == {"copy of a b c.txt", "tree copy"}

    # bob sees none of it
    assert names(make_client(server, "bob"), "/") == set()


@pytest.mark.serial
def test_300_mib_round_trip_under_memory_ceiling(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    srv = server_factory()
    # checks off: this test is about the transfer, not about HEAD on folders (tested above)
    c = make_client(srv, disable_check=True)
    src = tmp_path / "big.bin"
    dst = tmp_path / "big.out"
    digest = make_random_file(src, BIG)
    try:
        c.mkdir("big")
        c.upload_file("big/big 300.bin", str(src))
        entry = propfind(srv.session(ALICE), srv.dav + "big/" + q("big 300.bin"), "0")
        (e,) = entry.values()
        assert e.size == BIG
        c.download_file("big/big 300.bin", str(dst))
        assert dst.stat().st_size == BIG
        assert sha256_file(dst) == digest
        peak = srv.peak_rss_kib()
        print(f"server peak RSS (VmHWM) after 300 MiB up+down: {peak / 1024:.1f} MiB")
        assert peak < RSS_LIMIT_KIB, f"server VmHWM {peak} KiB >= {RSS_LIMIT_KIB} KiB"
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)
    # don't leave 300 MiB of blobs behind in pytest's kept temp dirs
    srv.stop()
    shutil.rmtree(srv.data_dir)
