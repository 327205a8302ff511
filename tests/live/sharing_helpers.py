"""Helpers for the sharing, public-link and quota live tests (test_sharing*.py,
test_public_links.py, test_quota.py, test_cli_share.py).

Everything goes through the outside of a running server: the ``davdisk`` CLI (``share add``,
``share link``, ``share rm``, ``share list``, ``user quota``) and HTTP. No imports of ``davdisk``.

- ``start_share_server`` starts a server whose data dir already holds every user of
  ``PASSWORDS``. Adding a user costs a CLI run plus bcrypt (~2 s), so the users are made once per
  test session in a template data dir that each server copies.
- ``snapshot`` is the owner's view of a tree (listing, contents, etags, test dead properties and
  lock tokens): every refused request is checked by comparing the snapshot before and after.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.live.conftest import (
    ALICE,
    USERS,
    D,
    Server,
    ServerFactory,
    add_user,
    cli,
    copy_data_dir,
    describe,
    parse_multistatus,
)

OC_NS = "http://owncloud.org/ns"
OC = "{" + OC_NS + "}"
TEST_NS = "urn:davdisk-share-test"
TEST = "{" + TEST_NS + "}"

CAROL = "carol"
RW = "rw"
RO = "ro"
PASSWORDS: dict[str, str] = {
    **USERS,
    CAROL: "carol-password-333",
    RW: "rw-password-4444",
    RO: "ro-password-55555",
}

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,}$")


# --------------------------------------------------------------------------- servers


def _template_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with every user of PASSWORDS, made once per test session."""
    template = tmp_path_factory.getbasetemp() / "share-template-data"
    if not (template / ".complete").exists():
        if template.exists():
            shutil.rmtree(template)
        first, *rest = PASSWORDS.items()
        add_user(template, *first)  # creates the data dir, keys and database
        with ThreadPoolExecutor(max_workers=4) as pool:
            for f in [pool.submit(add_user, template, name, pw) for name, pw in rest]:
                f.result()
        (template / ".complete").write_text("")
    return template


def start_share_server(tmp_path_factory: pytest.TempPathFactory, label: str) -> Iterator[Server]:
    """Generator for a module fixture: a server with alice, bob, carol, rw and ro."""
    template = _template_data_dir(tmp_path_factory)
    base = tmp_path_factory.mktemp(label)
    data_dir = base / "data"
    copy_data_dir(template, data_dir, ignore=shutil.ignore_patterns(".complete"))
    factory = ServerFactory(base)
    srv = factory(data_dir=data_dir)
    yield srv
    factory.finish()


def sess(srv: Server, user: str | None) -> requests.Session:
    """A session for ``user`` (None: anonymous)."""
    if user is None:
        return srv.session(None)
    return srv.session(user, PASSWORDS[user])


def link_session(srv: Server, password: str | None, user: str = "anyone") -> requests.Session:
    """A session for a public link: Basic auth with any user name and the link password."""
    s = srv.session(None)
    if password is not None:
        s.auth = (user, password)
    return s


def uid() -> str:
    return uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------- CLI


def cli_ok(srv_or_dir: Server | Path, *args: str, input: str | None = None) -> str:
    """Run the CLI, assert success and no traceback; return stdout."""
    data_dir = srv_or_dir.data_dir if isinstance(srv_or_dir, Server) else srv_or_dir
    proc = cli(data_dir, *args, input=input)
    assert proc.returncode == 0, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    return proc.stdout


def assert_clean_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Non-zero exit, exactly one non-empty line on stderr, no traceback, nothing on stdout."""
    assert proc.returncode != 0, f"expected failure\n{describe(proc)}"
    assert "Traceback" not in proc.stderr + proc.stdout, describe(proc)
    err = proc.stderr.strip()
    assert err, f"no error message on stderr\n{describe(proc)}"
    assert "\n" not in err, f"error message is not one line\n{describe(proc)}"
    assert proc.stdout.strip() == "", f"a failed command printed on stdout\n{describe(proc)}"
    return err


def cli_many(
    srv_or_dir: Server | Path,
    commands: list[tuple[str, ...]],
    inputs: list[str | None] | None = None,
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent CLI commands at once (each is a ~1 s Python start); results in order."""
    data_dir = srv_or_dir.data_dir if isinstance(srv_or_dir, Server) else srv_or_dir
    inputs = inputs or [None] * len(commands)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(cli, data_dir, *args, input=inp)
            for args, inp in zip(commands, inputs, strict=True)
        ]
        return [f.result() for f in futures]


def cli_errors(srv_or_dir: Server | Path, commands: list[tuple[str, ...]]) -> list[str]:
    """Run commands that must each fail cleanly (concurrently); their error lines."""
    return [assert_clean_error(p) for p in cli_many(srv_or_dir, commands)]


def cli_err(srv_or_dir: Server | Path, *args: str, input: str | None = None) -> str:
    data_dir = srv_or_dir.data_dir if isinstance(srv_or_dir, Server) else srv_or_dir
    return assert_clean_error(cli(data_dir, *args, input=input))


def share_add(
    srv: Server | Path,
    owner: str,
    path: str,
    with_: str,
    *,
    write: bool = False,
    reshare: bool = False,
) -> int:
    args = ["share", "add", owner, path, "--with", with_]
    if write:
        args.append("--write")
    if reshare:
        args.append("--reshare")
    out = cli_ok(srv, *args).strip()
    assert re.fullmatch(r"\d+", out), f"share add printed {out!r}, not a share id alone"
    return int(out)


@dataclass(frozen=True)
class Link:
    url: str  # BASE/s/<token>
    token: str
    base: str  # http://127.0.0.1:PORT

    @property
    def s(self) -> str:
        """The download URL, ``/s/<token>``."""
        return self.url

    @property
    def public(self) -> str:
        """The WebDAV tree, ``/public/<token>/``."""
        return f"{self.base}/public/{self.token}/"


def parse_link(out: str, base: str) -> Link:
    url = out.strip()
    assert "\n" not in url, f"share link printed more than the URL: {out!r}"
    prefix = base + "/s/"
    assert url.startswith(prefix), f"share link printed {url!r}, expected {prefix}<token>"
    token = url[len(prefix) :]
    assert TOKEN_RE.match(token), f"token {token!r} is not >= 22 url-safe characters"
    return Link(url=url, token=token, base=base)


def share_link(
    srv: Server,
    owner: str,
    path: str,
    *,
    expires: str | None = None,
    password: str | None = None,
    upload: bool = False,
) -> Link:
    args = ["share", "link", owner, path, "--base-url", srv.url]
    if expires is not None:
        args += ["--expires", expires]
    if password is not None:
        args.append("--password-stdin")
    if upload:
        args.append("--upload")
    out = cli_ok(srv, *args, input=None if password is None else password + "\n")
    return parse_link(out, srv.url)


def share_rm(srv: Server | Path, share_id: int) -> None:
    cli_ok(srv, "share", "rm", str(share_id))


def share_list(srv: Server | Path, user: str | None = None) -> list[str]:
    """``share list`` lines after the header."""
    args = ["share", "list"] + (["--user", user] if user else [])
    lines = [ln for ln in cli_ok(srv, *args).splitlines() if ln.strip()]
    assert lines, "share list printed no header line"
    return lines[1:]


def share_line(srv_or_lines: Server | Path | list[str], share_id: int) -> str:
    """The ``share list`` line of share ``share_id`` (its first field is the id); pass the lines
    of one ``share list`` run to look up several without running the CLI again."""
    lines = srv_or_lines if isinstance(srv_or_lines, list) else share_list(srv_or_lines)
    found = [ln for ln in lines if re.split(r"[\s|,;]+", ln.strip())[0] == str(share_id)]
    assert len(found) == 1, f"share {share_id} listed {len(found)} times: {lines}"
    return found[0]


def link_share_id(srv: Server | Path, path: str, owner: str = ALICE) -> int:
    """Id of the (single) link share of ``owner`` on ``path`` in ``share list``."""
    ids = []
    for ln in share_list(srv):
        fields = ln.split()
        if owner in fields and path in fields and "link" in fields:
            ids.append(int(re.split(r"[\s|,;]+", ln.strip())[0]))
    assert len(ids) == 1, f"expected one link on {path}: {share_list(srv)}"
    return ids[0]


def set_quota(srv: Server | Path, user: str, size: str) -> None:
    cli_ok(srv, "user", "quota", user, size)


# --------------------------------------------------------------------------- WebDAV


QUOTA_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:quota-used-bytes/><D:quota-available-bytes/></D:prop></D:propfind>"
)
PERMISSIONS_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
    b'xmlns:oc="http://owncloud.org/ns"><D:prop><oc:permissions/><D:resourcetype/>'
    b"</D:prop></D:propfind>"
)
ALLPROP = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
)


def quota(s: requests.Session, url: str) -> tuple[int, int]:
    """(quota-used-bytes, quota-available-bytes) of the folder ``url``."""
    r = s.request(
        "PROPFIND", url, headers={"Depth": "0", "Content-Type": "application/xml"}, data=QUOTA_BODY
    )
    assert r.status_code == 207, f"PROPFIND quota {url}: {r.status_code} {r.text[:300]}"
    (e,) = parse_multistatus(r.content).values()
    used, avail = e.text(D + "quota-used-bytes"), e.text(D + "quota-available-bytes")
    assert used is not None and avail is not None, f"no quota props on {url}: {e.status}"
    return int(used), int(avail)


def used_bytes(s: requests.Session, url: str) -> int:
    return quota(s, url)[0]


def root_names(s: requests.Session, dav: str) -> dict[str, ET.Element | None]:
    """Names in a /dav/ root -> their oc:permissions element (None when not reported)."""
    r = s.request(
        "PROPFIND",
        dav,
        headers={"Depth": "1", "Content-Type": "application/xml"},
        data=PERMISSIONS_BODY,
    )
    assert r.status_code == 207, f"PROPFIND {dav}: {r.status_code} {r.text[:300]}"
    own = urlsplit(dav).path.rstrip("/")
    out = {}
    for href, e in parse_multistatus(r.content).items():
        if href.rstrip("/") != own:
            out[e.name] = e.props.get(OC + "permissions")
    return out


def permissions(s: requests.Session, url: str) -> str:
    r = s.request(
        "PROPFIND",
        url,
        headers={"Depth": "0", "Content-Type": "application/xml"},
        data=PERMISSIONS_BODY,
    )
    assert r.status_code == 207, f"PROPFIND {url}: {r.status_code} {r.text[:300]}"
    (e,) = parse_multistatus(r.content).values()
    return (e.text(OC + "permissions") or "").strip()


@dataclass(frozen=True)
class Item:
    is_dir: bool
    sha256: str | None  # files only
    size: int | None
    etag: str | None
    dead: tuple[tuple[str, str], ...]  # test-namespace dead properties
    locks: tuple[str, ...]  # lock tokens in lockdiscovery


def _locks(e: object) -> tuple[str, ...]:
    """The lock tokens in an entry's lockdiscovery, sorted."""
    ld = e.props.get(D + "lockdiscovery")  # type: ignore[attr-defined]
    if ld is None:
        return ()
    return tuple(
        sorted(
            (h.text or "").strip()
            for t in ld.iter(D + "locktoken")
            for h in t.iter(D + "href")
            if h.text
        )
    )


LOCKDISCOVERY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:lockdiscovery/></D:prop></D:propfind>"
)


def lock_tokens(s: requests.Session, url: str) -> list[str]:
    """The lock tokens ``s`` sees in the lockdiscovery of ``url``."""
    r = s.request(
        "PROPFIND",
        url,
        headers={"Depth": "0", "Content-Type": "application/xml"},
        data=LOCKDISCOVERY,
    )
    assert r.status_code == 207, f"PROPFIND {url}: {r.status_code} {r.text[:300]}"
    (e,) = parse_multistatus(r.content).values()
    return list(_locks(e))


def snapshot(s: requests.Session, url: str) -> dict[str, Item]:
    """Recursive view of the folder ``url`` as ``s`` sees it: {relative path: Item}."""
    base = urlsplit(url).path
    out: dict[str, Item] = {}
    todo = [url]
    while todo:
        folder = todo.pop()
        r = s.request(
            "PROPFIND",
            folder,
            headers={"Depth": "1", "Content-Type": "application/xml"},
            data=ALLPROP,
        )
        assert r.status_code == 207, f"snapshot PROPFIND {folder}: {r.status_code} {r.text[:300]}"
        folder_path = urlsplit(folder).path
        for href, e in parse_multistatus(r.content).items():
            rel = href[len(base) :] if href.startswith(base) else href
            dead = tuple(
                sorted((k, (v.text or "")) for k, v in e.props.items() if k.startswith(TEST))
            )
            if e.is_collection:
                item = Item(True, None, None, None, dead, _locks(e))
                if href.rstrip("/") != folder_path.rstrip("/"):
                    todo.append(folder.rstrip("/") + "/" + e.name + "/")
            else:
                g = s.get(folder.rstrip("/") + "/" + e.name)
                assert g.status_code == 200, f"snapshot GET {href}: {g.status_code}"
                item = Item(
                    False,
                    hashlib.sha256(g.content).hexdigest(),
                    e.size,
                    (e.text(D + "getetag") or "").strip('"'),
                    dead,
                    _locks(e),
                )
            out[rel.rstrip("/") or "."] = item
    return out


def unchanged(before: dict[str, Item], after: dict[str, Item], what: str) -> None:
    """Assert two snapshots are equal, naming the differences."""
    if before == after:
        return
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    details = [f"{k}: {before[k]} -> {after[k]}" for k in changed]
    pytest.fail(
        f"{what} changed the owner's tree: added {added}, removed {removed}, changed {details}"
    )


def lock_body(owner: str = "share-tests") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
        "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
        f"<D:owner><D:href>{owner}</D:href></D:owner></D:lockinfo>"
    ).encode()


def do_lock(s: requests.Session, url: str) -> requests.Response:
    return s.request(
        "LOCK",
        url,
        headers={"Depth": "0", "Timeout": "Second-600", "Content-Type": "application/xml"},
        data=lock_body(),
    )


def token_of(r: requests.Response) -> str:
    tok = (r.headers.get("Lock-Token") or "").strip().strip("<>")
    assert tok, f"LOCK answered {r.status_code} without a Lock-Token"
    return tok


def unlock(s: requests.Session, url: str, token: str) -> requests.Response:
    return s.request("UNLOCK", url, headers={"Lock-Token": f"<{token}>"})


def proppatch_body(name: str, value: str, remove: bool = False) -> bytes:
    op = (
        f"<D:remove><D:prop><T:{name}/></D:prop></D:remove>"
        if remove
        else f"<D:set><D:prop><T:{name}>{value}</T:{name}></D:prop></D:set>"
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:T="{TEST_NS}">{op}</D:propertyupdate>'
    ).encode()


def proppatch(s: requests.Session, url: str, name: str, value: str, remove: bool = False):
    return s.request(
        "PROPPATCH",
        url,
        data=proppatch_body(name, value, remove),
        headers={"Content-Type": "application/xml"},
    )


def proppatch_statuses(r: requests.Response) -> set[int]:
    """Statuses of the properties in a 207 PROPPATCH answer."""
    assert r.status_code == 207, r.status_code
    out: set[int] = set()
    for e in parse_multistatus(r.content).values():
        out |= set(e.status.values())
    return out


def mkdirs(s: requests.Session, url: str) -> None:
    r = s.request("MKCOL", url)
    assert r.status_code == 201, f"MKCOL {url}: {r.status_code} {r.text[:300]}"


def put_ok(s: requests.Session, url: str, data: bytes) -> None:
    r = s.put(url, data=data)
    assert r.status_code in (200, 201, 204), f"PUT {url}: {r.status_code} {r.text[:300]}"


def get_ok(s: requests.Session, url: str) -> bytes:
    r = s.get(url)
    assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:300]}"
    return r.content


def status_of(s: requests.Session, method: str, url: str, **kw: object) -> int:
    return s.request(method, url, **kw).status_code  # type: ignore[arg-type]
