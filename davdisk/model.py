"""The value types every layer shares: a node of the tree, a user, a share, who acts and what
they do. Plain immutable values: the metadata layer builds them from rows, the files layer
decides with them, the faces show them. They import nothing of davdisk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Node:
    """A live node of the tree (a file or a folder) as the database holds it."""

    id: int
    owner_id: int
    parent_id: int | None
    name: str
    is_dir: bool
    size: int
    mtime: float
    ctime: float
    etag: str
    content_type: str | None
    checksums: bytes | None  # sealed MD5 and SHA-1 (files/checksums.py); None if empty
    blob_id: str | None


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    password_hash: str
    root_id: int
    disabled: bool
    quota_bytes: int
    used_bytes: int


@dataclass(frozen=True, slots=True)
class Share:
    id: int
    owner_id: int
    node_id: int
    grantee_id: int | None
    token_hash: str | None
    can_write: bool
    can_reshare: bool
    password_hash: str | None
    expires_at: float | None
    hidden: bool
    created_at: float
    file_drop: bool  # a link that may only add new names
    created_by: int | None  # who made it (None: before migration 0007, the owner)

    @property
    def creator_id(self) -> int:
        """Who made it: the owner, or a grantee who re-shared it."""
        return self.owner_id if self.created_by is None else self.created_by


Action = Literal["find", "read", "create", "write", "delete", "lock", "share"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an authenticated user, or the holder of a public link (``link`` set)."""

    id: int
    name: str
    root_id: int
    link: Share | None = None

    @property
    def is_link(self) -> bool:
        return self.link is not None


@dataclass(frozen=True, slots=True)
class Version:
    """Earlier content of a file, kept when it was replaced."""

    id: int
    node_id: int
    owner_id: int
    blob_id: str
    size: int
    mtime: float
    etag: str
    content_type: str | None
    checksums: bytes | None  # sealed, as Node.checksums
    author_id: int | None  # who wrote this content, if known
    replaced_at: float
    label: str | None
    pinned: bool


@dataclass(frozen=True, slots=True)
class TrashItem:
    """A deleted file or folder (the top of a deleted tree) in its owner's trash."""

    id: int
    owner_id: int
    name: str
    is_dir: bool
    size: int  # a file's; a folder's is its tree's, filled in by who lists the trash
    mtime: float
    etag: str
    content_type: str | None
    deleted_at: float
    deleted_by: int | None
    parent_id: int | None  # the folder it was in
    path: str  # where it was, below the owner's home ("/a/b/name")

    @property
    def key(self) -> str:
        """Its name in the trash: ``<name>.d<unix time>`` as Nextcloud's (unique per owner)."""
        return f"{self.name}.d{int(self.deleted_at)}"
