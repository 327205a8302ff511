"""Login throttling holds against concurrent guesses: a burst of wrong passwords for one user
from one address, sent at the same instant over separate connections, gets no more bcrypt checks
than the same guesses sent one after another.

A checked guess is answered 401, a refused one 429 before any password is looked at (and many
times faster). Sequentially, ``free_failures`` failures pass and the next one, itself checked,
starts the first lockout (1 s): ``free_failures + 1`` checks. Concurrently that is also the
bound, plus one more check each time a lockout ends during the burst (the lockouts double: 1 s,
2 s, ...); the burst is timed to know how many may have ended.
"""

from __future__ import annotations

import base64
import http.client
import threading
import time
from pathlib import Path

import pytest

from tests.live.conftest import ALICE, USERS, Server, ServerFactory, cli, describe

FREE = 5
GUESSES = 40
# bcrypt at cost 10 (~60 ms a check) makes every check long enough for the guesses to overlap.
CONFIG = f"[auth]\nthrottle_free_failures = {FREE}\nbcrypt_cost = 10\n"


def throttled_server(server_factory: ServerFactory, tmp_path: Path) -> Server:
    config = tmp_path / "throttle.toml"
    config.write_text(CONFIG)
    data_dir = server_factory.base / "race-data"
    # The user is added under the same config, so alice's own hash has cost 10 too.
    proc = cli(
        data_dir,
        "--config",
        str(config),
        "user",
        "add",
        ALICE,
        "--password-stdin",
        input=USERS[ALICE] + "\n",
    )
    assert proc.returncode == 0, describe(proc)
    return server_factory(data_dir=data_dir, config=config)


def password_link(srv: Server, config: Path) -> str:
    """The WebDAV path of a new link with a password (hashed at cost 10) to alice's folder."""
    alice = srv.session(ALICE, USERS[ALICE])
    assert alice.request("MKCOL", srv.dav + "box/").status_code == 201
    proc = cli(
        srv.data_dir,
        "--config",
        str(config),
        "share",
        "link",
        ALICE,
        "/box",
        "--base-url",
        srv.url,
        "--password-stdin",
        input="link-password-1234\n",
    )
    assert proc.returncode == 0, describe(proc)
    token = proc.stdout.strip().rsplit("/", 1)[1]
    return f"/public/{token}/"


def burst(srv: Server, n: int, path: str = "/dav/") -> tuple[list[tuple[int, float]], float]:
    """``n`` wrong passwords (user name alice) for ``path``, each over its own connection, sent
    at once after a barrier: [(status, seconds)], and how long the whole burst took."""
    barrier = threading.Barrier(n + 1)
    results: list[tuple[int, float]] = [(0, 0.0)] * n

    def guess(i: int) -> None:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=120)
        try:
            conn.connect()
            creds = base64.b64encode(f"{ALICE}:wrong-guess-{i:04d}".encode()).decode()
            barrier.wait()
            start = time.perf_counter()
            conn.request(
                "PROPFIND",
                path,
                headers={"Authorization": f"Basic {creds}", "Depth": "0", "Content-Length": "0"},
            )
            resp = conn.getresponse()
            resp.read()
            results[i] = (resp.status, time.perf_counter() - start)
        finally:
            conn.close()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return results, time.perf_counter() - start


@pytest.mark.parametrize("target", ["user", "link"])
def test_concurrent_wrong_passwords_get_no_more_checks_than_sequential_ones(
    server_factory: ServerFactory, tmp_path: Path, target: str
) -> None:
    srv = throttled_server(server_factory, tmp_path)
    path = "/dav/" if target == "user" else password_link(srv, tmp_path / "throttle.toml")
    results, took = burst(srv, GUESSES, path)
    statuses = [s for s, _ in results]
    assert set(statuses) <= {401, 429}, statuses
    # 401 is answered only after bcrypt said no; 429 before any password is looked at.
    checked = statuses.count(401)
    # Lockouts that can have ended within the burst: 1 s, then 2 s more, then 4 s more, ...
    ended = 0
    while took > 2 ** (ended + 1) - 1:
        ended += 1
    assert checked <= FREE + 1 + ended, (
        f"{checked} of {GUESSES} concurrent wrong passwords were checked by bcrypt "
        f"(limit {FREE}; burst {took:.2f} s): {statuses}"
    )
    assert checked >= FREE, statuses  # the free ones are checked, not refused
    assert "Traceback" not in srv.log()
