"""tiers: the marketer's ladder (today's ``basic`` becomes the rank-0 tier, and every member holds a tier the ladder
knows), each member's tier state and running totals (``member_tiers``, filled for every member with totals that are
at least their exact qualifying values: all-time sums), the tier history, the review's working table; referrals
qualify on the friend's first purchase (``qualified_at``; those recorded before paid at sign-up, so they count as
qualified then), and the devices members use (a self-referral check).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 11:30:00

"""
import sqlalchemy as sa
from alembic import op

import wallet.db

revision = '0009'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'tiers',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('metric', sa.String(length=16), nullable=False),
        sa.Column('threshold', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('window_days', sa.Integer(), nullable=False),
        sa.Column('retain_days', sa.Integer(), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=False),
        sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', wallet.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tiers')),
        sa.UniqueConstraint('code', name=op.f('uq_tiers_code')),
        sa.UniqueConstraint('rank', name=op.f('uq_tiers_rank')),
    )
    op.create_table(
        'tiers_revision',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('token', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tiers_revision')),
    )
    op.create_table(
        'member_tiers',
        sa.Column('member_id', sa.String(length=32), nullable=False),
        sa.Column('spend', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('visits', sa.Integer(), nullable=False),
        sa.Column('last_visit_on', sa.Date(), nullable=True),
        sa.Column('first_purchase_at', wallet.db.UTCDateTime(), nullable=True),
        sa.Column('tier_since', wallet.db.UTCDateTime(), nullable=True),
        sa.Column('keeps_until', wallet.db.UTCDateTime(), nullable=True),
        sa.Column('match_code', sa.String(length=32), nullable=True),
        sa.Column('match_until', wallet.db.UTCDateTime(), nullable=True),
        sa.Column('match_reason', sa.String(length=200), nullable=True),
        sa.Column('reviewed_at', wallet.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_tiers_member_id_members')),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_tiers')),
    )
    op.create_table(
        'tier_changes',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('member_id', sa.String(length=32), nullable=False),
        sa.Column('from_code', sa.String(length=32), nullable=True),
        sa.Column('to_code', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('detail', sa.String(length=240), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_tier_changes_member_id_members')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_changes')),
    )
    op.create_index('ix_tier_changes_member_at', 'tier_changes', ['member_id', 'created_at'], unique=False)
    op.create_table(
        'tier_review_values',
        sa.Column('member_id', sa.String(length=32), nullable=False),
        sa.Column('qualified_rank', sa.Integer(), nullable=False),
        sa.Column('spend', sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column('points', sa.BigInteger(), nullable=True),
        sa.Column('visits', sa.Integer(), nullable=True),
        sa.Column('seen_spend', sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column('seen_points', sa.BigInteger(), nullable=True),
        sa.Column('seen_visits', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_tier_review_values')),
    )
    op.create_table(
        'referral_devices',
        sa.Column('member_id', sa.String(length=32), nullable=False),
        sa.Column('device_key', sa.String(length=64), nullable=False),
        sa.Column('first_seen_at', wallet.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_referral_devices_member_id_members')),
        sa.PrimaryKeyConstraint('member_id', 'device_key', name=op.f('pk_referral_devices')),
    )
    op.create_index(op.f('ix_referral_devices_device_key'), 'referral_devices', ['device_key'], unique=False)
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('qualified_at', wallet.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('purchase_id', sa.String(length=32), nullable=True))

    # Data: the ladder's entry tier, every member on a tier it knows, their running totals (all-time sums are
    # at least the value over any window; the first review makes them exact), old referrals as qualified.
    op.execute("INSERT INTO tiers (id, code, name, rank, metric, threshold, window_days, retain_days, description, "
               "created_at, updated_at) VALUES ('tie_basic', 'basic', 'Basic', 0, 'spend', 0, 365, 0, "
               "'Every member starts here.', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    op.execute("INSERT INTO tiers_revision (id, token) VALUES (1, 'rev_0009_basic')")
    op.execute("UPDATE members SET tier = 'basic' WHERE tier IS NULL OR tier <> 'basic'")
    op.execute("""
        INSERT INTO member_tiers (member_id, spend, points, visits, first_purchase_at)
        SELECT m.id,
               COALESCE((SELECT SUM(p.amount) FROM purchases p WHERE p.member_id = m.id AND p.status = 'completed'), 0),
               COALESCE((SELECT SUM(e.delta) FROM ledger_entries e WHERE e.member_id = m.id AND e.kind = 'earn'), 0),
               (SELECT COUNT(*) FROM purchases p WHERE p.member_id = m.id)
                 + (SELECT COUNT(*) FROM check_ins c WHERE c.member_id = m.id AND c.status = 'accepted'),
               (SELECT MIN(p.created_at) FROM purchases p WHERE p.member_id = m.id)
        FROM members m""")
    op.execute("UPDATE referrals SET qualified_at = created_at")


def downgrade():
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_column('purchase_id')
        batch_op.drop_column('qualified_at')
    op.drop_index(op.f('ix_referral_devices_device_key'), table_name='referral_devices')
    op.drop_table('referral_devices')
    op.drop_table('tier_review_values')
    op.drop_index('ix_tier_changes_member_at', table_name='tier_changes')
    op.drop_table('tier_changes')
    op.drop_table('member_tiers')
    op.drop_table('tiers_revision')
    op.drop_table('tiers')
