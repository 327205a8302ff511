"""What a file or folder name may be, and how request paths split into names.

The one sanitiser for names and paths: the files API checks every name it stores with
:func:`check_name`, and the request limits (``http/limits.py``) check every request path and
Destination with :func:`check_path` before anything else sees them.

Names are Unicode NFC: macOS sends ``Café`` decomposed (``e`` + U+0301), Windows and Linux
composed, and both spellings must name one file. :func:`check_name` and :func:`split_path`
return NFC, and the request limits rewrite the path and Destination of every request to NFC, so
lookups, new names and lock keys all use the one spelling the database holds.
"""

from __future__ import annotations

import re
import unicodedata

from davdisk.errors import InvalidName, UsageError
from davdisk.files.ignorable import ZWJ, ZWNJ, is_default_ignorable, is_variation_selector

MAX_NAME_BYTES = 255
# Characters XML 1.0 cannot carry (tab, LF and CR it can).
_NOT_XML = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# Characters a new name may not have, beyond those: the rest of the C0 controls (tab, LF, CR),
# DEL and the C1 controls, and the bidi embeddings, overrides and isolates, which make a name
# read as something else ("invoice\u202etxt.exe" shows as "invoiceexe.txt") and a line feed
# forge a row of a listing. Names stored before this rule stay reachable: request paths are held
# to _NOT_XML only.
_FORGING = re.compile("[\t\n\r\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# What a variation selector may follow in a new name: something it can pick a glyph for (an
# emoji or other symbol, an ideograph, a Mongolian letter, a keycap's digit, '#' or '*'), not a
# space, a mark, an invisible character or a bracket or quote (which would end like a mount's
# owner suffix).
_VARIED = ("L", "N", "S", "Po", "Pd", "Pc")
_SHOWN_CHARS = 40  # of a refused name quoted back in an error message


def _shown(name: str) -> str:
    return name if len(name) <= _SHOWN_CHARS else name[:_SHOWN_CHARS] + "..."


def utf8_length(name: str) -> int | None:
    """Bytes ``name`` takes in UTF-8; None if it cannot be UTF-8 (a lone surrogate)."""
    try:
        return len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def nfc(text: str) -> str:
    """``text`` in Unicode normalisation form C (the spelling names are stored in)."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def check_name(name: str) -> str:
    """Return ``name`` in NFC if it can name a file or folder, else raise InvalidName."""
    if name in ("", ".", ".."):
        raise InvalidName(name=name, why="reserved name")
    if "/" in name:
        raise InvalidName(name=_shown(name), why="contains '/'")
    _check_characters(name)
    if _FORGING.search(name):
        raise InvalidName(name=_shown(name), why="contains a control character")
    stored = nfc(name)
    if stored is not name and len(stored.encode("utf-8")) > MAX_NAME_BYTES:
        # NFC decomposes some characters (U+0958 DEVANAGARI QA, 3 bytes, becomes 6): the limit
        # is on what is stored.
        raise InvalidName(name=_shown(name), why=f"longer than {MAX_NAME_BYTES} bytes in NFC")
    if _hides_something(stored):
        raise InvalidName(name=_shown(stored), why="contains an invisible character")
    return stored


def _hides_something(name: str) -> bool:
    """Whether ``name`` holds a default-ignorable code point (one that renders as nothing, so
    the name passes for another: ``Holiday (bob)`` + U+034F) that no client needs there.

    Kept are the ones scripts and emoji need: ZWNJ and ZWJ between two characters (Persian and
    Indic spelling, emoji sequences), and a variation selector right after a character it can
    vary (U+FE0F after an emoji, as macOS and iOS name files; ideographic variants in Japanese
    names; Mongolian free variation selectors). Every other one is refused: soft hyphen, zero
    width space, LRM/RLM/ALM, word joiner, BOM, Hangul fillers, tags, CGJ and the rest.
    """
    last = len(name) - 1
    for i, c in enumerate(name):
        if not is_default_ignorable(c):
            continue
        if c in (ZWNJ, ZWJ) and 0 < i < last:
            continue
        if is_variation_selector(c) and i > 0 and _can_vary(name[i - 1]):
            continue
        return True
    return False


def _can_vary(c: str) -> bool:
    category = unicodedata.category(c)
    return category[0] in _VARIED or category in _VARIED


def printable(name: str) -> str:
    """``name`` with the characters :func:`check_name` refuses escaped (for a CLI's output:
    an older name with a line feed cannot forge a row)."""
    return _FORGING.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), name)


def _check_characters(name: str) -> None:
    """What every name a file could have passes, in a stored name or in a request path."""
    if "\0" in name:
        raise InvalidName(name=_shown(name), why="contains NUL")
    if _NOT_XML.search(name):
        # Every PROPFIND of its folder would have to carry it, and XML 1.0 cannot.
        raise InvalidName(name=_shown(name), why="contains a control character")
    size = utf8_length(name)
    if size is None:
        raise InvalidName(name=_shown(name), why="not valid Unicode")
    if size > MAX_NAME_BYTES:
        raise InvalidName(name=_shown(name), why=f"longer than {MAX_NAME_BYTES} bytes")


def split_path(path: str) -> list[str] | None:
    """Split a decoded request path into names (NFC); None if it can name nothing (``..``, NUL).

    Empty segments (``//``, a trailing slash) and ``.`` are ignored; ``..`` is refused rather than
    resolved, so no spelling of a path can step outside the home it is resolved in.
    """
    names = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." or "\0" in part:
            return None
        names.append(nfc(part))
    return names


def check_path(path: str, max_depth: int) -> None:
    """Refuse a decoded request path no file could ever have: one with NUL or a control
    character, a name that is not Unicode or longer than MAX_NAME_BYTES, more than ``max_depth``
    names, or more ``..`` than names before them (it would climb above the root).

    Raises InvalidName or UsageError (both 400). Other ``.`` and ``..`` are left to
    :func:`split_path`: they make a path name nothing, which is a lookup's answer (404).
    """
    names = [part for part in path.split("/") if part]
    if len(names) > max_depth:
        raise UsageError(f"path deeper than {max_depth} levels")
    level = 0
    for name in names:
        if name == "..":
            level -= 1
            if level < 0:
                # WsgiDAV would answer this with a status but no body, and the client would
                # wait for one until the connection timed out.
                raise UsageError("path climbs above the root")
            continue
        if name != ".":
            level += 1
        _check_characters(name)
