"""Property-based: any sequence of earn / spend / expire / reverse / refund keeps the ledger's invariants,
and the balance always equals a simple model's (lots spent first-to-expire-first)."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from api.extensions import db
from wallet import ledger, statement
from wallet.errors import InsufficientPoints

from .test_ledger import assert_consistent

_counter = itertools.count()


def test_ledger_state_machine(app, factory):
    program = app.extensions["loyalty.program"]

    class Ledger(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.ctx = app.app_context()
            self.ctx.push()
            self.session = db.session
            self.now = datetime(2026, 1, 1, tzinfo=UTC)
            program.clock = lambda: self.now
            self.member = factory.member()["id"]
            self.lots: dict[str, list] = {}  # entry id -> [remaining, expires_at]
            self.credits: list[str] = []
            self.debits: list[str] = []
            self.reversed: set[str] = set()

        def teardown(self):
            if hasattr(self, "ctx"):
                self.session.rollback()
                db.session.remove()
                self.ctx.pop()

        def key(self) -> str:
            return f"prop:{next(_counter)}"

        @property
        def model_balance(self) -> int:
            return sum(r for r, _ in self.lots.values())

        def _model_take(self, points, first=()):
            order = sorted(self.lots, key=lambda k: (k not in first, self.lots[k][1] is None, self.lots[k][1] or 0))
            for k in order:
                take = min(self.lots[k][0], points)
                self.lots[k][0] -= take
                points -= take
            assert points == 0

        @rule(points=st.integers(1, 500), days=st.one_of(st.none(), st.integers(1, 60)))
        def earn(self, points, days):
            expires = self.now + timedelta(days=days) if days else None
            program.points_expiry_days = None
            entry = ledger.earn(self.session, program, member_id=self.member, points=points, reason="purchase",
                                idempotency_key=self.key(), description="earn", expires_at=expires,
                                source=f"purchase:{next(_counter)}")
            self.session.commit()
            self.lots[entry.id] = [points, expires]
            self.credits.append(entry.id)

        @rule(points=st.integers(1, 800))
        def spend(self, points):
            try:
                entry = ledger.spend(self.session, program, member_id=self.member, points=points, reason="coupon",
                                     idempotency_key=self.key(), description="spend")
                self.session.commit()
            except InsufficientPoints:
                self.session.rollback()
                assert points > self.model_balance
                return
            assert points <= self.model_balance
            self._model_take(points)
            self.debits.append(entry.id)

        @rule(days=st.integers(1, 40))
        def time_passes_and_expiry_runs(self, days):
            self.now += timedelta(days=days)
            seq = ledger.balance_of(self.session, self.member).seq
            ledger.expire_due(self.session, program)  # expires every member's due lots, earlier examples' too
            self.session.commit()
            expired = -sum(e.delta for e in statement.entries(self.session, self.member, limit=1000)
                           if e.seq > seq and e.kind == "expire")
            due = sum(r for r, at in self.lots.values() if at is not None and at <= self.now)
            assert expired == due
            for lot in self.lots.values():
                if lot[1] is not None and lot[1] <= self.now:
                    lot[0] = 0

        @precondition(lambda self: any(c not in self.reversed for c in getattr(self, "credits", [])))
        @rule(data=st.data())
        def refund_an_earn(self, data):
            entry_id = data.draw(st.sampled_from([c for c in self.credits if c not in self.reversed]))
            entry = self.session.get(ledger.LedgerEntry, entry_id)
            before = self.model_balance
            result = ledger.reverse(self.session, program, entry, actor="test", description="refund")
            self.session.commit()
            assert result.reversed == min(entry.delta, before)
            self._model_take(result.reversed, first=(entry_id,))
            self.reversed.add(entry_id)

        @precondition(lambda self: any(d not in self.reversed for d in getattr(self, "debits", [])))
        @rule(data=st.data())
        def give_back_a_spend(self, data):
            entry_id = data.draw(st.sampled_from([d for d in self.debits if d not in self.reversed]))
            entry = self.session.get(ledger.LedgerEntry, entry_id)
            result = ledger.reverse(self.session, program, entry, actor="test", description="void")
            self.session.commit()
            self.reversed.add(entry_id)
            # Rebuild the model's lots from the database's: where the points went back is checked by
            # the consistency invariant; the model keeps tracking the total.
            self.lots = {lot.entry_id: [lot.remaining, lot.expires_at] for lot in self.session.scalars(
                ledger.select(ledger.Lot).where(ledger.Lot.member_id == self.member))}
            assert result.reversed == -entry.delta

        @invariant()
        def balance_matches_model_and_entries(self):
            if not hasattr(self, "member"):
                return
            assert ledger.balance_of(self.session, self.member).points == self.model_balance
            assert_consistent(self.session, self.member)

    run_state_machine_as_test(Ledger, settings=settings(
        max_examples=40, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
