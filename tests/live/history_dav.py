"""Helpers for the live tests of the versions and trash trees (test_versions_dav.py,
test_trash_dav.py, test_history_permissions.py): Nextcloud's requests, as its clients send
them, to a running server. No imports of ``davdisk``."""

from __future__ import annotations

from urllib.parse import quote

import requests

from tests.live.conftest import Node, Server, parse_multistatus, url_path

NC_NS = "http://nextcloud.org/ns"
NC = "{" + NC_NS + "}"
OC = "{http://owncloud.org/ns}"

VERSION_PROPS = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:nc="http://nextcloud.org/ns"><d:prop>'
    b"<d:getcontentlength/><d:getcontenttype/><d:getlastmodified/><d:getetag/>"
    b"<nc:version-label/><nc:version-author/></d:prop></d:propfind>"
)
TRASH_PROPS = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:nc="http://nextcloud.org/ns" '
    b'xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<nc:trashbin-filename/><nc:trashbin-original-location/><nc:trashbin-deletion-time/>"
    b"<nc:trashbin-deleted-by-id/><d:getcontentlength/><d:resourcetype/><d:getlastmodified/>"
    b"<d:getcontenttype/><oc:fileid/><oc:size/></d:prop></d:propfind>"
)
FILEID_PROPS = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<oc:fileid/></d:prop></d:propfind>"
)


def versions_url(srv: Server, user: str, fileid: str | int) -> str:
    return f"{srv.url}/remote.php/dav/versions/{quote(user)}/versions/{fileid}/"


def version_restore_url(srv: Server, user: str) -> str:
    return f"{srv.url}/remote.php/dav/versions/{quote(user)}/restore/target"


def trash_url(srv: Server, user: str) -> str:
    return f"{srv.url}/remote.php/dav/trashbin/{quote(user)}/trash/"


def trash_restore_url(srv: Server, user: str, name: str) -> str:
    return f"{srv.url}/remote.php/dav/trashbin/{quote(user)}/restore/{quote(name)}"


def fileid(s: requests.Session, url: str) -> str:
    r = s.request("PROPFIND", url, headers={"Depth": "0"}, data=FILEID_PROPS)
    assert r.status_code == 207, f"PROPFIND {url}: {r.status_code} {r.text[:300]}"
    (e,) = parse_multistatus(r.content).values()
    found = e.text(OC + "fileid")
    assert found, f"no oc:fileid on {url}"
    return found


def _listing(s: requests.Session, url: str, body: bytes) -> dict[str, Node]:
    """Depth-1 members of ``url`` by name (the collection itself left out); asserts 207."""
    r = s.request(
        "PROPFIND", url, headers={"Depth": "1", "Content-Type": "application/xml"}, data=body
    )
    assert r.status_code == 207, f"PROPFIND {url}: {r.status_code} {r.text[:500]}"
    own = url_path(url).rstrip("/")
    return {
        e.name: e for href, e in parse_multistatus(r.content).items() if href.rstrip("/") != own
    }


def list_versions(s: requests.Session, url: str) -> dict[str, Node]:
    """The versions in a ``versions/<fileid>/`` folder, by name (the version id)."""
    return _listing(s, url, VERSION_PROPS)


def list_trash(s: requests.Session, url: str) -> dict[str, Node]:
    """The items of a ``trash/`` folder, by name (``<name>.d<seconds>``)."""
    return _listing(s, url, TRASH_PROPS)


def move(s: requests.Session, source: str, destination: str) -> requests.Response:
    return s.request("MOVE", source, headers={"Destination": destination})
