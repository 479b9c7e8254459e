"""POST /admin/social/import: CSV or JSON rows matched by email or phone, applied only with consent, each bad row
reported by its line, dry runs, and large files imported by the worker."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from api.extensions import db
from tests.conftest import assert_problem
from wallet import social
from wallet.audit import AuditEntry

IMPORT = "/api/v1/admin/social/import"


@pytest.fixture
def marketer(factory):
    return factory.staff("marketer")["headers"]


@pytest.fixture
def people(factory, client):
    """Noa shares her social data (email match), Dan shares (phone match), Eli does not."""
    noa = factory.member(email="noa@example.com", name="נועה")
    dan = factory.member(email="dan@example.com", phone="054-123-4567")
    eli = factory.member(email="eli@example.com")
    for who in (noa, dan):
        r = client.put("/api/v1/me/social", json={"share_consent": True}, headers=who["headers"])
        assert r.status_code == 200
    return {"noa": noa, "dan": dan, "eli": eli}


def post_csv(client, text, headers, query=""):
    body = text.encode() if isinstance(text, str) else text
    return client.post(IMPORT + query, data=body, headers={**headers, "Content-Type": "text/csv; charset=utf-8"})


def profiles(app) -> dict[str, dict]:
    with app.app_context():
        out: dict[str, dict] = {}
        for n in db.session.scalars(select(social.SocialNetwork)):
            out.setdefault(n.member_id, {"networks": {}, "attributes": {}})["networks"][n.network] = n.handle
        for a in db.session.scalars(select(social.SocialAttribute)):
            out.setdefault(a.member_id, {"networks": {}, "attributes": {}})["attributes"][a.key] = a.value
        db.session.remove()
        return out


def test_rows_are_matched_applied_with_consent_and_bad_rows_reported(client, app, marketer, people, monkeypatch):
    monkeypatch.setitem(app.config, "LOYALTY_SOCIAL_IMPORT_SYNC_BYTES", 20 * 1024 * 1024)
    text = ("\ufeffemail,phone,network,handle,team,=HYPERLINK(\"http://x\")\r\n"
            "NOA@Example.com,,instagram,noa.levi,מכבי,\r\n"           # line 2: email, any case
            ",+972 54-123-4567,tiktok,dan_d,Hapoel,\r\n"               # line 3: phone in another spelling
            "eli@example.com,,x,eli,,\r\n"                             # line 4: no consent
            "nobody@example.com,,x,nobody,,\r\n"                       # line 5: unmatched
            "noa@example.com,,myspace,noa,,\r\n"                       # line 6: unknown network
            f"noa@example.com,,x,{'a' * 10_000_000},,\r\n"             # line 7: a 10 MB cell
            "=HYPERLINK(\"http://evil\"),,x,evil,,\r\n"                # line 8: formula cell: a bad email
            "noa@example.com,,instagram,noa2,,\r\n"                    # line 9: same member and network
            "dan@example.com,,x,dan,,,extra\r\n"                       # line 10: a surplus cell
            ",,x,someone,,\r\n"                                         # line 11: no email or phone
            ",not a phone,x,someone,,\r\n")                            # line 12
    r = post_csv(client, text, marketer)
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert {k: report[k] for k in ("dry_run", "rows", "matched", "applied", "skipped_no_consent", "unmatched")} == {
        "dry_run": False, "rows": 11, "matched": 3, "applied": 2, "skipped_no_consent": 1, "unmatched": 1}
    rows = [(e["row"], e["message"]) for e in report["errors"]]
    assert [row for row, _ in rows] == [1, 6, 7, 8, 9, 10, 11, 12]
    assert rows[0][1].startswith("Column \"'=hyperlink("), rows[0]
    assert "10,000,000 characters" in rows[2][1]
    assert "same member and network as row 2" in rows[4][1]
    body = r.get_data(as_text=True)
    assert "=HYPERLINK(\\\"http://evil" not in body and "evil" not in body and "aaaaaaaaaa" not in body
    found = profiles(app)
    assert found == {people["noa"]["id"]: {"networks": {"instagram": "noa.levi"}, "attributes": {"team": "מכבי"}},
                     people["dan"]["id"]: {"networks": {"tiktok": "dan_d"}, "attributes": {"team": "Hapoel"}}}
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.entity == "social_profile"))
        assert entry is not None and entry.after["applied"] == 2
        db.session.remove()


def test_a_dry_run_writes_nothing(client, app, marketer, people):
    r = post_csv(client, "email,network,handle\nnoa@example.com,x,noa\n", marketer, "?dry_run=true")
    assert r.status_code == 200
    assert r.get_json()["applied"] == 1 and r.get_json()["dry_run"] is True
    assert profiles(app) == {}


def test_json_rows(client, app, marketer, people):
    rows = [{"email": "noa@example.com", "network": "x", "handle": "noa", "followers": 12, "vip": True},
            {"phone": "0541234567", "network": "x", "handle": "dan"},
            "not an object",
            {"email": "noa@example.com", "network": "x", "handle": "noa", "nested": {"a": 1}}]
    r = client.post(IMPORT, json=rows, headers=marketer)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["applied"] == 2
    assert [e["row"] for e in r.get_json()["errors"]] == [3, 4]
    assert profiles(app)[people["noa"]["id"]]["attributes"] == {"followers": "12", "vip": "true"}


def test_a_second_import_updates_and_keeps_other_attributes(client, app, marketer, people):
    post_csv(client, "email,network,handle,team,city_fan\nnoa@example.com,x,noa,a,yes\n", marketer)
    post_csv(client, "email,network,handle,team\nnoa@example.com,x,noa_new,b\n", marketer)
    assert profiles(app)[people["noa"]["id"]] == {"networks": {"x": "noa_new"},
                                                 "attributes": {"team": "b", "city_fan": "yes"}}


@pytest.mark.parametrize("text, code", [
    ("email,handle\nnoa@example.com,noa\n", "invalid_csv_header"),
    ("network,handle\nx,noa\n", "invalid_csv_header"),
    ("email,email,network,handle\n", "invalid_csv_header"),
    ("", "invalid_csv_header"),
    (b"\xff\xfe\x00e", "invalid_csv"),
])
def test_files_that_are_not_imports(client, marketer, text, code):
    assert_problem(post_csv(client, text, marketer), 422, code)


def test_wrong_media_type_and_roles(client, marketer, people):
    r = client.post(IMPORT, data="x", headers={**marketer, "Content-Type": "application/xml"})
    assert r.status_code == 415
    assert post_csv(client, "email,network,handle\n", people["noa"]["headers"]).status_code == 403
    assert_problem(client.post(IMPORT, data="[", headers={**marketer, "Content-Type": "application/json"}),
                   422, "invalid_json")


def test_a_large_file_is_imported_by_the_worker(client, app, marketer, people, factory):
    app.config["LOYALTY_SOCIAL_IMPORT_SYNC_BYTES"] = 100
    try:
        text = "email,network,handle,bio\n" + "noa@example.com,x,noa," + "b" * 150 + "\n"
        r = post_csv(client, text, marketer)
        assert r.status_code == 202, r.get_json()
        queued = r.get_json()
        assert queued["status"] == "queued"
        status = client.get(queued["report_url"], headers=marketer).get_json()
        assert status["status"] == "queued" and profiles(app) == {}
        with app.app_context():
            assert social.run_queued(db.session, factory.program) == 1
            db.session.commit()
            assert social.run_queued(db.session, factory.program) == 0
            db.session.remove()
        status = client.get(queued["report_url"], headers=marketer).get_json()
        assert status["status"] == "done" and status["report"]["applied"] == 1
        assert profiles(app)[people["noa"]["id"]]["networks"] == {"x": "noa"}
    finally:
        app.config["LOYALTY_SOCIAL_IMPORT_SYNC_BYTES"] = 2 * 1024 * 1024
    assert_problem(client.get("/api/v1/admin/social/imports/simp_nope", headers=marketer), 404, "import_not_found")
