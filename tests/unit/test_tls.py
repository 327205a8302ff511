"""davdisk.tls without sockets: self-signed certificates, the checks on a certificate and key
before serving, and the transport helpers that parse addresses and proxy settings."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from davdisk import tls
from davdisk.errors import ConfigError, UsageError
from davdisk.http.transport import is_loopback_host, parse_ip, parse_networks


def _write_pair(tmp_path: Path, hosts: list[str], days: int = 30) -> tuple[Path, Path]:
    _cert, cert_pem, key_pem = tls.self_signed(hosts, days)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.write_new_file(cert_path, cert_pem, 0o644)
    tls.write_new_file(key_path, key_pem, 0o600)
    return cert_path, key_path


def test_self_signed_names_dns_and_ip_sans_and_is_a_server_leaf() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    cert, cert_pem, key_pem = tls.self_signed(
        ["nas.example", "192.0.2.10", "::1", "*.lan.example", "Bücher.example"], 90, now
    )
    assert x509.load_pem_x509_certificate(cert_pem) == cert
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "nas.example",
        "*.lan.example",
        "xn--bcher-kva.example",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.10"),
        ipaddress.ip_address("::1"),
    ]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.not_valid_after_utc == now + dt.timedelta(days=90)
    assert cert.not_valid_before_utc < now
    assert cert.issuer == cert.subject
    # Self-signed: its own public key verifies its signature.
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]


def test_self_signed_fingerprint_is_sha256_of_der() -> None:
    cert, _, _ = tls.self_signed(["localhost"], 1)
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    assert tls.fingerprint(cert).replace(":", "") == digest
    assert len(tls.fingerprint(cert).split(":")) == 32


@pytest.mark.parametrize("days", [0, -5, tls.MAX_DAYS + 1])
def test_self_signed_refuses_bad_validity(days: int) -> None:
    with pytest.raises(UsageError, match="--days must be between 1 and 825"):
        tls.self_signed(["localhost"], days)


@pytest.mark.parametrize(
    "host", ["bad_name!", "", "-lead.example", "a..b", "trail-.example", "x" * 64 + ".example"]
)
def test_subject_name_refuses_what_is_neither_ip_nor_dns(host: str) -> None:
    with pytest.raises(UsageError, match="neither an IP address nor a DNS name"):
        tls.subject_name(host)


def test_default_hosts_cover_loopback_and_this_machine() -> None:
    hosts = tls.default_hosts()
    assert hosts[:3] == ["localhost", "127.0.0.1", "::1"]
    assert socket.gethostname() in hosts or socket.gethostname() == "localhost"


def test_load_server_tls_builds_a_tls12_minimum_context(tmp_path: Path) -> None:
    cert_path, key_path = _write_pair(tmp_path, ["localhost"])
    loaded = tls.load_server_tls(cert_path, key_path)
    assert loaded.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert loaded.context.verify_mode == ssl.CERT_NONE  # no client certificates asked for
    assert tls.subject_names(loaded.certificate) == ["localhost"]


def _handshake_over_socketpair(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> str:
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(right, server_side=True) as tls_sock:
                tls_sock.recv(1)
        except (OSError, ssl.SSLError) as e:
            errors.append(e)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(left) as tls_sock:
            version = tls_sock.version()
            tls_sock.sendall(b"x")
    finally:
        left.close()
        thread.join(10)
        right.close()
    assert version is not None
    return version


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_11_is_refused_by_our_setting_not_only_by_openssl_policy(tmp_path: Path) -> None:
    """This machine's OpenSSL refuses TLS 1.0/1.1 at its default security level anyway, so the
    live test cannot tell whether the server's context would. Lower that floor on the server's
    own context: TLS 1.1 must still fail (its minimum_version), where a context that allows
    TLS 1.1 completes the same handshake."""
    cert_path, key_path = _write_pair(tmp_path, ["localhost"])
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_ciphers("DEFAULT:@SECLEVEL=0")
    client.minimum_version = ssl.TLSVersion.TLSv1
    client.maximum_version = ssl.TLSVersion.TLSv1_1

    ours = tls.load_server_tls(cert_path, key_path).context
    ours.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        _handshake_over_socketpair(ours, client)

    control = tls.load_server_tls(cert_path, key_path).context
    control.set_ciphers("DEFAULT:@SECLEVEL=0")
    control.minimum_version = ssl.TLSVersion.TLSv1
    assert _handshake_over_socketpair(control, client) == "TLSv1.1"


def test_tls_settings_need_both_files_or_none() -> None:
    assert tls.tls_settings("", "") is None
    with pytest.raises(ConfigError, match="certificate needs its key"):
        tls.tls_settings("c.pem", "")
    with pytest.raises(ConfigError, match="key needs its certificate"):
        tls.tls_settings("", "k.pem")


def test_load_server_tls_errors_name_the_file(tmp_path: Path) -> None:
    cert_path, key_path = _write_pair(tmp_path, ["localhost"])
    other = tmp_path / "other"
    other.mkdir()
    _other_cert, other_key = _write_pair(other, ["localhost"])
    junk = tmp_path / "junk.pem"
    junk.write_text("not pem\n")
    encrypted = tmp_path / "encrypted.pem"
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    missing = tmp_path / "missing.pem"
    cases = [
        (missing, key_path, f"cannot read {missing}: No such file or directory"),
        (cert_path, missing, f"cannot read {missing}"),
        (junk, key_path, f"{junk} holds no PEM certificate"),
        (cert_path, junk, f"{junk} holds no PEM private key"),
        (cert_path, encrypted, f"{encrypted} is protected by a passphrase"),
        (cert_path, other_key, f"the key in {other_key} does not belong to the certificate"),
        (key_path, cert_path, f"{key_path} holds no PEM certificate"),
        (tmp_path, key_path, f"cannot read {tmp_path}"),
    ]
    for cert_arg, key_arg, message in cases:
        with pytest.raises(ConfigError) as info:
            tls.load_server_tls(cert_arg, key_arg)
        assert message in info.value.message, (cert_arg, key_arg, info.value.message)
        assert "\n" not in info.value.message


def test_describe_warns_about_expiry_and_a_world_readable_key(tmp_path: Path) -> None:
    cert_path, key_path = _write_pair(tmp_path, ["localhost"], days=1)
    loaded = tls.load_server_tls(cert_path, key_path)
    assert [lvl for lvl, _ in tls.describe(loaded)] == [logging.INFO]
    key_path.chmod(0o644)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    warnings = [msg for lvl, msg in tls.describe(loaded, later) if lvl == logging.WARNING]
    assert any("EXPIRED" in m for m in warnings), warnings
    assert any("readable by everyone" in m for m in warnings), warnings


def test_write_new_file_never_overwrites_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    tls.write_new_file(target, b"first", 0o600)
    assert target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        tls.write_new_file(target, b"second", 0o600)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.5", "127.0.0.5"),  # dual-stack sockets report IPv4 clients so
        ("203.0.113.9:4711", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        (" 2001:db8::2 ", "2001:db8::2"),
        ("unknown", None),
        ("", None),
    ],
)
def test_parse_ip(text: str, expected: str | None) -> None:
    ip = parse_ip(text)
    assert (str(ip) if ip is not None else None) == expected


def test_parse_networks_accepts_addresses_and_networks_only() -> None:
    nets = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])
    assert ipaddress.ip_address("10.2.3.4") in nets[1]
    with pytest.raises(ConfigError, match=r"trusted_proxies.*'proxy\.example'"):
        parse_networks(["proxy.example"])


def test_loopback_hosts() -> None:
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "::", "192.0.2.2", "nas.example"))


def test_self_signed_fingerprint_sha1_for_gnome() -> None:
    cert, _, _ = tls.self_signed(["localhost"], 1)
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha1(der).hexdigest().upper()  # what GNOME shows
    assert tls.fingerprint(cert, hashes.SHA1()).replace(":", "") == digest
    assert len(tls.fingerprint(cert, hashes.SHA1()).split(":")) == 20
