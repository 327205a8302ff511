"""The results table (absolute figures and davdisk/peer ratios), its JSON file and a PNG chart.

The chart is drawn only when matplotlib is importable (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

BASELINE = "davdisk"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool


def metrics(
    listing_sizes: tuple[int, ...], move_files: int, blob_work: tuple[int, int, int] | None = None
) -> list[Metric]:
    """The table's rows, in order; ``blob_work`` (--blobs s3): the longest range in KiB and the
    count and MiB of the PUTs made at once, for the rows of those phases."""
    rows = [
        Metric("big_put.mb_s", "big PUT, fixed length", "MB/s", True),
        Metric("big_get.mb_s", "big GET", "MB/s", True),
        Metric("chunked_put.mb_s", "big PUT, chunked", "MB/s", True),
        Metric("range.p50_ms", "range GET 64 KiB p50", "ms", False),
        Metric("range.p99_ms", "range GET 64 KiB p99", "ms", False),
        Metric("small_put.ops_s", "4 KiB PUT, 8 clients", "ops/s", True),
        Metric("auth_get.req_s", "auth 1-byte GET", "req/s", True),
    ]
    rows += [
        Metric(f"propfind_{n}.ms", f"PROPFIND depth 1, {n} entries", "ms", False)
        for n in listing_sizes
    ]
    rows.append(Metric(f"move_{move_files}.ms", f"MOVE folder of {move_files} files", "ms", False))
    for phase in (
        "big_put",
        "big_get",
        "chunked_put",
        "range",
        "small_put",
        "auth_get",
        "propfind",
        "move",
    ):
        rows.append(Metric(f"rss.{phase}", f"peak RSS during {phase}", "MiB", False))
    if blob_work is not None:
        kib, count, mib = blob_work
        many = f"{count} x {mib} MiB PUTs at once"
        rows += [
            Metric("range_mixed.p50_ms", f"range GET 64-{kib} KiB p50", "ms", False),
            Metric("range_mixed.p99_ms", f"range GET 64-{kib} KiB p99", "ms", False),
            Metric("many_put.mb_s", many, "MB/s", True),
            Metric("rss.many_put", f"peak RSS during {many}", "MiB", False),
            Metric("weed.many_put", f"SeaweedFS peak RSS during {many}", "MiB", False),
            Metric("weed.run", "SeaweedFS peak RSS, whole run", "MiB", False),
        ]
    return rows


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    except OSError:
        return "missing"
    return out.splitlines()[0] if out else "unknown"


def machine() -> dict[str, Any]:
    """CPU model, core count, OS and the versions of everything measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for dist in ("davdisk", "wsgidav", "cheroot"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "missing"
    versions["rclone"] = _first_line(["rclone", "version"]).removeprefix("rclone ")
    versions["curl"] = " ".join(_first_line(["curl", "--version"]).split()[1:2])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "versions": versions,
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(rows: list[Metric], results: dict[str, dict[str, float]]) -> str:
    """Absolute figures per server, then the ratio davdisk/peer for each other server."""
    servers = list(results)
    peers = [s for s in servers if s != BASELINE] if BASELINE in servers else []
    header = ["metric", "unit", "better", *servers, *(f"{BASELINE}/{p}" for p in peers)]
    lines = [header]
    for row in rows:
        values = [results[s].get(row.key) for s in servers]
        ratios = []
        for p in peers:
            ours, theirs = results[BASELINE].get(row.key), results[p].get(row.key)
            ratios.append(f"{ours / theirs:.2f}x" if ours is not None and theirs else "-")
        better = "higher" if row.higher_is_better else "lower"
        lines.append([row.label, row.unit, better, *map(_fmt, values), *ratios])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def medians(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per server and figure, the median over the rounds that measured it."""
    collected: dict[str, dict[str, list[float]]] = {}
    for figures in rounds:
        for server, values in figures.items():
            for key, value in values.items():
                collected.setdefault(server, {}).setdefault(key, []).append(value)
    return {
        server: {key: statistics.median(values) for key, values in by_key.items()}
        for server, by_key in collected.items()
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def write_chart(path: Path, rows: list[Metric], results: dict[str, dict[str, float]]) -> bool:
    """One bar group per metric: each peer's figure relative to davdisk's. False if skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    servers = list(results)
    shown = [r for r in rows if all(results[s].get(r.key) for s in servers)]
    if not shown or BASELINE not in results:
        return False
    fig, ax = plt.subplots(figsize=(12, 0.45 * len(shown) + 1.5))
    height = 0.8 / len(servers)
    for i, server in enumerate(servers):
        # Normalise so that bigger is always better: davdisk = 1.
        rel = []
        for r in shown:
            ours, value = results[BASELINE][r.key], results[server][r.key]
            rel.append(value / ours if r.higher_is_better else ours / value)
        ax.barh([y + i * height for y in range(len(shown))], rel, height, label=server)
    ax.set_yticks([y + 0.4 - height / 2 for y in range(len(shown))])
    ax.set_yticklabels([r.label for r in shown])
    ax.invert_yaxis()
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("relative performance, davdisk = 1 (right is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def banner(info: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return f"machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}\n{versions}"


def exit_code(errors: dict[str, str]) -> int:
    for server, error in errors.items():
        print(f"error: {server}: {error}", file=sys.stderr)
    return 1 if errors else 0


# --- the scale run (scripts/bench --scale) ---------------------------------------------------


def scale_table(
    rows: list[Metric],
    results: dict[str, dict[str, float]],
    targeted: tuple[str, ...],
    target: float,
) -> str:
    """Figures of the small and the big database side by side, the ratio big/small, and for the
    ``targeted`` rows whether it is within ``target``. Rows without a unit are counts."""
    small, big = results
    header = ["metric", "unit", small, big, f"{big}/{small}", f"<= {target}x"]
    lines = [header]
    for row in rows:
        a, b = results[small].get(row.key), results[big].get(row.key)
        ratio = b / a if a and b is not None else None
        verdict = ""
        if row.key in targeted and ratio is not None:
            verdict = "yes" if ratio <= target else "NO"
        shown = f"{ratio:.2f}x" if ratio is not None else "-"
        cells = [f"{v:.0f}" if v is not None and not row.unit else _fmt(v) for v in (a, b)]
        lines.append([row.label, row.unit, *cells, shown, verdict])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
