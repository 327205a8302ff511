"""Request limits through the in-process app: URL, path and Destination rules, XML body vetting,
body and upload caps - and that a refused request changes nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from davdisk import config as config_mod
from davdisk.app import build_app
from davdisk.services import Services
from tests.dav.conftest import PASSWORDS, Client
from tests.pg import use_test_database

MAX_UPLOAD = 4096
MAX_XML = 8192
MAX_DEPTH = 5
MAX_URL = 2000
DEST = "http://localhost/dav/"

PROPFIND_SIZE = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:propfind xmlns:D="DAV:"><D:prop><D:getcontentlength/></D:prop></D:propfind>'
)
LOCK_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope>'
    b"<D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"
)


def proppatch_body(value: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:Z="urn:x-test:"><D:set><D:prop><Z:p>{value}</Z:p></D:prop></D:set>'
        "</D:propertyupdate>"
    ).encode()


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Services, Any]]:
    cfg = config_mod.load(None, data_dir=tmp_path / "data")
    cfg.set("auth", "bcrypt_cost", 4, "test")
    cfg.set("limits", "max_upload", str(MAX_UPLOAD), "test")
    cfg.set("limits", "max_xml_body", str(MAX_XML), "test")
    cfg.set("limits", "max_path_depth", MAX_DEPTH, "test")
    cfg.set("limits", "max_url_bytes", MAX_URL, "test")
    use_test_database(cfg)
    svc = Services.open(cfg, create=True)
    for name, password in PASSWORDS.items():
        svc.admin.add_user(name, password)
    yield svc, build_app(svc)
    svc.close()


@pytest.fixture
def client(limited: tuple[Services, Any]) -> Client:
    return Client(limited[1], "alice")


@pytest.fixture
def services(limited: tuple[Services, Any]) -> Services:
    return limited[0]


def temp_blobs(services: Services) -> list[Path]:
    tmp = services.config.blob_dir / "tmp"
    return list(tmp.iterdir()) if tmp.exists() else []


# --- URL and path -----------------------------------------------------------------------------


def test_long_url_is_414_and_deep_path_is_400(client: Client) -> None:
    assert client.get("/dav/" + "a" * (MAX_URL - 5)).status != 414  # exactly MAX_URL bytes
    assert client.get("/dav/" + "a" * (MAX_URL - 4)).status == 414
    # /dav plus four folders is MAX_DEPTH names: allowed; one more is not.
    path = "/dav"
    for name in "abcd":
        path += "/" + name
        assert client.mkcol(path + "/").status == 201
    r = client.mkcol(path + "/e/")
    assert r.status == 400 and "deeper than 5" in r.text
    assert client.put(path + "/e", b"x").status == 400
    assert client.put(path + "/f.txt", b"x").status == 400  # a file is a level too
    assert client.propfind("/dav/", depth="1").status == 207


def test_names_up_to_255_utf8_bytes(client: Client) -> None:
    longest = "é" * 127 + "x"  # 255 bytes
    assert client.put("/dav/" + longest, b"fits").status == 201
    assert client.get("/dav/" + longest).body == b"fits"
    too_long = "é" * 128  # 256 bytes, 128 characters
    for method in ("PUT", "MKCOL", "GET", "PROPFIND", "DELETE"):
        r = client.request(method, "/dav/" + too_long, headers={"Depth": "0"})
        assert r.status == 400, method
        assert "longer than 255 bytes" in r.text
    r = client.copy("/dav/" + longest, destination=DEST + too_long)
    assert r.status == 400
    r = client.move("/dav/" + longest, destination=DEST + "x/" + too_long)
    assert r.status == 400
    assert client.get("/dav/" + longest).body == b"fits"


def test_nul_in_path_is_400(client: Client) -> None:
    for method in ("GET", "PUT", "MKCOL", "PROPFIND", "DELETE", "LOCK"):
        r = client.request(method, "/dav/a\0b", headers={"Depth": "0"})
        assert r.status == 400 and "NUL" in r.text, method


def test_path_climbing_above_the_root_is_400(client: Client) -> None:
    # WsgiDAV answered these with a status and a Content-Length but no body: clients hung.
    for path in ("/dav/../../etc/passwd", "/dav/../..", "/../dav/"):
        r = client.get(path)
        assert r.status == 400 and "climbs above the root" in r.text
        assert len(r.body) == int(r.headers["content-length"])
    client.put("/dav/x.txt", b"x")
    assert client.get("/dav/a/../x.txt").body == b"x"  # dot-segments inside are fine


def test_invalid_utf8_path_is_400(client: Client) -> None:
    # Sent as a server passes them on: the raw bytes as latin-1 text (PEP 3333). Before the
    # limits, these crashed WsgiDAV's path decoding and the connection dropped without answer.
    for raw in (b"/dav/\xff", b"/dav/\xc3\x28", b"/dav/a/\xed\xa0\x80"):
        r = _raw_path_request(client, "PUT", raw.decode("latin-1"))
        assert r.status == 400 and "UTF-8" in r.text


def _raw_path_request(client: Client, method: str, wsgi_path: str) -> Any:
    """Like Client.request, but with PATH_INFO given exactly as the server's latin-1 text."""

    def with_raw_path(environ: dict[str, Any], start_response: Any) -> Any:
        environ["PATH_INFO"] = wsgi_path
        return client.app(environ, start_response)

    return Client(with_raw_path, client.user).request(method, "/dav/placeholder", b"x")


BAD_DESTINATIONS = [
    (DEST + "a%00b", "NUL"),
    (DEST + "a%2Fb", "encoded '/'"),
    (DEST + "a%2fb", "encoded '/'"),
    (DEST + "%FF", "UTF-8"),
    (DEST + "a/b/c/d/e/f", "deeper than 5"),
    (DEST + "x" * MAX_URL, f"longer than {MAX_URL} bytes"),
]


def test_destination_gets_the_path_rules(client: Client) -> None:
    client.put("/dav/src.txt", b"source")
    for destination, why in BAD_DESTINATIONS:
        for method in ("COPY", "MOVE"):
            r = client.request(method, "/dav/src.txt", headers={"Destination": destination})
            assert r.status == 400, (method, destination, r.text)
            assert why in r.text
    assert client.get("/dav/src.txt").body == b"source"
    listing = client.propfind("/dav/", depth="1").text
    assert listing.count("<D:response>") == 2  # the home and src.txt: nothing was created


# --- XML bodies -------------------------------------------------------------------------------


DTD_BODIES = {
    "internal-subset": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "y">]>'
    b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    "external-dtd": b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd">'
    b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    # The same hidden from a byte scan: UTF-16 and UTF-7.
    "utf-16": '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM '
    '"file:///etc/passwd">]><D:propfind xmlns:D="DAV:"><D:prop><x>&x;</x></D:prop>'
    "</D:propfind>".encode("utf-16"),
    "utf-7": b'<?xml version="1.0" encoding="UTF-7"?>+ADw-+ACE-DOCTYPE r+AD4-'
    b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
}


def test_any_dtd_is_refused(client: Client) -> None:
    for name, body in DTD_BODIES.items():
        for method in ("PROPFIND", "PROPPATCH", "LOCK"):
            r = client.request(method, "/dav/", body, {"Depth": "0"})
            assert r.status == 400, (name, method)
            assert "DTD" in r.text


def test_nesting_depth_and_element_count_are_bounded(client: Client) -> None:
    client.put("/dav/f.txt", b"f")
    fits = "<Z:n>" * 95 + "deep" + "</Z:n>" * 95
    assert client.proppatch("/dav/f.txt", proppatch_body(fits)).status == 207
    too_deep = "<Z:n>" * 100 + "</Z:n>" * 100
    r = client.proppatch("/dav/f.txt", proppatch_body(too_deep))
    assert r.status == 400 and "deeper than 100" in r.text
    many = b'<D:propfind xmlns:D="DAV:"><D:prop>' + b"<x/>" * 1000 + b"</D:prop></D:propfind>"
    assert len(many) < MAX_XML
    r = client.propfind("/dav/", many, depth="0")
    assert r.status == 400 and "more than 1000 elements" in r.text
    r = client.proppatch("/dav/f.txt", b"<not-closed>")
    assert r.status == 400 and "well-formed" in r.text


def test_xml_body_over_the_cap_is_413(client: Client) -> None:
    body = b'<D:propfind xmlns:D="DAV:"><D:prop>' + b" " * MAX_XML + b"</D:prop></D:propfind>"
    for chunked in (False, True):
        for method in ("PROPFIND", "PROPPATCH", "LOCK"):
            r = client.request(method, "/dav/", body, {"Depth": "0"}, chunked=chunked)
            assert r.status == 413, (method, chunked)
    # Bodies of methods WsgiDAV reads whole into memory (COPY/MOVE) are capped the same way.
    client.put("/dav/f.txt", b"f")
    r = client.copy("/dav/f.txt", b"x" * (MAX_XML + 1), destination=DEST + "g.txt")
    assert r.status == 413
    assert client.get("/dav/g.txt").status == 404


def test_chunked_xml_body_is_read_and_honoured(client: Client) -> None:
    client.put("/dav/f.txt", b"12345")
    r = client.request("PROPFIND", "/dav/f.txt", PROPFIND_SIZE, {"Depth": "0"}, chunked=True)
    assert r.status == 207
    assert "<D:getcontentlength>5</D:getcontentlength>" in r.text
    assert "getlastmodified" not in r.text  # the named property only, not allprop
    r = client.request("LOCK", "/dav/f.txt", LOCK_BODY, {"Timeout": "Second-60"}, chunked=True)
    assert r.status == 200 and "lock-token" in r.headers


# --- uploads ----------------------------------------------------------------------------------


def test_upload_at_the_limit_is_stored(client: Client) -> None:
    data = b"u" * MAX_UPLOAD
    assert client.put("/dav/exact.bin", data).status == 201
    assert client.request("PUT", "/dav/chunked.bin", data, chunked=True).status == 201
    assert client.get("/dav/chunked.bin").body == data


def test_upload_over_the_limit_is_413_and_stores_nothing(
    client: Client, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    client.put("/dav/keep.txt", b"old content")
    big = b"b" * (MAX_UPLOAD + 1)
    caplog.set_level(logging.INFO)
    attempts = [
        client.put("/dav/keep.txt", big),
        client.request("PUT", "/dav/keep.txt", big, chunked=True),
        client.request("PUT", "/dav/new.bin", big, chunked=True),
        # Finder: chunked, with the size announced up front.
        client.request(
            "PUT",
            "/dav/keep.txt",
            b"small",
            {"X-Expected-Entity-Length": str(MAX_UPLOAD + 1)},
            chunked=True,
        ),
    ]
    for r in attempts:
        assert r.status == 413, r.text
        assert "Traceback" not in r.text
    assert client.get("/dav/keep.txt").body == b"old content"
    assert client.get("/dav/new.bin").status == 404
    assert temp_blobs(services) == []
    # (WsgiDAV's own "byte copy failed" traceback is silenced by the server's logging setup.)
    assert not [
        rec
        for rec in caplog.records
        if rec.levelno >= logging.ERROR and rec.name.startswith("davdisk")
    ]
    used = {u.name: u.bytes for u in services.admin.list_users()}
    assert used["alice"] == len(b"old content")


def test_bad_content_length_is_400(client: Client) -> None:
    r = client.request("PROPFIND", "/dav/", b"", {"Content-Length": "-5", "Depth": "0"})
    assert r.status == 400
