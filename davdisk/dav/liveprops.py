"""Properties and headers that clients use beyond RFC 4918, and how their values are read.

- ownCloud/Nextcloud (rclone's ``owncloud``/``nextcloud`` vendors): ``oc:checksums``,
  ``oc:fileid``, ``oc:permissions``, ``oc:size``; ``X-OC-Mtime`` and ``OC-Checksum`` headers.
- Windows' mini-redirector: ``Win32LastModifiedTime`` / ``Win32CreationTime`` set the times
  (other ``Win32*`` properties are kept as dead properties).
- rclone and ``touch``-like tools: PROPPATCH of ``{DAV:}lastmodified`` (unix seconds) or
  ``{DAV:}getlastmodified`` (HTTP date).
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable

from wsgidav.dav_error import HTTP_BAD_REQUEST, HTTP_CONFLICT, DAVError

from davdisk.model import Action

OC = "{http://owncloud.org/ns}"
WIN32 = "{urn:schemas-microsoft-com:}"

OC_CHECKSUMS = OC + "checksums"
OC_FILEID = OC + "fileid"
OC_PERMISSIONS = OC + "permissions"
OC_SIZE = OC + "size"


def permissions(*, is_dir: bool, shared: bool, allowed: Callable[[Action], bool]) -> str:
    """``oc:permissions`` in Nextcloud's letters: S shared with me, R may re-share, G read,
    D delete, N rename, V move, W write (files), C create files and K create folders (folders)."""
    letters = "S" if shared else ""
    if allowed("share"):
        letters += "R"
    letters += "G"
    if allowed("delete"):
        letters += "DNV"
    if allowed("write"):
        letters += "CK" if is_dir else "W"
    return letters


def parse_unix_time(text: str) -> float:
    value = float(text.strip())
    if not math.isfinite(value) or value < 0 or value > 253402300799:  # year 9999
        raise ValueError("out of range")
    return value


def parse_http_date(text: str) -> float:
    return email.utils.parsedate_to_datetime(text.strip()).timestamp()


# Settable time properties: name -> (which time, parser)
TIME_PROPS: dict[str, tuple[str, Callable[[str], float]]] = {
    "{DAV:}lastmodified": ("mtime", parse_unix_time),
    "{DAV:}getlastmodified": ("mtime", parse_http_date),
    WIN32 + "Win32LastModifiedTime": ("mtime", parse_http_date),
    WIN32 + "Win32CreationTime": ("ctime", parse_http_date),
}


def parse_time_prop(name: str, text: str | None) -> tuple[str, float]:
    which, parse = TIME_PROPS[name]
    try:
        return which, parse(text or "")
    except (ValueError, TypeError, OverflowError):
        raise DAVError(HTTP_CONFLICT, f"bad time value for {name}") from None


def oc_mtime(environ: dict[str, object]) -> float | None:
    """The ``X-OC-Mtime`` request header (unix seconds), if sent; 400 if malformed."""
    raw = environ.get("HTTP_X_OC_MTIME")
    if raw is None:
        return None
    try:
        return parse_unix_time(str(raw))
    except ValueError:
        raise DAVError(HTTP_BAD_REQUEST, "bad X-OC-Mtime header") from None


def checksum_text(md5: str, sha1: str) -> str:
    """The ``oc:checksum`` value of content with these hex digests."""
    return f"SHA1:{sha1} MD5:{md5}"


def oc_checksums(environ: dict[str, object]) -> dict[str, str]:
    """The ``OC-Checksum`` request header as {"sha1"|"md5": hex}; other algorithms are ignored."""
    raw = str(environ.get("HTTP_OC_CHECKSUM") or "")
    found: dict[str, str] = {}
    for item in raw.split():
        algo, _, value = item.partition(":")
        algo = algo.lower()
        if algo in ("sha1", "md5"):
            want = 40 if algo == "sha1" else 32
            value = value.lower()
            if len(value) != want or any(c not in "0123456789abcdef" for c in value):
                raise DAVError(HTTP_BAD_REQUEST, "bad OC-Checksum header")
            found[algo] = value
    return found
