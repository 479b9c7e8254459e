"""The till's hot path: a purchase reads once and writes what it earned, and the rules it evaluates come from the
process's cache only while the rules' revision read in the purchase's own transaction says they are current."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DataError, StatementError

from api.extensions import db
from wallet import ledger
from wallet.errors import NotFound
from wallet.ledger import LedgerEntry, Lot
from wallet.rules import Rule, engine

RULES = "/api/v1/admin/rules"


@pytest.fixture
def till(factory):
    store = factory.store()
    cashier = factory.staff("cashier", store_id=store["id"])
    return {"store": store, "h": cashier["headers"], "n": 0}


@pytest.fixture
def marketer(factory):
    return factory.staff("marketer")["headers"]


def buy(client, till, member, amount="10.00"):
    till["n"] += 1
    body = {"card": member["card_number"], "amount": amount, "currency": "ILS", "receipt_id": f"R-{till['n']}"}
    r = client.post("/api/v1/pos/purchases", json=body, headers=till["h"])
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def statements_of(app, work) -> list[str]:
    """The SQL statements ``work`` sends, each cut to its first words (BEGIN, COMMIT and savepoints left out)."""
    seen: list[str] = []

    def record(conn, cursor, statement, *_):
        head = " ".join(statement.split()[:3])
        if not head.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            seen.append(head)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        work()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_a_purchase_reads_once_and_writes_what_it_earned(app, client, factory, till, is_postgres):
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    member = factory.member()
    buy(client, till, member)  # loads the rules into the cache
    sent = statements_of(app, lambda: buy(client, till, member))
    if is_postgres:  # the balance, the entry, its lot, the grant, the purchase and their events: one statement
        writes = ["WITH moved AS"]
    else:  # one event: purchase.recorded carries the credit and the grant
        writes = ["UPDATE balances SET", "INSERT INTO ledger_entries", "INSERT INTO points_lots",
                  "INSERT INTO rule_grants", "INSERT INTO purchases", "INSERT INTO events",
                  "INSERT INTO member_tiers"]  # the member's tier totals (an upsert)
    # one read: the card, the store, the receipt and the cashier's sign-in together (a deactivated cashier's token
    # stops at once), then the writes
    assert sent == ["SELECT cards.member_id, cards.status,", *writes]


def test_rule_changes_reach_the_very_next_purchase(client, factory, till, marketer):
    rule_id = factory.rule(title="Points", reward={"points_per_currency_unit": 1})
    member = factory.member()
    assert buy(client, till, member)["points_awarded"] == 10
    assert client.patch(f"{RULES}/{rule_id}", json={"reward": {"points_per_currency_unit": 3}},
                        headers=marketer).status_code == 200
    assert buy(client, till, member)["points_awarded"] == 30
    assert client.post(f"{RULES}/{rule_id}/pause", headers=marketer).status_code == 200
    assert buy(client, till, member)["rewards"] == []
    assert client.post(f"{RULES}/{rule_id}/resume", headers=marketer).status_code == 200
    assert buy(client, till, member)["points_awarded"] == 30
    assert client.delete(f"{RULES}/{rule_id}", headers=marketer).status_code == 204
    assert buy(client, till, member)["rewards"] == []
    created = client.post(RULES, json={"title": "Flat 7", "trigger": "purchase", "reward": {"points": 7}},
                          headers=marketer)
    assert created.status_code == 201, created.get_json()
    body = buy(client, till, member)
    assert [(r["title"], r["points"]) for r in body["rewards"]] == [("Flat 7", 7)]
    assert body["balance"] == 10 + 30 + 30 + 7


def test_rules_cached_under_another_revision_are_never_used(client, factory, till, monkeypatch):
    factory.rule(title="Real rule", reward={"points": 5})
    member = factory.member()
    ghost = Rule(id="rul_GHOST", title="Ghost", trigger="purchase", conditions={}, reward={"points": 999},
                 probability=1.0, priority=100, stackable=True, status="active", version=1)
    monkeypatch.setattr(engine, "_cached", ("rev_FROM_ANOTHER_DATABASE", {"purchase": [ghost]}))
    body = buy(client, till, member)
    assert [(r["title"], r["points"]) for r in body["rewards"]] == [("Real rule", 5)]
    assert engine._cached[0] != "rev_FROM_ANOTHER_DATABASE"  # reloaded under the database's revision


def test_a_cached_rule_applies_only_inside_its_window(client, factory, till, clock):
    now = clock()
    factory.rule(title="Weekend sale", reward={"points": 4}, starts_at=now + timedelta(hours=1),
                 ends_at=now + timedelta(hours=2))
    member = factory.member()
    assert buy(client, till, member)["rewards"] == []
    clock.advance(hours=1)
    assert buy(client, till, member)["points_awarded"] == 4
    clock.advance(hours=1)
    assert buy(client, till, member)["rewards"] == []


def test_cached_rules_are_copies_outside_any_session(app, client, factory, till):
    factory.rule(title="Points", reward={"points_per_currency_unit": 1})
    buy(client, till, factory.member())
    cached = [rule for group in engine._cached[1].values() for rule in group]
    assert [rule.title for rule in cached] == ["Points"]
    from sqlalchemy import inspect
    assert all(inspect(rule).transient for rule in cached)


def test_a_purchase_that_earns_from_two_rules_moves_the_balance_twice_in_order(app, client, factory, till):
    # The first credit leads the purchase's one statement; the second can't share it (one row, one UPDATE per
    # statement) and is written at once. The statement must still read as a ledger: seq and balance_after agree.
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1}, priority=2)
    factory.rule(title="Visit bonus", reward={"points": 5}, priority=1)
    member = factory.member()
    factory.earn(member["id"], 100)
    answer = buy(client, till, member, amount="20.00")
    assert answer["points_awarded"] == 25 and answer["balance"] == 125
    assert sorted(r["points"] for r in answer["rewards"]) == [5, 20]
    with app.app_context():
        entries = db.session.execute(select(LedgerEntry.seq, LedgerEntry.delta, LedgerEntry.balance_after)
                                     .where(LedgerEntry.member_id == member["id"])
                                     .order_by(LedgerEntry.seq)).all()
        lots = db.session.scalars(select(Lot.points).where(Lot.member_id == member["id"])).all()
    assert [seq for seq, _, _ in entries] == [1, 2, 3]
    running = 0
    for _, delta, balance_after in entries:
        running += delta
        assert balance_after == running
    assert running == 125 and sorted(lots) == [5, 20, 100]


def test_a_batch_led_by_a_credit_that_finds_no_balance_raises_and_its_rows_roll_back(app, ctx, session, program):
    from wallet.db import on_postgres
    from wallet.fast_sql import Batch, write
    from wallet.purchases import Purchase
    if not on_postgres(session):
        pytest.skip("a credit leads a batch only on PostgreSQL (elsewhere it is written at once)")
    batch = Batch()
    entry = ledger.earn(session, program, member_id="mem_NOBODY", points=5, reason="purchase", description="x",
                        idempotency_key="nobody:1", fresh=True, batch=batch)
    assert batch.lead is not None and entry.balance_after is None  # put off: nothing written yet
    with pytest.raises(NotFound):
        write(session, batch)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert session.scalar(select(func.count()).select_from(Purchase)) == 0


def _counts(member_id: str) -> tuple[int, int, int, int]:
    from wallet.purchases import Purchase, PurchaseItem
    s = db.session
    return (s.scalar(select(ledger.Balance.points).where(ledger.Balance.member_id == member_id)),
            s.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.member_id == member_id)),
            s.scalar(select(func.count()).select_from(Purchase).where(Purchase.member_id == member_id)),
            s.scalar(select(func.count()).select_from(PurchaseItem)))


TOO_DEAR = Decimal("10000000000000.00")  # past Numeric(12, 2): PostgreSQL refuses the item's row


def _purchase(program, store, member, receipt: str, unit_price: Decimal | None = None):
    """A purchase of 20.00 at the till, domain call in the current session; with ``unit_price``, one item."""
    from wallet import till
    items = [] if unit_price is None else [{"barcode": "4006381333931", "quantity": 1, "unit_price": unit_price}]
    return till.record_purchase(db.session(), program, store_id=store["id"], card_code=member["card_number"],
                                amount=Decimal("20.00"), currency="ILS", receipt_id=receipt, items=items)


def test_a_purchase_whose_one_statement_fails_writes_nothing(app, factory, program, is_postgres):
    # On PostgreSQL the purchase's one write is its own transaction (no BEGIN/COMMIT): it must be all or nothing.
    # An item's price past the column's 12 digits fails the statement after the credit and the purchase in it.
    if not is_postgres:
        pytest.skip("SQLite does not enforce a numeric column's precision")
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1})
    store, member = factory.store(), factory.member()
    program.max_purchase_amount = TOO_DEAR  # past the till's bound too: the statement itself must fail here
    with app.app_context():
        with pytest.raises((DataError, StatementError)):
            _purchase(program, store, member, "R-BIG", TOO_DEAR)
        db.session.rollback()
        assert _counts(member["id"]) == (0, 0, 0, 0)
        # and the same purchase with a sane price goes through whole, its item with it
        result = _purchase(program, store, member, "R-BIG", Decimal("20.00"))
        db.session.commit()
        assert result.balance == 20 and _counts(member["id"]) == (20, 1, 1, 1)


def test_what_the_rules_wrote_first_rolls_back_with_a_failed_purchase(app, factory, program, client, is_postgres):
    # A coupon reward is written by the rules before the purchase's statement: then the statement is not its own
    # transaction, and its failure takes the coupon back too.
    from wallet.coupons import Coupon
    if not is_postgres:
        pytest.skip("SQLite does not enforce a numeric column's precision")
    marketer = factory.staff("marketer")["headers"]
    offer = client.post("/api/v1/admin/offers", json={"title": "Ten percent off", "benefit": {"kind": "percent_off",
                                                                                           "value": "10"}},
                        headers=marketer)
    assert offer.status_code == 201, offer.get_json()
    factory.rule(title="A coupon for shoppers", reward={"offer_id": offer.get_json()["id"]}, priority=2)
    factory.rule(title="1 point per shekel", reward={"points_per_currency_unit": 1}, priority=1)
    store, member = factory.store(), factory.member()
    coupons_of = select(func.count()).select_from(Coupon).where(Coupon.member_id == member["id"])
    program.max_purchase_amount = TOO_DEAR  # past the till's bound too: the statement itself must fail here
    with app.app_context():
        with pytest.raises((DataError, StatementError)):
            _purchase(program, store, member, "R-C", TOO_DEAR)
        db.session.rollback()
        assert db.session.scalar(coupons_of) == 0
        assert _counts(member["id"]) == (0, 0, 0, 0)
        result = _purchase(program, store, member, "R-C")
        db.session.commit()
        assert db.session.scalar(coupons_of) == 1 and result.balance == 20
