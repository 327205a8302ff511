"""``davdisk cert self-signed``: a key and certificate for a first try of HTTPS."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from davdisk.config import Config
from davdisk.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    cert = sub.add_parser("cert", help="make TLS certificates")
    csub = cert.add_subparsers(dest="cert_command", metavar="ACTION", required=True)
    ss = csub.add_parser(
        "self-signed",
        help="write a self-signed certificate and key",
        description="Write DIR/cert.pem and DIR/key.pem (mode 0600) for a first try of HTTPS; "
        "then: davdisk serve --tls-cert DIR/cert.pem --tls-key DIR/key.pem",
    )
    ss.add_argument("--out", required=True, metavar="DIR")
    ss.add_argument(
        "--host",
        action="append",
        metavar="NAME",
        help="a DNS name or IP address the certificate is for (repeatable; default: "
        "localhost, 127.0.0.1, ::1 and this machine's name)",
    )
    ss.add_argument("--days", type=int, default=365, help="validity in days (default 365)")


def run(args: argparse.Namespace, cfg: Config) -> int:
    out = Path(args.out).expanduser().absolute()
    cert_path, key_path = out / "cert.pem", out / "key.pem"
    existing = [str(p) for p in (cert_path, key_path) if p.exists() or p.is_symlink()]
    if existing:
        raise UsageError(
            f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "davdisk never overwrites a certificate or key: remove them or choose another --out"
        )
    from cryptography.hazmat.primitives import hashes

    from davdisk import tls  # cryptography.x509: only this command pays for the import

    hosts = args.host or tls.default_hosts()
    cert, cert_pem, key_pem = tls.self_signed(hosts, args.days)
    out.mkdir(parents=True, exist_ok=True)
    # The key first: a certificate without its key is useless, a key alone harmless to redo.
    tls.write_new_file(key_path, key_pem, 0o600)
    try:
        tls.write_new_file(cert_path, cert_pem, 0o644)
    except BaseException:
        key_path.unlink()
        raise
    names = ", ".join(tls.subject_names(cert))
    print(f"wrote {cert_path} (certificate, for {names})")
    print(f"wrote {key_path} (private key, mode 0600: keep it secret)")
    print(f"valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    print(f"SHA-256 fingerprint: {tls.fingerprint(cert)}")
    # GNOME Files (gvfs) shows only this one in its "identity not verified" question
    print(f"SHA-1 fingerprint: {tls.fingerprint(cert, hashes.SHA1())}")
    print("serve with:")
    print(
        f"  davdisk serve --tls-cert {shlex.quote(str(cert_path))} "
        f"--tls-key {shlex.quote(str(key_path))}"
    )
    print(
        "Clients will warn that nobody vouches for this certificate: compare the fingerprint "
        "they show (SHA-256, or SHA-1 in GNOME) with the one above before you accept it, or "
        "import cert.pem as trusted."
    )
    return 0
