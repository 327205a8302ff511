"""Unicode's default-ignorable code points: characters a renderer shows as nothing.

Used by the name rules (``files/names.py``), which refuse most of them in new names, and by the
mount names (``files/mount_names.py``), which count all of them as hidden. Python's
``unicodedata`` has no Default_Ignorable_Code_Point property, and the general categories do not
give it (U+034F and the variation selectors are combining marks, the Hangul fillers letters), so
the set is a table here.
"""

from __future__ import annotations

from bisect import bisect_right

# Default_Ignorable_Code_Point, from DerivedCoreProperties.txt of Unicode 15.1 (unchanged in
# 16.0), adjacent ranges merged: (first, last) inclusive, sorted.
_RANGES = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero-width space, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),  # bidi embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, bidi isolates, deprecated formats
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1-16
    (0xFEFF, 0xFEFF),  # zero-width no-break space (BOM)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol beam and phrase controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors 17-256, unassigned
)
_FIRSTS = tuple(first for first, _ in _RANGES)

ZWNJ, ZWJ = "\u200c", "\u200d"


def is_default_ignorable(c: str) -> bool:
    """Whether the character ``c`` is a Default_Ignorable_Code_Point."""
    code = ord(c)
    i = bisect_right(_FIRSTS, code) - 1
    return i >= 0 and code <= _RANGES[i][1]


def is_variation_selector(c: str) -> bool:
    """A character that picks a glyph for the one before it: the variation selectors (emoji,
    ideographic variants) and the Mongolian free variation selectors and vowel separator."""
    code = ord(c)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or 0x180B <= code <= 0x180F
