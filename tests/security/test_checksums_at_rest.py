"""Attack (issue 12, item 10): read a file's content hashes from a copy of ``davdisk.db`` alone.

The database held every file's plaintext MD5 and SHA-1 in clear: a 4-digit PIN file was found by
hashing the 10 000 candidates. Checksums at rest must be sealed like the content, while
``oc:checksums`` still answers the real values, and no ETag may be derived from the plaintext.
The database's every column, and its raw file and write-ahead log, are searched for any unkeyed
digest of the content (hex either case, or raw bytes); a database written by an older version,
with checksums in clear, is converted when the server starts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.live.conftest import (
    ALICE,
    Server,
    ServerFactory,
    database_url,
    dump,
    propfind,
    sql,
)

PIN = b"PIN 4821\n"
OC = "{http://owncloud.org/ns}"

CHECKSUMS_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:" xmlns:oc="http://owncloud.org/ns">'
    b"<D:prop><oc:checksums/><D:getetag/></D:prop></D:propfind>"
)


def digests(data: bytes) -> dict[str, bytes]:
    """Every unkeyed digest an attacker would try, by name: raw bytes."""
    return {
        name: hashlib.new(name, data).digest()
        for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "sha3_256")
    }


def leaks(blob: bytes, data: bytes) -> list[str]:
    """The digests of ``data`` found in ``blob`` (as hex in either case, or raw)."""
    found = []
    for name, raw in digests(data).items():
        for form, needle in (
            ("hex", raw.hex().encode()),
            ("HEX", raw.hex().upper().encode()),
            ("raw", raw),
        ):
            if needle in blob:
                found.append(f"{name} ({form})")
    return found


def column_leaks(data_dir: Path, data: bytes) -> list[str]:
    """``table.column: digest`` for every stored value holding a digest of ``data``."""
    found = []
    for table, (columns, rows) in dump(data_dir).items():
        for row in rows:
            for column, value in zip(columns, row, strict=True):
                if isinstance(value, str):
                    value = value.encode()
                if isinstance(value, bytes):
                    found += [f"{table}.{column}: {d}" for d in leaks(value, data)]
    return found


def file_leaks(data_dir: Path, data: bytes) -> list[str]:
    """Digests of ``data`` anywhere in the database's files (free pages, the WAL), on SQLite;
    on PostgreSQL (its files are the server's) every value of every table."""
    if not database_url(data_dir).startswith("sqlite:"):
        return column_leaks(data_dir, data)
    path = data_dir / "davdisk.db"
    found = []
    for f in (path, path.with_name(path.name + "-wal")):
        if f.exists():
            found += [f"{f.name}: {d}" for d in leaks(f.read_bytes(), data)]
    return found


def checksums_and_etag(srv: Server, url: str) -> tuple[str | None, str | None]:
    entry = propfind(srv.session(ALICE), url, "0", CHECKSUMS_PROPFIND)[url_path_of(srv, url)]
    found = entry.props.get(OC + "checksums")
    checksum = found.find(OC + "checksum") if found is not None else None
    return (checksum.text if checksum is not None else None), entry.text("{DAV:}getetag")


def url_path_of(srv: Server, url: str) -> str:
    return url[len(srv.url) :]


def expected_checksum(data: bytes) -> str:
    return f"SHA1:{hashlib.sha1(data).hexdigest()} MD5:{hashlib.md5(data).hexdigest()}"


def test_no_digest_of_the_content_is_stored(server: Server) -> None:
    s = server.session(ALICE)
    url = server.dav + "pin.txt"
    assert s.put(url, data=PIN).status_code == 201
    # Copies share the sealed value; they must not bring a clear one back.
    assert (
        s.request("COPY", url, headers={"Destination": server.dav + "pin2.txt"}).status_code == 201
    )

    checksum, etag = checksums_and_etag(server, url)
    assert checksum == expected_checksum(PIN)
    assert checksums_and_etag(server, server.dav + "pin2.txt")[0] == expected_checksum(PIN)
    assert etag is not None and not leaks(etag.encode(), PIN), f"the ETag {etag} is a digest"

    assert column_leaks(server.data_dir, PIN) == []
    assert file_leaks(server.data_dir, PIN) == []


def test_clear_checksums_of_an_old_database_are_sealed_at_start(
    server_factory: ServerFactory,
) -> None:
    srv = server_factory()
    s = srv.session(ALICE)
    assert s.put(srv.dav + "pin.txt", data=PIN).status_code == 201
    assert s.put(srv.dav + "empty.txt", data=b"").status_code == 201
    srv.stop()
    # What a database of an older version holds: the hashes in clear, nothing sealed.
    for name, data in (("pin.txt", PIN), ("empty.txt", b"")):
        sql(
            srv.data_dir,
            "UPDATE nodes SET md5 = :md5, sha1 = :sha1, checksums = NULL WHERE name = :name",
            md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(), name=name,
        )  # fmt: skip
    assert column_leaks(srv.data_dir, PIN)  # the test's own premise

    srv = server_factory(srv.data_dir)
    assert checksums_and_etag(srv, srv.dav + "pin.txt")[0] == expected_checksum(PIN)
    assert checksums_and_etag(srv, srv.dav + "empty.txt")[0] == expected_checksum(b"")
    assert column_leaks(srv.data_dir, PIN) == []
    # The converted values are gone from the file too, not only from the rows.
    assert file_leaks(srv.data_dir, PIN) == []
    assert "stored in clear: 2 rows converted, 1 sealed" in srv.log()
