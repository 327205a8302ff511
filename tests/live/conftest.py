"""Live-test harness: real ``davdisk serve`` subprocesses on port 0 with temp data dirs.

Everything here talks to the server from the outside (CLI, HTTP, /proc): no imports of
``davdisk``. Fixtures:

- ``server_factory`` - start servers (function scope); each is stopped (SIGTERM, exit 0
  asserted) when the test ends.
- ``module_server`` - one server shared by a test module, for tests that work in their own
  sub-folder (see ``workdir``).
- ``workdir`` - a fresh, uniquely named collection in alice's home on ``module_server``.

Helpers (import them from ``tests.live.conftest``): ``cli``, ``add_user``, ``propfind``,
``members``, ``lock``, ``put``, ``get_bytes``, ``raw_request`` (unnormalised paths),
``RawConnection`` (broken requests), ``blob_files``/``temp_files``, ``wait_until``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import http.client
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
import requests
import sqlalchemy

from tests.pg import URL_ENV, drop_database, fresh_database
from tests.s3 import SeaweedServer

REPO_ROOT = Path(__file__).resolve().parents[2]

ALICE = "alice"
BOB = "bob"
USERS: dict[str, str] = {ALICE: "alice-password-1", BOB: "bob-password-22"}

START_TIMEOUT = 30.0
STOP_TIMEOUT = 45.0  # above the default shutdown_grace (30 s): a request left half sent
CLI_TIMEOUT = 120.0

DAV_NS = "DAV:"
D = "{DAV:}"
SERVING_RE = re.compile(r"serving (https?://[^\s/]+)/dav/")


# --------------------------------------------------------------------------- polling


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- CLI


# Every CLI call and server of the harness reads this config, unless a test passes a ``--config``
# of its own, which comes later on the command line and replaces it. Many tests send wrong
# credentials dozens of times from 127.0.0.1 and expect 401 each time, which login throttling
# would answer with 429 after five;
# and bcrypt at cost 4 instead of 12 saves about a quarter of the suite's CPU (every user added,
# every server's dummy hash, every first login). Throttling and login timing are tested with
# configs of their own (test_throttle.py). (Tests append their own sections to it: it holds
# [auth] only.)
HARNESS_CONFIG = (
    "[auth]\nthrottle_free_failures = 1000000\nthrottle_address_free_failures = 1000000\n"
    "bcrypt_cost = 4\n"
)
_HARNESS_DIR = Path(tempfile.mkdtemp(prefix="davdisk-harness-"))
HARNESS_CONFIG_FILE = _HARNESS_DIR / "harness.toml"
HARNESS_CONFIG_FILE.write_text(HARNESS_CONFIG)
atexit.register(shutil.rmtree, _HARNESS_DIR, True)


def _env() -> dict[str, str]:
    env = os.environ.copy()
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + old if old else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _harness_config(data_dir: Path | None) -> Path:
    """The harness config for a data dir: the shared one, or in a run against PostgreSQL
    (``python -m tests.pg -- pytest ...``) one beside the data dir (as its key is) that also
    names the data dir's own fresh database, made on first use."""
    if data_dir is None:
        return HARNESS_CONFIG_FILE
    path = _harness_config_path(data_dir)
    if path.exists():
        return path
    if not os.environ.get(URL_ENV):
        return HARNESS_CONFIG_FILE
    _write_harness_config(path, fresh_database(os.environ[URL_ENV]))
    return path


def _write_harness_config(path: Path, database_url: str, more: str = "") -> None:
    path.write_text(f'{HARNESS_CONFIG}\n[storage]\ndatabase_url = "{database_url}"\n{more}')


def use_s3(data_dir: Path, s3: SeaweedServer, *, delete_delay: int = 3600, **blobs: str) -> str:
    """Keep the data dir's blobs in a new bucket of ``s3`` (its database stays where the run
    puts it: SQLite in the data dir, or a fresh PostgreSQL database); returns the bucket. Call
    it before the data dir's first use (or, with ``backend="local"``, to name a bucket for
    ``davdisk storage migrate`` while the blobs stay in the folder)."""
    bucket = s3.create_bucket()
    set_blobs(data_dir, s3, bucket, delete_delay=delete_delay, **blobs)
    return bucket


def set_blobs(
    data_dir: Path, s3: SeaweedServer, bucket: str, *, delete_delay: int = 3600, **blobs: str
) -> None:
    """Rewrite the data dir's harness config with ``[blobs]`` naming ``bucket`` of ``s3``
    (``backend`` "s3" unless given), its database kept."""
    path = _harness_config_path(data_dir)
    if path.exists():
        url = database_url(data_dir)
    elif os.environ.get(URL_ENV):
        url = fresh_database(os.environ[URL_ENV])
    else:
        url = f"sqlite:///{data_dir / 'davdisk.db'}"
    settings = {
        "backend": "s3",
        "endpoint_url": s3.endpoint,
        "bucket": bucket,
        "access_key_id": s3.access_key,
        "secret_access_key": s3.secret_key,
        **blobs,
    }
    section = "".join(f'{k} = "{v}"\n' for k, v in settings.items())
    _write_harness_config(path, url, f"\n[blobs]\n{section}delete_delay = {delete_delay}\n")


def _harness_config_path(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".harness.toml")


def harness_config(data_dir: Path) -> Path:
    """The config file every CLI call and server of the harness reads for ``data_dir``; a test
    that opens the data dir in-process loads it too (``config.load(harness_config(d), d)``), so
    it sees the same database as the server."""
    return _harness_config(data_dir)


def keep_on_sqlite(data_dir: Path) -> Path:
    """For a test about the SQLite file itself (damaging it, its bytes at rest, its path in an
    error, scripts/serve's embedded defaults): in a run against PostgreSQL this data dir keeps
    its database in its own ``davdisk.db`` all the same, so the test runs and passes there
    too. Call it before the data dir's first use."""
    if os.environ.get(URL_ENV):
        _write_harness_config(
            _harness_config_path(data_dir), f"sqlite:///{data_dir / 'davdisk.db'}"
        )
    return data_dir


def database_url(data_dir: Path) -> str:
    """The SQLAlchemy URL of the data dir's database (its ``davdisk.db``, or in a run against
    PostgreSQL the database the harness made for it)."""
    own = _harness_config_path(data_dir)
    if not own.exists() and not os.environ.get(URL_ENV):
        return f"sqlite:///{data_dir / 'davdisk.db'}"
    return _harness_config(data_dir).read_text().split('database_url = "')[1].split('"')[0]


def sql(data_dir: Path, statement: str, **params: object) -> list[tuple[object, ...]]:
    """Run one SQL statement (``:name`` parameters) on the data dir's database, whichever
    backend it is on, in a transaction of its own; its rows (none for an UPDATE). For tests
    that look at or damage rows behind the server's back."""
    engine = sqlalchemy.create_engine(database_url(data_dir), poolclass=sqlalchemy.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sqlalchemy.text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def dump(data_dir: Path) -> dict[str, tuple[list[str], list[tuple[object, ...]]]]:
    """Every table of the data dir's database: its column names and rows."""
    engine = sqlalchemy.create_engine(database_url(data_dir), poolclass=sqlalchemy.NullPool)
    try:
        found = {}
        with engine.connect() as conn:
            for table in sqlalchemy.inspect(conn).get_table_names():
                result = conn.execute(sqlalchemy.text(f'SELECT * FROM "{table}"'))
                found[table] = (list(result.keys()), [tuple(row) for row in result])
        return found
    finally:
        engine.dispose()


def stored_bytes(data_dir: Path) -> bytes:
    """What an attacker with a copy of the database sees: every text and binary value of every
    table, and on SQLite the raw bytes of its files too (free pages, the write-ahead log)."""
    values = [
        value.encode() if isinstance(value, str) else value
        for _columns, rows in dump(data_dir).values()
        for row in rows
        for value in row
        if isinstance(value, str | bytes)
    ]
    if database_url(data_dir).startswith("sqlite:"):
        values += [f.read_bytes() for f in data_dir.glob("davdisk.db*")]
    return b"\n".join(values)


# Marks the lines the harness adds to a test's own config file (see _add_database_url).
_ADDED = "  # added by the test harness"


def _add_database_url(config: Path, url: str) -> None:
    """A test's own ``--config`` replaces the harness config, and with it the data dir's
    PostgreSQL database: give the file that database too (unless it names one itself),
    in place, so messages that name the file still do. Lines added for another data dir
    before are replaced."""
    if not config.is_file():
        return
    lines = [line for line in config.read_text().splitlines() if not line.endswith(_ADDED)]
    if not any(re.match(r"\s*database_url\s*=", line) for line in lines):
        entry = f'database_url = "{url}"{_ADDED}'
        header = [i for i, line in enumerate(lines) if line.strip() == "[storage]"]
        if header:
            lines.insert(header[0] + 1, entry)
        else:
            lines += [f"[storage]{_ADDED}", entry]
    config.write_text("\n".join(lines) + "\n")


def davdisk_argv(data_dir: Path | None, *args: str) -> list[str]:
    argv = [sys.executable, "-m", "davdisk", "--config", str(_harness_config(data_dir))]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
        if os.environ.get(URL_ENV):
            for flag, value in itertools.pairwise(args):
                if flag == "--config":
                    _add_database_url(Path(value), database_url(data_dir))
    return argv + list(args)


def cli(
    data_dir: Path | None, *args: str, input: str | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m davdisk [--data-dir DIR] ARGS`` and return the finished process."""
    return subprocess.run(
        davdisk_argv(data_dir, *args),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO_ROOT,
        timeout=timeout,
    )


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (
        f"argv={proc.args!r}\nexit={proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


def master_key_path(data_dir: Path) -> Path:
    """Where davdisk keeps a data dir's master key by default: beside it, never inside it."""
    return data_dir.with_name(data_dir.name + ".key")


def copy_data_dir(
    src: Path,
    dst: Path,
    ignore: Callable[[str, list[str]], Iterable[str]] | None = None,
    *,
    key: bool = True,
) -> None:
    """Copy a data dir and, apart from it, its master key (a copy of the data dir alone opens
    nothing: issue 12, item 11) unless not ``key``, and its database if that is elsewhere."""
    shutil.copytree(src, dst, ignore=ignore)
    if key:
        shutil.copy2(master_key_path(src), master_key_path(dst))
    source = database_url(src)
    if source.startswith("sqlite"):
        keep_on_sqlite(dst)  # copied with the data dir
    else:  # the database is not in the data dir: copy it too
        _write_harness_config(
            _harness_config_path(dst), fresh_database(os.environ[URL_ENV], copy_of=source)
        )


def add_user(data_dir: Path, name: str, password: str) -> None:
    proc = cli(data_dir, "user", "add", name, "--password-stdin", input=password + "\n")
    assert proc.returncode == 0, f"user add {name} failed\n{describe(proc)}"


# --------------------------------------------------------------------------- server


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    url: str  # http://127.0.0.1:PORT
    _log_file: object = field(repr=False, default=None)
    _killed: bool = field(default=False, repr=False)
    _sessions: list[requests.Session] = field(default_factory=list, repr=False)

    @property
    def dav(self) -> str:
        return self.url + "/dav/"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "<no log file>"

    def peak_rss_kib(self) -> int:
        """VmHWM of the server process, in KiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        m = re.search(r"^VmHWM:\s+(\d+)\s+kB", status, re.M)
        assert m, status
        return int(m.group(1))

    def open_fds(self) -> list[str]:
        """Targets of the server's open file descriptors (readlink of /proc/PID/fd/*)."""
        out = []
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for entry in fd_dir.iterdir():
            try:
                out.append(os.readlink(entry))
            except OSError:
                continue
        return out

    def running(self) -> bool:
        return self.proc.poll() is None

    def session(self, user: str | None = ALICE, password: str | None = None) -> requests.Session:
        s = requests.Session()
        if user is not None:
            s.auth = (user, password if password is not None else USERS[user])
        self._sessions.append(s)
        return s

    def auth_header(self, user: str = ALICE, password: str | None = None) -> str:
        pw = password if password is not None else USERS[user]
        return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()

    def stop(self) -> None:
        """SIGTERM, wait, and assert a clean exit (status 0). No-op after ``kill()``."""
        for s in self._sessions:
            s.close()
        if self._killed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._close_log()
                pytest.fail(
                    f"server pid {self.pid} ignored SIGTERM for {STOP_TIMEOUT:.0f}s"
                    f"\n--- log ---\n{self.log()}"
                )
        self._close_log()
        assert self.proc.returncode == 0, (
            f"server exited with {self.proc.returncode} after SIGTERM\n--- log ---\n{self.log()}"
        )

    def kill(self) -> None:
        """SIGKILL (a crash); the fixture's final stop() then checks nothing."""
        self._killed = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None


_counter = itertools.count()


def start_server(
    data_dir: Path,
    log_dir: Path,
    extra_args: tuple[str, ...] = (),
    config: Path | None = None,
) -> Server:
    """Start ``davdisk [--config FILE] serve`` on a free port and wait until it serves."""
    n = next(_counter)
    log_path = log_dir / f"server-{n}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by Server.stop/kill
    global_args = ("--config", str(config)) if config is not None else ()
    proc = subprocess.Popen(
        davdisk_argv(
            data_dir, *global_args, "serve", "--host", "127.0.0.1", "--port", "0", *extra_args
        ),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + START_TIMEOUT
    url = None
    while True:
        m = SERVING_RE.search(log_path.read_text(errors="replace"))
        if m:
            url = m.group(1)
            break
        if proc.poll() is not None:
            log_file.close()
            pytest.fail(
                f"davdisk serve exited with {proc.returncode} before serving\n"
                f"--- log ---\n{log_path.read_text(errors='replace')}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log_file.close()
            log = log_path.read_text(errors="replace")
            pytest.fail(
                f"davdisk serve printed no 'serving http://...' line within "
                f"{START_TIMEOUT:.0f}s\n--- log ---\n{log}"
            )
        time.sleep(0.05)
    return Server(proc=proc, data_dir=data_dir, log_path=log_path, url=url, _log_file=log_file)


class ServerFactory:
    """Creates data dirs + users via the CLI and starts servers; stops them all at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[Server] = []
        self._n = itertools.count()

    def new_data_dir(self, users: dict[str, str] | None = None, *, sqlite: bool = False) -> Path:
        """A data dir with ``users`` (default alice+bob); ``sqlite``: see keep_on_sqlite."""
        data_dir = self.base / f"data{next(self._n)}"
        if sqlite:
            keep_on_sqlite(data_dir)
        for name, pw in (USERS if users is None else users).items():
            add_user(data_dir, name, pw)
        return data_dir

    def __call__(
        self,
        data_dir: Path | None = None,
        users: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        config: Path | None = None,
        *,
        sqlite: bool = False,
    ) -> Server:
        """Start a server. Without ``data_dir``: a new one with ``users`` (default alice+bob),
        kept on SQLite if ``sqlite`` (see keep_on_sqlite).
        With ``data_dir``: only the given ``users`` (default none) are added first.
        ``config``: a TOML file passed as ``--config`` (users are added without it)."""
        if data_dir is None:
            data_dir = self.new_data_dir(users, sqlite=sqlite)
        else:
            for name, pw in (users or {}).items():
                add_user(data_dir, name, pw)
        srv = start_server(data_dir, self.base, extra_args, config)
        self.servers.append(srv)
        return srv

    def finish(self) -> None:
        errors = []
        for srv in self.servers:
            try:
                srv.stop()
            except BaseException as exc:
                errors.append(str(exc))
        if errors:
            pytest.fail("\n\n".join(errors))


@pytest.fixture(autouse=True)
def _drop_test_databases(tmp_path: Path) -> Iterator[None]:
    """In a run against PostgreSQL, drop the databases of the test's own data dirs when it is
    over (its servers are stopped by then: this fixture is set up first, so torn down last).
    Each is about 7 MB; a run makes a thousand. A module's shared server keeps its own."""
    yield
    if os.environ.get(URL_ENV):
        for config in tmp_path.rglob("*.harness.toml"):
            drop_database(database_url(config.parent / config.name.removesuffix(".harness.toml")))


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    factory = ServerFactory(tmp_path)
    yield factory
    factory.finish()


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    """A fresh server with alice and bob."""
    return server_factory()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    factory = ServerFactory(tmp_path_factory.mktemp("live"))
    srv = factory()
    yield srv
    factory.finish()


@pytest.fixture
def workdir(module_server: Server, request: pytest.FixtureRequest) -> str:
    """URL of a fresh collection in alice's home on the module server (ends with '/')."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40] + "-" + uuid.uuid4().hex[:6]
    url = module_server.dav + name + "/"
    r = module_server.session(ALICE).request("MKCOL", url)
    assert r.status_code == 201, (r.status_code, r.text)
    return url


# --------------------------------------------------------------------------- DAV helpers


@dataclass
class Node:
    href: str  # unquoted path, e.g. /dav/a b/
    status: dict[str, int]  # prop clark name -> propstat status code
    props: dict[str, ET.Element]

    def text(self, name: str) -> str | None:
        el = self.props.get(name)
        return None if el is None else (el.text or "")

    @property
    def is_collection(self) -> bool:
        rt = self.props.get(D + "resourcetype")
        return rt is not None and rt.find(D + "collection") is not None

    @property
    def size(self) -> int | None:
        t = self.text(D + "getcontentlength")
        return None if t is None or t == "" else int(t)

    @property
    def name(self) -> str:
        return self.href.rstrip("/").rsplit("/", 1)[-1]


def parse_multistatus(body: bytes) -> dict[str, Node]:
    root = ET.fromstring(body)
    assert root.tag == D + "multistatus", body[:500]
    out: dict[str, Node] = {}
    for resp in root.findall(D + "response"):
        href_el = resp.find(D + "href")
        assert href_el is not None and href_el.text, ET.tostring(resp)
        href = unquote(urlsplit(href_el.text.strip()).path)
        status: dict[str, int] = {}
        props: dict[str, ET.Element] = {}
        for ps in resp.findall(D + "propstat"):
            st_el = ps.find(D + "status")
            code = int(st_el.text.split()[1]) if st_el is not None and st_el.text else 0
            prop = ps.find(D + "prop")
            for p in list(prop) if prop is not None else []:
                status[p.tag] = code
                if code == 200:
                    props[p.tag] = p
        out[href] = Node(href=href, status=status, props=props)
    return out


PROPFIND_ALLPROP = (
    b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
)


def propfind(
    session: requests.Session, url: str, depth: str = "1", body: bytes | None = PROPFIND_ALLPROP
) -> dict[str, Node]:
    """PROPFIND and parse; asserts 207."""
    r = session.request(
        "PROPFIND",
        url,
        headers={"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
        data=body,
    )
    assert r.status_code == 207, f"PROPFIND {url} Depth {depth}: {r.status_code} {r.text[:500]}"
    return parse_multistatus(r.content)


def url_path(url: str) -> str:
    return unquote(urlsplit(url).path)


def members(session: requests.Session, url: str) -> dict[str, Node]:
    """Depth-1 PROPFIND children of ``url`` keyed by name (the collection itself excluded)."""
    entries = propfind(session, url, "1")
    self_path = url_path(url).rstrip("/")
    return {e.name: e for href, e in entries.items() if href.rstrip("/") != self_path}


LOCK_BODY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:{scope}/></D:lockscope>'
    "<D:locktype><D:write/></D:locktype>"
    "<D:owner><D:href>{owner}</D:href></D:owner></D:lockinfo>"
)


def lock(
    session: requests.Session,
    url: str,
    depth: str = "0",
    scope: str = "exclusive",
    owner: str = "davdisk-live-tests",
    timeout: str = "Second-600",
    expect: tuple[int, ...] = (200, 201),
) -> tuple[requests.Response, str | None]:
    """LOCK ``url``; returns (response, token without angle brackets or None)."""
    r = session.request(
        "LOCK",
        url,
        headers={"Depth": depth, "Timeout": timeout, "Content-Type": "application/xml"},
        data=LOCK_BODY.format(scope=scope, owner=owner).encode(),
    )
    assert r.status_code in expect, f"LOCK {url}: {r.status_code} {r.text[:500]}"
    token = r.headers.get("Lock-Token")
    if token:
        token = token.strip().strip("<>")
    return r, token


def put(
    session: requests.Session,
    url: str,
    data: bytes | object,
    expect: tuple[int, ...] = (200, 201, 204),
    **kw: object,
) -> requests.Response:
    r = session.put(url, data=data, **kw)
    assert r.status_code in expect, f"PUT {url}: {r.status_code} {r.text[:500]}"
    return r


def get_bytes(session: requests.Session, url: str) -> bytes:
    r = session.get(url)
    assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:300]}"
    return r.content


# --------------------------------------------------------------------------- raw HTTP


def raw_request(
    srv: Server,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    user: str | None = ALICE,
) -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` byte-for-byte (no client-side normalisation of '..' or escapes)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": srv.netloc}
        if user is not None:
            hdrs["Authorization"] = srv.auth_header(user)
        hdrs.update(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        elif method in ("PUT", "PROPFIND", "PROPPATCH", "LOCK", "MKCOL"):
            hdrs.setdefault("Content-Length", "0")
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def read_status(sock: socket.socket) -> int | None:
    """The status of a response on ``sock``, or None if the connection ends without one."""
    buf = b""
    try:
        while b"\r\n" not in buf:
            data = sock.recv(4096)
            if not data:
                return None
            buf += data
    except (ConnectionResetError, TimeoutError):
        return None
    return int(buf.split(b" ", 2)[1])


class RawConnection:
    """A plain socket for sending deliberately broken requests."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.sock = socket.create_connection((srv.host, srv.port), timeout=30)

    def send_head(self, method: str, path: str, headers: dict[str, str]) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.srv.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_status(self, timeout: float = 60) -> int | None:
        """The status of the answer (None if the connection ends without one)."""
        self.sock.settimeout(timeout)
        return read_status(self.sock)

    def abort(self) -> None:
        """Close the connection without finishing the request."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# --------------------------------------------------------------------------- data dir


def blob_files(data_dir: Path) -> list[Path]:
    """Stored blob files (everything under blobs/ except blobs/tmp/)."""
    root = data_dir / "blobs"
    if not root.exists():
        return []
    tmp = root / "tmp"
    return sorted(p for p in root.rglob("*") if p.is_file() and tmp not in p.parents)


def temp_files(data_dir: Path) -> list[Path]:
    tmp = data_dir / "blobs" / "tmp"
    return sorted(p for p in tmp.rglob("*") if p.is_file()) if tmp.exists() else []


def all_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file())


def q(name: str) -> str:
    """Percent-encode one path segment."""
    return quote(name, safe="")


def make_random_file(path: Path, size: int, block: int = 1 << 20) -> str:
    """Write ``size`` pseudo-random bytes (distinct per MiB) to ``path``; return sha256 hex."""
    import hashlib

    base = os.urandom(block)
    h = hashlib.sha256()
    written = 0
    with open(path, "wb") as f:
        for i in itertools.count():
            if written >= size:
                break
            chunk = i.to_bytes(8, "big") + base[8:]
            chunk = chunk[: size - written]
            f.write(chunk)
            h.update(chunk)
            written += len(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
