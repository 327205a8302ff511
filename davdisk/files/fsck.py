"""``davdisk fsck``: check that the database, the user keys and the stored blobs agree.

Checks, cheapest first:

- the database's own consistency check (SQLite ``integrity_check`` and ``foreign_key_check``,
  :func:`check_database`), first and alone: every other check reads the database, so on a
  damaged one they are skipped (they could crash or report nonsense) and fsck says to restore it;
- every user key unwraps under the master key its row names;
- every file's node points at a blob row of the same owner and plaintext size (or, when empty,
  at none), and ``users.used_bytes`` equals the bytes of the files they own (the sum
  files/quota.py charges: ``nodes.size`` of live files, copies counted each);
- every referenced blob has a file of exactly ``size_cipher`` bytes whose DAVENC header parses,
  names that blob and key version and verifies (HMAC) under the owner's key; with ``deep`` every
  segment is decrypted and verified too (streaming, one segment buffer) and the plaintext length
  compared with the node's size;
- garbage: blob files without a row, rows no node points at, upload temp files.

Each finding has a severity. **error**: something a person must look at, user data may be
damaged (missing or corrupt blob, key that does not unwrap, inconsistent metadata); fsck never
"fixes" these, it never deletes a file's metadata or a referenced blob. **fixable**: garbage or
drift that ``repair`` removes safely (orphan files and temp files older than ``min_age``, rows
nothing points at, quota drift). **warning**: not a problem — orphan or temp files younger than
``min_age`` are what a running server's uploads look like (the same age rule as ``davdisk gc``).

Safe beside a running server: snapshots are single read transactions, and anything that looks
missing or orphaned is checked again against a fresh snapshot before it is reported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from davdisk.blobs.base import BlobInfo
from davdisk.crypto.envelope import SEGMENT_SIZE, EnvelopeReader
from davdisk.errors import DavdiskError
from davdisk.files.admin import Admin
from davdisk.meta.db import Database
from davdisk.meta.store import checks
from davdisk.progress import Progress

logger = logging.getLogger(__name__)

ERROR, FIXABLE, WARNING = "error", "fixable", "warning"

ProgressFactory = Callable[[str, int, str], Progress]


def default_progress(label: str, total: int, unit: str) -> Progress:
    return Progress(label, total, unit=unit)


@dataclass(frozen=True)
class Finding:
    severity: str  # ERROR, FIXABLE or WARNING
    kind: str  # e.g. "missing-blob"
    where: str  # e.g. "alice:/docs/a.txt" or "blob 0f3a..."
    detail: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.kind}: {self.where}: {self.detail}"


@dataclass
class FsckReport:
    deep: bool
    findings: list[Finding] = field(default_factory=list)
    users: int = 0
    keys: int = 0
    files: int = 0
    blobs: int = 0
    bytes_verified: int = 0
    repaired: list[str] = field(default_factory=list)
    problems_found: int = 0  # errors + fixable before any repair
    damaged_database: str = ""  # set by check_database: where the damaged database is

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def problems(self) -> int:
        """Errors and fixable problems still present."""
        return self.count(ERROR) + self.count(FIXABLE)

    def summary(self) -> str:
        if self.damaged_database:
            return (
                f"fsck: the database {self.damaged_database} is damaged; nothing else was "
                "checked. Stop the server, restore the database from a backup and run fsck again"
            )
        mode = "deep" if self.deep else "headers"
        text = (
            f"fsck: {self.users} users, {self.keys} user keys, {self.files} files, "
            f"{self.blobs} blobs checked ({mode}); {self.count(ERROR)} errors, "
            f"{self.count(FIXABLE)} fixable, {self.count(WARNING)} warnings"
        )
        if self.repaired:
            text += "; repaired: " + ", ".join(self.repaired)
        return text


_MAX_DATABASE_FINDINGS = 10


def check_database(db: Database) -> FsckReport:
    """The database's own check (see ``meta/integrity.py``), as a report of its own: one error
    line per problem, each naming the database, the first ten of them. Safe on a file too
    damaged to open, and beside a running server (it reads one snapshot)."""
    report = FsckReport(deep=False)
    problems = db.integrity_problems()
    if problems:
        report.damaged_database = db.location
        shown = problems[:_MAX_DATABASE_FINDINGS]
        if len(problems) > len(shown):
            shown[-1] += f" (and {len(problems) - len(shown)} more)"
        for problem in shown:
            report.findings.append(Finding(ERROR, "database-damaged", db.location, problem))
    report.problems_found = report.problems
    return report


@dataclass(frozen=True)
class _BlobRow:
    id: str
    owner_id: int
    key_version: int
    size_plain: int
    size_cipher: int


class Fsck:
    def __init__(
        self,
        admin: Admin,
        *,
        deep: bool = False,
        min_age: float = 900.0,
        progress: ProgressFactory = default_progress,
    ) -> None:
        self.admin = admin
        self.db = admin.db
        self.content = admin.content  # the blob store, and which blobs are used, only through it
        self.keyring = admin.keyring
        self.deep = deep
        self.min_age = min_age
        self.progress = progress

    # --- the whole run -------------------------------------------------------------------------

    def check(self) -> FsckReport:
        report = FsckReport(self.deep)
        self._check_keys(report)
        referenced = self._check_nodes(report)
        self._check_blobs(report, referenced)
        self._check_garbage(report)
        self._check_usage(report)
        report.problems_found = report.problems
        return report

    def repair(self, report: FsckReport) -> FsckReport:
        """Fix the fixable findings of ``report`` (garbage via ``Admin.gc`` with the same
        minimum age, usage by recomputation), then check those classes again."""
        gc = self.admin.gc(self.min_age, deep=True)  # what fsck listed, a bucket included
        if gc.blobs:
            report.repaired.append(f"removed {gc.blobs} leftover files ({gc.bytes} bytes)")
        dropped = sum(1 for f in report.findings if f.kind == "unreferenced-blob-row")
        if dropped:
            report.repaired.append(f"dropped {dropped} unreferenced blob rows")
        fixed = self.recompute_usage()
        if fixed:
            report.repaired.append(f"recomputed the usage of {fixed} users")
        # Errors stay as found; garbage and usage (and their warnings) are looked at again.
        report.findings = [f for f in report.findings if f.severity == ERROR]
        self._check_garbage(report)
        self._check_usage(report)
        return report

    # --- keys ----------------------------------------------------------------------------------

    def _check_keys(self, report: FsckReport) -> None:
        with self.db.read() as conn:
            rows = checks.key_rows(conn)
            report.users = checks.user_count(conn)
        report.keys = len(rows)
        for r in rows:
            try:
                self.keyring.key(r.user_id, r.version)
            except DavdiskError as e:
                report.findings.append(
                    Finding(ERROR, "bad-user-key", f"user {r.name} version {r.version}", e.message)
                )

    # --- metadata ------------------------------------------------------------------------------

    def _check_nodes(self, report: FsckReport) -> dict[str, _BlobRow]:
        """Node -> blob row consistency; returns the referenced blob rows by id."""
        with self.db.read() as conn:
            rows = self.content.files_with_blobs(conn)
            referenced: dict[str, _BlobRow] = {}
            for r in rows:
                problem = self._node_problem(r)
                if problem:
                    kind, detail = problem
                    where = checks.owner_path(conn, r.id)
                    report.findings.append(Finding(ERROR, kind, where, detail))
                if r.row_id is not None:
                    referenced[r.row_id] = _BlobRow(
                        r.row_id, r.blob_owner, r.key_version, r.size_plain, r.size_cipher
                    )
        report.files = len(rows)
        return referenced

    @staticmethod
    def _node_problem(r: Any) -> tuple[str, str] | None:
        blob_id = r.current_blob_id
        if blob_id is None:
            return ("missing-content", f"{r.size} bytes but no blob") if r.size else None
        if r.row_id is None:
            return "missing-blob-row", f"points at blob {blob_id}, which has no row"
        if r.blob_owner != r.owner_id:
            return "wrong-owner", f"blob {blob_id} belongs to user id {r.blob_owner}"
        if r.size_plain != r.size:
            return "size-mismatch", f"file is {r.size} bytes, blob {blob_id} holds {r.size_plain}"
        return None

    # --- blob contents -------------------------------------------------------------------------

    def _check_blobs(self, report: FsckReport, referenced: dict[str, _BlobRow]) -> None:
        on_disk = {b.id: b for b in self.content.stored()}
        label = "fsck --deep" if self.deep else "fsck"
        with self.progress(label, len(referenced), "blobs") as bar:
            for row in referenced.values():
                problem = self._blob_problem(row, on_disk.get(row.id))
                # Against a fresh snapshot: a concurrent write may have replaced the blob.
                if problem and self.content.in_use(row.id):
                    kind, detail = problem
                    where = self.content.where_used(row.id)
                    if row.id not in detail:  # integrity errors name the blob themselves
                        detail = f"blob {row.id}: {detail}"
                    report.findings.append(Finding(ERROR, kind, where, detail))
                report.blobs += 1
                bar.advance(nbytes=row.size_cipher if self.deep else 0)
                if self.deep and problem is None:
                    report.bytes_verified += row.size_plain

    def _blob_problem(self, row: _BlobRow, info: BlobInfo | None) -> tuple[str, str] | None:
        if info is None:
            return "missing-blob", "no blob file"
        if info.size != row.size_cipher:
            return "corrupt-blob", f"file is {info.size} bytes, expected {row.size_cipher}"
        try:
            src = self.content.open(row.id)
        except FileNotFoundError:
            return "missing-blob", "no blob file"
        try:
            reader = self.keyring.reader(src, row.owner_id, row.id, row.size_plain)
            with reader:
                if reader.key_version != row.key_version:
                    return "corrupt-blob", (
                        f"header says key version {reader.key_version}, "
                        f"the database {row.key_version}"
                    )
                if self.deep:
                    got = self._read_all(reader)
                    if got != row.size_plain:
                        return "corrupt-blob", f"decrypts to {got} bytes, not {row.size_plain}"
        except DavdiskError as e:
            return "corrupt-blob", e.message
        except OSError as e:
            return "unreadable-blob", e.strerror or str(e)
        return None

    @staticmethod
    def _read_all(reader: EnvelopeReader) -> int:
        """Decrypt and verify every segment; returns the plaintext length. One buffer."""
        buf = bytearray(16 * SEGMENT_SIZE)
        total = 0
        while n := reader.readinto(buf):
            total += n
        return total

    # --- garbage -------------------------------------------------------------------------------

    def _check_garbage(self, report: FsckReport) -> None:
        now = time.time()
        known, dead_rows = self.content.blob_rows()
        for blob_id in sorted(dead_rows):
            report.findings.append(
                Finding(FIXABLE, "unreferenced-blob-row", f"blob {blob_id}", "no file points at it")
            )
        # Listed after the snapshot, so a file newer than it may look orphaned: ask again.
        unknown = [b for b in self.content.stored() if b.id not in known]
        if unknown:
            known = self.content.blob_rows()[0]
        for info in sorted(unknown, key=lambda b: b.id):
            if info.id in known:
                continue
            self._aged(report, now, info, "orphan-file", f"blob {info.id}", "no database row")
        for info in sorted(self.content.temp_uploads(), key=lambda b: b.id):
            self._aged(report, now, info, "stale-temp-file", f"tmp/{info.id}", "upload leftover")

    def _aged(
        self, report: FsckReport, now: float, info: BlobInfo, kind: str, where: str, what: str
    ) -> None:
        age = max(0.0, now - info.mtime)
        detail = f"{what}, {info.size} bytes, {_age(age)} old"
        if age >= self.min_age:
            report.findings.append(Finding(FIXABLE, kind, where, detail))
        else:
            # What a running server's upload looks like until it commits: not a problem.
            report.findings.append(
                Finding(WARNING, _GARBAGE_WARNINGS[kind], where, detail + " (in progress?)")
            )

    # --- usage ---------------------------------------------------------------------------------

    def _check_usage(self, report: FsckReport) -> None:
        with self.db.read() as conn:  # one snapshot: a concurrent write changes both or neither
            rows = checks.usage(conn)
        for name, counter, recorded, actual in rows:
            if recorded != actual:
                report.findings.append(
                    Finding(
                        FIXABLE,
                        "quota-drift",
                        f"user {name}",
                        f"{counter} is {recorded}, the files take {actual}",
                    )
                )

    def recompute_usage(self) -> int:
        """Set every user's used_bytes to what their files take; returns how many changed."""
        with self.db.write() as conn:
            return checks.recompute_usage(conn)


_GARBAGE_WARNINGS = {"orphan-file": "recent-file", "stale-temp-file": "recent-temp-file"}


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
