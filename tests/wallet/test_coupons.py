"""Offers and coupons, driven through the domain with a session: claims, limits, redemption, void, bulk issue."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from wallet import codes, coupons, enrolment, ledger, members, qr, rules
from wallet.clock import iso
from wallet.coupons import Coupon, Offer, Redemption
from wallet.db import new_id
from wallet.errors import Conflict, InsufficientPoints, Invalid, NotFound, Rejected
from wallet.ledger import LedgerEntry
from wallet.stores import Product, Store

FREE_COFFEE = {"kind": "free_item", "sku": "COF-250"}
TEN_OFF = {"kind": "percent_off", "value": "10"}


@pytest.fixture
def club(session, program, clock):
    """Two stores, a product, and a helper to make members and offers."""
    class Club:
        n = 0

        def __init__(self):
            self.store = Store(code="A", name="A", lat=32.0, lon=34.7)
            self.other_store = Store(code="B", name="B", lat=32.1, lon=34.8)
            session.add_all([self.store, self.other_store,
                             Product(sku="COF-250", barcode="7290001234515", name="Coffee", category="coffee")])
            session.flush()

        def member(self, points: int = 0) -> members.Member:
            Club.n += 1
            member = enrolment.register_member(session, program, email=f"m{Club.n}@example.com",
                                             password="correct horse", name=f"M{Club.n}")
            if points:
                ledger.earn(session, program, member_id=member.id, points=points, reason="manual",
                            idempotency_key=f"seed:{member.id}", description="seed")
            return member

        def offer(self, **data) -> Offer:
            return coupons.create_offer(session, program, {"title": "Free coffee", "benefit": FREE_COFFEE} | data)

    return Club()


def _count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def _balance(session, member_id: str) -> int:
    session.expire_all()
    return ledger.balance_of(session, member_id).points


# ---------------------------------------------------------------- human codes

def test_new_codes_are_short_typable_and_self_checking():
    made = {codes.new_code() for _ in range(2000)}
    assert len(made) == 2000
    for code in list(made)[:200]:
        assert len(code) == 12 and code[0].isalpha()
        assert set(code) <= set(codes.CODE_ALPHABET)
        assert codes.normalise_code(codes.format_code(code).lower()) == code
        assert codes.normalise_code(" " + code[:6] + " " + code[6:]) == code


def test_batches_of_codes_and_ids_have_the_single_ones_shape():
    made, ids = codes.new_codes(5000), codes.new_ids("cpn", 5000)
    assert len(set(made)) == len(set(ids)) == 5000
    assert all(codes.normalise_code(code) == code and code[0].isalpha() for code in made)
    single = new_id("cpn")
    assert all(len(i) == len(single) and i[:4] == "cpn_" and set(i[4:]) <= set(codes.CODE_ALPHABET) for i in ids)
    assert ids[0][:8] == single[:8]  # the same clock prefix: ids stay ordered by time
    assert qr.verify_coupon_token(b"k" * 32, qr.coupon_token(b"k" * 32, ids[0])) == ids[0]


def test_code_check_symbol_catches_every_single_typo():
    code = codes.new_code()
    for i in range(len(code)):
        for ch in codes.CODE_ALPHABET:
            if ch == code[i]:
                continue
            with pytest.raises(Invalid) as caught:
                codes.normalise_code(code[:i] + ch + code[i + 1:])
            assert caught.value.code == "invalid_coupon_code"


def test_code_reads_o_as_zero_and_i_l_as_one():
    body = "A0B1C0D1E0F"
    code = body + codes._check_symbol(body)
    assert codes.normalise_code(code.replace("0", "O").replace("1", "l")) == code


# ---------------------------------------------------------------- offers

@pytest.mark.parametrize("benefit, stored", [
    ({"kind": "percent_off", "value": "10"}, {"kind": "percent_off", "value": "10"}),
    ({"kind": "percent_off", "value": 15}, {"kind": "percent_off", "value": "15"}),
    ({"kind": "percent_off", "value": "12.5"}, {"kind": "percent_off", "value": "12.5"}),
    ({"kind": "amount_off", "value": "5"}, {"kind": "amount_off", "value": "5.00", "currency": "ILS"}),
    ({"kind": "amount_off", "value": "5.00", "currency": "ILS"}, {"kind": "amount_off", "value": "5.00",
                                                                  "currency": "ILS"}),
    ({"kind": "free_item", "sku": "COF-250"}, {"kind": "free_item", "sku": "COF-250"}),
])
def test_benefit_shapes_are_stored_canonically(session, program, club, benefit, stored):
    assert club.offer(benefit=benefit).benefit == stored


@pytest.mark.parametrize("benefit", [
    None, {}, {"kind": "cashback", "value": "1"}, {"kind": "percent_off"}, {"kind": "percent_off", "value": "0"},
    {"kind": "percent_off", "value": "101"}, {"kind": "percent_off", "value": True},
    {"kind": "percent_off", "value": "1.234"}, {"kind": "percent_off", "value": "NaN"},
    {"kind": "percent_off", "value": "10", "sku": "COF-250"}, {"kind": "amount_off", "value": "-5"},
    {"kind": "amount_off", "value": "5", "currency": "USD"}, {"kind": "free_item", "sku": "NOPE"},
    {"kind": "free_item"}, {"kind": "amount_off", "value": 5.5},
])
def test_bad_benefits_are_refused_and_nothing_is_written(session, program, club, benefit):
    with pytest.raises(Invalid) as caught:
        club.offer(benefit=benefit)
    assert "benefit" in caught.value.errors
    assert _count(session, Offer) == 0


def test_offer_stores_must_exist(session, program, club):
    with pytest.raises(Invalid) as caught:
        club.offer(stores=[club.store.id, "sto_NOPE"])
    assert caught.value.errors["stores"] == ["Unknown store: sto_NOPE."]


def test_benefit_is_fixed_once_coupons_exist(session, program, club):
    offer = club.offer()
    coupons.update_offer(session, program, offer.id, {"benefit": TEN_OFF, "title": "Ten off"})
    coupons.claim_coupon(session, program, member_id=club.member().id, offer_id=offer.id)
    with pytest.raises(Conflict) as caught:
        coupons.update_offer(session, program, offer.id, {"benefit": FREE_COFFEE})
    assert caught.value.code == "offer_has_coupons"
    assert coupons.update_offer(session, program, offer.id, {"title": "Ten off!"}).title == "Ten off!"
    assert session.get(Offer, offer.id).benefit == TEN_OFF


def test_total_limit_cannot_go_below_what_is_out(session, program, club):
    offer = club.offer(total_limit=5)
    for _ in range(3):
        coupons.claim_coupon(session, program, member_id=club.member().id, offer_id=offer.id)
    with pytest.raises(Invalid) as caught:
        coupons.update_offer(session, program, offer.id, {"total_limit": 2})
    assert caught.value.code == "total_limit_below_issued"
    assert coupons.update_offer(session, program, offer.id, {"total_limit": 3}).total_limit == 3


# ---------------------------------------------------------------- claiming

def test_claim_a_free_coupon(session, program, clock, club):
    member = club.member(points=40)
    offer = club.offer(total_limit=10)
    coupon = coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    assert coupon.id.startswith("cpn_") and coupon.status == "issued"
    assert coupon.expires_at == clock.now + timedelta(days=program.coupon_validity_days)
    assert coupon.points_cost == 0 and coupon.spend_entry_id is None
    assert session.get(Offer, offer.id).issued_count == 1
    assert _balance(session, member.id) == 40
    assert _count(session, LedgerEntry, LedgerEntry.member_id == member.id) == 1  # only the seed


def test_claim_from_the_catalogue_spends_points_in_the_same_step(session, program, club):
    member = club.member(points=250)
    offer = club.offer(title="Club mug", points_cost=200)
    coupon = coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    assert _balance(session, member.id) == 50
    entry = session.get(LedgerEntry, coupon.spend_entry_id)
    assert (entry.delta, entry.kind, entry.reason, entry.source) == (-200, "spend", "coupon", f"coupon:{coupon.id}")
    assert entry.description == "Reward: Club mug"
    assert coupon.points_cost == 200


def test_claim_without_enough_points_writes_nothing(session, program, club):
    member = club.member(points=199)
    offer = club.offer(points_cost=200, total_limit=3)
    session.commit()
    with pytest.raises(InsufficientPoints):
        coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    session.rollback()
    assert _count(session, Coupon) == 0
    assert session.get(Offer, offer.id).issued_count == 0
    assert _balance(session, member.id) == 199


def test_coupon_validity_days_and_fixed_last_day(session, program, clock, club):
    member = club.member()
    short = club.offer(coupon_valid_days=7)
    capped = club.offer(coupon_valid_days=7, coupon_expires_at=clock.now + timedelta(days=2))
    assert coupons.claim_coupon(session, program, member_id=member.id, offer_id=short.id).expires_at \
        == clock.now + timedelta(days=7)
    assert coupons.claim_coupon(session, program, member_id=member.id, offer_id=capped.id).expires_at \
        == clock.now + timedelta(days=2)


def test_per_member_limit(session, program, club):
    member = club.member(points=1000)
    offer = club.offer(per_member_limit=2, points_cost=100)
    first = coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    with pytest.raises(Rejected) as caught:
        coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    assert caught.value.code == "limit_reached"
    assert _balance(session, member.id) == 800  # the refused claim spent nothing
    coupons.void_coupon(session, program, first.id, actor="staff:x", reason="goodwill")
    coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)  # a voided one frees a place


def test_total_limit(session, program, club):
    offer = club.offer(total_limit=2, points_cost=10)
    for _ in range(2):
        coupons.claim_coupon(session, program, member_id=club.member(points=10).id, offer_id=offer.id)
    late = club.member(points=10)
    with pytest.raises(Rejected) as caught:
        coupons.claim_coupon(session, program, member_id=late.id, offer_id=offer.id)
    assert caught.value.code == "offer_exhausted"
    assert _balance(session, late.id) == 10
    assert session.get(Offer, offer.id).issued_count == 2


@pytest.mark.parametrize("setup, code", [
    (lambda o, now: setattr(o, "active", False), "offer_not_active"),
    (lambda o, now: setattr(o, "valid_from", now + timedelta(hours=1)), "offer_not_active"),
    (lambda o, now: setattr(o, "valid_until", now), "offer_not_active"),
    (lambda o, now: setattr(o, "coupon_expires_at", now), "offer_not_active"),
    (lambda o, now: setattr(o, "claimable", False), "offer_not_found"),
    (lambda o, now: setattr(o, "archived_at", now), "offer_not_found"),
])
def test_offers_that_cannot_be_claimed_now(session, program, clock, club, setup, code):
    member = club.member(points=100)
    offer = club.offer(points_cost=10)
    setup(offer, clock.now)
    session.flush()
    with pytest.raises((Rejected, NotFound)) as caught:
        coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    assert caught.value.code == code
    assert _count(session, Coupon) == 0 and _balance(session, member.id) == 100


def test_unknown_offer(session, program, club):
    with pytest.raises(NotFound) as caught:
        coupons.claim_coupon(session, program, member_id=club.member().id, offer_id="off_NOPE")
    assert caught.value.code == "offer_not_found"


# ---------------------------------------------------------------- issued by rules

def test_issue_coupon_is_idempotent_by_key_and_free(session, program, club):
    member = club.member()
    offer = club.offer(points_cost=500, claimable=False, total_limit=5)
    one = coupons.issue_coupon(session, program, offer_id=offer.id, member_id=member.id,
                               idempotency_key="purchase:pur_1:rul_1", source="purchase:pur_1", actor="rule:rul_1")
    again = coupons.issue_coupon(session, program, offer_id=offer.id, member_id=member.id,
                                 idempotency_key="purchase:pur_1:rul_1", source="purchase:pur_1", actor="rule:rul_1")
    assert one.id == again.id
    assert (one.points_cost, one.spend_entry_id, one.source, one.actor) == (0, None, "purchase:pur_1", "rule:rul_1")
    assert _count(session, Coupon) == 1 and session.get(Offer, offer.id).issued_count == 1
    summary = coupons.coupon_summary(one)
    assert summary == {"id": one.id, "offer_id": offer.id, "title": "Free coffee", "benefit": FREE_COFFEE,
                       "status": "issued", "issued_at": iso(one.issued_at),
                       "expires_at": iso(one.expires_at)}
    assert "code" not in summary and "token" not in summary  # a rule's reward is shown to the till too


def test_issue_coupon_gives_none_when_the_offer_cannot(session, program, clock, club):
    member = club.member()
    exhausted = club.offer(total_limit=1)
    coupons.claim_coupon(session, program, member_id=club.member().id, offer_id=exhausted.id)
    limited = club.offer(per_member_limit=1)
    coupons.claim_coupon(session, program, member_id=member.id, offer_id=limited.id)
    ended = club.offer(valid_until=clock.now)
    for offer_id in (exhausted.id, limited.id, ended.id, "off_NOPE"):
        assert coupons.issue_coupon(session, program, offer_id=offer_id, member_id=member.id, idempotency_key="k",
                                    source="x", actor="rule:r") is None
    assert _count(session, Coupon) == 2


def test_a_rule_rewarding_an_offer_gives_a_coupon(session, program, club):
    member = club.member()
    offer = club.offer(claimable=False)
    rule = rules.create_rule(session, program, {"title": "Coffee on us", "trigger": "check_in",
                                                "reward": {"offer_id": offer.id}})
    grants = rules.fire(session, program, rules.Event(trigger="check_in", member_id=member.id, source="check_in:c1"))
    assert len(grants) == 1 and grants[0].coupon["offer_id"] == offer.id
    coupon = session.scalar(select(Coupon).where(Coupon.member_id == member.id))
    assert grants[0].coupon["id"] == coupon.id
    grant = session.scalar(select(rules.RuleGrant).where(rules.RuleGrant.rule_id == rule.id))
    assert grant.coupon_id == coupon.id
    rules.fire(session, program, rules.Event(trigger="check_in", member_id=member.id, source="check_in:c1"))
    assert _count(session, Coupon) == 1  # the same event never gives twice


# ---------------------------------------------------------------- the till

@pytest.fixture
def held(session, program, club):
    """A member holding a coupon of a free-coffee offer."""
    member = club.member()
    offer = club.offer()
    coupon = coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    return member, offer, coupon


def test_redeem_by_qr_token_once(session, program, clock, club, held):
    member, offer, coupon = held
    token = qr.coupon_token(program.secret, coupon.id)
    done = coupons.redeem(session, program, token, store_id=club.store.id, cashier_id="stf_1", receipt_id="R1")
    assert done["coupon"]["status"] == "redeemed" and done["benefit"] == FREE_COFFEE
    assert done["rollback_until"] == clock.now + program.redemption_rollback_window
    with pytest.raises(Conflict) as caught:
        coupons.redeem(session, program, token, store_id=club.store.id, cashier_id="stf_2")
    assert caught.value.code == "coupon_already_redeemed"
    assert caught.value.extra["redeemed_store_id"] == club.store.id
    session.expire_all()
    stored = session.get(Coupon, coupon.id)
    assert (stored.status, stored.redeemed_at, stored.redeemed_store_id, stored.redemption_id) == \
        ("redeemed", clock.now, club.store.id, done["id"])
    assert _count(session, Redemption) == 1


def test_redeem_by_typed_code(session, program, club, held):
    _, _, coupon = held
    typed = codes.format_code(coupon.code).lower().replace("-", " ")
    assert coupons.redeem(session, program, typed, store_id=club.store.id)["coupon"]["id"] == coupon.id


def test_a_till_retry_with_the_same_receipt_gets_the_same_redemption(session, program, club, held):
    _, _, coupon = held
    token = qr.coupon_token(program.secret, coupon.id)
    first = coupons.redeem(session, program, token, store_id=club.store.id, receipt_id="R1")
    again = coupons.redeem(session, program, token, store_id=club.store.id, receipt_id="R1")
    assert again["id"] == first["id"] and again["replayed"]
    for store, receipt in ((club.store.id, "R2"), (club.other_store.id, "R1")):
        with pytest.raises(Conflict):
            coupons.redeem(session, program, token, store_id=store, receipt_id=receipt)
    assert _count(session, Redemption) == 1


def test_expired_coupon_shows_expired_and_is_refused(session, program, clock, club, held):
    member, _, coupon = held
    clock.advance(days=program.coupon_validity_days)
    with pytest.raises(Rejected) as caught:
        coupons.redeem(session, program, qr.coupon_token(program.secret, coupon.id), store_id=club.store.id)
    assert caught.value.code == "coupon_expired"
    assert session.get(Coupon, coupon.id).status == "issued"
    assert [c["status"] for c in coupons.member_coupons(session, program, member.id)] == ["expired"]
    assert coupons.member_coupons(session, program, member.id, status="expired")[0]["id"] == coupon.id
    assert coupons.member_coupons(session, program, member.id, status="issued") == []
    assert coupons.wallet_coupons(session, program, member.id) == []
    assert _count(session, Redemption) == 0


def test_one_second_before_expiry_still_redeems(session, program, clock, club, held):
    _, _, coupon = held
    clock.advance(days=program.coupon_validity_days, seconds=-1)
    coupons.redeem(session, program, coupon.code, store_id=club.store.id)


def test_coupon_only_in_its_stores(session, program, club):
    member = club.member()
    offer = club.offer(stores=[club.store.id])
    coupon = coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    with pytest.raises(Rejected) as caught:
        coupons.redeem(session, program, coupon.code, store_id=club.other_store.id)
    assert caught.value.code == "coupon_not_valid_here"
    assert session.get(Coupon, coupon.id).status == "issued"
    coupons.redeem(session, program, coupon.code, store_id=club.store.id)


def test_forged_and_tampered_tokens_are_refused(session, program, club, held):
    _, _, coupon = held
    genuine = qr.coupon_token(program.secret, coupon.id)
    head, bare, mac = genuine.split("-")
    other = coupons.claim_coupon(session, program, member_id=club.member().id, offer_id=coupon.offer_id)
    forged = [
        f"{head}-{bare}-{'0' * len(mac)}",                                     # made-up signature
        f"{head}-{bare[:-1]}{'1' if bare[-1] != '1' else '2'}-{mac}",          # another id, same signature
        f"{head}-{other.id.split('_')[1]}-{mac}",                              # someone else's coupon, my MAC
        qr.coupon_token(b"another club's secret" * 2, coupon.id),            # signed with another key
        f"{head}-{bare}",                                                       # no signature at all
    ]
    for token in forged:
        with pytest.raises(Invalid) as caught:
            coupons.redeem(session, program, token, store_id=club.store.id)
        assert caught.value.code == "invalid_coupon_token", token
    card = qr.card_token(program.secret, club.member().card.id, program.now(), program.card_token_ttl).token
    with pytest.raises(Invalid) as caught:
        coupons.redeem(session, program, card, store_id=club.store.id)
    assert caught.value.code == "not_a_coupon"
    with pytest.raises(Invalid) as caught:
        coupons.redeem(session, program, "hello", store_id=club.store.id)
    assert caught.value.code == "invalid_coupon_code"
    unknown = codes.new_code()
    with pytest.raises(NotFound) as caught:
        coupons.redeem(session, program, unknown, store_id=club.store.id)
    assert caught.value.code == "coupon_not_found"
    assert _count(session, Redemption) == 0
    assert _count(session, Coupon, Coupon.status == "issued") == 2


def test_the_card_presented_must_own_the_coupon(session, program, club, held):
    member, _, coupon = held
    stranger = club.member()
    with pytest.raises(Rejected) as caught:
        coupons.redeem(session, program, coupon.code, store_id=club.store.id, card=stranger.card.number)
    assert caught.value.code == "coupon_owner_mismatch"
    assert session.get(Coupon, coupon.id).status == "issued"
    card = qr.card_token(program.secret, member.card.id, program.now(), program.card_token_ttl).token
    coupons.redeem(session, program, coupon.code, store_id=club.store.id, card=card)


def test_check_redemption_changes_nothing(session, program, clock, club, held):
    _, _, coupon = held
    checked = coupons.check_redemption(session, program, coupon.code, store_id=club.store.id)
    assert checked["redeemable"] and checked["code"] is None and checked["coupon"]["id"] == coupon.id
    assert session.get(Coupon, coupon.id).status == "issued" and _count(session, Redemption) == 0
    clock.advance(days=365)
    checked = coupons.check_redemption(session, program, coupon.code, store_id=club.store.id)
    assert (checked["redeemable"], checked["code"]) == (False, "coupon_expired")


def test_coupon_for_till_is_json_ready(session, program, club, held):
    member, _, coupon = held
    seen = coupons.coupon_for_till(session, program, qr.coupon_token(program.secret, coupon.id),
                                   store_id=club.store.id)
    assert seen["id"] == coupon.id and seen["member_id"] == member.id and seen["redeemable"] is True
    assert seen["expires_at"] == iso(coupon.expires_at) and seen["reason"] is None
    assert "code" not in seen


def test_rollback_within_the_window_makes_the_coupon_usable_again(session, program, clock, club, held):
    _, _, coupon = held
    first = coupons.redeem(session, program, coupon.code, store_id=club.store.id, receipt_id="R1")
    clock.advance(minutes=10)
    with pytest.raises(NotFound):  # another store's redemption does not exist for this till
        coupons.rollback_redemption(session, program, first["id"], store_id=club.other_store.id, actor="x")
    undone = coupons.rollback_redemption(session, program, first["id"], store_id=club.store.id, actor="staff:c")
    assert undone["status"] == "rolled_back" and undone["coupon"]["status"] == "issued"
    again = coupons.rollback_redemption(session, program, first["id"], store_id=club.store.id, actor="staff:c")
    assert again["rolled_back_at"] == undone["rolled_back_at"]
    second = coupons.redeem(session, program, coupon.code, store_id=club.store.id, receipt_id="R2")
    assert second["id"] != first["id"]
    assert _count(session, Redemption) == 2
    assert _count(session, Redemption, Redemption.rolled_back_at.is_(None)) == 1
    # The first, rolled back, stays rolled back even though the coupon is redeemed again.
    coupons.rollback_redemption(session, program, first["id"], store_id=club.store.id, actor="staff:c")
    assert session.get(Coupon, coupon.id).status == "redeemed"


def test_rollback_after_the_window_is_refused(session, program, clock, club, held):
    _, _, coupon = held
    done = coupons.redeem(session, program, coupon.code, store_id=club.store.id)
    clock.advance(seconds=program.redemption_rollback_window.total_seconds() + 1)
    with pytest.raises(Rejected) as caught:
        coupons.rollback_redemption(session, program, done["id"], store_id=club.store.id, actor="x")
    assert caught.value.code == "rollback_window_passed"
    assert session.get(Coupon, coupon.id).status == "redeemed"


# ---------------------------------------------------------------- void and refund

def test_void_refunds_points_with_a_reversal(session, program, club):
    member = club.member(points=300)
    offer = club.offer(points_cost=200, total_limit=1)
    coupon = coupons.claim_coupon(session, program, member_id=member.id, offer_id=offer.id)
    assert _balance(session, member.id) == 100
    voided = coupons.void_coupon(session, program, coupon.id, actor="staff:m", reason="out of stock")
    assert voided["status"] == "void" and voided["points_refunded"] == 200
    assert _balance(session, member.id) == 300
    reversal = session.scalar(select(LedgerEntry).where(LedgerEntry.reverses_id == coupon.spend_entry_id))
    assert (reversal.delta, reversal.kind, reversal.actor) == (200, "reverse", "staff:m")
    assert session.get(Offer, offer.id).issued_count == 0
    again = coupons.void_coupon(session, program, coupon.id, actor="staff:m", reason="again")
    assert again["points_refunded"] == 0 and _balance(session, member.id) == 300
    assert _count(session, LedgerEntry, LedgerEntry.kind == "reverse") == 1
    with pytest.raises(Rejected) as caught:
        coupons.redeem(session, program, coupon.code, store_id=club.store.id)
    assert caught.value.code == "coupon_void"


def test_a_redeemed_coupon_cannot_be_voided(session, program, club):
    member = club.member(points=100)
    coupon = coupons.claim_coupon(session, program, member_id=member.id,
                                  offer_id=club.offer(points_cost=100).id)
    coupons.redeem(session, program, coupon.code, store_id=club.store.id)
    with pytest.raises(Conflict) as caught:
        coupons.void_coupon(session, program, coupon.id, actor="staff:m", reason="nope")
    assert caught.value.code == "coupon_already_redeemed"
    assert _balance(session, member.id) == 0


# ---------------------------------------------------------------- bulk issue

def test_bulk_issue_reports_and_is_idempotent(session, program, club):
    people = [club.member() for _ in range(5)]
    closed = club.member()
    closed.status = "closed"
    offer = club.offer(per_member_limit=1, claimable=False)
    coupons.issue_coupon(session, program, offer_id=offer.id, member_id=people[0].id, idempotency_key="k",
                         source="x", actor="rule:r")
    ids = [p.id for p in people] + [people[1].id, closed.id, "mem_NOPE"]
    report = coupons.bulk_issue(session, program, offer.id, member_ids=ids, batch="nov", actor="staff:m")
    assert report == {"offer_id": offer.id, "batch": "nov", "issued": 4,
                      "skipped": {"duplicate": 1, "limit_reached": 1, "member_inactive": 1, "unknown_member": 1}}
    again = coupons.bulk_issue(session, program, offer.id, member_ids=ids, batch="nov", actor="staff:m")
    assert again["issued"] == 0 and again["skipped"]["already_issued"] == 4
    assert _count(session, Coupon) == 5
    assert session.get(Offer, offer.id).issued_count == 5
    issued = session.scalars(select(Coupon).where(Coupon.source == "bulk:nov")).all()
    assert {c.member_id for c in issued} == {p.id for p in people[1:]}
    assert all(c.channel == "bulk" and c.actor == "staff:m" and len(c.code) == 12 for c in issued)
    assert len({c.code for c in issued}) == 4


def test_bulk_issue_to_all_members_respects_the_total_limit(session, program, club):
    people = [club.member() for _ in range(6)]
    offer = club.offer(total_limit=4)
    report = coupons.bulk_issue(session, program, offer.id, all_members=True)
    assert report["issued"] == 4 and report["skipped"] == {"offer_exhausted": 2}
    assert session.get(Offer, offer.id).issued_count == 4
    holders = set(session.scalars(select(Coupon.member_id)))
    assert holders == {p.id for p in sorted(people, key=lambda p: p.id)[:4]}
    # Without a batch name a second run gives nobody a second coupon; a named round does.
    offer.total_limit = None
    session.flush()
    assert coupons.bulk_issue(session, program, offer.id, all_members=True)["issued"] == 2
    assert coupons.bulk_issue(session, program, offer.id, all_members=True)["issued"] == 0
    assert coupons.bulk_issue(session, program, offer.id, all_members=True, batch="round-2")["issued"] == 6


def test_bulk_issue_needs_a_running_offer(session, program, clock, club):
    member = club.member()
    offer = club.offer(valid_until=clock.now)
    with pytest.raises(Rejected) as caught:
        coupons.bulk_issue(session, program, offer.id, member_ids=[member.id])
    assert caught.value.code == "offer_not_active"
    with pytest.raises(NotFound):
        coupons.bulk_issue(session, program, "off_NOPE", member_ids=[member.id])


# ---------------------------------------------------------------- what members and marketers see

def test_visible_offers(session, program, clock, club):
    member = club.member(points=150)
    free = club.offer(title="free", per_member_limit=1)
    catalogue = club.offer(title="mug", points_cost=200, total_limit=10)
    hidden = club.offer(title="hidden", claimable=False)
    club.offer(title="later", valid_from=clock.now + timedelta(days=1))
    gone = club.offer(title="gone", total_limit=1)
    coupons.claim_coupon(session, program, member_id=club.member().id, offer_id=gone.id)
    seen = coupons.visible_offers(session, program, member.id)
    assert [o["title"] for o in seen] == ["free", "mug"]
    mug = seen[1]
    assert (mug["remaining"], mug["affordable"], mug["claimed"], mug["can_claim"]) == (10, False, 0, True)
    assert [o["id"] for o in coupons.visible_offers(session, program, member.id, catalogue=True)] == [catalogue.id]
    assert [o["id"] for o in coupons.visible_offers(session, program, member.id, catalogue=False)] == [free.id]
    coupons.claim_coupon(session, program, member_id=member.id, offer_id=free.id)
    assert [o["title"] for o in coupons.visible_offers(session, program, member.id)] == ["mug"]
    assert coupons.member_offer(session, program, member.id, catalogue.id)["remaining"] == 10
    sold_out = coupons.member_offer(session, program, member.id, gone.id)  # a deep link says "sold out"
    assert (sold_out["remaining"], sold_out["can_claim"]) == (0, False)
    for offer_id in (hidden.id, "off_NOPE"):
        with pytest.raises(NotFound):
            coupons.member_offer(session, program, member.id, offer_id)


def test_a_member_sees_only_their_own_coupons(session, program, club, held):
    member, offer, coupon = held
    stranger = club.member()
    assert coupons.member_coupons(session, program, stranger.id) == []
    for call in (coupons.member_coupon, coupons.coupon_qr_payload):
        with pytest.raises(NotFound) as caught:
            call(session, program, stranger.id, coupon.id)
        assert caught.value.code == "coupon_not_found"
    mine = coupons.member_coupon(session, program, member.id, coupon.id)
    assert mine["code"] == codes.format_code(coupon.code)
    assert qr.verify_coupon_token(program.secret, mine["token"]) == coupon.id


def test_offer_stats(session, program, clock, club):
    offer = club.offer(points_cost=10, total_limit=10)
    got = [coupons.claim_coupon(session, program, member_id=club.member(points=10).id, offer_id=offer.id)
           for _ in range(4)]
    coupons.redeem(session, program, got[0].code, store_id=club.store.id)
    done = coupons.redeem(session, program, got[1].code, store_id=club.store.id)
    coupons.rollback_redemption(session, program, done["id"], store_id=club.store.id, actor="x")
    coupons.void_coupon(session, program, got[2].id, actor="staff:m", reason="test")
    stats = coupons.offer_stats(session, program, offer.id)
    assert stats == {"offer_id": offer.id, "issued": 3, "redeemed": 1, "open": 2, "expired": 0, "void": 1,
                     "redemption_rate": 0.3333, "points_spent": 30, "rollbacks": 1, "remaining": 7}
    clock.advance(days=400)
    assert coupons.offer_stats(session, program, offer.id)["expired"] == 2


def test_the_demo_club_has_offers_a_member_can_use(session, program, clock):
    from wallet import demo
    demo.load(session, program)
    demo.load(session, program)  # safe to repeat
    offers = {o.title: o for o in session.scalars(select(Offer))}
    assert set(offers) >= {"A free coffee on us", "10% off your basket", "The club mug", "5 shekels off a croissant"}
    assert len(offers) == len(coupons.DEMO_OFFERS) + 1  # and the contests' prize, not claimable
    assert offers["Contest prize: the club mug"].claimable is False
    assert offers["The club mug"].points_cost == 500
    dizengoff = session.scalar(select(Store).where(Store.code == "TLV-DIZ"))
    assert offers["5 shekels off a croissant"].stores == [dizengoff.id]
    member = session.scalar(select(members.Member).where(members.Member.email == "member@demo.club"))
    coupon = coupons.claim_coupon(session, program, member_id=member.id, offer_id=offers["A free coffee on us"].id)
    assert coupons.redeem(session, program, coupon.code, store_id=dizengoff.id)["benefit"] == \
        {"kind": "free_item", "sku": "COF-250"}


def test_a_refunded_events_unused_coupons_can_be_voided(session, program, club):
    member = club.member()
    offer = club.offer(claimable=False)
    rules.create_rule(session, program, {"title": "Coffee with every purchase", "trigger": "purchase",
                                         "reward": {"offer_id": offer.id}})
    for source in ("purchase:pur_1", "purchase:pur_2", "purchase:pur_3"):
        rules.fire(session, program, rules.Event(trigger="purchase", member_id=member.id, source=source))
    given = {c.source: c for c in session.scalars(select(Coupon).where(Coupon.member_id == member.id))}
    coupons.redeem(session, program, given["purchase:pur_2"].code, store_id=club.store.id)
    assert coupons.void_coupons_from(session, program, "purchase:pur_1", member_id=member.id, actor="staff:c",
                                     reason="Refund of receipt R-1") == [given["purchase:pur_1"].id]
    assert coupons.void_coupons_from(session, program, "purchase:pur_2", member_id=member.id, actor="staff:c",
                                     reason="Refund of receipt R-2") == []  # redeemed already: it stays
    session.expire_all()
    assert {c.source: c.status for c in session.scalars(select(Coupon))} == {
        "purchase:pur_1": "void", "purchase:pur_2": "redeemed", "purchase:pur_3": "issued"}
    assert session.get(Coupon, given["purchase:pur_1"].id).void_reason == "Refund of receipt R-1"
