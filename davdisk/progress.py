"""A small progress display on stderr for long CLI runs (key rotation, re-encryption, fsck).

On a terminal it redraws one line in place (at most ten times a second); otherwise (a log file,
a pipe, cron) it writes an occasional plain line, so logs stay readable. It writes nothing to
stdout, which is left to the command's report.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

_BAR_WIDTH = 24
_TTY_INTERVAL = 0.1  # seconds between redraws on a terminal
_LOG_INTERVAL = 10.0  # seconds between plain lines otherwise


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """``with Progress("re-encrypting", total=n, unit="blobs") as p: ... p.advance(nbytes=k)``"""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.done = 0
        self.bytes = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._clock = clock
        self._start = self._now()
        self._last = self._start
        self._closed = False

    def _now(self) -> float:
        return self._clock()

    def advance(self, n: int = 1, *, nbytes: int = 0) -> None:
        self.done += n
        self.bytes += nbytes
        now = self._now()
        if now - self._last >= (_TTY_INTERVAL if self._tty else _LOG_INTERVAL):
            self._last = now
            self._show(now)

    def line(self) -> str:
        """The current state as text, e.g. ``fsck [#####-----] 50/100 blobs 50%, 3.1 MiB/s``."""
        shown = f"{self.done}/{self.total}" + (f" {self.unit}" if self.unit else "")
        fraction = self.done / self.total if self.total else 1.0
        filled = round(_BAR_WIDTH * min(1.0, fraction))
        text = f"{self.label} [{'#' * filled}{'-' * (_BAR_WIDTH - filled)}] {shown} "
        text += f"{fraction:.0%}"
        elapsed = self._now() - self._start
        if self.bytes and elapsed > 0:
            text += f", {_size(self.bytes)} at {_size(self.bytes / elapsed)}/s"
        return text

    def _show(self, now: float) -> None:
        if self._tty:
            # \r back to the start, \x1b[K clears what a longer previous line left.
            self._stream.write("\r" + self.line() + "\x1b[K")
        else:
            self._stream.write(self.line() + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Show the final state once (on a terminal, end the redrawn line)."""
        if self._closed:
            return
        self._closed = True
        self._show(self._now())
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
