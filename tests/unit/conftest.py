"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from davdisk import config as config_mod
from davdisk.services import Services
from tests.pg import drop_database, use_test_database


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    """A fresh data dir (bcrypt cost 4) with alice and bob; modules may define their own."""
    cfg = config_mod.load(None, data_dir=tmp_path / "data")
    cfg.set("auth", "bcrypt_cost", 4, "test")
    use_test_database(cfg)  # PostgreSQL in a run given one (python -m tests.pg -- pytest ...)
    s = Services.open(cfg, create=True)
    s.admin.add_user("alice", "alice-password-1")
    s.admin.add_user("bob", "bob-password-22")
    yield s
    s.close()
    drop_database(cfg.database_url)
