"""The metadata schema: users, their keys, the node tree, blobs, dead properties and locks.

One schema serves SQLite and PostgreSQL. The tree is kept by parent id, so moving or renaming a
subtree is one UPDATE and listing a folder is one SELECT. Names are stored exactly as sent (no
Unicode normalisation); lookups are exact. Alembic migrations in ``migrations/`` create it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    # Ids are never reused (see migration 0004): a stale id must find nothing, not a newcomer.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[float] = mapped_column(Float)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    quota_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # The user's home folder; set right after the user row exists.
    root_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The hidden folder deleted items go to (migration 0011); made on the first delete.
    trash_root_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Bytes of kept versions and of the trash, apart from used_bytes (what clients see).
    version_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    trash_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class UserKey(Base):
    """A user's root key (URK) of one version, wrapped by the master key."""

    __tablename__ = "user_keys"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)


class Blob(Base):
    """One stored, immutable, encrypted content version. Several nodes of one owner may share it
    (COPY); a blob no node points to is garbage for ``davdisk gc``."""

    __tablename__ = "blobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 16 random bytes, hex
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # node it was written for
    key_version: Mapped[int] = mapped_column(Integer)
    size_plain: Mapped[int] = mapped_column(BigInteger)
    size_cipher: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)


class Node(Base):
    """A file or folder. A user's home is a folder with no parent."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(Text)
    is_dir: Mapped[bool] = mapped_column(Boolean)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime: Mapped[float] = mapped_column(Float)
    ctime: Mapped[float] = mapped_column(Float)
    etag: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # MD5 and SHA-1 of the content, sealed with the owner's key (files/checksums.py); NULL
    # for empty content (its hashes are no secret) and folders.
    checksums: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Before migration 0006 the hashes were stored here in clear (a copy of the database gave
    # small files away). Never written now; a start seals what an older version left and
    # empties them (files/checksum_upgrade.py).
    md5: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sha1: Mapped[str | None] = mapped_column(String(40), nullable=True)
    current_blob_id: Mapped[str | None] = mapped_column(
        ForeignKey("blobs.id"), nullable=True, index=True
    )
    # Positive: when the item (the top of a trashed tree) was deleted; negative: the marker of
    # a staged copy's hidden rows (meta/store/copies.py).
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # A trashed item (migration 0011): who deleted it, the folder it was in (if still there)
    # and its path below the home then.
    trashed_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trash_parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trash_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who wrote the current content (the author of the version it becomes).
    modified_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The name this file was last renamed away from, and when (an editor's save-by-rename).
    vacated_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    vacated_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (
        Index("ix_nodes_parent_id", "parent_id"),
        # Finds the rows with clear hashes left to seal without reading the whole table.
        Index(
            "ix_nodes_clear_checksums",
            "id",
            sqlite_where=text("md5 IS NOT NULL OR sha1 IS NOT NULL"),
            postgresql_where=text("md5 IS NOT NULL OR sha1 IS NOT NULL"),
        ),
        # Names are unique among a folder's live members (trash keeps deleted rows later).
        Index(
            "ux_nodes_parent_name",
            "parent_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        {"sqlite_autoincrement": True},  # ids are never reused (migration 0004)
    )


class Version(Base):
    """Earlier content of a file, kept when it was replaced: it names the immutable blob (no
    ciphertext is copied) and what the node recorded of it."""

    __tablename__ = "versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    etag: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    checksums: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # sealed
    author_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    replaced_at: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_versions_node", "node_id", "replaced_at"),
        Index("ix_versions_owner", "owner_id", "replaced_at"),
        Index("ix_versions_blob", "blob_id"),
        {"sqlite_autoincrement": True},
    )


class Property(Base):
    """A dead property, keyed by node id so it follows MOVE."""

    __tablename__ = "properties"

    node_id: Mapped[int] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(Text, primary_key=True)  # Clark notation
    # The serialised XML element, sealed under the owner's user key (crypto/sealed.py).
    value: Mapped[bytes] = mapped_column(LargeBinary)
    # Bytes charged to the owner's quota: len(name) + len(plaintext value) (files/deadprops.py).
    size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Lock(Base):
    """A WebDAV lock. ``root`` is the per-user reference URL (``/u/<id>/path``)."""

    __tablename__ = "locks"

    token: Mapped[str] = mapped_column(String(100), primary_key=True)
    root: Mapped[str] = mapped_column(Text, index=True)
    scope: Mapped[str] = mapped_column(String(10))
    depth: Mapped[str] = mapped_column(String(10))
    owner: Mapped[bytes] = mapped_column(LargeBinary)
    principal: Mapped[str] = mapped_column(String(64), index=True)
    timeout: Mapped[float] = mapped_column(Float)
    expire: Mapped[float] = mapped_column(Float)


class Share(Base):
    """Access to a node for someone other than its owner: a user (``grantee_id``) or anyone
    holding a link token (``token_hash``; the token itself is shown once and never stored)."""

    __tablename__ = "shares"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (migration 0004)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    grantee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)
    can_reshare: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(100), nullable=True)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)  # the grantee removed the mount
    created_at: Mapped[float] = mapped_column(Float)
    # A link that may only add new names: no reading, listing or replacing (migration 0007).
    file_drop: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Who made it: the owner, or a grantee re-sharing through their own share, whose
    # re-shares and links go when that share does (None: made before migration 0007).
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )


class LooseBlob(Base):
    """A blob in the store that no blob row accounts for yet or any more (migration 0010), for
    stores that cannot be listed cheaply (a bucket):

    - ``pending``: an upload began at ``since``; the commit that adds the blob's row deletes this
      one in the same transaction, so a row left over marks an object a crash or failure may have
      left behind, for gc to delete;
    - ``dead``: no node has used it since ``since``; kept that long for downloads already under
      way (``[blobs] delete_delay``), then gc deletes the object and the row."""

    __tablename__ = "loose_blobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    since: Mapped[float] = mapped_column(Float, index=True)


class AppToken(Base):
    """An app password: works as its user's Basic-auth password until revoked. Only a SHA-256
    of the token is stored (it carries 256 random bits, so no slow hash is needed)."""

    __tablename__ = "app_tokens"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused (migration 0004)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class LoginFailure(Base):
    """Failed logins counted per key (``user:<name>``, ``ip:<address>``, ``link:<share id>``),
    so every server process on one database sees the same lockouts."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[float] = mapped_column(Float)
    last_failure: Mapped[float] = mapped_column(Float, index=True)


class Lease(Base):
    """Who runs a background job (gc, expiry) until when: with several server processes on one
    database, the one holding a job's unexpired lease runs it and the others skip it."""

    __tablename__ = "leases"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[float] = mapped_column(Float)
    last_run_at: Mapped[float | None] = mapped_column(Float, nullable=True)
