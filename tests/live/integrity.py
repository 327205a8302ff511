"""Checks shared by the crash, soak and disk-full tests: what a client sees of a tree (names,
sizes, stored checksums), what the content really hashes to, and whether ``gc`` + ``fsck`` agree
that the data dir is consistent afterwards. Everything goes through HTTP or the CLI."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.live.conftest import D, Server, cli, describe, parse_multistatus, q, url_path

OC = "{http://owncloud.org/ns}"

LISTING_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<d:resourcetype/><d:getcontentlength/><d:getetag/><oc:checksums/>"
    b"</d:prop></d:propfind>"
)


@dataclass(frozen=True)
class Listed:
    path: str  # relative to the listed root, e.g. "a/b.bin"; folders end with "/"
    size: int | None
    etag: str | None
    sha1: str | None  # from oc:checksums


def _sha1_of(checksums: str | None) -> str | None:
    for part in (checksums or "").split():
        if part.upper().startswith("SHA1:"):
            return part[5:].lower()
    return None


def list_tree(session: requests.Session, root_url: str) -> dict[str, Listed]:
    """Every member below ``root_url`` (Depth 1 PROPFINDs, folder by folder)."""
    out: dict[str, Listed] = {}
    root_path = url_path(root_url)
    todo = [""]
    while todo:
        rel = todo.pop()
        url = root_url + "/".join(q(n) for n in rel.rstrip("/").split("/") if n)
        if rel:
            url += "/"
        r = session.request(
            "PROPFIND",
            url,
            headers={"Depth": "1", "Content-Type": "application/xml"},
            data=LISTING_PROPFIND,
        )
        assert r.status_code == 207, f"PROPFIND {url}: {r.status_code} {r.text[:300]}"
        for href, e in parse_multistatus(r.content).items():
            path = href[len(root_path) :] if href.startswith(root_path) else href
            if path.rstrip("/") == rel.rstrip("/"):
                continue  # the folder itself
            rt = e.props.get(D + "resourcetype")
            is_dir = rt is not None and rt.find(D + "collection") is not None
            name = path.rstrip("/") + ("/" if is_dir else "")
            checks = e.props.get(OC + "checksums")
            inner = checks.findtext(OC + "checksum") if checks is not None else None
            out[name] = Listed(
                path=name,
                size=e.size,
                etag=e.text(D + "getetag"),
                sha1=_sha1_of(inner),
            )
            if is_dir:
                todo.append(name)
    return out


def content_digest(session: requests.Session, url: str, algo: str = "sha256") -> tuple[str, int]:
    """(hex digest, length) of a file's content, streamed (never held in memory)."""
    h = hashlib.new(algo)
    size = 0
    with session.get(url, stream=True) as r:
        assert r.status_code == 200, f"GET {url}: {r.status_code}"
        for chunk in r.iter_content(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def gc_then_fsck(data_dir: Path, *global_args: str) -> str:
    """``davdisk gc --min-age 0`` then ``davdisk fsck``: both must exit 0. Returns their output.
    Call only with no server running on ``data_dir`` (min-age 0 spares nothing in flight)."""
    gc = cli(data_dir, *global_args, "gc", "--min-age", "0")
    assert gc.returncode == 0, f"gc failed\n{describe(gc)}"
    fsck = cli(data_dir, *global_args, "fsck")
    assert fsck.returncode == 0, f"fsck is not clean after gc\n{describe(fsck)}"
    assert "Traceback" not in gc.stderr + fsck.stderr, describe(gc) + describe(fsck)
    return gc.stdout + fsck.stdout


def assert_no_traceback(srv: Server) -> None:
    log = srv.log()
    assert "Traceback" not in log, f"the server logged a traceback\n--- log ---\n{log[-20000:]}"
