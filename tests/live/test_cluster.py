"""Several stateless instances behind a load balancer: three ``davdisk serve`` on one PostgreSQL
database and one S3 bucket (a real SeaweedFS), nginx in front, round robin.

Each instance has a data dir of its own (as on its own machine) that holds nothing: the master
key comes from ``DAVDISK_MASTER_KEY``, the metadata from PostgreSQL, the blobs from the bucket.
The WebDAV suites and clients run through the balancer; locks, shares, links and quotas hold
whichever instance a request reaches; an instance killed mid-upload or restarted under a running
sync loses nothing.

The cluster always runs on PostgreSQL (the run's server in the PostgreSQL pass, else one of its
own), so scripts/test runs this module once, in the SQLite pass.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.balancer import Balancer
from tests.live.conftest import (
    ALICE,
    BOB,
    HARNESS_CONFIG,
    USERS,
    Server,
    add_user,
    cli,
    describe,
    get_bytes,
    put,
    start_server,
    wait_until,
)
from tests.live.test_litmus import SUITES, parse_litmus
from tests.live.test_model import DavModel, run
from tests.live.test_rclone import TREE, make_tree, rclone, rclone_env
from tests.pg import URL_ENV, fresh_database, postgres_server
from tests.s3 import SeaweedServer

INSTANCES = 3
CLUSTER_EXAMPLES = 6


@dataclass
class Cluster:
    root: Path
    config: str  # the TOML every instance reads
    instances: list[Server]
    balancer: Balancer
    bucket: str
    s3: SeaweedServer
    dirs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.balancer.url

    @property
    def dav(self) -> str:
        return self.url + "/dav/"

    def session(self, user: str = ALICE) -> requests.Session:
        s = requests.Session()
        s.auth = (user, USERS[user])
        return s

    def start(self, n: int, port: int | None = None) -> Server:
        """(Re)start instance ``n`` on ``port`` (where the balancer knows it), or a free one.
        A fixed port, as in a deployment: cheroot sets SO_REUSEADDR only then, and without it
        the old process's connections in TIME_WAIT keep the port from a restart for a minute."""
        srv = start_server(self.dirs[n], self.root, ("--port", str(port or _free_port())))
        self.instances[n] = srv
        return srv

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli(self.dirs[0], *args)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _instance_dir(root: Path, n: int, config: str) -> Path:
    data_dir = root / f"instance{n}"
    data_dir.with_name(data_dir.name + ".harness.toml").write_text(config)
    return data_dir


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, seaweed: SeaweedServer) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    old_key = os.environ.get("DAVDISK_MASTER_KEY")
    os.environ["DAVDISK_MASTER_KEY"] = os.urandom(32).hex()  # no key file on any instance
    with _postgres() as pg_url:
        bucket = seaweed.create_bucket()
        # nginx forwards from loopback (trusted, so X-Forwarded-For names the client) over
        # plain HTTP: a deployment terminates TLS there; this test cluster is loopback only.
        config = (
            f'{HARNESS_CONFIG}\n[server]\ntrusted_proxies = ["127.0.0.1"]\n'
            "allow_insecure_http = true\n"
            f'\n[storage]\ndatabase_url = "{fresh_database(pg_url)}"\n'
            f'\n[blobs]\nbackend = "s3"\nendpoint_url = "{seaweed.endpoint}"\n'
            f'bucket = "{bucket}"\naccess_key_id = "{seaweed.access_key}"\n'
            f'secret_access_key = "{seaweed.secret_key}"\ndelete_delay = 60\n'
        )
        dirs = [_instance_dir(root, n, config) for n in range(INSTANCES)]
        for user in (ALICE, BOB):
            add_user(dirs[0], user, USERS[user])
        found = Cluster(root, config, [], None, bucket, seaweed, dirs)  # type: ignore[arg-type]
        found.instances = [None] * INSTANCES  # type: ignore[list-item]
        for n in range(INSTANCES):
            found.start(n)
        found.balancer = Balancer([srv.netloc for srv in found.instances], root / "nginx")
        try:
            yield found
        finally:
            found.balancer.stop()
            for srv in found.instances:
                srv.stop()
            if old_key is None:
                os.environ.pop("DAVDISK_MASTER_KEY", None)
            else:
                os.environ["DAVDISK_MASTER_KEY"] = old_key


def _postgres() -> contextlib.AbstractContextManager[str]:
    given = os.environ.get(URL_ENV)
    if given:
        return contextlib.nullcontext(given)
    return _own_postgres()


@contextlib.contextmanager
def _own_postgres() -> Iterator[str]:
    with postgres_server() as server:
        yield server.url()


def test_every_instance_serves_and_nothing_lives_on_their_disks(cluster: Cluster) -> None:
    hits = set()
    s = cluster.session()
    for _ in range(2 * INSTANCES):
        r = s.request("PROPFIND", cluster.dav, headers={"Depth": "0"})
        assert r.status_code == 207
    for line in cluster.balancer.access_log.read_text().splitlines():
        hits.update(re.findall(r'"([\d.]+:\d+)"$', line))
    assert hits == {srv.netloc for srv in cluster.instances}, hits
    for d in cluster.dirs:
        stored = [p for p in d.rglob("*") if p.is_file()] if d.exists() else []
        assert stored == [], f"{d} holds {stored}"
        assert not d.with_name(d.name + ".key").exists()


def test_litmus_through_the_balancer(cluster: Cluster, tmp_path: Path) -> None:
    litmus = shutil.which("litmus")
    assert litmus, "litmus is not installed; scripts/test installs it"
    s = cluster.session()
    assert s.request("MKCOL", cluster.dav + "litmus/").status_code == 201
    proc = subprocess.run(
        [litmus, "--keep-going", cluster.dav + "litmus/", ALICE, USERS[ALICE]],
        cwd=tmp_path,
        env=dict(os.environ, TESTS=" ".join(SUITES)),
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = proc.stdout + proc.stderr
    results = parse_litmus(output)
    assert sorted(results) == sorted(SUITES), output
    failed = {name: t["failed"] for name, t in results.items() if t["failed"]}
    assert not failed, output
    passed = sum(t["passed"] for t in results.values())
    print(
        f"litmus through the balancer: {passed} passed of {sum(t['run'] for t in results.values())}"
    )


def test_rclone_sync_check_and_resync_through_the_balancer(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = rclone_env(cluster, "nextcloud", tmp_path)  # type: ignore[arg-type]
    src = tmp_path / "src"
    make_tree(src)
    dst = f"dd:rclone-{secrets.token_hex(3)}"
    code, out = rclone(env, "sync", str(src), dst, "-v")
    assert code == 0 and out.count("Copied (new)") == len(TREE), out
    code, out = rclone(env, "check", str(src), dst)
    assert code == 0 and "0 differences found" in out, out
    code, out = rclone(env, "sync", str(src), dst, "-v")
    assert code == 0 and "Copied" not in out, out


LOCK_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope>'
    b"<D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
)


def test_a_lock_taken_on_one_instance_is_honoured_on_the_others(cluster: Cluster) -> None:
    a, b, c = cluster.instances
    s = cluster.session()
    put(s, a.dav + "locked.txt", b"v1")
    r = s.request("LOCK", a.dav + "locked.txt", data=LOCK_BODY, headers={"Timeout": "Second-600"})
    assert r.status_code == 200, r.text
    token = r.headers["Lock-Token"].strip("<>")
    for other in (b, c):
        assert s.put(other.dav + "locked.txt", data=b"no token").status_code == 423
        assert s.delete(other.dav + "locked.txt").status_code == 423
        r = s.request("MOVE", other.dav + "locked.txt", headers={"Destination": other.dav + "x"})
        assert r.status_code == 423
    r = s.put(c.dav + "locked.txt", data=b"v2", headers={"If": f"(<{token}>)"})
    assert r.status_code in (200, 204), r.text
    assert s.request("UNLOCK", b.dav + "locked.txt", headers={"Lock-Token": f"<{token}>"}).ok
    assert get_bytes(s, a.dav + "locked.txt") == b"v2"
    assert s.put(b.dav + "locked.txt", data=b"v3").status_code in (200, 204)


def test_written_through_one_instance_read_and_range_read_through_the_others(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.instances
    s = cluster.session()
    data = os.urandom(12 << 20)
    put(s, a.dav + "big.bin", data)
    assert get_bytes(s, b.dav + "big.bin") == data
    r = s.get(c.dav + "big.bin", headers={"Range": "bytes=9000000-9100000"})
    assert r.status_code == 206 and r.content == data[9_000_000:9_100_001]
    put(s, b.dav + "big.bin", b"replaced")  # an overwrite through another instance
    for srv in (a, b, c):
        assert get_bytes(s, srv.dav + "big.bin") == b"replaced"


def test_shares_links_and_quotas_hold_across_instances(cluster: Cluster) -> None:
    a, b, c = cluster.instances
    alice, bob = cluster.session(ALICE), cluster.session(BOB)
    assert alice.request("MKCOL", a.dav + "team/").status_code == 201
    put(alice, a.dav + "team/plan.txt", b"the plan")
    done = cluster.cli("share", "add", ALICE, "/team", "--with", BOB, "--write")
    assert done.returncode == 0, describe(done)
    for srv in (a, b, c):
        assert get_bytes(bob, srv.dav + "team/plan.txt") == b"the plan"
    put(bob, b.dav + "team/from-bob.txt", b"hello")
    assert get_bytes(alice, c.dav + "team/from-bob.txt") == b"hello"
    link = cluster.cli("share", "link", ALICE, "/team/plan.txt", "--base-url", cluster.url)
    assert link.returncode == 0, describe(link)
    url = link.stdout.strip()
    anonymous = requests.Session()
    for _ in range(INSTANCES):  # round robin: each instance answers one of these
        r = anonymous.get(url)
        assert r.status_code == 200 and r.content == b"the plan"
    done = cluster.cli("user", "quota", BOB, "64K")
    assert done.returncode == 0, describe(done)
    for srv in (a, b, c):
        r = bob.put(srv.dav + f"too-big-{srv.port}.bin", data=os.urandom(100 << 10))
        assert r.status_code == 507, (srv.port, r.status_code)
    put(bob, c.dav + "fits.bin", os.urandom(10 << 10))
    listed = cluster.cli("share", "list")
    ids = [ln.split()[0] for ln in listed.stdout.splitlines()[1:] if "team" in ln and BOB in ln]
    assert len(ids) == 1, listed.stdout
    assert cluster.cli("share", "rm", ids[0]).returncode == 0
    for srv in (a, b, c):
        assert bob.get(srv.dav + "team/plan.txt").status_code == 404


def _unfinished(cluster: Cluster) -> int:
    listed = cluster.s3.client().list_multipart_uploads(Bucket=cluster.bucket)
    return len(listed.get("Uploads", []))


def test_killing_an_instance_amid_five_multipart_uploads(cluster: Cluster) -> None:
    victim = cluster.instances[0]
    s = cluster.session()
    sent = [threading.Event() for _ in range(5)]
    killed = threading.Event()
    results: list[object] = []
    before = _unfinished(cluster)

    def body(n: int) -> Iterator[bytes]:
        chunk = os.urandom(1 << 20)
        for i in range(40):
            yield chunk
            if i == 12:
                sent[n].set()
                killed.wait(60)

    def upload(n: int) -> None:
        try:
            r = cluster.session().put(victim.dav + f"cut{n}.bin", data=body(n))
            results.append(r.status_code)
        except requests.RequestException as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=upload, args=(n,), daemon=True) for n in range(5)]
    for t in threads:
        t.start()
    for e in sent:
        assert e.wait(60)
    wait_until(lambda: _unfinished(cluster) >= before + 5, 30, "five multipart uploads")
    victim.kill()
    killed.set()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 5 and not any(r in (200, 201, 204) for r in results), results
    # The others keep serving, through the balancer too (it skips the dead one).
    for _ in range(2 * INSTANCES):
        assert s.request("PROPFIND", cluster.dav, headers={"Depth": "1"}).status_code == 207
    for srv in cluster.instances[1:]:
        for n in range(5):
            assert s.get(srv.dav + f"cut{n}.bin").status_code == 404  # nothing partial
    done = cluster.cli("gc", "--min-age", "0")
    assert done.returncode == 0, describe(done)
    aborted = int(re.search(r"(\d+) unfinished uploads aborted", done.stdout).group(1))
    assert aborted >= 5, done.stdout
    assert _unfinished(cluster) == 0
    print(f"gc after the kill: {done.stdout.strip()}")
    cluster.start(0, victim.port)


def test_a_rolling_restart_under_a_running_sync_loses_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = rclone_env(cluster, "nextcloud", tmp_path)  # type: ignore[arg-type]
    src = tmp_path / "src"
    for n in range(400):
        (src / f"d{n % 8}").mkdir(parents=True, exist_ok=True)
        (src / f"d{n % 8}" / f"f{n}.bin").write_bytes(os.urandom(1000 + 97 * n))
    for n in range(6):
        (src / f"large{n}.bin").write_bytes(os.urandom(9 << 20))
    dst = f"dd:rolling-{secrets.token_hex(3)}"
    sync = subprocess.Popen(
        [
            shutil.which("rclone") or "rclone",
            "sync",
            str(src),
            dst,
            "--transfers",
            "4",
            "--retries",
            "5",
            "--low-level-retries",
            "20",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    restarted = 0
    for n in range(INSTANCES):
        time.sleep(1.0)
        old = cluster.instances[n]
        assert sync.poll() is None, "the sync ended before every instance was restarted"
        old.stop()  # SIGTERM: finishes what it serves, refuses new connections
        cluster.start(n, old.port)
        restarted += 1
    out, _ = sync.communicate(timeout=600)
    assert sync.returncode == 0, out
    retried = len(re.findall(r"ERROR|Failed to copy|low level retry", out))
    code, out = rclone(env, "check", str(src), dst)
    assert code == 0 and "0 differences found" in out, out
    print(
        f"rolling restart of {restarted} instances under rclone sync of 406 files: complete, "
        f"{retried} errors retried by rclone"
    )


def test_random_request_sequences_through_the_balancer_match_the_model(cluster: Cluster) -> None:
    """The model-based test of test_model.py, its requests spread over the three instances
    (each request of a sequence may reach another one)."""
    DavModel.server = cluster  # type: ignore[assignment]
    run(DavModel, CLUSTER_EXAMPLES)
