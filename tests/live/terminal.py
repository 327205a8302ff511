"""Run the ``davdisk`` CLI on a pseudo-terminal, for what it does only on a terminal (password
prompts, confirmations): the child gets a new session with the pty as its controlling terminal,
so ``getpass`` and ``isatty()`` see a real one. Only the standard library (``pty``)."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.live.conftest import CLI_TIMEOUT, REPO_ROOT, _env, davdisk_argv


@dataclass
class TtyRun:
    returncode: int
    output: str  # everything the child wrote to the terminal (stdout and stderr), \r\n -> \n

    def __str__(self) -> str:
        return f"exit={self.returncode}\n--- terminal ---\n{self.output}"


def cli_on_tty(
    data_dir: Path | None,
    *args: str,
    dialog: Sequence[tuple[str, str]] = (),
    timeout: float = CLI_TIMEOUT,
) -> TtyRun:
    """Run ``davdisk ARGS`` on a new pty. ``dialog``: (prompt, reply) pairs; each reply is typed
    once ``prompt`` has appeared in the output since the previous reply (send "\\x04" for
    Ctrl-D). Returns once the child has exited."""
    argv = davdisk_argv(data_dir, *args)
    env = _env()
    pid, fd = pty.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            os.chdir(REPO_ROOT)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    out = b""
    seen = 0  # output before this offset was matched by an earlier prompt
    steps = list(dialog)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if steps and steps[0][0].encode() in out[seen:]:
                prompt, reply = steps.pop(0)
                seen = out.index(prompt.encode(), seen) + len(prompt)
                os.write(fd, reply.encode())
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, 9)
                pytest.fail(f"davdisk on a tty did not finish in {timeout:.0f}s: {out!r}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child has closed the terminal (exited)
                chunk = b""
            if not chunk:
                break
            out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert not steps, f"prompt {steps[0][0]!r} never came\n{text}"
    return TtyRun(os.waitstatus_to_exitcode(status), text)
