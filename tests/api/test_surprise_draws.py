"""Losing surprise draws counted (issue 18): GET /admin/rules/{id}/draws shows wins and losses, so the real win rate
can be set against the rule's probability; a loss is written with the purchase's own rows."""
from __future__ import annotations

import random

from ..conftest import assert_problem

API = "/api/v1"


def test_wins_and_losses_are_counted_and_the_win_rate_follows_the_draws(client, factory, program):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    marketer = factory.staff("marketer")
    surprise = factory.rule(title="Surprise coffee points", reward={"points": 5}, probability=0.3)
    plain = factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    member = factory.member()
    program.random = random.Random(7)
    expected = random.Random(7)
    wins = sum(expected.random() < 0.3 for _ in range(40))
    for n in range(40):
        r = client.post(f"{API}/pos/purchases", headers=cashier["headers"], json={
            "card": member["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": f"R-{n}"})
        assert r.status_code == 201, r.get_json()
    # a retried receipt draws nothing more
    client.post(f"{API}/pos/purchases", headers=cashier["headers"], json={
        "card": member["card_number"], "amount": "10.00", "currency": "ILS", "receipt_id": "R-0"})
    stats = client.get(f"{API}/admin/rules/{surprise}/draws", headers=marketer["headers"]).get_json()
    assert stats == {"rule_id": surprise, "probability": 0.3, "draws": 40, "wins": wins, "losses": 40 - wins,
                     "win_rate": round(wins / 40, 6)}
    assert 0 < wins < 40
    # a rule without a chance draws nothing
    assert client.get(f"{API}/admin/rules/{plain}/draws", headers=marketer["headers"]).get_json()["draws"] == 0
    day = program.now().date().isoformat()
    later = client.get(f"{API}/admin/rules/{surprise}/draws?since=2099-01-01", headers=marketer["headers"]).get_json()
    assert (later["draws"], later["win_rate"]) == (0, None)
    assert client.get(f"{API}/admin/rules/{surprise}/draws?since={day}&until={day}",
                      headers=marketer["headers"]).get_json()["draws"] in (0, 40)  # the club's day may differ from UTC's
    assert_problem(client.get(f"{API}/admin/rules/rul_NOPE/draws", headers=marketer["headers"]), 404, "rule_not_found")
    assert_problem(client.get(f"{API}/admin/rules/{surprise}/draws?since=yesterday", headers=marketer["headers"]),
                   422, "validation_error")
    assert_problem(client.get(f"{API}/admin/rules/{surprise}/draws", headers=member["headers"]), 403, "forbidden")
