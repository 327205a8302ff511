"""Queries on app passwords."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    insert,
    select,
    update,
)

from davdisk.meta.store.rows import by_token_hash, row_by_token_hash
from davdisk.meta.tables import app_tokens

__all__ = [
    "AppTokenRow",
    "app_token_by_hash",
    "create_app_token",
    "delete_app_token",
    "list_app_tokens",
    "touch_app_token",
]


@dataclass(frozen=True, slots=True)
class AppTokenRow:
    id: int
    user_id: int
    label: str
    created_at: float
    last_used_at: float | None


def _app_token(row: Any) -> AppTokenRow:
    return AppTokenRow(row.id, row.user_id, row.label, row.created_at, row.last_used_at)


def create_app_token(conn: Connection, user_id: int, label: str, token_hash: str) -> int:
    return int(
        conn.execute(
            insert(app_tokens).values(
                user_id=user_id, label=label, token_hash=token_hash, created_at=time.time()
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )


_APP_TOKEN_BY_HASH = by_token_hash(app_tokens)


def app_token_by_hash(conn: Connection, token_hash: str) -> AppTokenRow | None:
    row = row_by_token_hash(conn, _APP_TOKEN_BY_HASH, token_hash, "an app password")
    return _app_token(row) if row else None


def list_app_tokens(conn: Connection, user_id: int) -> list[AppTokenRow]:
    rows = conn.execute(
        select(app_tokens).where(app_tokens.c.user_id == user_id).order_by(app_tokens.c.id)
    )
    return [_app_token(r) for r in rows]


def delete_app_token(conn: Connection, user_id: int, token_id: int) -> bool:
    """Revoke one of a user's app passwords; False if the user has none with that id."""
    result = conn.execute(
        delete(app_tokens).where(app_tokens.c.id == token_id, app_tokens.c.user_id == user_id)
    )
    return bool(result.rowcount)


def touch_app_token(conn: Connection, token_id: int, when: float) -> None:
    conn.execute(update(app_tokens).where(app_tokens.c.id == token_id).values(last_used_at=when))
