"""Unit tests for the key hierarchy (davdisk.crypto.keys): master key file, wrapping."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from davdisk.crypto.keys import (
    MASTER_KEY_SIZE,
    WRAPPED_SIZE,
    load_master_key,
    master_key_id,
    new_user_key,
    rewrap_user_key,
    unwrap_user_key,
    wrap_user_key,
)
from davdisk.errors import KeyMaterialError

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))
URK = bytes(range(64, 96))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- master key file ----------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_create_master_key(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "master.key"
    old = os.umask(umask)
    try:
        key = load_master_key(path, create=True)
    finally:
        os.umask(old)
    assert len(key) == MASTER_KEY_SIZE
    assert path.read_bytes() == key
    assert mode_of(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key"]  # no temp file left


def test_load_existing_key_is_stable(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_master_key(path, create=True)
    assert load_master_key(path, create=True) == key
    assert load_master_key(path, create=False) == key


def test_fresh_keys_differ(tmp_path: Path) -> None:
    a = load_master_key(tmp_path / "a.key", create=True)
    b = load_master_key(tmp_path / "b.key", create=True)
    assert a != b


def test_missing_key_without_create(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    with pytest.raises(KeyMaterialError, match="does not exist"):
        load_master_key(path, create=False)
    assert not path.exists()


def test_create_in_missing_directory_is_a_key_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "master.key"
    with pytest.raises(KeyMaterialError, match="cannot create"):
        load_master_key(path, create=True)


def write_key_file(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    path.chmod(mode)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_wrong_length_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "master.key"
    write_key_file(path, b"k" * size, 0o600)
    with pytest.raises(KeyMaterialError) as exc:
        load_master_key(path, create=True)
    assert str(path) in str(exc.value)
    assert path.read_bytes() == b"k" * size  # never overwritten


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o610])
def test_loose_mode_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    write_key_file(path, b"k" * 32, mode)
    with pytest.raises(KeyMaterialError) as exc:
        load_master_key(path, create=False)
    assert f"chmod 600 {path}" in str(exc.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    write_key_file(path, b"k" * 32, mode)
    assert load_master_key(path, create=False) == b"k" * 32


def test_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.mkdir(mode=0o700)
    with pytest.raises(KeyMaterialError):
        load_master_key(path, create=True)


# --- master key id ------------------------------------------------------------------------------


def test_master_key_id() -> None:
    kid = master_key_id(MASTER)
    assert kid == hmac.new(MASTER, b"davenc/master-key-id", hashlib.sha256).digest()[:8].hex()
    assert kid == "7e0484028d100323"  # pinned: stored in user_keys rows, must never change
    assert len(kid) == 16 and kid == kid.lower()
    assert master_key_id(OTHER_MASTER) != kid


# --- wrapping user keys -------------------------------------------------------------------------


def test_new_user_key() -> None:
    a, b = new_user_key(), new_user_key()
    assert len(a) == len(b) == 32
    assert a != b


def test_wrap_unwrap_round_trip() -> None:
    wrapped = wrap_user_key(MASTER, URK, user_id=5, version=2)
    assert len(wrapped) == WRAPPED_SIZE == 60
    assert URK not in wrapped
    assert unwrap_user_key(MASTER, wrapped, user_id=5, version=2) == URK
    # A fresh nonce each time.
    assert wrap_user_key(MASTER, URK, user_id=5, version=2) != wrapped


def test_wrap_format_matches_design() -> None:
    # Independent decryption from the documented layout and AAD.
    wrapped = wrap_user_key(MASTER, URK, user_id=5, version=2)
    aad = b"davenc/urk" + (5).to_bytes(8, "big") + (2).to_bytes(4, "big")
    aad += master_key_id(MASTER).encode()
    assert AESGCM(MASTER).decrypt(wrapped[:12], wrapped[12:], aad) == URK


@pytest.mark.parametrize(
    ("master", "user_id", "version"),
    [(OTHER_MASTER, 5, 2), (MASTER, 6, 2), (MASTER, 5, 3), (MASTER, 5 + (1 << 32), 2)],
)
def test_unwrap_fails_with_wrong_context(master: bytes, user_id: int, version: int) -> None:
    wrapped = wrap_user_key(MASTER, URK, user_id=5, version=2)
    with pytest.raises(KeyMaterialError):
        unwrap_user_key(master, wrapped, user_id=user_id, version=version)


@pytest.mark.parametrize("offset", [0, 11, 12, 30, 43, 44, 59])
def test_unwrap_fails_when_tampered(offset: int) -> None:
    wrapped = bytearray(wrap_user_key(MASTER, URK, user_id=5, version=2))
    wrapped[offset] ^= 0x04
    with pytest.raises(KeyMaterialError, match="does not verify"):
        unwrap_user_key(MASTER, bytes(wrapped), user_id=5, version=2)


@pytest.mark.parametrize("size", [0, 59, 61])
def test_unwrap_rejects_wrong_length(size: int) -> None:
    wrapped = wrap_user_key(MASTER, URK, user_id=5, version=2)
    data = (wrapped + b"x")[:size] if size else b""
    with pytest.raises(KeyMaterialError):
        unwrap_user_key(MASTER, data, user_id=5, version=2)


def test_bad_key_lengths_are_refused() -> None:
    with pytest.raises(KeyMaterialError):
        wrap_user_key(MASTER[:16], URK, user_id=1, version=1)
    with pytest.raises(KeyMaterialError):
        wrap_user_key(MASTER, URK[:31], user_id=1, version=1)
    with pytest.raises(KeyMaterialError):
        unwrap_user_key(MASTER + b"x", bytes(60), user_id=1, version=1)


def test_rewrap_moves_a_key_to_a_new_master() -> None:
    wrapped = wrap_user_key(MASTER, URK, user_id=9, version=1)
    rewrapped = rewrap_user_key(MASTER, OTHER_MASTER, wrapped, user_id=9, version=1)
    assert unwrap_user_key(OTHER_MASTER, rewrapped, user_id=9, version=1) == URK
    with pytest.raises(KeyMaterialError):
        unwrap_user_key(MASTER, rewrapped, user_id=9, version=1)
