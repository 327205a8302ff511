"""A client behind a trusted proxy cannot pass for this machine (issue 12, item 19).

A proxy that passes on a client's own ``X-Forwarded-For: 127.0.0.1`` (or appends nothing) over
plain HTTP made the client "loopback", and loopback counts as private: its password was taken
over plain HTTP from the network. Through a proxy, only ``X-Forwarded-Proto: https`` makes a
request private; the address a proxy reports is used for logs and throttling, never trusted to
be this machine.
"""

from __future__ import annotations

import pytest

from tests.live.conftest import Server
from tests.live.test_transport import (
    PROXY_HEADERS,
    assert_refused,
    public_server,
    remote_address,
    request,
)

__all__ = ["public_server", "remote_address"]  # fixtures of the transport tests, used here


@pytest.mark.parametrize("forwarded_for", ["127.0.0.1", "::1", "127.0.0.1, 127.0.0.1"])
def test_forwarded_loopback_over_plain_http_is_refused(
    public_server: Server, forwarded_for: str
) -> None:
    srv, proxy = public_server, "127.0.0.1"
    plain = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "http"}
    assert_refused(request(srv, proxy, "PROPFIND", "/dav/", {**plain, "Depth": "0"}))
    assert_refused(request(srv, proxy, "PUT", "/dav/spoofed.txt", plain, b"x"))
    # Without a scheme the proxy vouches for, the same.
    assert_refused(request(srv, proxy, "PROPFIND", "/dav/", {"X-Forwarded-For": forwarded_for}))
    # Forwarded from HTTPS it is fine, whatever the address.
    status, _, _ = request(srv, proxy, "PROPFIND", "/dav/", {**PROXY_HEADERS, "Depth": "0"})
    assert status == 207
