"""Asking the person at the terminal for a password, for the commands that set one."""

from __future__ import annotations

import getpass
import sys

from davdisk.errors import UsageError


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("no password on standard input")
        return line.rstrip("\r\n")
    # getpass would fall back to reading a pipe (with a warning): a password piped in without
    # --password-stdin is more likely a mistake than the answer, and /dev/null would end it.
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("New password: ")  # Ctrl-D: EOFError, reported by main()
    second = getpass.getpass("Repeat password: ")
    if first != second:
        raise UsageError("the passwords do not match")
    return first
