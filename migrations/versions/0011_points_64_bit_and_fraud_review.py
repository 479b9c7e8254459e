"""points are 64-bit; fraud review: flags, burst counters, welcome points that wait for the first purchase.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-02 11:40:00

What it does
- Every points and balance column becomes BIGINT on PostgreSQL (``wallet.db.Points``): a 32-bit column overflowed
  at 2,147,483,647 (a purchase of 3,000,000,000.00 answered 500). SQLite is left alone: its INTEGER already holds
  8 bytes whatever the declared type, and the model keeps INTEGER there, so no SQLite table is rebuilt.
- ``pending_points.awaits`` (nullable) and a partial index of the holds that await a purchase (the welcome points).
- Two new tables: ``fraud_flags`` (one row per kind, subject and hour) and ``burst_counters`` (one row per subject).

Why it is safe to run on a live PostgreSQL
- Adding a nullable column, creating tables and an index over an empty set of rows take brief locks only.
- ``ALTER COLUMN ... TYPE bigint`` rewrites the table under an ACCESS EXCLUSIVE lock: on small tables (every table
  of a club below ``LOYALTY_MIGRATION_REWRITE_ROWS`` rows, 2,000,000 by default: about a second or two per million
  narrow rows here) that lock lasts moments. Each table is altered in one statement (one rewrite, however many of
  its columns change), and with ``lock_timeout`` (5 s): the ALTER never queues behind a long transaction while every
  request queues behind it; it fails instead, changes nothing, and can simply be run again.
- A table estimated (``pg_class.reltuples``) above that size is NOT rewritten in place: the migration stops before
  changing anything and says which, unless ``LOYALTY_MIGRATION_REWRITE_BIG=1`` accepts the downtime. The online plan
  for such a table, column by column: (1) ``ADD COLUMN c_new bigint`` (instant); (2) a ``BEFORE INSERT OR UPDATE``
  trigger that sets ``c_new := c``; (3) backfill ``UPDATE ... SET c_new = c`` in batches of ~10,000 rows by primary
  key, each its own transaction; (4) ``ADD CONSTRAINT c_new_not_null CHECK (c_new IS NOT NULL) NOT VALID`` then
  ``VALIDATE CONSTRAINT`` (no exclusive lock); (5) in one short transaction: drop the trigger, rename ``c`` to
  ``c_old`` and ``c_new`` to ``c``, ``SET NOT NULL`` (PostgreSQL 12+ trusts the validated check: no scan), re-create
  the column's CHECK constraints the same way (NOT VALID, then VALIDATE); (6) drop ``c_old`` later. Statements name
  columns, never positions, so the application runs unchanged throughout.
"""
import os

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import wallet.db

revision = '0011'
down_revision = '0007'
branch_labels = None
depends_on = None

POINTS_COLUMNS = {  # table: its points columns
    'balances': ('points', 'pending'),
    'ledger_entries': ('delta', 'balance_after'),
    'points_lots': ('points', 'remaining'),
    'lot_uses': ('points',),
    'pending_points': ('points',),
    'purchases': ('points_awarded',),
    'check_ins': ('points_awarded',),
    'scans': ('points_awarded',),
    'rule_grants': ('points',),
    'rule_counters': ('points',),
    'rules': ('points_budget',),
    'life_events': ('points',),
    'benefit_uses': ('base_points', 'points'),
    'offers': ('points_cost',),
}
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _postgres() -> bool:
    return op.get_bind().dialect.name == 'postgresql'


def _widen(to: str) -> None:
    """ALTER every points column to ``to`` on PostgreSQL: one statement per table, refusing to block for long."""
    bind = op.get_bind()
    limit = int(os.environ.get('LOYALTY_MIGRATION_REWRITE_ROWS', '2000000'))
    if to == 'bigint' and os.environ.get('LOYALTY_MIGRATION_REWRITE_BIG', '0') != '1':
        sizes = dict(bind.execute(sa.text(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relkind = 'r' AND relname = ANY(:names) "
            "AND relnamespace = current_schema()::regnamespace"), {'names': list(POINTS_COLUMNS)}).all())
        big = sorted(name for name, rows in sizes.items() if rows > limit)
        if big:
            raise RuntimeError(
                f"0011 would rewrite {', '.join(big)} (over {limit:,} rows each) under an exclusive lock. Widen "
                "them online as this migration's docstring says, or accept the downtime with "
                "LOYALTY_MIGRATION_REWRITE_BIG=1. Nothing was changed.")
    op.execute("SET LOCAL lock_timeout = '5s'")
    for table, columns in POINTS_COLUMNS.items():
        changes = ', '.join(f'ALTER COLUMN {c} TYPE {to}' for c in columns)
        op.execute(f'ALTER TABLE {table} {changes}')


def upgrade():
    if _postgres():
        _widen('bigint')
    with op.batch_alter_table('pending_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('awaits', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_pending_points_awaiting', ['member_id'], unique=False,
                              postgresql_where=sa.text("awaits IS NOT NULL AND status = 'pending'"),
                              sqlite_where=sa.text("awaits IS NOT NULL AND status = 'pending'"))
    op.create_table(
        'fraud_flags',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('subject', sa.String(length=160), nullable=False),
        sa.Column('window_start', wallet.db.UTCDateTime(), nullable=False),
        sa.Column('member_id', sa.String(length=32), nullable=True),
        sa.Column('store_id', sa.String(length=32), nullable=True),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('first_seen_at', wallet.db.UTCDateTime(), nullable=False),
        sa.Column('last_seen_at', wallet.db.UTCDateTime(), nullable=False),
        sa.Column('details', JSON, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reviewed_by', sa.String(length=48), nullable=True),
        sa.Column('reviewed_at', wallet.db.UTCDateTime(), nullable=True),
        sa.Column('review_note', sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fraud_flags')),
        sa.UniqueConstraint('kind', 'subject', 'window_start', name=op.f('uq_fraud_flags_kind_subject_window_start')),
    )
    with op.batch_alter_table('fraud_flags', schema=None) as batch_op:
        batch_op.create_index('ix_fraud_flags_last_seen', ['last_seen_at', 'id'], unique=False)
        batch_op.create_index('ix_fraud_flags_member', ['member_id'], unique=False)
    op.create_table(
        'burst_counters',
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('subject', sa.String(length=160), nullable=False),
        sa.Column('window_start', wallet.db.UTCDateTime(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'subject', name=op.f('pk_burst_counters')),
    )
    with op.batch_alter_table('burst_counters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_burst_counters_window_start'), ['window_start'], unique=False)


def downgrade():
    with op.batch_alter_table('burst_counters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_burst_counters_window_start'))
    op.drop_table('burst_counters')
    with op.batch_alter_table('fraud_flags', schema=None) as batch_op:
        batch_op.drop_index('ix_fraud_flags_member')
        batch_op.drop_index('ix_fraud_flags_last_seen')
    op.drop_table('fraud_flags')
    # Welcome points still waiting become ordinary holds released by the job (the column that told them apart goes).
    op.execute("UPDATE pending_points SET available_at = created_at WHERE awaits IS NOT NULL")
    with op.batch_alter_table('pending_points', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_points_awaiting')
        batch_op.drop_column('awaits')
    if _postgres():
        _widen('integer')  # fails, changing nothing, if a value no longer fits in 32 bits
