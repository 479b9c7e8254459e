"""GET /api/v1/admin/kpis: marketers and admins only; API.md's shape; figures of a history made through the API,
with a monthly series; bad periods answered 422 naming the field, changing nothing."""
from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from api.extensions import db
from tests.conftest import assert_problem
from wallet import kpis
from wallet.kpis import KpiDay

URL = "/api/v1/admin/kpis"
BLOCKS = {"members", "purchases", "points", "coupons", "campaigns", "by_channel"}


def test_only_marketers_and_admins_see_the_figures(client, factory):
    assert_problem(client.get(URL), 401, "unauthorized")
    for who in (factory.member(), factory.staff("cashier")):
        assert_problem(client.get(URL, headers=who["headers"]), 403, "forbidden")
    for role in ("marketer", "admin"):
        assert client.get(URL, headers=factory.staff(role)["headers"]).status_code == 200


def test_an_empty_club_answers_the_whole_shape_with_zeros(client, factory, clock):
    r = client.get(URL, headers=factory.staff("marketer")["headers"])
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert set(body) == BLOCKS | {"from", "to", "timezone"}  # no series unless asked
    assert (body["from"], body["to"]) == ("2026-10-24", "2026-11-22")  # the clock's 22 Nov, 30 days
    assert body["members"] == {"total": 0, "new": 0, "active_30d": 0, "active_90d": 0}
    assert body["purchases"] == {"count": 0, "revenue": "0.00", "per_active_member": None, "refunds": 0,
                                 "refunded": "0.00"}
    assert body["points"]["liability"] == "0.00"
    assert body["coupons"]["redemption_rate"] is None
    assert body["campaigns"] == {"sent": 0, "response_rate": None}
    assert set(body["by_channel"]) == {"app", "till", "web", "console", "api", "job", "import"}


def _purchase(client, cashier, member, receipt: str, amount: str) -> dict:
    r = client.post("/api/v1/pos/purchases", headers=cashier["headers"],
                    json={"card": member["card_number"], "amount": amount, "currency": "ILS", "receipt_id": receipt})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def test_figures_of_a_history_made_through_the_api(client, factory, clock, program, app):
    program.timezone = "UTC"
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    cashier, marketer = factory.staff("cashier"), factory.staff("marketer")
    clock.now = datetime(2026, 9, 30, 23, 59, tzinfo=UTC)
    noa = factory.member()
    _purchase(client, cashier, noa, "1", "80.00")
    clock.now = datetime(2026, 10, 1, 0, 1, tzinfo=UTC)
    dan = factory.member()
    bought = _purchase(client, cashier, dan, "2", "20.25")
    clock.now = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    r = client.post(f"/api/v1/pos/purchases/{bought['purchase_id']}/refund", headers=cashier["headers"])
    assert r.status_code == 200, r.get_data(as_text=True)
    r = client.post(f"/api/v1/admin/members/{noa['id']}/adjustments", headers=marketer["headers"],
                    json={"points": -30, "reason": "goodwill taken back"})
    assert r.status_code in (200, 201), r.get_data(as_text=True)
    with app.app_context():  # part summarised by the worker's job, the rest read from the events after it
        kpis.summarise(db.session, program, batch_size=4)
        db.session.commit()
    clock.now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    r = client.get(f"{URL}?from=2026-09-01&to=2026-11-30&interval=month", headers=marketer["headers"])
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["members"] == {"total": 2, "new": 2, "active_30d": 0, "active_90d": 2}
    assert body["purchases"] == {"count": 2, "revenue": "80.00", "per_active_member": None, "refunds": 1,
                                 "refunded": "20.25"}
    assert body["points"] == {"issued": 100, "redeemed": 0, "expired": 0, "adjusted": -30, "reversed": -20,
                              "outstanding": 50, "liability": "0.50"}
    assert body["by_channel"]["till"] == 3 and body["by_channel"]["app"] == 2
    months = body["series"]
    assert [m["date"] for m in months] == ["2026-09-01", "2026-10-01", "2026-11-01"]
    assert [m["purchases"]["count"] for m in months] == [1, 1, 0]
    assert [m["purchases"]["revenue"] for m in months] == ["80.00", "20.25", "-20.25"]
    assert [m["points"]["outstanding"] for m in months] == [80, 100, 50]
    assert [m["members"]["active_30d"] for m in months] == [1, 0, 0]  # 2-31 Oct: neither bought
    assert [m["members"]["active_90d"] for m in months] == [1, 2, 2]
    assert [m["members"]["total"] for m in months] == [1, 2, 2]


def test_the_point_value_prices_the_liability(make_app, factory, program):
    other = make_app(LOYALTY_POINT_VALUE=__import__("decimal").Decimal("0.035"))
    factory.earn(factory.member()["id"], 1001)
    marketer = factory.staff("marketer")
    body = other.test_client().get(URL, headers=marketer["headers"]).get_json()
    assert body["points"]["outstanding"] == 1001
    assert body["points"]["liability"] == "35.04"  # 35.035, rounded half up


@pytest.mark.parametrize(("query", "field"), [
    ("from=2026-05-02&to=2026-05-01", "from"),
    ("from=2023-01-01&to=2026-01-01", "to"),
    ("interval=hour", "interval"),
    ("interval=", "interval"),
    ("from=2026-02-30", "from"),
    ("to=yesterday", "to"),
    ("from=" + "9" * 5000, "from"),
    ("from=1066-10-14", "from"),
    ("to=<script>", "to"),
])
def test_bad_periods_are_422_naming_the_field(client, factory, session, query, field):
    r = client.get(f"{URL}?{query}", headers=factory.staff("admin")["headers"])
    body = assert_problem(r, 422, "validation_error")
    assert field in body["errors"], body
    assert session.scalar(select(func.count()).select_from(KpiDay)) == 0  # a GET writes nothing


def test_the_openapi_document_defines_every_figure(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/admin/kpis"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"from", "to", "interval"}
    schemas = spec["components"]["schemas"]
    for name in ("MembersKpi", "PurchasesKpi", "PointsKpi", "CouponsKpi", "CampaignsKpi"):
        for field, prop in schemas[name]["properties"].items():
            assert len(prop.get("description", "")) > 20, (name, field)
    assert "LOYALTY_TIMEZONE" in schemas["Kpis"]["properties"]["timezone"]["description"]
    assert date.fromisoformat(schemas["Kpis"]["properties"]["from"].get("example", "2026-01-01"))


def test_the_demo_club_has_figures_to_show(app, client, factory, session):
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert session.scalar(select(func.count()).select_from(KpiDay)) > 0  # summarised by `loyalty demo`
    session.commit()
    token = client.post("/api/v1/auth/token", json={"email": "marketer@demo.club", "password": "demo-marketer-1"})
    body = client.get(f"{URL}?interval=week", headers={
        "Authorization": f"Bearer {token.get_json()['access_token']}"}).get_json()
    assert body["members"]["total"] >= 9 and body["members"]["active_30d"] >= 6
    assert body["purchases"]["count"] > 20 and body["purchases"]["refunds"] >= 1
    assert body["points"]["issued"] > 1000 and body["points"]["outstanding"] > 0
    assert body["coupons"]["issued"] >= 1
    assert body["by_channel"]["till"] > 20 and body["by_channel"]["app"] > 5
    assert len(body["series"]) in (5, 6)
    again = app.test_cli_runner().invoke(args=["demo"])  # safe twice: nothing counted twice
    assert again.exit_code == 0, again.output
    assert client.get(f"{URL}?interval=week", headers={
        "Authorization": f"Bearer {token.get_json()['access_token']}"}).get_json() == body


def test_the_worker_runs_the_summary_job(app, client, factory, clock, program):
    from sqlalchemy.orm import sessionmaker

    from api.cli import scheduled_jobs
    from wallet import worker
    factory.member()
    factory.member()
    with app.app_context():
        jobs = [job for job in scheduled_jobs() if job.name == "kpis-summarise"]
        assert [job.every.total_seconds() for job in jobs] == [15]
        stats = worker.run(sessionmaker(bind=db.engine), program, jobs=jobs, once=True)
        assert stats.jobs == {"kpis-summarise": 2}  # the two enrolments' events
        assert kpis.position(db.session)[1] > 0
        db.session.remove()
