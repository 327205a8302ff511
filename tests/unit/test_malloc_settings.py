"""The malloc settings ``davdisk serve`` makes before its worker threads start (server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Four threads each take four 8 MiB buffers (an S3 upload's parts) with a small object after
# each, as a server's other work leaves them, then free the buffers; prints the RSS gained.
_CHURN = """
import re, threading
from davdisk.server import cap_malloc_arenas

cap_malloc_arenas()

def rss_mib():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmRSS:\\s+(\\d+)", status).group(1)) >> 10

kept = []

def churn():
    for _ in range(10):
        parts = []
        for _ in range(4):
            part = bytearray(8 << 20)
            part[::4096] = b"x" * len(range(0, 8 << 20, 4096))  # touch every page
            parts.append(part)
            kept.append(bytearray(1000))
        del parts

threads = [threading.Thread(target=churn) for _ in range(4)]
before = rss_mib()
for t in threads:
    t.start()
for t in threads:
    t.join()
print(rss_mib() - before)
"""


def test_freed_big_buffers_go_back_to_the_system() -> None:
    # glibc raises its mmap threshold to the size of each big block freed, so after the first
    # part buffer later ones come from the heap, where small objects pin them: 32 uploads to S3
    # kept ~90 MiB more than their budget. A fixed threshold keeps parts in their own mappings.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _CHURN], env=env, capture_output=True, text=True, check=True
    )
    gained = int(out.stdout)
    assert gained < 24, f"{gained} MiB still resident after every part buffer was freed"
