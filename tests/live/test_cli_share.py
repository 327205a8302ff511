"""The sharing and quota command line, run while a server serves the same data dir:
``share add|link|list|rm`` and ``user quota`` in every documented form, and every documented
error as one clean line on stderr with a non-zero exit (and nothing changed)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.live.conftest import ALICE, BOB, Server, cli, describe, q
from tests.live.sharing_helpers import (
    CAROL,
    RO,
    RW,
    cli_err,
    cli_errors,
    cli_many,
    cli_ok,
    get_ok,
    link_session,
    mkdirs,
    parse_link,
    put_ok,
    quota,
    root_names,
    sess,
    share_add,
    share_line,
    share_list,
    start_share_server,
    status_of,
    uid,
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_share_server(tmp_path_factory, "cli-share")


def folder(srv: Server, owner: str = ALICE, prefix: str = "Projects") -> str:
    name = f"{prefix}-{uid()}"
    s = sess(srv, owner)
    mkdirs(s, srv.dav + q(name) + "/")
    put_ok(s, srv.dav + q(name) + "/f.txt", b"f")
    return name


def fields(line: str) -> list[str]:
    return [f for f in re.split(r"[\s|,;]+", line.strip()) if f]


def ids(lines: list[str]) -> set[int]:
    return {int(fields(ln)[0]) for ln in lines}


# --------------------------------------------------------------------------- share add / list


def test_share_add_and_list(srv: Server) -> None:
    name = folder(srv)
    note = f"note-{uid()}.txt"
    put_ok(sess(srv, ALICE), srv.dav + note, b"n")
    add = ("share", "add", ALICE, "/" + name, "--with")
    procs = cli_many(
        srv,
        [
            (*add, BOB),
            (*add, CAROL, "--write"),
            (*add, RW, "--write", "--reshare"),
            ("share", "add", ALICE, "/" + note, "--with", RO),
        ],
    )
    for proc in procs:
        assert proc.returncode == 0, describe(proc)
        assert re.fullmatch(r"\d+", proc.stdout.strip()), f"not a share id alone: {proc.stdout!r}"
    read, write, full, file_share = (int(p.stdout) for p in procs)
    assert len({read, write, full, file_share}) == 4

    out = cli_ok(srv, "share", "list")
    header = out.splitlines()[0]
    assert not re.match(r"\s*\d", header), f"no header line: {out}"
    listed = [ln for ln in out.splitlines()[1:] if ln.strip()]
    for share_id, grantee, perms, not_perms in (
        (read, BOB, {"read"}, {"write", "reshare"}),
        (write, CAROL, {"read", "write"}, {"reshare"}),
        (full, RW, {"read", "write", "reshare"}, set()),
        (file_share, RO, {"read"}, {"write"}),
    ):
        line = share_line(listed, share_id)
        f = fields(line)
        assert ALICE in f and grantee in f, line
        assert ("/" + name) in line or ("/" + note) in line, line
        for p in perms:
            assert p in f, (p, line)
        for p in not_perms:
            assert p not in f, (p, line)
    assert "/" + note in share_line(listed, file_share)

    # --user: the shares NAME owns or receives
    alices, carols, bobs = (
        ids([ln for ln in p.stdout.splitlines()[1:] if ln.strip()])
        for p in cli_many(srv, [("share", "list", "--user", u) for u in (ALICE, CAROL, BOB)])
    )
    assert {read, write, full, file_share} <= alices, alices
    assert write in carols and not carols & {read, full, file_share}, carols
    assert read in bobs and not bobs & {write, full, file_share}, bobs


def test_share_add_errors(srv: Server) -> None:
    name = folder(srv)
    before = share_list(srv)
    errors = [
        ("share", "add", "nosuchowner", "/" + name, "--with", BOB),  # unknown owner
        ("share", "add", ALICE, "/" + name, "--with", "nosuchuser"),  # unknown grantee
        ("share", "add", ALICE, "/missing-" + uid(), "--with", BOB),  # unknown path
        ("share", "add", ALICE, f"/{name}/nope.txt", "--with", BOB),  # unknown path below
        ("share", "add", ALICE, "/" + name, "--with", ALICE),  # with oneself
        ("share", "add", ALICE, "/", "--with", BOB),  # the home root
        ("share", "add", BOB, "/" + name, "--with", CAROL),  # not bob's (he has no such path)
    ]
    cli_errors(srv, errors)
    assert share_list(srv) == before


def test_share_add_again_updates_and_revives(srv: Server) -> None:
    """``share add`` for an item and grantee that already have a share changes that share (its
    rights) and brings it back if the grantee hid it: never a second mount."""
    name = folder(srv)
    b = sess(srv, BOB)
    new_file = srv.dav + q(name) + "/from-bob.txt"

    def bobs_mounts() -> list[str]:
        return sorted(n for n in root_names(b, srv.dav) if n.startswith(name))

    def rows() -> list[str]:
        return [ln for ln in share_list(srv, BOB) if ("/" + name) in fields(ln)]

    first = share_add(srv, ALICE, "/" + name, BOB)
    assert share_add(srv, ALICE, "/" + name, BOB) == first
    assert bobs_mounts() == [name], "a second share add made a second mount"
    assert len(rows()) == 1, rows()
    assert status_of(b, "PUT", new_file, data=b"no") == 403

    # again with --write: the same share, now writable (and back to read-only without it)
    assert share_add(srv, ALICE, "/" + name, BOB, write=True) == first
    assert "write" in fields(share_line(srv, first))
    put_ok(b, new_file, b"bob was here")
    assert share_add(srv, ALICE, "/" + name, BOB) == first
    assert "write" not in fields(share_line(srv, first))
    assert status_of(b, "PUT", new_file, data=b"no") == 403

    # bob removes the mount (hides the share); sharing again brings that share back
    assert b.delete(srv.dav + q(name) + "/").status_code == 204
    assert bobs_mounts() == []
    assert "hidden" in share_line(srv, first)
    assert share_add(srv, ALICE, "/" + name, BOB) == first
    assert bobs_mounts() == [name]
    assert "hidden" not in share_line(srv, first)
    assert len(rows()) == 1, rows()
    assert get_ok(b, new_file) == b"bob was here"


# --------------------------------------------------------------------------- share link


def test_share_link_forms(srv: Server) -> None:
    name = folder(srv)
    day = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    base = ("--base-url", srv.url)
    link = ("share", "link", ALICE, "/" + name, *base)
    procs = cli_many(
        srv,
        [
            link,
            (*link, "--expires", "7d"),
            (*link, "--expires", "12h"),
            (*link, "--expires", day),
            (*link, "--password-stdin"),
            (*link, "--upload"),
            ("share", "link", ALICE, f"/{name}/f.txt", *base),
        ],
        [None, None, None, None, "link-pw-" + uid() + "\n", None, None],
    )
    for proc in procs:
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, describe(proc)
    plain, week, half, dated, pw, upload, file_link = (parse_link(p.stdout, srv.url) for p in procs)
    links = [plain, week, half, dated, pw, upload, file_link]
    assert len({lk.token for lk in links}) == len(links)
    anon = link_session(srv, None)
    for lk in (plain, week, half, dated, upload):
        assert anon.get(lk.s + "/f.txt").status_code == 200, lk
    assert anon.get(file_link.s).content == b"f"
    assert anon.get(pw.s).status_code == 401

    lines = [ln for ln in share_list(srv, ALICE) if "link" in fields(ln) and ("/" + name) in ln]
    assert len(lines) == 7, lines
    with_expiry = [ln for ln in lines if re.search(r"\d{4}-\d{2}-\d{2}", ln)]
    assert len(with_expiry) == 3, lines
    # a date means that day (its end, 00:00 of the next day, is fine)
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    assert any(day in ln or next_day in ln for ln in with_expiry), (day, with_expiry)
    uploads = [ln for ln in lines if "upload" in fields(ln)]
    assert len(uploads) == 1, lines
    for ln in lines:
        assert "read" in fields(ln) and "write" not in fields(ln), ln


def test_share_link_errors(srv: Server) -> None:
    name = folder(srv)
    before = share_list(srv)
    base = ["--base-url", srv.url]
    errors: list[tuple[str, ...]] = [
        ("share", "link", ALICE, "/" + name, f"--expires={expires}", *base)
        for expires in ("2020-01-01", "7x", "soon", "0d", "-1d", "2026-13-45", "7 d")
    ]
    errors += [
        ("share", "link", ALICE, "/missing-" + uid(), *base),
        ("share", "link", "nosuchowner", "/" + name, *base),
        ("share", "link", ALICE, "/" + name, "--password-stdin", *base),  # empty stdin
        ("share", "link", ALICE, "/" + name, "--base-url", "dav.example.com"),  # not a URL
        ("share", "link", ALICE, "/" + name, "--base-url", "https://dav.example.com/?x"),
    ]
    cli_errors(srv, errors)
    assert share_list(srv) == before


def test_share_link_default_base_url(srv: Server) -> None:
    """Without --base-url the URL is built from the configured host and port."""
    name = folder(srv)
    out = cli_ok(srv, "share", "link", ALICE, "/" + name).strip()
    m = re.fullmatch(r"(https?://[^/\s]+)/s/[A-Za-z0-9_-]{22,}", out)
    assert m, out
    parse_link(out, m.group(1))


def test_share_link_public_url(srv: Server, tmp_path: Path) -> None:
    """``[server] public_url`` is where printed links point; without it the link is built from
    the configured host and port, and the command says so."""
    name = folder(srv)
    config = tmp_path / "public.toml"
    config.write_text(f'[server]\npublic_url = "{srv.url}/"\n')
    proc = cli(srv.data_dir, "--config", str(config), "share", "link", ALICE, "/" + name)
    assert proc.returncode == 0 and proc.stderr == "", describe(proc)
    link = parse_link(proc.stdout, srv.url)
    assert link_session(srv, None).get(link.s + "/f.txt").content == b"f"
    # --base-url still wins
    proc = cli(
        srv.data_dir, "--config", str(config), "share", "link", ALICE, "/" + name,
        "--base-url", "https://dav.example.com",
    )  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    parse_link(proc.stdout, "https://dav.example.com")

    # no public_url: host and port from the config (the server's real port here), and a note
    config.write_text(f"[server]\nport = {srv.port}\n")
    proc = cli(srv.data_dir, "--config", str(config), "share", "link", ALICE, "/" + name)
    assert proc.returncode == 0, describe(proc)
    link = parse_link(proc.stdout, f"http://127.0.0.1:{srv.port}")
    assert link_session(srv, None).get(link.s + "/f.txt").content == b"f"
    assert "public_url" in proc.stderr and f"127.0.0.1:{srv.port}" in proc.stderr, describe(proc)
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- share rm


def test_share_rm(srv: Server) -> None:
    name = folder(srv)
    share_id = share_add(srv, ALICE, "/" + name, BOB)
    b = sess(srv, BOB)
    assert b.get(srv.dav + q(name) + "/f.txt").status_code == 200
    out = cli_ok(srv, "share", "rm", str(share_id))
    assert "Traceback" not in out
    assert share_id not in ids(share_list(srv))
    assert b.get(srv.dav + q(name) + "/f.txt").status_code == 404
    cli_err(srv, "share", "rm", str(share_id))  # already gone
    cli_err(srv, "share", "rm", "987654321")  # never existed


# --------------------------------------------------------------------------- user quota


def user_row(out: str, name: str) -> str:
    rows = [ln for ln in out.splitlines() if ln.split() and ln.split()[0] == name]
    assert len(rows) == 1, out
    return rows[0]


def test_user_quota_sizes_and_list(srv: Server) -> None:
    sizes = {
        ALICE: ("10G", 10 * 1024**3),
        BOB: ("500M", 500 * 1024**2),
        CAROL: ("64K", 64 * 1024),
        RW: ("1234", 1234),
        RO: ("0", 0),
    }
    try:
        for proc in cli_many(srv, [("user", "quota", u, t) for u, (t, _) in sizes.items()]):
            assert proc.returncode == 0, describe(proc)
        out = cli_ok(srv, "user", "list")
        header = out.splitlines()[0]
        assert "QUOTA" in header.upper().split(), header
        for user, (_, n) in sizes.items():
            row = user_row(out, user)
            if n == 0:
                assert row.split()[-1] in ("-", "unlimited"), row
            else:
                assert "unlimited" not in row and row.split()[-1] != "-", row
                used, available = quota(sess(srv, user), srv.dav)
                assert used + available == n, (user, used, available, n)
    finally:
        for proc in cli_many(srv, [("user", "quota", u, "0") for u in sizes]):
            assert proc.returncode == 0, describe(proc)


def test_user_quota_errors(srv: Server) -> None:
    out_before = cli_ok(srv, "user", "list")
    bad_sizes = ("10X", "abc", "-5", "G", "5GG", "1e3", "")
    commands = [("user", "quota", CAROL, bad) for bad in bad_sizes]
    commands.append(("user", "quota", "nosuchuser", "10G"))
    cli_errors(srv, commands)
    assert cli_ok(srv, "user", "list") == out_before
