"""The names shares are mounted under in a grantee's top folder, made so no sharer can forge one.

A sharer chooses the name of what they share, and Finder or Explorer show a grantee nothing but
that name. So a mount keeps its own name only when it cannot be taken for anything else:

- it looks like no other entry of the grantee's top folder (their own items and other mounts):
  names are compared by :func:`look`, which folds case, compatibility forms, accents, invisible
  characters, runs of whitespace and the common Latin look-alikes of other scripts, quotes and
  dashes (Windows and macOS clients are case-insensitive too, so ``Photos`` and ``photos``
  cannot both be shown);
- it does not end like the owner suffix below (with a closing bracket of any kind, also under
  combining marks: ``)`` + U+0301 is a bracket with an accent);
- it hides nothing (:func:`is_plain`): no invisible character (format, unassigned, and every
  default-ignorable code point: U+034F, the variation selectors, fillers, tags, even the
  ZWJ and emoji selector names may hold), no whitespace but single spaces
  between words, no letters of two scripts that look alike (Latin with Cyrillic or Greek), no
  compatibility forms (fullwidth or mathematical letters).

Every other mount, and each of a group that look alike (not only the later ones: the first
share of a name must not keep it, or a forger who shares first keeps it), is named
``NAME (OWNER)``: its name made plain (invisible characters dropped, whitespace collapsed, cut
to ``MAX_SHOWN`` characters) and the owner's user name, or ``NAME (OWNER ID)`` if that is taken.
A name a sharer chose never ends in a bracket when it is shown as is, so a name that ends in
``(bob)`` is bob's (user names are the administrator's choice).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from davdisk.files.ignorable import is_default_ignorable
from davdisk.files.names import nfc

MAX_SHOWN = 48  # characters of a mount's own name kept before its owner suffix

# A symbol that renders blank although it is not whitespace, format or default-ignorable (the
# Hangul fillers, which are letters, are default-ignorable).
_BLANK_SYMBOLS = frozenset("\u2800")  # Braille pattern blank
# Scripts with letters that pass for Latin ones; a word mixing two of them is a disguise.
_LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE", "COPTIC"})
# Folds for :func:`look`, after NFKC and casefold: the Cyrillic and Greek letters that look
# like Latin ones, quotes, dashes, and the Latin letters and digits that look like each other.
_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u0430\u0251\u03b1", "a"),
        **dict.fromkeys("\u0432\u03b2", "b"),
        **dict.fromkeys("\u0441\u03f2\u03c2", "c"),
        **dict.fromkeys("\u0501", "d"),
        **dict.fromkeys("\u0435\u0454\u03b5", "e"),
        **dict.fromkeys("\u04bb", "h"),
        **dict.fromkeys("\u0456\u0457\u03b9\u0131l1|\u04cf", "i"),
        **dict.fromkeys("\u0458", "j"),
        **dict.fromkeys("\u043a\u03ba", "k"),
        **dict.fromkeys("\u043c\u03bc", "m"),
        **dict.fromkeys("\u043f\u03b7", "n"),
        **dict.fromkeys("\u043e\u03bf\u03c30", "o"),
        **dict.fromkeys("\u0440\u03c1", "p"),
        **dict.fromkeys("\u051b", "q"),
        **dict.fromkeys("\u0455", "s"),
        **dict.fromkeys("\u0442\u03c4", "t"),
        **dict.fromkeys("\u03c5", "u"),
        **dict.fromkeys("\u0475\u03bd", "v"),
        **dict.fromkeys("\u051d\u03c9", "w"),
        **dict.fromkeys("\u0445\u03c7", "x"),
        **dict.fromkeys("\u0443\u04af\u03b3", "y"),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u00b4`\u02bc", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u2033", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    }
)
_DIGRAPHS = (("rn", "m"), ("vv", "w"))
_SPACES = re.compile(r"\s+")


def _hidden(c: str) -> bool:
    """A character that shows nothing (format, private use, unassigned, line separators, and
    Unicode's default-ignorable code points, some of which are marks or letters)."""
    return (
        unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn", "Zl", "Zp")
        or c in _BLANK_SYMBOLS
        or is_default_ignorable(c)
    )


def _last_base(name: str) -> str | None:
    """The last character of ``name`` that is neither a combining mark nor hidden: the one a
    reader sees at its end (``)`` in ``)`` + U+0301)."""
    for c in reversed(name):
        if not unicodedata.category(c).startswith("M") and not _hidden(c):
            return c
    return None


def _visible(name: str) -> str:
    """``name`` as a reader sees it: invisible characters dropped, whitespace runs as one space."""
    return _SPACES.sub(" ", "".join(c for c in name if not _hidden(c))).strip()


def shown(name: str) -> str:
    """:func:`_visible`, cut to MAX_SHOWN characters (the owner suffix after it stays in view)."""
    text = _visible(name)
    if len(text) > MAX_SHOWN:
        text = text[: MAX_SHOWN - 1].rstrip() + "\u2026"
    return text


def look(name: str) -> str:
    """What ``name`` looks like: equal for names a reader could take for each other."""
    text = unicodedata.normalize("NFKD", _visible(name).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_FOLD)
    for pair, single in _DIGRAPHS:
        text = text.replace(pair, single)
    return text


def _scripts(name: str) -> set[str]:
    return {
        unicodedata.name(c, "?").split(" ", 1)[0]
        for c in name
        if unicodedata.category(c).startswith("L")
    }


def is_plain(name: str) -> bool:
    """Whether ``name`` can be shown as it is: it hides nothing and ends in no bracket."""
    if not name or _visible(name) != name or unicodedata.normalize("NFKC", name) != name:
        return False
    if len(_scripts(name) & _LOOKALIKE_SCRIPTS) > 1:
        return False
    last = _last_base(name)
    return last is not None and unicodedata.category(last) not in ("Pe", "Pf")


def mount_names(own: list[str], mounts: list[tuple[int, str, str]]) -> dict[str, int]:
    """The names of the ``mounts`` (share id, item name, owner name; oldest share first) in a
    top folder whose own items are named ``own``: {mount name: share id}."""
    own_looks = {look(name) for name in own}
    taken = set(own)
    counts = Counter(look(name) for _, name, _ in mounts)
    found: dict[str, int] = {}
    suffixed: list[tuple[int, str, str]] = []
    for share_id, name, owner in mounts:
        seen = look(name)
        if is_plain(name) and counts[seen] == 1 and seen not in own_looks:
            found[name] = share_id
        else:
            suffixed.append((share_id, name, owner))
    taken.update(found)
    for share_id, name, owner in suffixed:
        label = nfc(f"{shown(name)} ({owner})")
        if label in taken:
            label = nfc(f"{shown(name)} ({owner} {share_id})")
        taken.add(label)
        found[label] = share_id
    return found
