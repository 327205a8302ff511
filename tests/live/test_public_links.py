"""Public links against a live server: ``/s/<token>`` downloads (Range too) and folder pages,
``/public/<token>/`` as a WebDAV tree (read-only, or upload-only), passwords via Basic auth with
any user name, expiry and revocation (404, without a timing oracle), and the real rclone binary
copying a link's folder down byte for byte.
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import requests

from tests.live.conftest import ALICE, Server, parse_multistatus, q, raw_request, wait_until
from tests.live.sharing_helpers import (
    Link,
    get_ok,
    link_session,
    link_share_id,
    mkdirs,
    put_ok,
    sess,
    set_quota,
    share_link,
    share_rm,
    snapshot,
    start_share_server,
    uid,
    unchanged,
    used_bytes,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "links")


FILES = {
    "a.txt": b"file a\n",
    "b.bin": os.urandom(200_000),
    "with space & more.txt": b"a name that needs quoting\n",
    "sub/c.txt": b"file c, one level down\n",
    "sub/deeper/d.bin": os.urandom(70_000),
}


def make_tree(srv: Server, name: str, files: dict[str, bytes] = FILES) -> str:
    a = sess(srv, ALICE)
    base = srv.dav + q(name) + "/"
    mkdirs(a, base)
    made: set[str] = set()
    for rel, data in files.items():
        parts = rel.split("/")[:-1]
        for i in range(len(parts)):
            sub = "/".join(parts[: i + 1])
            if sub not in made:
                mkdirs(a, base + "/".join(q(p) for p in sub.split("/")) + "/")
                made.add(sub)
        put_ok(a, base + "/".join(q(p) for p in rel.split("/")), data)
    return base


@pytest.fixture(scope="module")
def tree(srv: Server) -> str:
    """alice's folder with FILES; its name."""
    name = "pub-" + uid()
    make_tree(srv, name)
    return name


@pytest.fixture(scope="module")
def folder_link(srv: Server, tree: str) -> Link:
    return share_link(srv, ALICE, "/" + tree)


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def page_links(url: str, html: str) -> dict[str, str]:
    """{unquoted path: absolute URL} of the links on a page."""
    p = Links()
    p.feed(html)
    return {unquote(urlsplit(urljoin(url, h)).path): urljoin(url, h) for h in p.hrefs}


# --------------------------------------------------------------------------- /s/


def test_file_link_download_and_range(srv: Server, tree: str) -> None:
    link = share_link(srv, ALICE, f"/{tree}/b.bin")
    anon = link_session(srv, None)
    data = FILES["b.bin"]
    r = anon.get(link.s)
    assert r.status_code == 200, r.status_code
    assert r.content == data
    cd = r.headers.get("Content-Disposition")
    if cd is not None:
        assert "b.bin" in cd, cd
    for start, end in ((0, 0), (100, 65_636), (65_535, 131_072), (len(data) - 10, len(data) - 1)):
        r = anon.get(link.s, headers={"Range": f"bytes={start}-{end}"})
        assert r.status_code == 206, (start, end, r.status_code)
        assert r.content == data[start : end + 1], (start, end)
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(data)}"
    r = anon.head(link.s)
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["Content-Length"]) == len(data)
    # the same file through /public/: a folder holding just that file
    r = anon.request("PROPFIND", link.public, headers={"Depth": "1"})
    assert r.status_code == 207, r.status_code
    names = {
        e.name
        for h, e in parse_multistatus(r.content).items()
        if h.rstrip("/") != "/public/" + link.token
    }
    assert names == {"b.bin"}, names
    assert get_ok(anon, link.public + "b.bin") == data


def test_folder_link_html_listing(srv: Server, tree: str, folder_link: Link) -> None:
    anon = link_session(srv, None)
    r = anon.get(folder_link.s)
    assert r.status_code == 200, r.status_code
    assert r.headers.get("Content-Type", "").startswith("text/html"), r.headers
    links = page_links(r.url, r.text)  # relative links resolve against the final URL
    prefix = f"/s/{folder_link.token}/"
    for name in ("a.txt", "b.bin", "with space & more.txt"):
        assert prefix + name in links, (name, sorted(links))
        assert get_ok(anon, links[prefix + name]) == FILES[name]
    sub = [p for p in links if p.rstrip("/") == prefix + "sub"]
    assert sub, sorted(links)
    r = anon.get(links[sub[0]])
    assert r.status_code == 200 and r.headers.get("Content-Type", "").startswith("text/html")
    sublinks = page_links(r.url, r.text)
    assert get_ok(anon, sublinks[prefix + "sub/c.txt"]) == FILES["sub/c.txt"]
    deeper = [p for p in sublinks if p.rstrip("/") == prefix + "sub/deeper"]
    assert deeper, sorted(sublinks)
    r = anon.get(sublinks[deeper[0]])
    d = page_links(r.url, r.text)
    assert get_ok(anon, d[prefix + "sub/deeper/d.bin"]) == FILES["sub/deeper/d.bin"]
    # Range on a file inside a folder link
    r = anon.get(folder_link.s + "/b.bin", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == FILES["b.bin"][10:20]
    # nothing outside the linked folder is reachable, however the path is spelled
    secret = f"secret-{uid()}.txt"
    put_ok(sess(srv, ALICE), srv.dav + secret, b"alice's secret")
    tok = folder_link.token
    for bad in (
        f"/s/{tok}/../{secret}",
        f"/s/{tok}/%2e%2e/{secret}",
        f"/s/{tok}/sub/../../{secret}",
        f"/public/{tok}/../{secret}",
        f"/public/{tok}/%2e%2e/{secret}",
    ):
        code, _, body = raw_request(srv, "GET", bad, user=None)
        assert code in (400, 403, 404), (bad, code)
        assert b"alice's secret" not in body, bad


UNICODE_FILES = {
    "日本語.txt": "日本語のテキスト\n".encode(),
    "café.txt": b"cafe au lait\n",
    "emoji 😀.txt": b"smile\n",
    "a #1.txt": b"hash\n",
    "100% sure.txt": b"percent\n",
    "why?.txt": b"question\n",
    "Ünïcödé dir/naïve ß.txt": b"one level down\n",
}


class LabelledLinks(HTMLParser):
    """(href, text) of every link on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self.links.append((self._href, ""))

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            href, text = self.links[-1]
            self.links[-1] = (href, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None


def labelled_links(url: str, html: str) -> dict[str, str]:
    """{link text: absolute URL} of the links on a page."""
    p = LabelledLinks()
    p.feed(html)
    return {text: urljoin(url, href) for href, text in p.links}


def disposition_name(header: str) -> str:
    """The file name of a Content-Disposition: ``filename*`` (RFC 5987) if there is one."""
    params = dict(part.strip().split("=", 1) for part in header.split(";")[1:] if "=" in part)
    if "filename*" in params:
        charset, _, value = params["filename*"].split("'", 2)
        assert charset.upper() == "UTF-8", header
        return unquote(value, encoding="utf-8", errors="strict")
    return params["filename"].strip('"')


def test_folder_link_with_non_ascii_and_reserved_names(srv: Server) -> None:
    name = "unicode-pub-" + uid()
    make_tree(srv, name, UNICODE_FILES)
    link = share_link(srv, ALICE, "/" + name)
    anon = link_session(srv, None)
    r = anon.get(link.s + "/")
    assert r.status_code == 200, r.status_code
    links = labelled_links(r.url, r.text)
    top = {rel for rel in UNICODE_FILES if "/" not in rel}
    assert top <= set(links), (sorted(top - set(links)), sorted(links))
    wrong = []
    for rel in sorted(top):
        got = anon.get(links[rel])
        if got.status_code != 200 or got.content != UNICODE_FILES[rel]:
            wrong.append(f"{rel!r} -> {links[rel]}: {got.status_code} {got.content[:40]!r}")
            continue
        cd = got.headers.get("Content-Disposition", "")
        if disposition_name(cd) != rel:
            wrong.append(f"{rel!r}: Content-Disposition {cd!r}")
    assert not wrong, "links on the page that do not download their file:\n" + "\n".join(wrong)
    # the sub-folder opens (with and without the trailing slash) and its entry downloads
    sub = "Ünïcödé dir"
    assert sub + "/" in links, sorted(links)
    for url in (links[sub + "/"], links[sub + "/"].rstrip("/")):
        r = anon.get(url)
        assert r.status_code == 200, (url, r.status_code)
        inner = labelled_links(r.url, r.text)
        assert "naïve ß.txt" in inner, sorted(inner)
        assert get_ok(anon, inner["naïve ß.txt"]) == UNICODE_FILES[sub + "/naïve ß.txt"]


def test_file_link_to_non_ascii_name(srv: Server) -> None:
    name = "unicode-file-" + uid()
    make_tree(srv, name, {"日本語.txt": UNICODE_FILES["日本語.txt"]})
    link = share_link(srv, ALICE, f"/{name}/日本語.txt")
    anon = link_session(srv, None)
    for url in (link.s, link.s + "/" + q("日本語.txt")):
        r = anon.get(url)
        assert r.status_code == 200, (url, r.status_code)
        assert r.content == UNICODE_FILES["日本語.txt"], url
        cd = r.headers["Content-Disposition"]
        assert cd.isascii(), cd
        assert cd.startswith("attachment;"), cd
        assert disposition_name(cd) == "日本語.txt", cd
        # the plain ``filename`` fallback for old clients is ASCII and keeps the extension
        assert 'filename="' in cd and cd.split('filename="', 1)[1].split('"')[0].endswith(".txt")
    r = anon.get(link.s, headers={"Range": "bytes=3-5"})
    assert r.status_code == 206 and r.content == UNICODE_FILES["日本語.txt"][3:6]
    assert get_ok(anon, link.public + q("日本語.txt")) == UNICODE_FILES["日本語.txt"]


def test_public_dav_tree_read_only(srv: Server, tree: str, folder_link: Link) -> None:
    anon = link_session(srv, None)
    pub = folder_link.public
    r = anon.request("PROPFIND", pub, headers={"Depth": "1"})
    assert r.status_code == 207, r.status_code
    names = {
        e.name
        for h, e in parse_multistatus(r.content).items()
        if h.rstrip("/") != urlsplit(pub).path.rstrip("/")
    }
    assert names == {"a.txt", "b.bin", "with space & more.txt", "sub"}, names
    assert get_ok(anon, pub + "sub/c.txt") == FILES["sub/c.txt"]
    assert anon.head(pub + "a.txt").status_code == 200
    owner, obase = sess(srv, ALICE), srv.dav + q(tree) + "/"
    before = snapshot(owner, obase)
    refused = [
        ("PUT", pub + "new.txt", {}, b"x"),
        ("PUT", pub + "a.txt", {}, b"x"),
        ("MKCOL", pub + "newdir/", {}, None),
        ("DELETE", pub + "a.txt", {}, None),
        ("DELETE", pub + "sub/", {}, None),
        ("MOVE", pub + "a.txt", {"Destination": pub + "moved.txt"}, None),
        ("COPY", pub + "a.txt", {"Destination": pub + "copied.txt"}, None),
        ("PROPPATCH", pub + "a.txt", {"Content-Type": "application/xml"}, PROPPATCH),
        ("LOCK", pub + "a.txt", {"Content-Type": "application/xml"}, LOCKINFO),
    ]
    wrong = []
    for method, url, headers, body in refused:
        r = anon.request(method, url, headers=headers, data=body)
        if r.status_code != 403:
            wrong.append(f"{method} {url}: {r.status_code}")
        unchanged(before, snapshot(owner, obase), f"link {method} {url}")
    assert not wrong, "read-only link, expected 403:\n" + "\n".join(wrong)


PROPPATCH = (
    b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:x"><D:set><D:prop>'
    b"<Z:c>1</Z:c></D:prop></D:set></D:propertyupdate>"
)
LOCKINFO = (
    b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
    b"<D:locktype><D:write/></D:locktype></D:lockinfo>"
)


def test_upload_link(srv: Server) -> None:
    name = "drop-" + uid()
    make_tree(srv, name, {"existing.txt": b"already here"})
    link = share_link(srv, ALICE, "/" + name, upload=True)
    anon = link_session(srv, None)
    owner, obase = sess(srv, ALICE), srv.dav + q(name) + "/"
    data = os.urandom(100_000)
    r = anon.put(link.public + "dropped.bin", data=data)
    assert r.status_code == 201, r.status_code
    assert get_ok(owner, obase + "dropped.bin") == data
    assert anon.request("MKCOL", link.public + "folder/").status_code == 201
    assert anon.put(link.public + "folder/inner.txt", data=b"inner").status_code == 201
    assert get_ok(owner, obase + "folder/inner.txt") == b"inner"
    before = snapshot(owner, obase)
    for url in (link.public + "existing.txt", link.public + "dropped.bin", link.public + "folder/"):
        r = anon.delete(url)
        assert r.status_code == 403, (url, r.status_code)
        unchanged(before, snapshot(owner, obase), f"DELETE {url} through an upload link")
    # a read-only link on the same folder still refuses uploads
    ro = share_link(srv, ALICE, "/" + name)
    assert anon.put(ro.public + "nope.txt", data=b"x").status_code == 403
    unchanged(before, snapshot(owner, obase), "PUT through a read-only link")


def test_upload_link_counts_against_owner_quota(srv: Server) -> None:
    name = "dropq-" + uid()
    make_tree(srv, name, {"keep.txt": b"keep"})
    link = share_link(srv, ALICE, "/" + name, upload=True)
    owner, obase = sess(srv, ALICE), srv.dav + q(name) + "/"
    anon = link_session(srv, None)
    used = used_bytes(owner, srv.dav)
    put_ok(anon, link.public + "in.bin", os.urandom(10_000))
    assert used_bytes(owner, srv.dav) == used + 10_000
    try:
        set_quota(srv, ALICE, str(used + 10_000 + 5_000))
        before = snapshot(owner, obase)
        r = anon.put(link.public + "too-big.bin", data=os.urandom(20_000))
        assert r.status_code == 507, r.status_code
        unchanged(before, snapshot(owner, obase), "an upload-link PUT over the owner's quota")
    finally:
        set_quota(srv, ALICE, "0")


# --------------------------------------------------------------------------- passwords


def test_password_link(srv: Server, tree: str) -> None:
    pw = "open sesame " + uid()
    link = share_link(srv, ALICE, "/" + tree, password=pw)
    for url in (link.s, link.public, link.public + "a.txt", link.s + "/a.txt"):
        r = requests.get(url)
        assert r.status_code == 401, (url, r.status_code)
        assert "basic" in r.headers.get("WWW-Authenticate", "").lower(), r.headers
        for user in ("anyone", "x", ALICE):
            assert requests.get(url, auth=(user, pw)).status_code == 200, (url, user)
        for wrong in ("", pw + "x", "open sesame"):
            r = requests.get(url, auth=("anyone", wrong))
            assert r.status_code == 401, (url, wrong, r.status_code)
    r = requests.request("PROPFIND", link.public, auth=("u", pw), headers={"Depth": "1"})
    assert r.status_code == 207
    assert requests.request("PROPFIND", link.public, headers={"Depth": "1"}).status_code == 401
    # a user's own password is no key to a password link
    assert requests.get(link.s, auth=(ALICE, "alice-password-1")).status_code == 401


# --------------------------------------------------------------------------- expiry, revocation


def expired_link(srv: Server, path: str) -> Link:
    """A link created to expire after 1 s, polled (bounded) until the server refuses it."""
    link = share_link(srv, ALICE, path, expires="1s")
    anon = link_session(srv, None)
    wait_until(lambda: anon.get(link.s).status_code == 404, 10, "the link to expire")
    return link


def test_expiry(srv: Server, tree: str) -> None:
    week = share_link(srv, ALICE, "/" + tree, expires="7d")
    anon = link_session(srv, None)
    assert get_ok(anon, week.s + "/a.txt") == FILES["a.txt"]
    assert anon.request("PROPFIND", week.public, headers={"Depth": "0"}).status_code == 207
    gone = expired_link(srv, "/" + tree)
    for url in (gone.s + "/a.txt", gone.public + "a.txt", gone.public + "sub/"):
        assert anon.get(url).status_code == 404, url
    assert_dead(srv, gone.token)


def test_revocation(srv: Server) -> None:
    name = "revoke-" + uid()
    make_tree(srv, name, {"x.txt": b"x"})
    link = share_link(srv, ALICE, "/" + name)
    anon = link_session(srv, None)
    assert get_ok(anon, link.s + "/x.txt") == b"x"
    assert anon.request("PROPFIND", link.public, headers={"Depth": "1"}).status_code == 207
    share_rm(srv, link_share_id(srv, "/" + name))
    assert_dead(srv, link.token)
    assert get_ok(sess(srv, ALICE), srv.dav + q(name) + "/x.txt") == b"x"


def assert_dead(srv: Server, token: str) -> None:
    """Every method on a dead token's URLs is 404, like a token that never existed (no 409
    for a missing parent, no 401 asking for a password, no 403)."""
    anon = link_session(srv, None)
    pub = f"{srv.url}/public/{token}/"
    for url in (f"{srv.url}/s/{token}", f"{srv.url}/s/{token}/x.txt", pub, pub + "x.txt"):
        assert anon.get(url).status_code == 404, url
        assert anon.head(url).status_code == 404, url
    checks = [
        ("PROPFIND", pub, {"Depth": "1"}, None),
        ("PROPFIND", pub + "x.txt", {"Depth": "0"}, None),
        ("PUT", pub + "x.txt", {}, b"x"),
        ("PUT", pub + "new.txt", {}, b"x"),
        ("MKCOL", pub + "newdir/", {}, None),
        ("DELETE", pub + "x.txt", {}, None),
        ("COPY", pub + "x.txt", {"Destination": pub + "y.txt"}, None),
        ("MOVE", pub + "x.txt", {"Destination": pub + "y.txt"}, None),
        ("PROPPATCH", pub + "x.txt", {"Content-Type": "application/xml"}, PROPPATCH),
        ("LOCK", pub + "x.txt", {"Content-Type": "application/xml"}, LOCKINFO),
        ("LOCK", pub + "new.txt", {"Content-Type": "application/xml"}, LOCKINFO),
    ]
    wrong = []
    for method, url, headers, body in checks:
        r = anon.request(method, url, headers=headers, data=body)
        if r.status_code != 404:
            wrong.append(f"{method} {url}: {r.status_code}")
    assert not wrong, "dead token, expected 404:\n" + "\n".join(wrong)


def test_made_up_tokens(srv: Server) -> None:
    assert_dead(srv, secrets.token_urlsafe(24))
    assert_dead(srv, "short")


def medians_ms(s: requests.Session, urls: dict[str, str], n: int = 31) -> dict[str, float]:
    """The median time of a GET of each URL, taken in turns (a load spike on the machine then
    hits every URL alike rather than the one measured at that moment)."""
    times: dict[str, list[float]] = {label: [] for label in urls}
    for _ in range(n):
        for label, url in urls.items():
            t0 = time.perf_counter()
            r = s.get(url)
            times[label].append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 404, (url, r.status_code)
    return {label: statistics.median(t) for label, t in times.items()}


def test_dead_tokens_are_404_in_about_the_same_time(srv: Server) -> None:
    name, other = "timing-" + uid(), "timing-revoked-" + uid()
    make_tree(srv, name, {"t.txt": b"t"})
    make_tree(srv, other, {"t.txt": b"t"})
    expired = expired_link(srv, "/" + name)
    revoked = share_link(srv, ALICE, "/" + other)
    share_rm(srv, link_share_id(srv, "/" + other))
    made_up = secrets.token_urlsafe(len(revoked.token) * 3 // 4)[: len(revoked.token)]
    s = link_session(srv, None)
    for kind in ("s", "public"):
        tokens = {"expired": expired.token, "revoked": revoked.token, "made-up": made_up}
        medians = medians_ms(
            s,
            {
                label: f"{srv.url}/{kind}/{token}" + ("/" if kind == "public" else "")
                for label, token in tokens.items()
            },
        )
        assert max(medians.values()) < 50, medians
        # generous: only an obvious difference (e.g. a DB hit or bcrypt for some) fails
        floor = 1.0
        assert max(medians.values()) < 3 * max(min(medians.values()), floor), (kind, medians)


# --------------------------------------------------------------------------- rclone


def test_rclone_copies_public_link(srv: Server, tree: str, tmp_path: Path) -> None:
    exe = shutil.which("rclone")
    assert exe, "rclone is not installed"
    pw = "rclone link " + uid()
    link = share_link(srv, ALICE, "/" + tree, password=pw)
    obscured = subprocess.run(
        [exe, "obscure", pw], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    conf = tmp_path / "rclone.conf"
    conf.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCLONE_") and "proxy" not in k}
    env.update(
        {
            "RCLONE_CONFIG": str(conf),
            "RCLONE_CONFIG_PUB_TYPE": "webdav",
            "RCLONE_CONFIG_PUB_URL": link.public,
            "RCLONE_CONFIG_PUB_VENDOR": "other",
            "RCLONE_CONFIG_PUB_USER": "whoever",
            "RCLONE_CONFIG_PUB_PASS": obscured,
            "HOME": str(tmp_path),
        }
    )
    dest = tmp_path / "down"
    proc = subprocess.run(
        [exe, "copy", "pub:", str(dest)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == FILES
