"""Attacks on a live server (issue 12): the live tier's harness, fixtures and helpers
(``tests.live.conftest``) serve here too."""

from tests.live.conftest import (
    _drop_test_databases,
    module_server,
    server,
    server_factory,
    workdir,
)

__all__ = ["_drop_test_databases", "module_server", "server", "server_factory", "workdir"]
