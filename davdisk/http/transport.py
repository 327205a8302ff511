"""Transport policy in front of everything: who the client is and whether the connection is
HTTPS (directly, or through a trusted reverse proxy), HSTS on HTTPS, and no passwords in clear
text from other machines.

Per request this middleware

- decides the client address: ``REMOTE_ADDR``, or, when that is a trusted proxy, the rightmost
  ``X-Forwarded-For`` hop that is not one; it lands in the request context's
  ``client_ip`` (``request_context.py``);
- decides the scheme: HTTPS when cheroot's TLS adapter set ``HTTPS=on``, or a trusted proxy
  said ``X-Forwarded-Proto: https``. ``wsgi.url_scheme`` is rewritten to match, because cheroot
  copies it from an absolute request URI (``PUT https://host/... HTTP/1.1`` sent in clear text
  would otherwise claim HTTPS); the context's ``secure`` says the same as a bool;
- applies a trusted proxy's ``X-Forwarded-Host`` to ``HTTP_HOST``, so that WsgiDAV's COPY/MOVE
  check of the ``Destination`` host and scheme compares with what the client used;
- removes every forwarding header afterwards, so nothing further in (WsgiDAV reads
  ``X-Forwarded-Proto/-Host`` on its own) sees one that was not believed;
- adds ``Strict-Transport-Security`` to every answer sent over HTTPS;
- refuses (403, no ``WWW-Authenticate``) everything that would carry or ask for a password over
  plain HTTP from another machine, unless ``[server] allow_insecure_http``.

What "insecure" covers: a request is *trusted to be private* when it came over HTTPS (to us, or
to a trusted proxy that says so), or from loopback (127.0.0.0/8, ::1) with no sign of having
been forwarded - a request from a loopback proxy that is not in ``trusted_proxies`` but sends
``X-Forwarded-*`` comes from some other machine, over who knows what, and a client address a
trusted proxy reports is never taken for this machine (it may be the client's own header).
Anything else may only make the anonymous probes Windows and others send before credentials
(``OPTIONS`` on ``/``, ``*``, ``/dav/``) and read the landing page, and only without an
``Authorization`` header. Public links (``/s/<token>``, ``/public/<token>/``) are refused too:
their token is a bearer secret as good as a password, and link passwords travel as Basic auth.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from davdisk.config import Config
from davdisk.errors import ConfigError
from davdisk.request_context import context

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HSTS = ("Strict-Transport-Security", "max-age=31536000")

FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_SERVER",
    "HTTP_X_REAL_IP",
    "HTTP_FORWARDED",
)
# The requests a plain-HTTP client on another machine may still make: no credentials involved.
# (cheroot hands ``OPTIONS *`` over as PATH_INFO "/*".)
ANONYMOUS_PROBES = {("OPTIONS", p) for p in ("/", "*", "/*", "/dav", "/dav/")} | {
    ("GET", "/"),
    ("HEAD", "/"),
}
REFUSAL = (
    b"Refused: this server takes passwords and link tokens from other machines only over "
    b"HTTPS. Use an https:// URL (ask the administrator for it).\n"
)
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")


@functools.lru_cache(maxsize=4096)  # every request parses its peer's address; few differ
def parse_ip(text: str) -> IPAddress | None:
    """An address as proxies and sockets write it (``[v6]:port`` and ``v4:port`` included), with
    IPv4-mapped IPv6 (``::ffff:1.2.3.4``, from dual-stack sockets) reduced to IPv4."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def parse_networks(entries: list[str]) -> list[IPNetwork]:
    """``trusted_proxies``: addresses or networks (``10.0.0.0/8``)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"{entry!r} is not an IP address or network", source="[server] trusted_proxies"
            ) from None
    return networks


def is_loopback_host(host: str) -> bool:
    """Whether a listening address only takes connections from this machine."""
    if host == "localhost":
        return True
    ip = parse_ip(host)
    return ip is not None and ip.is_loopback


class Transport:
    def __init__(self, app: WSGIApp, config: Config) -> None:
        self.app = app
        self.allow_insecure = bool(config.get("server", "allow_insecure_http"))
        self.trusted = parse_networks(config.get("server", "trusted_proxies"))
        self._warned_untrusted_forwarder = False

    def _is_trusted(self, ip: IPAddress | None) -> bool:
        return ip is not None and any(ip in net for net in self.trusted)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        remote_addr = environ.get("REMOTE_ADDR", "")
        ctx = context(environ)
        ctx.client_ip = remote_addr  # until a trusted proxy says otherwise
        peer = parse_ip(remote_addr)
        secure = environ.get("HTTPS", "").lower() == "on"
        forwarded = any(environ.get(h) for h in FORWARDING_HEADERS)
        client: IPAddress | None = peer
        if forwarded and self._is_trusted(peer):
            hops = [h for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
            for hop in reversed(hops):
                client = parse_ip(hop)
                if client is None:
                    return self._answer(
                        environ, start_response, "400 Bad Request", b"bad X-Forwarded-For\n"
                    )
                if not self._is_trusted(client):
                    break
            proto = _last(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
            if proto in ("http", "https"):
                secure = proto == "https"
            host = _last(environ.get("HTTP_X_FORWARDED_HOST", ""))
            if _HOST.match(host):
                environ["HTTP_HOST"] = host
            # Only the proxy's word that the client spoke HTTPS to it makes this private: the
            # address it reports may be the client's own X-Forwarded-For passed on ("127.0.0.1"
            # from anywhere), so a forwarded loopback address is not this machine.
            private = secure
        else:
            if forwarded:
                self._warn_untrusted_forwarder(remote_addr)
            # A forwarded request from an untrusted peer came from somewhere else: loopback or
            # not, only HTTPS (to us) makes it private.
            private = secure or (peer is not None and peer.is_loopback and not forwarded)
        for header in FORWARDING_HEADERS:
            environ.pop(header, None)
        if client is not None:
            ctx.client_ip = str(client)
        ctx.secure = secure
        environ["wsgi.url_scheme"] = "https" if secure else "http"

        if not (private or self.allow_insecure or _anonymous_probe(environ)):
            return self._answer(environ, start_response, "403 Forbidden", REFUSAL)
        if not secure:
            return self.app(environ, start_response)

        def with_hsts(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not any(k.lower() == "strict-transport-security" for k, _ in headers):
                headers = [*headers, HSTS]
            return start_response(status, headers, exc_info)

        return self.app(environ, with_hsts)

    def _answer(
        self, environ: dict[str, Any], start_response: Callable[..., Any], status: str, body: bytes
    ) -> list[bytes]:
        # A request body (a PUT's content, say) stays unread: hang up instead of draining it.
        close = context(environ).close_connection
        if close is not None:
            close()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        if context(environ).secure:
            headers.append(HSTS)
        start_response(status, headers)
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    def _warn_untrusted_forwarder(self, peer: str) -> None:
        if not self._warned_untrusted_forwarder:
            self._warned_untrusted_forwarder = True
            logger.warning(
                "%s sends X-Forwarded-* headers but is not in [server] trusted_proxies: they "
                "are ignored, and its plain-HTTP requests count as coming from another machine",
                peer,
            )


def _last(header: str) -> str:
    # The value the proxy nearest to us wrote (proxies that append add theirs at the end).
    return header.rsplit(",", 1)[-1].strip()


def _anonymous_probe(environ: dict[str, Any]) -> bool:
    if environ.get("HTTP_AUTHORIZATION"):
        return False
    return (environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")) in ANONYMOUS_PROBES


def startup_notes(config: Config, host: str, tls: bool) -> list[tuple[int, str]]:
    """What the policy means for this server, logged once at startup."""
    notes: list[tuple[int, str]] = []
    if config.get("server", "allow_insecure_http"):
        notes.append(
            (
                logging.WARNING,
                "!!! allow_insecure_http = true: passwords and link tokens from other machines "
                "are accepted over plain HTTP, readable by anyone on the network path. Use it "
                "only behind a TLS proxy or on a network you trust. !!!",
            )
        )
    elif not tls and not is_loopback_host(host):
        via = (
            "unless a proxy in trusted_proxies forwards them from HTTPS"
            if config.get("server", "trusted_proxies")
            else "use --tls-cert/--tls-key, or a TLS proxy listed in [server] trusted_proxies"
        )
        notes.append(
            (
                logging.WARNING,
                f"listening on {host} without TLS: clients on other machines are refused (403) "
                f"for anything that needs a password; {via}",
            )
        )
    return notes
