"""Attack (issue 12, item 7): store without limit through dead properties (PROPPATCH).

What worked: a user with a 1 MiB quota stored 6 x 900 kB of dead properties, uncounted, in
plain text in ``davdisk.db``; an anonymous upload-link holder stored 3 more. Now a value is at
most 64 KiB and a resource holds at most 100 dead properties (507 in the propstat beyond
either), their bytes count in the owner's quota (507 when over), values are encrypted at rest,
and a link that may not write gets 403.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.live.conftest import ALICE, BOB, Server, parse_multistatus, stored_bytes
from tests.live.sharing_helpers import (
    TEST,
    TEST_NS,
    link_session,
    proppatch,
    proppatch_statuses,
    put_ok,
    quota,
    sess,
    set_quota,
    share_link,
    uid,
)

K = 1024


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from tests.live.sharing_helpers import start_share_server

    yield from start_share_server(tmp_path_factory, "dead-props")


def many_body(names: list[str], value: str = "v") -> bytes:
    sets = "".join(f"<T:{n}>{value}</T:{n}>" for n in names)
    return (
        f'<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
        f'xmlns:T="{TEST_NS}"><D:set><D:prop>{sets}</D:prop></D:set></D:propertyupdate>'
    ).encode()


def dead_props(s: requests.Session, url: str) -> dict[str, str]:
    r = s.request("PROPFIND", url, headers={"Depth": "0"})
    assert r.status_code == 207, r.status_code
    (e,) = parse_multistatus(r.content).values()
    return {k: (v.text or "") for k, v in e.props.items() if k.startswith(TEST)}


def new_file(srv: Server, user: str = ALICE) -> tuple[requests.Session, str]:
    s = sess(srv, user)
    url = f"{srv.dav}dp-{uid()}.txt"
    put_ok(s, url, b"x")
    return s, url


def test_value_over_64k_is_refused_with_507(srv: Server) -> None:
    s, url = new_file(srv)
    r = proppatch(s, url, "big", "a" * (64 * K + 100))
    assert proppatch_statuses(r) == {507}, r.text[:500]
    assert dead_props(s, url) == {}
    r = proppatch(s, url, "fits", "a" * (60 * K))
    assert proppatch_statuses(r) == {200}, r.text[:500]


def test_more_than_100_properties_on_one_resource_are_refused(srv: Server) -> None:
    s, url = new_file(srv)
    r = s.request("PROPPATCH", url, data=many_body([f"p{i}" for i in range(100)]))
    assert proppatch_statuses(r) == {200}, r.text[:500]
    # One more in one request: 507 for the new one, and nothing of that request is applied.
    r = s.request("PROPPATCH", url, data=many_body(["p0", "extra"], "w"))
    assert 507 in proppatch_statuses(r), r.text[:500]
    props = dead_props(s, url)
    assert len(props) == 100 and "extra" not in {k[len(TEST) :] for k in props}
    assert props[TEST + "p0"] == "v"
    # 101 names in a single request on an empty resource: refused as well.
    s2, url2 = new_file(srv)
    r = s2.request("PROPPATCH", url2, data=many_body([f"q{i}" for i in range(101)]))
    assert 507 in proppatch_statuses(r), r.text[:500]
    assert dead_props(s2, url2) == {}
    # Changing an existing property is no new one.
    r = proppatch(s, url, "p1", "changed")
    assert proppatch_statuses(r) == {200}, r.text[:500]


def test_property_bytes_count_in_the_quota(srv: Server) -> None:
    s, url = new_file(srv, BOB)
    used0, _ = quota(s, srv.dav)
    set_quota(srv, BOB, str(used0 + 200 * K))
    try:
        r = proppatch(s, url, "a", "a" * (60 * K))
        assert proppatch_statuses(r) == {200}
        used1, _ = quota(s, srv.dav)
        assert used1 - used0 >= 60 * K, f"60 KiB of properties counted as {used1 - used0}"
        stored = 1
        refused = 0
        for i in range(6):  # 6 x 60 KiB more: the quota (200 KiB) refuses some
            st = proppatch_statuses(proppatch(s, url, f"b{i}", "b" * (60 * K)))
            if st == {507}:
                refused += 1
            else:
                assert st == {200}
                stored += 1
        assert refused > 0, "dead properties stored beyond the quota"
        used2, _ = quota(s, srv.dav)
        assert used2 <= used0 + 200 * K
        assert len(dead_props(s, url)) == stored
        # Removing one gives its bytes back.
        r = proppatch(s, url, "a", "", remove=True)
        assert proppatch_statuses(r) == {200}
        used3, _ = quota(s, srv.dav)
        assert used2 - used3 >= 60 * K
    finally:
        set_quota(srv, BOB, "0")


def test_values_are_encrypted_at_rest(srv: Server) -> None:
    s, url = new_file(srv)
    marker = "secret-dead-property-" + uid()
    r = proppatch(s, url, "note", marker)
    assert proppatch_statuses(r) == {200}
    assert dead_props(s, url)[TEST + "note"] == marker
    assert marker.encode() not in stored_bytes(srv.data_dir), "a dead property lies in the clear"


def test_read_only_link_may_not_proppatch(srv: Server) -> None:
    s = sess(srv, ALICE)
    folder = f"ro-link-{uid()}"
    s.request("MKCOL", srv.dav + folder)
    put_ok(s, f"{srv.dav}{folder}/f.txt", b"x")
    link = share_link(srv, ALICE, "/" + folder)
    anon = link_session(srv, None)
    r = anon.request(
        "PROPPATCH",
        link.public + "f.txt",
        data=many_body(["x"]),
        headers={"Content-Type": "application/xml"},
    )
    assert r.status_code == 403 or (r.status_code == 207 and proppatch_statuses(r) == {403}), (
        r.status_code,
        r.text[:300],
    )
    assert dead_props(s, f"{srv.dav}{folder}/f.txt") == {}


def test_upload_link_properties_are_charged_to_the_owner(srv: Server) -> None:
    s = sess(srv, BOB)
    folder = f"drop-{uid()}"
    s.request("MKCOL", srv.dav + folder)
    link = share_link(srv, BOB, "/" + folder, upload=True)
    anon = link_session(srv, None)
    put_ok(anon, link.public + "up.txt", b"x")
    used0, _ = quota(s, srv.dav)
    set_quota(srv, BOB, str(used0 + 100 * K))
    try:
        statuses = [
            proppatch_statuses(proppatch(anon, link.public + "up.txt", f"n{i}", "z" * (60 * K)))
            for i in range(3)
        ]
        assert {507} in statuses, f"an upload link stored past the owner's quota: {statuses}"
        used1, _ = quota(s, srv.dav)
        assert used1 - used0 >= 60 * K and used1 <= used0 + 100 * K
    finally:
        set_quota(srv, BOB, "0")
