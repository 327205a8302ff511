"""What a file or folder name may be, and how request paths split into names."""

from __future__ import annotations

from davdisk.errors import InvalidName

MAX_NAME_BYTES = 255


def check_name(name: str) -> str:
    """Return ``name`` if it can name a file or folder, else raise InvalidName."""
    if name in ("", ".", ".."):
        raise InvalidName(name=name, why="reserved name")
    if "/" in name or "\0" in name:
        raise InvalidName(name=name, why="contains '/' or NUL")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidName(name=name, why=f"longer than {MAX_NAME_BYTES} bytes")
    return name


def split_path(path: str) -> list[str] | None:
    """Split a decoded request path into names; None if it can name nothing (``..``, NUL).

    Empty segments (``//``, a trailing slash) and ``.`` are ignored; ``..`` is refused rather than
    resolved, so no spelling of a path can step outside the home it is resolved in.
    """
    names = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." or "\0" in part:
            return None
        names.append(part)
    return names
