"""Settings: one schema, with defaults, validators and errors that name their source.

Settings come from (later wins): built-in defaults, a TOML file (``--config``), environment
variables for the few that deployments set that way (``DAVDISK_DATA_DIR``), and command-line flags.
``config/davdisk.example.toml`` documents every key; a test keeps the two in step.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from davdisk.errors import ConfigError, UsageError

_SIZE = re.compile(r"^(\d+)\s*([KMGT]?)i?B?$", re.IGNORECASE)
_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``10G``, ``500M``, ``64K``, ``1234`` (bytes); binary units; ``0`` means unlimited."""
    m = _SIZE.match(text.strip())
    if not m:
        raise UsageError(f"bad size {text!r}: use e.g. 10G, 500M, 64K, 1234 or 0 (unlimited)")
    return int(m.group(1)) * _FACTORS[m.group(2).upper()]


@dataclass(frozen=True)
class Rule:
    """A ``[versions] retention`` value, parsed (Nextcloud's ``versions_retention_obligation``).

    ``thin``: Nextcloud's interval thinning applies (to versions older than ``keep_days`` if
    that is set). ``keep_days``: no version younger than this many days expires by age.
    ``max_days``: every version older than this many days expires. ``enabled`` False: nothing
    expires by age (``"disabled"``). What the fields do is :mod:`davdisk.files.retention`'s job;
    the grammar lives here, beside :func:`parse_size`, so that the settings check it when they
    are read (config is below files/ in the layers).
    """

    thin: bool = True
    keep_days: int | None = None
    max_days: int | None = None
    enabled: bool = True


_RULE_FORMS = (
    '"auto", "D, auto" (keep all for D days, then auto), "auto, D" (auto, and none older '
    'than D days), "D1, D2" (keep all for D1 days, none older than D2; D1 <= D2) or "disabled"'
    " (D: whole days >= 1)"
)


def parse_rule(text: str) -> Rule:
    """``"auto"``, ``"D, auto"``, ``"auto, D"``, ``"D1, D2"`` or ``"disabled"``; spaces and case
    do not matter. Raises ValueError, one line naming the forms. Unlike Nextcloud, which falls
    back to ``auto`` on a bad value with a log line, a typo stops the server at start-up: a
    retention that silently differs from the one written deletes history nobody meant to lose.
    A bare ``"D"`` is refused too (Nextcloud reads it as ``"D, auto"``; it reads as easily as
    "expire after D days")."""
    if not isinstance(text, str):
        raise ValueError(f"must be a string: {_RULE_FORMS}")
    parts = [p.strip().lower() for p in text.split(",")]
    if parts == ["disabled"]:
        return Rule(thin=False, enabled=False)
    if parts == ["auto"] or parts == ["auto", "auto"]:  # the second: Nextcloud's spelling too
        return Rule()
    if len(parts) == 2 and all(p == "auto" or re.fullmatch(r"[0-9]+", p) for p in parts):
        low, high = (None if p == "auto" else int(p) for p in parts)
        if (low is None or low >= 1) and (high is None or high >= 1):
            if low is None:
                return Rule(max_days=high)
            if high is None:
                return Rule(keep_days=low)
            if low <= high:
                return Rule(thin=False, keep_days=low, max_days=high)
    raise ValueError(f"must be {_RULE_FORMS}")


def _port(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 65535:
        raise ValueError("must be an integer between 0 and 65535")
    return v


def _positive_int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError("must be a positive integer")
    return v


def _bcrypt_cost(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 4 <= v <= 31:
        raise ValueError("must be an integer between 4 and 31")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be a string")
    return v


def _size(v: Any) -> str:
    if not isinstance(v, str) or not re.match(r"^\d+\s*[KMGT]?i?B?$", v.strip(), re.IGNORECASE):
        raise ValueError('must be a size like "10G", "500M", "64K", "1234" or "0"')
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _str_list(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError('must be a list of strings, e.g. ["127.0.0.1"]')
    return v


def _non_negative_int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError("must be an integer >= 0")
    return v


def _choice(*allowed: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in allowed:
            raise ValueError("must be " + " or ".join(repr(a) for a in allowed))
        return str(v)

    return check


def _secret(v: Any) -> str:
    if not isinstance(v, str):
        raise SecretValueError("must be a string")
    return v


class SecretValueError(ValueError):
    """A bad value that must not be echoed in the message."""


def _part_size(v: Any) -> str:
    size = _size(v)
    if parse_size(size) < 5 << 20:
        raise ValueError("must be at least 5M (S3's smallest part)")
    return size


def _public_url(v: Any) -> str:
    """ "" or an http(s) URL with a host, an optional port and path, and nothing after: links
    are built by appending to it. Stored without a trailing slash."""
    if not isinstance(v, str):
        raise ValueError("must be a string")
    if v == "":
        return v
    why = 'must be an http(s) URL like "https://dav.example.com" (no query, fragment or login)'
    if not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", v):
        raise ValueError(why)
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises ValueError for a bad or out-of-range port
    except ValueError:
        raise ValueError(why) from None
    if not parts.hostname:
        raise ValueError(why)
    return v.rstrip("/")


def _retention(v: Any) -> str:
    parse_rule(v)
    return str(v)


def _percent(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100:
        raise ValueError("must be an integer percentage between 0 and 100")
    return v


def _log_level(v: Any) -> str:
    levels = ("debug", "info", "warning", "error")
    if not isinstance(v, str) or v.lower() not in levels:
        raise ValueError(f"must be one of {', '.join(levels)}")
    return v.lower()


# (section, key) -> (default, validator, help). The example config is generated from this table's
# order and help texts, so the documentation cannot drift from the code.
SCHEMA: dict[tuple[str, str], tuple[Any, Callable[[Any], Any], str]] = {
    ("server", "host"): ("127.0.0.1", _str, "Address to listen on; 0.0.0.0 for every interface."),
    ("server", "port"): (8080, _port, "TCP port; 0 picks a free one (the log says which)."),
    ("server", "threads"): (
        64,
        _positive_int,
        "Worker threads: requests served at once (Explorer opens dozens of connections).",
    ),
    ("server", "shutdown_grace"): (
        30,
        _non_negative_int,
        "Seconds that running requests get to finish after SIGTERM or Ctrl-C (new connections "
        "are refused at once); then the rest are cut, and a cut upload leaves the old content. "
        "A second signal stops at once.",
    ),
    ("server", "tls_cert"): (
        "",
        _str,
        'PEM certificate chain for HTTPS (with tls_key); "" = plain HTTP. '
        "Make a test one with: davdisk cert self-signed --out DIR",
    ),
    ("server", "tls_key"): ("", _str, "PEM private key of tls_cert."),
    ("server", "public_url"): (
        "",
        _public_url,
        'How clients reach the server, e.g. "https://dav.example.com": the base of the links '
        'share link prints. "" = built from host and port.',
    ),
    ("server", "allow_insecure_http"): (
        False,
        _bool,
        "Accept passwords and link tokens over plain HTTP from other machines. Not needed "
        "behind a TLS proxy listed in trusted_proxies; only for a LAN you trust.",
    ),
    ("server", "trusted_proxies"): (
        [],
        _str_list,
        "Addresses or networks (10.0.0.0/8) of reverse proxies whose X-Forwarded-For/-Proto/-Host "
        "headers are believed.",
    ),
    ("storage", "database_url"): (
        "",
        _str,
        'SQLAlchemy URL of the metadata DB; "" = SQLite file <data-dir>/davdisk.db.',
    ),
    ("storage", "blob_dir"): ("", _str, 'Folder of encrypted blobs; "" = <data-dir>/blobs.'),
    ("storage", "master_key_file"): (
        "",
        _str,
        'Master key file (32 bytes, mode 0600); "" = $DAVDISK_MASTER_KEY_FILE, else '
        "<data-dir>.key beside (never inside) the data dir. Best on another disk.",
    ),
    ("blobs", "backend"): (
        "local",
        _choice("local", "s3"),
        '"local": a folder ([storage] blob_dir); "s3": an S3-compatible bucket (the keys below), '
        "for several servers on one PostgreSQL database.",
    ),
    ("blobs", "endpoint_url"): (
        "",
        _str,
        'S3 endpoint, e.g. "https://minio.example.com:9000"; "" = AWS S3.',
    ),
    ("blobs", "bucket"): ("", _str, "Bucket of the blobs (must exist)."),
    ("blobs", "prefix"): ("", _str, 'Folder in the bucket for the blobs, e.g. "davdisk/".'),
    ("blobs", "region"): ("", _str, 'S3 region; "" = us-east-1.'),
    ("blobs", "access_key_id"): (
        "",
        _str,
        'S3 access key; "" = the standard AWS variables (AWS_ACCESS_KEY_ID, ...), profiles or '
        "instance roles.",
    ),
    ("blobs", "secret_access_key"): (
        "",
        _secret,
        "S3 secret key (never logged); better in AWS_SECRET_ACCESS_KEY than in this file.",
    ),
    ("blobs", "addressing_style"): (
        "path",
        _choice("path", "virtual"),
        '"path" (bucket in the URL path: MinIO, SeaweedFS, Ceph) or "virtual" (bucket in the '
        "host name: AWS, R2).",
    ),
    ("blobs", "part_size"): (
        "8M",
        _part_size,
        "Size of the parts of a multipart upload (at least 5M); bodies up to it take one "
        "PutObject. Parts double every thousand, so any size fits in 10 000.",
    ),
    ("blobs", "memory"): (
        "96M",
        _size,
        "Memory that part buffers of all uploads of a server may hold together; more uploads "
        "wait for their turn.",
    ),
    ("blobs", "delete_delay"): (
        3600,
        _non_negative_int,
        "Seconds an overwritten or deleted blob stays in the bucket before gc deletes it, so "
        "downloads already under way can finish.",
    ),
    ("auth", "bcrypt_cost"): (12, _bcrypt_cost, "bcrypt work factor for stored passwords."),
    ("auth", "cache_seconds"): (
        300,
        _positive_int,
        "How long a verified login is remembered in memory (keyed by an HMAC, never the password).",
    ),
    ("auth", "realm"): ("davdisk", _str, "Realm shown in the browser's login prompt."),
    ("auth", "throttle_free_failures"): (
        5,
        _non_negative_int,
        "Failed logins per user name from one client address before that address is delayed "
        "for that name (the user can still log in from elsewhere).",
    ),
    ("auth", "throttle_address_free_failures"): (
        50,
        _non_negative_int,
        "Failed logins from one client address over all names before the address is delayed "
        "(against spraying; clients already logged in keep working).",
    ),
    ("auth", "throttle_max_seconds"): (
        900,
        _positive_int,
        "Longest lockout after repeated failed logins (the delay doubles up to this).",
    ),
    ("users", "default_quota"): (
        "0",
        _size,
        'Quota of new users: e.g. "10G", "500M"; "0" = unlimited. Change one with user quota.',
    ),
    ("versions", "retention"): (
        "auto",
        _retention,
        'Which old versions expire by age. "auto": Nextcloud\'s schedule (one version per 2 s '
        "for the first 10 s, per 10 s for the first minute, per minute for the first hour, per "
        'hour for the first day, per day for 30 days, then one a week); "D, auto": all kept for '
        'D days, auto after; "auto, D": auto, and none older than D days; "D1, D2": all kept '
        'for D1 days, none older than D2; "disabled": none. Pinned versions never expire.',
    ),
    ("versions", "history_share"): (
        50,
        _percent,
        "Share of the quota that versions and trash may keep once the quota is reached: a "
        "write that needs room expires the oldest unpinned versions, then the oldest trash "
        "items, down to this share (percent, 0 to 100).",
    ),
    ("trash", "retention_days"): (
        30,
        _non_negative_int,
        "Days a deleted item stays in the trash before it is purged for good; 0 = until the "
        "trash is emptied (a write that needs room may still purge it, see history_share).",
    ),
    ("dav", "block_size"): (
        1 << 18,
        _positive_int,
        "Bytes of a file sent per step of a GET response (PUT bodies go in 1 MiB blocks).",
    ),
    ("limits", "max_upload"): (
        "0",
        _size,
        'Largest file a PUT may store, e.g. "10G" (413 beyond it); "0" = no limit but the quota.',
    ),
    ("limits", "max_xml_body"): (
        "1M",
        _size,
        "Largest XML request body (PROPFIND, PROPPATCH, LOCK); larger ones get 413.",
    ),
    ("limits", "max_header_bytes"): (
        65536,
        _positive_int,
        "Largest request head (request line and headers) in bytes.",
    ),
    ("limits", "head_timeout"): (
        20,
        _positive_int,
        "Seconds a connection gets, from its first byte, for the TLS handshake and the whole "
        "request head, however slowly it trickles (no worker thread waits for it meanwhile).",
    ),
    ("limits", "max_waiting_connections"): (
        4096,
        _positive_int,
        "Connections that may wait at once for their request head (idle keep-alive ones "
        "included); one more closes the oldest of the address that holds the most.",
    ),
    ("limits", "max_url_bytes"): (8192, _positive_int, "Longest request URL in bytes."),
    ("limits", "max_path_depth"): (
        64,
        _positive_int,
        "Most folder levels a path may have.",
    ),
    ("jobs", "gc_interval"): (
        3600,
        _non_negative_int,
        "Seconds between runs of gc (leftovers older than 15 minutes) in the background; 0 = "
        "never (run davdisk gc yourself). Of several servers on one database, one runs it.",
    ),
    ("jobs", "expiry_interval"): (
        1800,
        _non_negative_int,
        "Seconds between background sweeps that expire old versions ([versions] retention) "
        "and trash items ([trash] retention_days) of every user; 0 = never (versions still "
        "expire when a file gets a new one). Of several servers on one database, one runs it.",
    ),
    ("jobs", "lease_seconds"): (
        60,
        _positive_int,
        "How long a server's claim on a background job lasts unless renewed (it is, while the "
        "job runs): after a crash, another server takes the job over this much later.",
    ),
    ("logging", "level"): ("info", _log_level, "debug, info, warning or error."),
    ("logging", "audit"): (
        "",
        _str,
        'Audit log, one JSON line per request: "" = off, "-" = standard output, else a file.',
    ),
}


@dataclass
class Config:
    """Every setting, resolved. Paths are absolute."""

    data_dir: Path
    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    source: str = "defaults"

    def get(self, section: str, key: str) -> Any:
        return self.values[(section, key)]

    def set(self, section: str, key: str, value: Any, source: str) -> None:
        _default, validate, _help = SCHEMA[(section, key)]
        try:
            self.values[(section, key)] = validate(value)
        except SecretValueError as e:
            raise ConfigError(f"[{section}] {key} {e}", source=source) from None
        except ValueError as e:
            raise ConfigError(f"[{section}] {key} {e} (got {value!r})", source=source) from None

    @property
    def database_url(self) -> str:
        url = self.get("storage", "database_url")
        return url or f"sqlite:///{self.data_dir / 'davdisk.db'}"

    @property
    def blob_dir(self) -> Path:
        return Path(self.get("storage", "blob_dir") or self.data_dir / "blobs").absolute()

    @property
    def master_key_file(self) -> Path:
        """Where the master key is: ``[storage] master_key_file``, else
        ``$DAVDISK_MASTER_KEY_FILE``, else ``<data-dir>.key`` beside the data dir — never
        inside it by default, so that a copy of the data dir (a backup, a stolen disk) decrypts
        nothing. Installs from before kept it at ``<data-dir>/master.key``: while it is there
        (and no key beside the data dir), it is used, and :meth:`master_key_warning` says how
        to move it."""
        configured = self.get("storage", "master_key_file") or os.environ.get(
            "DAVDISK_MASTER_KEY_FILE", ""
        )
        if configured:
            return Path(configured).absolute()
        apart, inside = self.default_master_key_file, self.data_dir / "master.key"
        if not _key_exists(apart) and _key_exists(inside):
            return inside
        return apart

    @property
    def default_master_key_file(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".key")

    def master_key_warning(self) -> str | None:
        """One line, if the master key is inside the data dir: what that means and how to
        move it (logged at start-up)."""
        key = self.master_key_file
        if os.environ.get("DAVDISK_MASTER_KEY"):
            return None  # the key file is not used
        if not key.resolve().is_relative_to(self.data_dir.resolve()):
            return None
        apart = self.default_master_key_file
        pending = key.with_name(key.name + ".new")
        move = f"mv {key} {apart}"
        if pending.exists():
            move += f" && mv {pending} {apart}.new"
        if self.get("storage", "master_key_file") or os.environ.get("DAVDISK_MASTER_KEY_FILE"):
            how = (
                "move it out of the data dir (best to another disk) and set [storage] "
                "master_key_file or DAVDISK_MASTER_KEY_FILE to its new place"
            )
        else:
            how = (
                f"stop the server and run: {move} (found there by default), or move it "
                "anywhere else and set [storage] master_key_file or DAVDISK_MASTER_KEY_FILE"
            )
        return (
            f"master key {key} is inside the data dir {self.data_dir}: a copy of the data dir "
            f"decrypts every file. To keep them apart, {how}; back it up apart from the data"
        )


def _key_exists(path: Path) -> bool:
    # A key file, or the new key of a master key rotation that was interrupted half way.
    return path.exists() or path.with_name(path.name + ".new").exists()


def load(config_file: str | Path | None = None, data_dir: str | Path | None = None) -> Config:
    """Build the configuration from defaults, an optional TOML file and the data dir."""
    data = Path(data_dir or os.environ.get("DAVDISK_DATA_DIR") or "./data").absolute()
    cfg = Config(data_dir=data)
    for (section, key), (default, _v, _h) in SCHEMA.items():
        cfg.values[(section, key)] = default
    if config_file is None:
        return cfg
    source = str(config_file)
    try:
        with open(config_file, "rb") as f:
            raw = tomllib.load(f)
    except OSError as e:
        raise ConfigError(e.strerror or str(e), source=source) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(e), source=source) from None
    for section, entries in raw.items():
        if not isinstance(entries, dict):
            raise ConfigError(f"{section!r} must be a [section]", source=source)
        for key, value in entries.items():
            if (section, key) not in SCHEMA:
                raise ConfigError(f"unknown setting [{section}] {key}", source=source)
            cfg.set(section, key, value, source)
    cfg.source = source
    return cfg


def example_toml() -> str:
    """The documented example configuration, every setting at its default."""
    lines = [
        "# davdisk configuration. Every setting is shown with its default; delete what you",
        "# do not change. Use it with: davdisk --config davdisk.toml serve",
    ]
    section = None
    for (sec, key), (default, _v, help_text) in SCHEMA.items():
        if sec != section:
            lines += ["", f"[{sec}]"]
            section = sec
        if isinstance(default, str):
            value = f'"{default}"'
        elif isinstance(default, bool):
            value = str(default).lower()
        else:
            value = str(default)
        lines += [f"# {help_text}", f"{key} = {value}"]
    return "\n".join(lines) + "\n"
