"""Stand-ins, with API.md's documented shapes, for the endpoints other engineers are building now (KPIs, segments,
campaigns), added to a test server only where the real route is not there. The console is written against the
documented shapes; these let the browser tests drive its screens today, and step aside once the API lands (then
the same tests run against the real endpoints)."""
from __future__ import annotations

from datetime import date, timedelta
from itertools import count
from typing import Any

from flask import Blueprint, Flask, abort, jsonify, request

from api.auth import marketer_required

received: dict[str, list[Any]] = {"previews": [], "campaigns": [], "launches": []}


def _kpis() -> Any:
    start = date.fromisoformat(request.args.get("from") or "2026-11-01")
    end = date.fromisoformat(request.args.get("to") or "2026-11-30")
    body: dict[str, Any] = {
        "members": {"total": 1200, "new": 85, "active_30d": 640, "active_90d": 910},
        "purchases": {"count": 3100, "revenue": "412500.00", "per_active_member": "4.84"},
        "points": {"issued": 402000, "redeemed": 150000, "expired": 12000, "outstanding": 860000,
                   "liability": "8600.00"},
        "coupons": {"issued": 900, "redeemed": 410, "redemption_rate": 0.4556},
        "campaigns": {"sent": 5000, "response_rate": 0.061},
        "by_channel": {"app": 2100, "till": 3100, "web": 120, "console": 14},
    }
    if request.args.get("interval"):
        days = (end - start).days + 1
        body["series"] = [{"date": (start + timedelta(days=i)).isoformat(),
                           "members": {"active": 200 + 7 * i}, "purchases": {"count": 90 + (i * 13) % 40},
                           "points": {"issued": 12000 + 300 * i, "redeemed": 5000 + 100 * (i % 5),
                                      "expired": 400 * (i % 3)},
                           "coupons": {"redemption_rate": 0.3 + 0.01 * (i % 10)},
                           "campaigns": {"response_rate": 0.05 + 0.002 * (i % 7)}} for i in range(days)]
    return jsonify(body)


def install(app: Flask) -> list[str]:
    """Add the stand-ins whose real route is missing; answers which paths were stubbed."""
    have = {rule.rule for rule in app.url_map.iter_rules()}
    blp = Blueprint("documented_stubs", __name__, url_prefix="/api/v1/admin")
    stubbed = []
    segments: dict[str, dict] = {}
    campaigns: dict[str, dict] = {}
    ids = count(1)

    def page(items):
        return jsonify({"items": items, "next_cursor": None})

    if "/api/v1/admin/kpis" not in have:
        stubbed.append("/api/v1/admin/kpis")
        blp.get("/kpis")(marketer_required(_kpis))

    if "/api/v1/admin/segments" not in have:
        stubbed.append("/api/v1/admin/segments")

        @marketer_required
        def segment_list():
            if request.method == "POST":
                body = request.get_json()
                segment = {"id": f"seg_{next(ids)}", "name": body["name"], "criteria": body["criteria"]}
                segments[segment["id"]] = segment
                return jsonify(segment), 201
            return page(list(segments.values()))

        @marketer_required
        def preview():
            criteria = request.get_json()["criteria"]
            received["previews"].append(criteria)
            wanted = {"all": [{"field": "points_balance", "op": ">=", "value": 10}]}
            return jsonify({"count": 2 if criteria == wanted else 0, "sample": []})

        blp.route("/segments", methods=["GET", "POST"])(segment_list)
        blp.post("/segments/preview")(preview)

    if "/api/v1/admin/campaigns" not in have:
        stubbed.append("/api/v1/admin/campaigns")

        @marketer_required
        def campaign_list():
            if request.method == "POST":
                body = request.get_json()
                received["campaigns"].append(body)
                if body.get("segment_id") not in segments:
                    return jsonify({"type": "about:blank", "title": "Invalid input", "status": 422,
                                    "detail": "No such segment", "code": "validation_error"}), 422
                campaign = {"id": f"cmp_{next(ids)}", "status": "draft", **body}
                campaigns[campaign["id"]] = campaign
                return jsonify(campaign), 201
            return page(list(campaigns.values()))

        @marketer_required
        def campaign(campaign_id):
            return jsonify(campaigns.get(campaign_id) or abort(404))

        @marketer_required
        def launch(campaign_id):
            found = campaigns.get(campaign_id) or abort(404)
            received["launches"].append(campaign_id)
            found["status"] = "launched"
            return jsonify(found)

        @marketer_required
        def report(campaign_id):
            campaigns.get(campaign_id) or abort(404)
            return jsonify({"audience": 200, "holdout": 20, "treated": 180, "sent": 178, "delivered": 175,
                            "failed": 3, "suppressed": 2, "tracked": 150, "opened": 90, "clicked": 30,
                            "redeemed": 12,
                            "responders": 27, "response_rate": 0.15, "holdout_responders": 1,
                            "holdout_response_rate": 0.05, "lift": 0.1, "lift_ci95": [0.02, 0.18]})

        blp.route("/campaigns", methods=["GET", "POST"])(campaign_list)
        blp.get("/campaigns/<campaign_id>")(campaign)
        blp.post("/campaigns/<campaign_id>/launch")(launch)
        blp.get("/campaigns/<campaign_id>/report")(report)

    app.register_blueprint(blp)
    return stubbed
