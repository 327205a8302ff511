"""The key hierarchy above the blobs: master key file, per-user root keys, wrapping.

master key (32 random bytes in a key file kept apart from the data dir, mode 0600; see
            ``Config.master_key_file``)
  -> user root key per user and version, stored only wrapped under the master key
     (AES-256-GCM, AAD binds user id, key version and master key id)
  -> per-blob keys, derived inside :mod:`davdisk.crypto.envelope`, never stored.

No database here. Rotating the master key is one :func:`rewrap_user_key` per stored row;
blobs are untouched. While a rotation is half done the data dir holds two master keys: the key
file and ``<keyfile>.new`` (:func:`pending_key_path`); :class:`MasterKeys` holds both and picks
one by the ``master_key_id`` stored next to each wrapped key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import stat
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from davdisk.errors import KeyMaterialError

MASTER_KEY_SIZE = 32
USER_KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
WRAPPED_SIZE = _NONCE_SIZE + USER_KEY_SIZE + _TAG_SIZE


# --- master key file -------------------------------------------------------------------------


def load_master_key(path: Path, *, create: bool) -> bytes:
    """Read the master key from ``path``; with ``create`` make a fresh one if it is missing.

    Refuses a key file that group or others can access, or that is not exactly
    MASTER_KEY_SIZE bytes. Creation is atomic: the key is written and fsynced under a
    temporary name and then hard-linked into place, so a crash or a concurrent start
    never leaves (or reads) a partial key.
    """
    path = Path(path)
    if create and not path.exists():
        try:
            _create_master_key(path)
        except OSError as exc:
            raise KeyMaterialError(
                f"cannot create master key file {path}: {exc.strerror}"
            ) from None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyMaterialError(f"master key file {path} does not exist") from None
    except OSError as exc:
        raise KeyMaterialError(f"cannot open master key file {path}: {exc.strerror}") from None
    try:
        _check_key_file(path, os.fstat(fd))  # fstat, not stat: checks the file we will read
        key = os.read(fd, MASTER_KEY_SIZE + 1)
    finally:
        os.close(fd)
    if len(key) != MASTER_KEY_SIZE:
        raise KeyMaterialError(
            f"master key file {path} holds {len(key)} bytes, expected {MASTER_KEY_SIZE}"
        )
    return key


MASTER_KEY_ENV = "DAVDISK_MASTER_KEY"


def master_key_from_env() -> bytes | None:
    """The master key given in ``$DAVDISK_MASTER_KEY`` (64 hex digits or 44 base64 characters:
    for instances that keep nothing on local disk, e.g. from a secret store), or None."""
    text = os.environ.get(MASTER_KEY_ENV, "").strip()
    if not text:
        return None
    try:
        key = (
            bytes.fromhex(text)
            if len(text) == 2 * MASTER_KEY_SIZE
            else base64.b64decode(text, validate=True)
        )
    except ValueError:
        key = b""
    if len(key) != MASTER_KEY_SIZE:
        raise KeyMaterialError(
            f"{MASTER_KEY_ENV} must hold a {MASTER_KEY_SIZE}-byte key as 64 hex digits or 44 "
            "base64 characters (e.g. base64 of the key file)"
        )
    return key


def _check_key_file(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise KeyMaterialError(f"master key file {path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyMaterialError(
            f"master key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); chmod 600 {path}"
        )


def _create_master_key(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may only narrow the mode; make it exactly 0600
            if os.write(fd, os.urandom(MASTER_KEY_SIZE)) != MASTER_KEY_SIZE:
                raise KeyMaterialError(f"short write creating master key file {path}")
            os.fsync(fd)
        finally:
            os.close(fd)
        # link() fails if another process won the race: then its key is the key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def master_key_id(master: bytes) -> str:
    """A public 16-hex-char name for a master key (stored next to what it wraps)."""
    return hmac.new(master, b"davenc/master-key-id", hashlib.sha256).digest()[:8].hex()


def pending_key_path(key_file: Path) -> Path:
    """Where ``davdisk key rotate-master`` keeps the new master key until every row uses it."""
    return key_file.with_name(key_file.name + ".new")


def replace_key_file(new: Path, key_file: Path) -> None:
    """Atomically make ``new`` the key file (the old key's only copy on disk goes with it)."""
    os.replace(new, key_file)
    _fsync_dir(key_file.parent)


class MasterKeys:
    """The master keys of a data dir, by key id; thread-safe.

    Normally one: the key file. While ``key rotate-master`` runs (or after it was interrupted)
    also ``<keyfile>.new``, which every row ends up wrapped under. A process that meets a row
    wrapped under a key id it does not hold re-reads the files (:meth:`get`), so a server started
    before a rotation keeps working during and after it.
    """

    def __init__(self, key_file: Path | None, keys: list[bytes]) -> None:
        """``key_file`` None: a fixed set of keys that is never re-read (tests, tools)."""
        self.key_file = key_file
        self._keys = {master_key_id(k): k for k in keys}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, key_file: Path, *, create: bool) -> MasterKeys:
        """Read the key file (created if missing and ``create``) and a pending new key."""
        masters = cls(key_file, [load_master_key(key_file, create=create)])
        masters.reload()
        return masters

    def reload(self) -> None:
        """Re-read the key files; keys already known are kept (in memory only)."""
        if self.key_file is None:
            return
        found = self._read_files(self.key_file)
        with self._lock:
            self._keys.update({master_key_id(k): k for k in found})

    @staticmethod
    def _read_files(key_file: Path) -> list[bytes]:
        # ``.new`` before the key file: the rotation renames one onto the other, so whoever has
        # seen a row wrapped under the new key finds that key in one of the two, read this way.
        found = []
        pending = pending_key_path(key_file)
        if pending.exists():
            try:
                found.append(load_master_key(pending, create=False))
            except KeyMaterialError:
                if pending.exists():
                    raise  # a bad pending key is an error; one renamed away meanwhile is not
        found.append(load_master_key(key_file, create=False))
        return found

    def get(self, key_id: str) -> bytes:
        """The master key named ``key_id``; re-reads the key files once if it is unknown."""
        with self._lock:
            found = self._keys.get(key_id)
        if found is None:
            self.reload()
            with self._lock:
                found = self._keys.get(key_id)
        if found is None:
            raise KeyMaterialError(
                f"no master key with id {key_id} (in {self.key_file or 'memory'} or its .new)"
            )
        return found

    def for_wrapping(self) -> bytes:
        """The key new wrapped keys are made with: the pending key while a rotation is under
        way, else the key file. Read from disk each time (it is rare), so that a process started
        before a rotation never adds a row under a key the rotation is about to remove; call it
        inside the write transaction that stores the row (see ``files/rotation.py``)."""
        if self.key_file is None:
            with self._lock:
                return next(iter(self._keys.values()))
        found = self._read_files(self.key_file)
        with self._lock:
            self._keys.update({master_key_id(k): k for k in found})
        return found[0]

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._keys)


# --- user root keys --------------------------------------------------------------------------


def new_user_key() -> bytes:
    return os.urandom(USER_KEY_SIZE)


def _aad(master: bytes, user_id: int, version: int) -> bytes:
    # Binding user id and version means a wrapped key copied to another row won't unwrap.
    return (
        b"davenc/urk"
        + user_id.to_bytes(8, "big")
        + version.to_bytes(4, "big")
        + master_key_id(master).encode()
    )


def _check_key(name: str, key: bytes, size: int) -> None:
    if len(key) != size:
        raise KeyMaterialError(f"{name} must be {size} bytes, got {len(key)}")


def wrap_user_key(master: bytes, user_key: bytes, *, user_id: int, version: int) -> bytes:
    """nonce (12) || AES-256-GCM(master, user_key, AAD) — WRAPPED_SIZE bytes."""
    _check_key("master key", master, MASTER_KEY_SIZE)
    _check_key("user key", user_key, USER_KEY_SIZE)
    nonce = os.urandom(_NONCE_SIZE)
    return nonce + AESGCM(master).encrypt(nonce, user_key, _aad(master, user_id, version))


def unwrap_user_key(master: bytes, wrapped: bytes, *, user_id: int, version: int) -> bytes:
    """Inverse of :func:`wrap_user_key`; KeyMaterialError unless it verifies."""
    _check_key("master key", master, MASTER_KEY_SIZE)
    what = f"wrapped key of user {user_id} version {version}"
    if len(wrapped) != WRAPPED_SIZE:
        raise KeyMaterialError(f"{what} is {len(wrapped)} bytes, expected {WRAPPED_SIZE}")
    nonce, sealed = wrapped[:_NONCE_SIZE], wrapped[_NONCE_SIZE:]
    try:
        return AESGCM(master).decrypt(nonce, sealed, _aad(master, user_id, version))
    except InvalidTag:
        raise KeyMaterialError(
            f"{what} does not verify under master key {master_key_id(master)}"
        ) from None


def rewrap_user_key(
    old_master: bytes, new_master: bytes, wrapped: bytes, *, user_id: int, version: int
) -> bytes:
    """Master key rotation for one row: unwrap under the old key, wrap under the new."""
    user_key = unwrap_user_key(old_master, wrapped, user_id=user_id, version=version)
    return wrap_user_key(new_master, user_key, user_id=user_id, version=version)
