"""rclone (the real binary, webdav backend with vendor owncloud / nextcloud) against davdisk,
plus the ownCloud extensions rclone relies on, checked at the request level."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.live.clients import (
    OC,
    hashes,
    http_date,
    mtime,
    prop_request,
    propfind_one,
    propfind_response,
    proppatch,
    propstat_orders,
)
from tests.live.conftest import ALICE, USERS, D, Server, get_bytes, members, parse_multistatus

UA_RCLONE = "rclone/v1.60.1"

# rclone's PROPFIND body for listings (backend/webdav, owncloud/nextcloud vendors)
RCLONE_PROPFIND = (
    b'<?xml version="1.0"?>\n'
    b'<d:propfind  xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" '
    b'xmlns:nc="http://nextcloud.org/ns">\n <d:prop>\n  <d:displayname />\n'
    b"  <d:getlastmodified />\n  <d:getcontentlength />\n  <d:resourcetype />\n"
    b"  <d:getcontenttype />\n  <oc:checksums />\n  <oc:permissions />\n </d:prop>\n"
    b"</d:propfind>\n"
)

MIB = 1024 * 1024


# --------------------------------------------------------------------------- the real binary


def rclone_exe() -> str:
    exe = shutil.which("rclone")
    if exe is None:
        pytest.fail("rclone is not installed (Debian/Ubuntu package 'rclone')")
    return exe


def rclone_env(srv: Server, vendor: str, tmp: Path) -> dict[str, str]:
    obscured = subprocess.run(
        [rclone_exe(), "obscure", USERS[ALICE]],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    conf = tmp / "rclone.conf"
    conf.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_") and "proxy" not in k}
    env.update(
        {
            "RCLONE_CONFIG": str(conf),
            "RCLONE_CONFIG_DD_TYPE": "webdav",
            "RCLONE_CONFIG_DD_URL": srv.dav,
            "RCLONE_CONFIG_DD_VENDOR": vendor,
            "RCLONE_CONFIG_DD_USER": ALICE,
            "RCLONE_CONFIG_DD_PASS": obscured,
            "TZ": "UTC",
            "HOME": str(tmp),
        }
    )
    return env


def rclone(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [rclone_exe(), *args, "--retries", "1", "--low-level-retries", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    print(f"$ rclone {' '.join(args)}\n{out}")
    return proc.returncode, out


# name -> size; distinct whole-second mtimes are given in make_tree()
TREE: dict[str, int] = {
    "empty.txt": 0,
    "one byte.bin": 1,
    "seventy-k.bin": 70 * 1024,
    "three-mib.bin": 3 * MIB,
    "readme.md": 1500,
    "Grüße/Übersicht.txt": 321,
    "Grüße/naïve café.txt": 64,
    "日本語/ファイル 名.txt": 777,
    "日本語/深い/データ.bin": 4096,
    "with space/a b c.txt": 12,
    "with space/inner dir/x y.txt": 9000,
    "emoji 🎉.md": 42,
    "plus+and&amp.txt": 17,
    "hash#tag.txt": 18,
    "percent 100%.txt": 19,
    "a/b/c/deep.txt": 20,
    "a/b/sibling.bin": 65536,
    "a/top.txt": 5,
    "dot.files/.hidden": 33,
    "UPPER lower.TXT": 2048,
}


def make_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Create TREE under root; returns {relative path: (size, mtime)}."""
    out = {}
    base = 1_700_000_000
    for i, (rel, size) in enumerate(sorted(TREE.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))
        mt = base - i * 86_400 - i * 7  # distinct, whole seconds, in the past
        os.utime(p, (mt, mt))
        out[rel] = (size, mt)
    return out


LSL_RE = re.compile(r"^\s*(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.\d+ (.+)$")


@pytest.mark.parametrize(("vendor", "hash_name"), [("owncloud", "md5"), ("nextcloud", "sha1")])
def test_rclone_sync_check_resync_lsl(
    module_server: Server, tmp_path: Path, vendor: str, hash_name: str
) -> None:
    env = rclone_env(module_server, vendor, tmp_path)
    src = tmp_path / "src"
    expected = make_tree(src)
    dst = f"dd:{vendor}-dst-{uuid.uuid4().hex[:6]}"

    code, out = rclone(env, "sync", str(src), dst, "-v")
    assert code == 0, out
    assert out.count("Copied (new)") == len(TREE), out

    code, out = rclone(env, "check", str(src), dst, "-v")
    assert code == 0, out
    assert f"Using {hash_name} for hash comparisons" in out, out
    assert "0 differences found" in out, out
    assert "hashes could not be checked" not in out, out
    assert f"{len(TREE)} matching files" in out, out

    code, out = rclone(env, "sync", str(src), dst, "-v")
    assert code == 0, out
    assert "Copied" not in out, out
    assert not re.search(r"Transferred:\s+[1-9]\d* / ", out), out

    code, out = rclone(env, "lsl", dst)
    assert code == 0, out
    listed = {}
    for line in out.splitlines():
        m = LSL_RE.match(line)
        if m:
            listed[m.group(3)] = (int(m.group(1)), m.group(2))
    want = {
        rel: (size, datetime.fromtimestamp(mt, UTC).strftime("%Y-%m-%d %H:%M:%S"))
        for rel, (size, mt) in expected.items()
    }
    assert listed == want, out

    # a changed file is transferred again, and only that one
    changed = src / "a/top.txt"
    changed.write_bytes(b"changed!")
    os.utime(changed, (1_600_000_000, 1_600_000_000))
    code, out = rclone(env, "sync", str(src), dst, "-v")
    assert code == 0, out
    assert out.count("Copied") == 1 and "a/top.txt: Copied" in out, out
    code, out = rclone(env, "check", str(src), dst)
    assert code == 0 and "0 differences found" in out, out


# --------------------------------------------------------------------------- request level


@pytest.fixture
def rc(module_server: Server) -> requests.Session:
    s = module_server.session(ALICE)
    s.headers["User-Agent"] = UA_RCLONE
    return s


CHECKSUMS = prop_request("oc:checksums")


def checksums_text(s: requests.Session, url: str) -> str:
    e = propfind_one(s, url, CHECKSUMS)
    el = e.props.get(OC + "checksums")
    assert el is not None, f"oc:checksums not 200 on {url}: {e.status}"
    # rclone reads prop>checksums>checksum
    inner = el.findtext(OC + "checksum")
    assert inner is not None, f"no oc:checksum inside oc:checksums on {url}"
    return inner.strip()


@pytest.mark.parametrize("size", [0, 1, 70 * 1024])
def test_oc_checksums_property(rc: requests.Session, workdir: str, size: int) -> None:
    data = os.urandom(size)
    url = workdir + "sum.bin"
    assert rc.put(url, data=data).status_code == 201
    sha1, md5 = hashes(data)
    text = checksums_text(rc, url)
    parts = text.split()
    assert len(parts) == 2 and parts[0].startswith("SHA1:") and parts[1].startswith("MD5:"), text
    assert parts[0][5:].lower() == sha1 and parts[1][4:].lower() == md5, (text, sha1, md5)
    # overwrite: the checksums follow the content
    data2 = data + b"more"
    assert rc.put(url, data=data2).status_code in (200, 204)
    sha1, md5 = hashes(data2)
    assert checksums_text(rc, url).lower() == f"sha1:{sha1} md5:{md5}"


def test_oc_checksum_header_is_verified(rc: requests.Session, workdir: str) -> None:
    data = b"checked upload\n" * 50
    sha1, md5 = hashes(data)
    wrong = hashes(b"something else")[0]

    r = rc.put(workdir + "new.txt", data=data, headers={"OC-Checksum": f"SHA1:{wrong}"})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert rc.get(workdir + "new.txt").status_code == 404
    assert members(rc, workdir) == {}

    r = rc.put(workdir + "new.txt", data=data, headers={"OC-Checksum": f"SHA1:{sha1}"})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert get_bytes(rc, workdir + "new.txt") == data

    # a bad overwrite leaves the old content
    r = rc.put(workdir + "new.txt", data=b"replacement", headers={"OC-Checksum": f"SHA1:{wrong}"})
    assert r.status_code == 400, r.status_code
    assert get_bytes(rc, workdir + "new.txt") == data
    assert checksums_text(rc, workdir + "new.txt").lower() == f"sha1:{sha1} md5:{md5}"

    r = rc.put(workdir + "md5.txt", data=data, headers={"OC-Checksum": f"MD5:{md5}"})
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert get_bytes(rc, workdir + "md5.txt") == data
    assert set(members(rc, workdir)) == {"new.txt", "md5.txt"}


def test_x_oc_mtime_on_put_move_copy(rc: requests.Session, workdir: str) -> None:
    url = workdir + "m.txt"
    r = rc.put(url, data=b"mtime", headers={"X-OC-Mtime": "1500000000"})
    assert r.status_code == 201, r.status_code
    assert r.headers.get("X-OC-Mtime") == "accepted", dict(r.headers)
    assert mtime(rc, url) == 1500000000
    # overwrite with a new mtime
    r = rc.put(url, data=b"mtime 2", headers={"X-OC-Mtime": "1500000100"})
    assert r.status_code in (200, 204), r.status_code
    assert r.headers.get("X-OC-Mtime") == "accepted", dict(r.headers)
    assert mtime(rc, url) == 1500000100

    r = rc.request(
        "MOVE", url, headers={"Destination": workdir + "moved.txt", "X-OC-Mtime": "1400000000"}
    )
    assert r.status_code == 201, r.status_code
    assert mtime(rc, workdir + "moved.txt") == 1400000000
    assert get_bytes(rc, workdir + "moved.txt") == b"mtime 2"

    r = rc.request(
        "COPY",
        workdir + "moved.txt",
        headers={"Destination": workdir + "copied.txt", "X-OC-Mtime": "1300000000"},
    )
    assert r.status_code == 201, r.status_code
    assert mtime(rc, workdir + "copied.txt") == 1300000000
    assert mtime(rc, workdir + "moved.txt") == 1400000000  # the source keeps its own
    assert get_bytes(rc, workdir + "copied.txt") == b"mtime 2"


def test_proppatch_sets_mtime(rc: requests.Session, workdir: str) -> None:
    url = workdir + "p.txt"
    assert rc.put(url, data=b"props").status_code == 201
    body = (
        b'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        b'<lastmodified xmlns="DAV:">1700000000</lastmodified>'
        b"</D:prop></D:set></D:propertyupdate>"
    )
    status = proppatch(rc, url, body)
    assert status == {D + "lastmodified": 200}, status
    assert mtime(rc, url) == 1700000000

    body = (
        '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
        f"<D:getlastmodified>{http_date(1234567890)}</D:getlastmodified>"
        "</D:prop></D:set></D:propertyupdate>"
    ).encode()
    status = proppatch(rc, url, body)
    assert status == {D + "getlastmodified": 200}, status
    assert mtime(rc, url) == 1234567890
    assert get_bytes(rc, url) == b"props"


def test_200_propstat_comes_first(rc: requests.Session, workdir: str) -> None:
    assert rc.put(workdir + "f.txt", data=b"f").status_code == 201
    assert rc.request("MKCOL", workdir + "sub/").status_code == 201
    assert rc.put(workdir + "sub/g.txt", data=b"gg").status_code == 201
    bodies = [
        RCLONE_PROPFIND,
        prop_request("D:nonexistent", "oc:alsomissing", "D:getlastmodified", "D:displayname"),
    ]
    for body in bodies:
        for url, depth in ((workdir, "1"), (workdir + "f.txt", "0"), (workdir + "sub/", "0")):
            r = propfind_response(rc, url, body, depth)
            orders = propstat_orders(r.content)
            assert orders, r.text[:300]
            for o in orders:
                assert o.statuses and o.statuses[0] == 200, (url, o.href, o.statuses, r.text)


def test_oc_fileid_permissions_and_folder_size(rc: requests.Session, workdir: str) -> None:
    assert rc.request("MKCOL", workdir + "d/").status_code == 201
    assert rc.request("MKCOL", workdir + "d/e/").status_code == 201
    sizes = {"d/one.bin": 100, "d/two.bin": 2500, "d/e/three.bin": 70_000, "top.bin": 7}
    for rel, size in sizes.items():
        assert rc.put(workdir + rel, data=os.urandom(size)).status_code == 201
    body = prop_request("oc:fileid", "oc:permissions", "oc:size", "D:resourcetype")
    r = propfind_response(rc, workdir, body, "1")
    entries = parse_multistatus(r.content)
    ids = []
    for href, e in entries.items():
        fid = (e.text(OC + "fileid") or "").strip()
        perms = (e.text(OC + "permissions") or "").strip()
        assert fid, (href, e.status)
        assert perms, (href, e.status)
        ids.append(fid)
    assert len(set(ids)) == len(ids), ids
    by_name = {e.name: e for e in entries.values()}
    assert int(by_name["d"].text(OC + "size") or -1) == 100 + 2500 + 70_000
    whole = propfind_one(rc, workdir, body)
    assert int(whole.text(OC + "size") or -1) == sum(sizes.values())
    sub = propfind_one(rc, workdir + "d/e/", body)
    assert int(sub.text(OC + "size") or -1) == 70_000
    # the fileid is stable across a rename
    before = (by_name["top.bin"].text(OC + "fileid") or "").strip()
    r = rc.request("MOVE", workdir + "top.bin", headers={"Destination": workdir + "renamed.bin"})
    assert r.status_code == 201
    after = propfind_one(rc, workdir + "renamed.bin", body)
    assert (after.text(OC + "fileid") or "").strip() == before
