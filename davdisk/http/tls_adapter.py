"""The TLS adapter of davdisk's cheroot: :class:`TLSAdapter` wraps accepted sockets in the
context of ``tls.py`` without handshaking (``http/gate.py`` does that, step by step); cheroot's
builtin adapter would handshake inside the accept loop, where one silent client stalled every
new connection for a minute.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from cheroot.ssl.builtin import BuiltinSSLAdapter

from davdisk.tls import ServerTLS


class TLSAdapter(BuiltinSSLAdapter):
    """cheroot's builtin adapter around our context; the gate does the handshake."""

    def __init__(self, tls: ServerTLS) -> None:
        # Skip BuiltinSSLAdapter.__init__: it would load the files again into a context of its
        # own and handshake with itself over a socket pair just to describe the certificate.
        super(BuiltinSSLAdapter, self).__init__(str(tls.cert_path), str(tls.key_path))
        self.context = tls.context

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, Any]]:
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def get_environ(self, sock: ssl.SSLSocket) -> dict[str, Any]:  # type: ignore[override]
        cipher = sock.cipher()
        env: dict[str, Any] = {"wsgi.url_scheme": "https", "HTTPS": "on"}
        if cipher:
            env.update(SSL_CIPHER=cipher[0], SSL_PROTOCOL=cipher[1])
        return env
