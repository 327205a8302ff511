"""Lock keys: what is built from names reads back as the same names and path."""

from __future__ import annotations

import pytest

from davdisk import lockkeys

NAMES = [[], ["a"], ["Documents", "Q3 report (final).odt"], ["%41", "ü", "a#b?c", "x y"]]


@pytest.mark.parametrize("names", NAMES)
def test_keys_read_back(names: list[str]) -> None:
    key = lockkeys.of_names(7, names)
    assert key == lockkeys.of_path(7, "/" + "/".join(names))
    assert key == lockkeys.home(7) or key.startswith(lockkeys.home(7) + "/")
    assert lockkeys.parse(key) == (7, names)
    assert lockkeys.path_of(key) == "/" + "/".join(names)


@pytest.mark.parametrize("ref", ["", "/", "/link/3/", "/u/", "/u/x/a", "/v/1/a"])
def test_what_is_not_a_key(ref: str) -> None:
    assert lockkeys.parse(ref) is None
    assert lockkeys.path_of(ref) == "/"


def test_home_alone_is_the_root() -> None:
    assert lockkeys.parse("/u/12") == (12, [])
    assert lockkeys.path_of("/u/12") == "/"
