"""Whether another process has a SQLite database open, found without opening it (a server
running on a database that ``davdisk db migrate`` is about to move)."""

from __future__ import annotations

import fcntl
import os
import struct
import sys

# SQLite's "DMS" byte of the -shm file: every connection to a WAL database holds a shared POSIX
# lock on it while open (os_unix.c: UNIX_SHM_DMS, 120 + SQLITE_SHM_NLOCK).
_SHM_DMS = 128
_FLOCK = "hhqqi"  # Linux's struct flock: l_type, l_whence, l_start, l_len, l_pid


def opener_pid(db_file: str) -> int | None:
    """The pid of another process that has the SQLite database open (a running server), else
    None. Asks the kernel whether a write lock on the -shm file's DMS byte would conflict, which
    takes no lock and writes nothing. Call it before this process opens the database: closing a
    descriptor drops every POSIX lock the process holds on the file."""
    if not sys.platform.startswith("linux"):  # struct flock is laid out otherwise elsewhere
        return None
    try:
        fd = os.open(db_file + "-shm", os.O_RDONLY)
    except OSError:  # no -shm: nobody has it open in WAL mode
        return None
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _SHM_DMS, 1, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, probe)
    except OSError:
        return None
    finally:
        os.close(fd)
    kind, _whence, _start, _len, pid = struct.unpack(_FLOCK, answer[: struct.calcsize(_FLOCK)])
    return pid if kind != fcntl.F_UNLCK else None
