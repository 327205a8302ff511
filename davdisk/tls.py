"""TLS for the server, in one place: a certificate and key checked and turned into an
``SSLContext`` that speaks TLS 1.2 or newer only, what the start-up log says of them, and
self-signed certificates for a first try. Connections use the context in ``http/tls_adapter.py``,
and ``http/gate.py`` does the handshakes without tying up a worker thread."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from davdisk.errors import ConfigError, UsageError

logger = logging.getLogger(__name__)

MIN_VERSION = ssl.TLSVersion.TLSv1_2
# macOS and iOS refuse TLS server certificates valid for longer than this, self-signed included.
MAX_DAYS = 825

# --------------------------------------------------------------------------- server certificate


@dataclass(frozen=True)
class ServerTLS:
    """A loaded certificate and key, ready to serve."""

    context: ssl.SSLContext
    cert_path: Path
    key_path: Path
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)


def tls_settings(cert: str, key: str) -> tuple[Path, Path] | None:
    """The configured pair, ``None`` for plain HTTP; one without the other is an error."""
    if not cert and not key:
        return None
    if not cert or not key:
        missing, given = ("certificate", "key") if not cert else ("key", "certificate")
        raise ConfigError(
            f"a TLS {given} needs its {missing} too: give --tls-cert and --tls-key "
            "([server] tls_cert and tls_key) together",
            source="TLS settings",
        )
    return Path(cert).expanduser().absolute(), Path(key).expanduser().absolute()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", source=what) from None


def load_server_tls(cert_path: Path, key_path: Path) -> ServerTLS:
    """Check the pair and build the server context; every problem is a one-line ConfigError
    naming the file (never a passphrase prompt: the key must be unencrypted)."""
    cert_data = _read(cert_path, "TLS certificate")
    key_data = _read(key_path, "TLS key")
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise ConfigError(
            f"{cert_path} holds no PEM certificate", source="TLS certificate"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise ConfigError(
            f"{key_path} is protected by a passphrase; davdisk needs an unencrypted key "
            "(e.g. openssl pkey -in KEY -out NEW_KEY, then chmod 600 NEW_KEY)",
            source="TLS key",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{key_path} holds no PEM private key", source="TLS key") from None
    leaf = chain[0]
    if _public_der(leaf.public_key()) != _public_der(key.public_key()):
        raise ConfigError(
            f"the key in {key_path} does not belong to the certificate in {cert_path}",
            source="TLS key",
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # Python's default context starts at TLS 1.2 already; said here so that no platform or
    # future default can lower it.
    context.minimum_version = MIN_VERSION
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_passphrase)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"{cert_path} / {key_path}: {e}", source="TLS settings") from None
    return ServerTLS(context, cert_path, key_path, leaf)


def _no_passphrase() -> bytes:
    # Never prompt on the terminal of a server: an encrypted key was refused above already.
    raise ConfigError("the TLS key needs a passphrase", source="TLS key")


def _public_der(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def fingerprint(cert: x509.Certificate, algorithm: hashes.HashAlgorithm | None = None) -> str:
    """SHA-256 (or ``algorithm``) of the DER certificate as clients show it: ``AB:CD:...``.
    Some clients show only SHA-1 (GNOME's gvfs): only for comparing, never for trusting."""
    digest = cert.fingerprint(algorithm or hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def subject_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)] + [
        str(n) for n in san.get_values_for_type(x509.IPAddress)
    ]


def describe(tls: ServerTLS, now: dt.datetime | None = None) -> list[tuple[int, str]]:
    """Startup log lines about the certificate: what it covers, and whether clients will take it."""
    now = now or dt.datetime.now(dt.UTC)
    cert = tls.certificate
    lines = [
        (
            logging.INFO,
            f"TLS certificate {tls.cert_path} for {', '.join(subject_names(cert)) or '(no names)'}"
            f", valid until {cert.not_valid_after_utc:%Y-%m-%d}, SHA-256 {tls.fingerprint}",
        )
    ]
    if cert.not_valid_after_utc < now:
        lines.append((logging.WARNING, f"the TLS certificate {tls.cert_path} has EXPIRED"))
    elif cert.not_valid_before_utc > now:
        lines.append((logging.WARNING, f"the TLS certificate {tls.cert_path} is not valid yet"))
    if tls.key_path.stat().st_mode & 0o004:
        lines.append(
            (logging.WARNING, f"the TLS key {tls.key_path} is readable by everyone: chmod 600 it")
        )
    return lines


# --------------------------------------------------------------------------- self-signed


_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def subject_name(host: str) -> x509.GeneralName:
    """A SAN entry for ``host``: an IP address, or a DNS name (``*.`` wildcard allowed)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        ascii_name = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.split(".")
    if labels and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if not ascii_name or len(ascii_name) > 253 or not all(_DNS_LABEL.match(x) for x in labels):
        raise UsageError(f"--host {host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(ascii_name)


def default_hosts() -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname()
    if hostname and hostname not in names:
        try:
            subject_name(hostname)
            names.append(hostname)
        except UsageError:
            pass  # a host name no certificate can carry; the user can pass --host
    return names


def self_signed(
    hosts: list[str], days: int, now: dt.datetime | None = None
) -> tuple[x509.Certificate, bytes, bytes]:
    """A new P-256 key and a self-signed server certificate for ``hosts``.

    Returns (certificate, certificate PEM, unencrypted PKCS#8 key PEM)."""
    if not 1 <= days <= MAX_DAYS:
        raise UsageError(
            f"--days must be between 1 and {MAX_DAYS} (macOS and iOS refuse certificates "
            f"valid for longer); got {days}"
        )
    names = list(dict.fromkeys(subject_name(h) for h in hosts))
    if not names:
        raise UsageError("a certificate needs at least one --host")
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    first = names[0].value
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, str(first)[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "davdisk self-signed"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # An hour of slack for clients whose clocks run a little behind.
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # An end-entity certificate (browsers refuse a CA certificate as a server's).
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert, cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data`` and ``mode`` atomically: written and synced under a temp
    name, then linked into place, which fails if ``path`` exists (no overwrite, even in a race).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
