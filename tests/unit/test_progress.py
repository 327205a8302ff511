"""The stderr progress display: redrawn in place on a terminal, occasional lines otherwise."""

from __future__ import annotations

import io

from davdisk.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_redraws_one_line_at_most_ten_times_a_second() -> None:
    out, clock = Terminal(), Clock()
    with Progress("re-encrypting", 200, unit="blobs", stream=out, clock=clock) as bar:
        for _ in range(100):
            clock.now += 0.01
            bar.advance(nbytes=1 << 20)
    text = out.getvalue()
    redraws = text.count("\r")
    assert 9 <= redraws <= 12, text  # one per 0.1 s of the 1 s run, plus the final one
    assert "\n" not in text[:-1] and text.endswith("\n")  # one line, ended when done
    last = text.rsplit("\r", 1)[1]
    assert last.startswith("re-encrypting [############------------] 100/200 blobs 50%")
    assert "100.0 MiB at 100.0 MiB/s" in last


def test_log_gets_occasional_plain_lines() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress("fsck", 50, unit="blobs", stream=out, clock=clock)
    for _ in range(50):
        clock.now += 0.5  # 25 s in all: a line after 10 s and 20 s, then the final one
        bar.advance()
    bar.close()
    bar.close()  # idempotent
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line.split("] ")[1] for line in lines] == [
        "20/50 blobs 40%",
        "40/50 blobs 80%",
        "50/50 blobs 100%",
    ]


def test_empty_job_shows_done() -> None:
    out = io.StringIO()
    with Progress("rewrapping user keys", 0, unit="keys", stream=out):
        pass
    assert out.getvalue() == "rewrapping user keys [########################] 0/0 keys 100%\n"
