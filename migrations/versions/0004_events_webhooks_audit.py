"""the event log (outbox) and its readers' cursors, webhook subscriptions and deliveries, scheduled jobs, the staff
audit log

On PostgreSQL events.xact_id defaults to the writing transaction's id, so the log pages in commit order.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:25:45.929010

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wallet.db

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_log',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.String(length=32), nullable=False),
    sa.Column('actor_email', sa.String(length=254), nullable=True),
    sa.Column('actor_role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('entity', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('changed', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index('ix_audit_log_entity_entity_id', ['entity', 'entity_id'], unique=False)

    op.create_table('event_cursors',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('xact_id', sa.BigInteger(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('updated_at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_event_cursors'))
    )
    op.create_table('events',
    sa.Column('position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('xact_id', sa.BigInteger(), server_default=sa.FetchedValue(), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('occurred_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=True),
    sa.Column('store_id', sa.String(length=32), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('position', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_member_time', ['member_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_events_xact_id_position', ['xact_id', 'position'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The writing transaction's id, given by the database to every row however it is inserted (the ORM, a
        # hot path's batch statement): readers page only what transactions older than their snapshot wrote.
        op.execute("ALTER TABLE events ALTER COLUMN xact_id SET DEFAULT (pg_current_xact_id()::text::bigint)")

    op.create_table('webhook_subscriptions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('events', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('description', sa.String(length=240), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('secret', sa.String(length=80), nullable=False),
    sa.Column('previous_secret', sa.String(length=80), nullable=True),
    sa.Column('previous_secret_until', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('disabled_reason', sa.String(length=240), nullable=True),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_subscriptions'))
    )
    op.create_table('worker_jobs',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('last_started_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('last_finished_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('last_done', sa.Integer(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', wallet.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_jobs'))
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('subscription_id', sa.String(length=32), nullable=False),
    sa.Column('event_position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=240), nullable=True),
    sa.Column('next_attempt_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('give_up_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('delivered_at', wallet.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['event_position'], ['events.position'], name=op.f('fk_webhook_deliveries_event_position_events')),
    sa.ForeignKeyConstraint(['subscription_id'], ['webhook_subscriptions.id'], name=op.f('fk_webhook_deliveries_subscription_id_webhook_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('subscription_id', 'event_position', name=op.f('uq_webhook_deliveries_subscription_id_event_position'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_subscription_id'), ['subscription_id'], unique=False)


    _backfill()


CHANNELS = "('app', 'till', 'web', 'console', 'api', 'job', 'import')"


def _backfill():
    """The events of what happened before the event log existed (the member's timeline reads the log): each
    enrolment, purchase, refund, check-in, scan, point movement, coupon issued and redemption, in its own time.
    An event's id is made from its row's id (``evt_`` and a letter for the table), so each is unique and says which
    row it tells of."""
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"

    def obj(*pairs: str) -> str:  # a JSON object of (key, SQL expression) pairs, absent values left out
        body = ", ".join(pairs)
        return f"jsonb_strip_nulls(jsonb_build_object({body}))" if pg else f"json_patch('{{}}', json_object({body}))"

    def money(column: str) -> str:
        return f"CAST({column} AS text)" if pg else f"printf('%.2f', {column})"

    def when(column: str) -> str:
        return (f"to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" if pg
                else f"strftime('%Y-%m-%dT%H:%M:%SZ', {column})")

    def channel(column: str, default: str) -> str:
        return f"CASE WHEN {column} IN {CHANNELS} THEN {column} ELSE '{default}' END"

    def evt(column: str, tag: str) -> str:  # evt_, a letter for the row's table, the row id's 26 symbols
        return f"'evt_{tag}' || substr({column}, 5)"

    insert = "INSERT INTO events (id, type, occurred_at, member_id, store_id, channel, actor, data, created_at) "
    statements = [
        insert + f"""SELECT {evt('m.id', 'M')}, 'member.enrolled', m.created_at, m.id, NULL, {channel('m.channel', 'app')},
                  'member:' || m.id, {obj("'card_id'", 'c.id', "'referred_by'", 'm.referred_by_id')}, m.created_at
                  FROM members m LEFT JOIN cards c ON c.member_id = m.id""",
        insert + f"""SELECT {evt('p.id', 'P')}, 'purchase.recorded', p.created_at, p.member_id, p.store_id,
                  {channel('p.channel', 'till')}, COALESCE('staff:' || p.cashier_id, 'till'),
                  {obj("'purchase_id'", 'p.id', "'receipt_id'", 'p.receipt_id', "'amount'", money('p.amount'),
                       "'currency'", 'p.currency', "'points_awarded'", 'p.points_awarded')}, p.created_at
                  FROM purchases p""",
        insert + f"""SELECT {evt('p.id', 'R')}, 'purchase.refunded', p.refunded_at, p.member_id, p.store_id, 'till',
                  'till', {obj("'purchase_id'", 'p.id')}, p.refunded_at FROM purchases p WHERE p.refunded_at IS NOT NULL""",
        insert + f"""SELECT {evt('c.id', 'C')}, 'check_in.recorded', c.created_at, c.member_id, c.store_id,
                  {channel('c.channel', 'app')}, 'member:' || c.member_id,
                  {obj("'check_in_id'", 'c.id', "'points_awarded'", 'c.points_awarded')}, c.created_at
                  FROM check_ins c WHERE c.status = 'accepted'""",
        insert + f"""SELECT {evt('c.id', 'C')}, 'check_in.refused', c.created_at, c.member_id, c.store_id,
                  {channel('c.channel', 'app')}, 'member:' || c.member_id,
                  {obj("'check_in_id'", 'c.id', "'reason'", 'c.reason')}, c.created_at
                  FROM check_ins c WHERE c.status <> 'accepted'""",
        insert + f"""SELECT {evt('s.id', 'S')}, 'scan.recorded', s.created_at, s.member_id, s.store_id,
                  {channel('s.channel', 'app')}, 'member:' || s.member_id,
                  {obj("'scan_id'", 's.id', "'product_id'", 's.product_id', "'barcode'", 's.barcode',
                       "'first_scan'", 's.first_scan' if pg else "json(CASE WHEN s.first_scan THEN 'true' ELSE 'false' END)",
                       "'points_awarded'", 's.points_awarded')}, s.created_at FROM scans s""",
        insert + f"""SELECT {evt('e.id', 'L')}, 'points.earned', e.created_at, e.member_id, NULL,
                  {channel('e.channel', 'api')}, substr(e.actor, 1, 64),
                  {obj("'entry_id'", 'e.id', "'points'", 'e.delta', "'reason'", 'e.reason', "'source'", 'e.source',
                       "'balance_after'", 'e.balance_after', "'expires_at'", when('e.expires_at'))}, e.created_at
                  FROM ledger_entries e WHERE e.kind = 'earn'""",
        insert + f"""SELECT {evt('e.id', 'L')}, 'points.spent', e.created_at, e.member_id, NULL,
                  {channel('e.channel', 'api')}, substr(e.actor, 1, 64),
                  {obj("'entry_id'", 'e.id', "'points'", '-e.delta', "'reason'", 'e.reason', "'source'", 'e.source',
                       "'balance_after'", 'e.balance_after')}, e.created_at
                  FROM ledger_entries e WHERE e.kind = 'spend'""",
        insert + f"""SELECT {evt('e.id', 'L')}, 'points.expired', e.created_at, e.member_id, NULL,
                  {channel('e.channel', 'job')}, substr(e.actor, 1, 64),
                  {obj("'entry_id'", 'e.id', "'points'", '-e.delta', "'balance_after'", 'e.balance_after')}, e.created_at
                  FROM ledger_entries e WHERE e.kind = 'expire'""",
        insert + f"""SELECT {evt('e.id', 'L')}, 'points.adjusted', e.created_at, e.member_id, NULL,
                  {channel('e.channel', 'console')}, substr(e.actor, 1, 64),
                  {obj("'entry_id'", 'e.id', "'points'", 'e.delta', "'kind'", 'e.kind', "'reverses'", 'e.reverses_id',
                       "'balance_after'", 'e.balance_after')}, e.created_at
                  FROM ledger_entries e WHERE e.kind IN ('adjust', 'reverse')""",
        insert + f"""SELECT {evt('c.id', 'K')}, 'coupon.issued', c.issued_at, c.member_id, NULL,
                  {channel('c.channel', 'api')}, substr(c.actor, 1, 64),
                  {obj("'coupon_id'", 'c.id', "'offer_id'", 'c.offer_id', "'source'", 'substr(c.source, 1, 64)',
                       "'points_cost'", 'c.points_cost', "'expires_at'", when('c.expires_at'))}, c.issued_at
                  FROM coupons c""",
        insert + f"""SELECT {evt('r.id', 'D')}, 'coupon.redeemed', r.redeemed_at, r.member_id, r.store_id, 'till',
                  COALESCE('staff:' || r.cashier_id, 'till'),
                  {obj("'coupon_id'", 'r.coupon_id', "'offer_id'", 'r.offer_id', "'redemption_id'", 'r.id',
                       "'receipt_id'", 'r.receipt_id')}, r.redeemed_at FROM coupon_redemptions r""",
    ]
    for statement in statements:
        op.execute(sa.text(statement))


def downgrade():
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_subscription_id'))
        batch_op.drop_index('ix_webhook_deliveries_due')

    op.drop_table('webhook_deliveries')
    op.drop_table('worker_jobs')
    op.drop_table('webhook_subscriptions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_xact_id_position')
        batch_op.drop_index('ix_events_member_time')

    op.drop_table('events')
    op.drop_table('event_cursors')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_entity_entity_id')
        batch_op.drop_index(batch_op.f('ix_audit_log_actor_id'))

    op.drop_table('audit_log')
