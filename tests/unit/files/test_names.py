"""Property tests for the name and path sanitiser (``files/names.py``)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from wsgidav.util import normalize_path

from davdisk.errors import InvalidName, UsageError
from davdisk.files.ignorable import is_default_ignorable
from davdisk.files.names import MAX_NAME_BYTES, check_name, check_path, split_path

# Every code point, lone surrogates included (what a lax decoder or surrogateescape produces),
# weighted towards the characters that matter here.
any_char = st.one_of(
    st.sampled_from(["/", "\0", ".", "é", "\U0001f600", "\ud800", "\udcff"]),
    st.characters(exclude_categories=()),  # () rather than the default: surrogates too
)
any_text = st.text(any_char, max_size=300)
# Names near the byte limit: 1- to 4-byte characters in runs long enough to cross it.
wide_text = st.text(st.sampled_from(["a", "é", "€", "\U0001f600"]), min_size=60, max_size=260)
# What XML 1.0 cannot carry (a name in a PROPFIND answer must be XML): C0 controls but tab, LF
# and CR, and U+FFFE/U+FFFF.
NOT_XML = "".join(chr(c) for c in [*range(1, 9), 11, 12, *range(14, 32)]) + "\ufffe\uffff"
# What a new name may not have besides (it forges what a reader sees): tab, LF, CR, DEL and the
# C1 controls, bidi embeddings, overrides and isolates. Request paths may still carry them, to
# reach names stored before that rule.
FORGING = (
    "\t\n\r"
    + "".join(chr(c) for c in range(0x7F, 0xA0))
    + "".join(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
)
KEPT_IGNORABLE = frozenset(
    chr(c) for c in [0x200C, 0x200D, *range(0x180B, 0x1810), *range(0xFE00, 0xFE10)]
) | frozenset(chr(c) for c in range(0xE0100, 0xE01F0))
valid_names = st.text(
    st.characters(codec="utf-8", exclude_characters="/\0" + NOT_XML + FORGING),
    min_size=1,
    max_size=60,
).filter(lambda n: n not in (".", "..") and not any(map(is_default_ignorable, n)))


def utf8_size(name: str) -> int:
    return len(name.encode("utf-8"))


@given(st.one_of(any_text, wide_text))
@example("")
@example(".")
@example("..")
@example("a/b")
@example("a\0")
@example("bell\x07")
@example("tab\tand\r\nnewlines")
@example("\uffff")
@example("Holiday (bob)\u034f")
@example("Holiday (bob)\ufe00")
@example("\u2764\ufe0f\u200d\U0001f525")
@example("\udcff")
@example("é" * 127 + "x")
@example("é" * 128)
@example("\U0002f800")
@example("\u0958" * 80)  # NFC decomposes it: 3 bytes become 6
def test_check_name_passes_only_storable_names(name: str) -> None:
    try:
        stored = check_name(name)
    except InvalidName as e:
        assert e.http_status == 400 and e.message.startswith("invalid name")
        return
    # Names are kept in NFC (a CJK compatibility ideograph such as U+2F800 becomes U+4E3D);
    # what is stored must pass the checks itself.
    assert stored == unicodedata.normalize("NFC", name)
    name = stored
    assert "/" not in name and "\0" not in name
    assert not any(c in NOT_XML or c in FORGING for c in name)
    # of the characters that render as nothing, only joiners and variation selectors are kept
    assert all(c in KEPT_IGNORABLE for c in name if is_default_ignorable(c)), ascii(name)
    assert name not in ("", ".", "..")
    assert utf8_size(name) <= MAX_NAME_BYTES  # encodes strictly: no surrogates


def test_control_characters_xml_cannot_carry_are_refused_by_name() -> None:
    with pytest.raises(InvalidName, match=r"'bell\\x07': contains a control character"):
        check_name("bell\x07")
    with pytest.raises(InvalidName, match=r"contains a control character"):
        check_name("tab\tand\r\nnewlines")
    with pytest.raises(InvalidName, match=r"'invoice\\u202etxt.exe': contains a control"):
        check_name("invoice\u202etxt.exe")


@given(wide_text)
def test_the_byte_limit_is_exact(name: str) -> None:
    fits = utf8_size(name) <= MAX_NAME_BYTES
    if fits:
        assert check_name(name) == name
    else:
        with pytest.raises(InvalidName, match="longer than 255 bytes"):
            check_name(name)


@given(st.binary(max_size=300))
def test_invalid_utf8_never_passes(raw: bytes) -> None:
    # How undecodable request bytes look if decoded leniently: lone surrogates.
    name = raw.decode("utf-8", "surrogateescape")
    try:
        check_name(name)
    except InvalidName:
        return
    assert raw.decode("utf-8") == name


@given(any_text)
@example("/dav/../etc")
@example("a/./b//c/")
@example("..")
@example("a\0/b")
def test_split_path_never_yields_dot_segments(path: str) -> None:
    names = split_path(path)
    if names is None:
        assert ".." in path.split("/") or "\0" in path
        return
    for name in names:
        assert name not in ("", ".", "..")
        assert "/" not in name and "\0" not in name


@given(st.lists(valid_names, max_size=12), st.booleans(), st.booleans(), st.booleans())
def test_split_path_round_trips_joined_names(
    names: list[str], lead: bool, trail: bool, noise: bool
) -> None:
    for name in names:
        check_name(name)  # the strategy yields storable names only (60 characters fit)
    sep = "//" if noise else "/"
    path = ("/" if lead else "") + sep.join(names) + ("/" if trail else "")
    if noise:
        path = path.replace("//", "/./")
    # names come back in NFC, the one spelling they are stored in (U+F900 is U+8C48 in NFC)
    assert split_path(path) == [check_name(name) for name in names]


@given(st.lists(valid_names, min_size=1, max_size=4))
@example(["Cafe\u0301.txt"])
def test_names_are_nfc_whichever_spelling_comes_in(names: list[str]) -> None:
    for name in names:
        stored = check_name(name)
        assert stored == unicodedata.normalize("NFC", name)
        assert check_name(unicodedata.normalize("NFD", name)) == stored
    decomposed = "/".join(unicodedata.normalize("NFD", n) for n in names)
    assert split_path(decomposed) == [check_name(n) for n in names]


@settings(max_examples=300)
@given(any_text, st.integers(min_value=1, max_value=70))
@example("/dav/" + "é" * 128, 64)
@example("/dav/a\0b", 64)
@example("/a/b/c/d", 3)
@example("/dav/../../etc/passwd", 64)
@example("/dav/./../x/..", 64)
@example("/dav/\uf900", 64)
def test_check_path_agrees_with_check_name(path: str, max_depth: int) -> None:
    try:
        check_path(path, max_depth)
    except (InvalidName, UsageError) as e:
        assert e.http_status == 400
        return
    names = [part for part in path.split("/") if part]
    assert len(names) <= max_depth
    normalize_path(path)  # WsgiDAV's routing accepts it: no ".." climbs above the root
    for name in names:
        if name not in (".", ".."):  # left to split_path: a lookup that finds nothing
            if any(c in FORGING for c in name):  # an older name: reachable, not storable anew
                with pytest.raises(InvalidName):
                    check_name(name)
            elif any(map(is_default_ignorable, name)):  # refused unless it joins or varies
                try:
                    assert check_name(name) == unicodedata.normalize("NFC", name)
                except InvalidName as e:
                    assert "invisible character" in e.message
            else:
                # Stored composed (NFC): U+F900 comes back as U+8C48.
                assert check_name(name) == unicodedata.normalize("NFC", name)
