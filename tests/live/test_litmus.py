"""The litmus WebDAV compliance suite (basic, copymove, props, locks, http) against davdisk."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live.conftest import ALICE, USERS, Server, ServerFactory

SUITES = ["basic", "copymove", "props", "locks", "http"]
SUMMARY_RE = re.compile(
    r"<- summary for `(?P<suite>\w+)': of (?P<run>\d+) tests run: (?P<passed>\d+) passed, "
    r"(?P<failed>\d+) failed\."
)
WARNINGS_RE = re.compile(r"-> (?P<n>\d+) warnings? (?:was|were) issued\.")
SKIPPED_RE = re.compile(r"-> (?P<n>\d+) tests? (?:was|were) skipped\.")
RUNNING_RE = re.compile(r"-> running `(?P<suite>\w+)':")


def parse_litmus(output: str) -> dict[str, dict[str, int]]:
    """Per-suite totals: run, passed, failed, warnings, skipped."""
    results: dict[str, dict[str, int]] = {}
    current = None
    for line in output.splitlines():
        if m := RUNNING_RE.search(line):
            current = m.group("suite")
        elif m := SUMMARY_RE.search(line):
            current = m.group("suite")
            results[current] = {k: int(m.group(k)) for k in ("run", "passed", "failed")}
            results[current].update(warnings=0, skipped=0)
        elif (m := WARNINGS_RE.search(line)) and current in results:
            results[current]["warnings"] = int(m.group("n"))
        elif (m := SKIPPED_RE.search(line)) and current in results:
            results[current]["skipped"] = int(m.group("n"))
    return results


def test_litmus_all_suites(server_factory: ServerFactory, tmp_path: Path) -> None:
    litmus = shutil.which("litmus")
    if litmus is None:
        pytest.fail(
            "litmus is not installed; scripts/test installs it (Debian/Ubuntu package 'litmus')"
        )
    srv: Server = server_factory()
    r = srv.session(ALICE).request("MKCOL", srv.dav + "litmus/")
    assert r.status_code == 201, (r.status_code, r.text)

    workdir = tmp_path / "litmus-run"
    workdir.mkdir()
    env = dict(os.environ, TESTS=" ".join(SUITES))
    proc = subprocess.run(
        [litmus, "--keep-going", srv.dav + "litmus/", ALICE, USERS[ALICE]],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    output = proc.stdout + proc.stderr
    print(output)

    results = parse_litmus(output)
    print("litmus per-suite totals:")
    for suite in SUITES:
        t = results.get(suite)
        print(f"  {suite:9s} " + (", ".join(f"{k}={v}" for k, v in t.items()) if t else "MISSING"))
    problems = [
        line.strip()
        for line in output.splitlines()
        if "FAIL" in line or "WARNING" in line or "SKIPPED" in line
    ]
    if problems:
        print("litmus failures/warnings:\n  " + "\n  ".join(problems))

    def debug_tail() -> str:
        log = workdir / "debug.log"
        return log.read_text(errors="replace")[-6000:] if log.exists() else "<no debug.log>"

    assert sorted(results) == sorted(SUITES), (
        f"expected summaries for {SUITES}, got {sorted(results)}\n{output}"
    )
    failed = {s: t["failed"] for s, t in results.items() if t["failed"]}
    assert not failed, (
        f"litmus failures per suite: {failed}\n"
        + "\n".join(problems)
        + "\n--- debug.log tail ---\n"
        + debug_tail()
    )
    assert all(t["run"] > 0 for t in results.values()), results
