"""Dead properties (PROPPATCH): their limits, what they cost, and their encryption at rest.

Limits, so PROPPATCH cannot be a second, unmetered store:

- a value (the serialised XML element) is at most :data:`MAX_VALUE_BYTES`, a name at most
  :data:`MAX_NAME_BYTES`, and one resource holds at most :data:`MAX_PER_RESOURCE` properties;
- each property costs its owner ``len(name) + len(value)`` bytes of quota (:func:`cost`),
  counted in ``users.used_bytes`` like file content and kept per row in ``properties.size``
  so that deleting, copying and ``fsck`` need not decrypt anything.

Beyond a limit the files API raises :class:`~davdisk.errors.InsufficientStorage`, which WebDAV
reports as 507 in the PROPPATCH propstat: RFC 4918 9.2.1 names 507 for "the server did not
have sufficient space to record the property", and a per-resource budget is such space.

Values are sealed (:mod:`davdisk.crypto.sealed`) under the owner's current user key, with the
property name as associated data. A value stored before sealing existed (plain XML) is still
read as it is, and sealed when it is next written.
"""

from __future__ import annotations

from collections.abc import Mapping

from davdisk.crypto import sealed
from davdisk.errors import InsufficientStorage
from davdisk.files.keyring import Keyring

MAX_VALUE_BYTES = 64 * 1024
MAX_NAME_BYTES = 1024
MAX_PER_RESOURCE = 100


def cost(name: str, plain: bytes) -> int:
    """Quota bytes one property takes."""
    return len(name.encode("utf-8")) + len(plain)


def check_limits(current: Mapping[str, int], changes: Mapping[str, bytes | None]) -> None:
    """Refuse ``changes`` (name -> plaintext value, None to remove) to a resource whose
    properties are ``current`` (name -> cost) if any value, name or the count exceeds a limit."""
    for name, value in changes.items():
        if value is None:
            continue
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise InsufficientStorage(f"a property name is limited to {MAX_NAME_BYTES} bytes")
        if len(value) > MAX_VALUE_BYTES:
            raise InsufficientStorage(f"a property value is limited to {MAX_VALUE_BYTES} bytes")
    names = set(current)
    for name, value in changes.items():
        if value is None:
            names.discard(name)
        else:
            names.add(name)
    if len(names) > MAX_PER_RESOURCE and len(names) > len(current):
        raise InsufficientStorage(f"a resource holds at most {MAX_PER_RESOURCE} dead properties")


def growth(current: Mapping[str, int], changes: Mapping[str, bytes | None]) -> int:
    """Quota bytes ``changes`` add (negative: free) to a resource with ``current``."""
    delta = 0
    for name, value in changes.items():
        delta -= current.get(name, 0)
        if value is not None:
            delta += cost(name, value)
    return delta


class PropertyCrypt:
    """Seals and opens dead property values with their owner's user keys. Thread-safe."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def seal(self, owner_id: int, name: str, plain: bytes) -> bytes:
        version, _urk = self._keyring.current(owner_id)
        key = self._keyring.sealing_key(owner_id, version)
        return sealed.seal(key, version, owner_id, name.encode("utf-8"), plain)

    def open(self, owner_id: int, name: str, stored: bytes) -> bytes:
        if not sealed.is_sealed(stored):
            return stored  # written before values were sealed
        key = self._keyring.sealing_key(owner_id, sealed.key_version(stored))
        return sealed.open_sealed(key, owner_id, name.encode("utf-8"), stored)

    def open_all(self, owner_id: int, stored: Mapping[str, bytes]) -> dict[str, bytes]:
        return {name: self.open(owner_id, name, value) for name, value in stored.items()}
