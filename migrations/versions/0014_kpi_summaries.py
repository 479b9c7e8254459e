"""KPI summaries: a club day's counts per channel, members' active days, and the changes of the active-member
counts, kept by the worker from the event log (wallet/kpis). Empty at first: the worker's job (or
``loyalty kpis summarise``) reads the whole log from its start.

Revision ID: 0014
Revises: 0007
Create Date: 2026-12-02 11:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0011'
branch_labels = None
depends_on = None

COUNTERS = ("members_new", "members_erased", "purchases", "revenue_cents", "refunds", "refunded_cents",
            "points_issued", "points_redeemed", "points_expired", "points_adjusted", "points_reversed",
            "coupons_issued", "coupons_redeemed", "coupons_redeemed_of_issued", "messages_sent", "actions")


def upgrade():
    op.create_table('kpi_days',
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    *[sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTERS],
    sa.PrimaryKeyConstraint('day', 'channel', name=op.f('pk_kpi_days'))
    )
    op.create_table('kpi_member_days',
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('member_id', 'day', name=op.f('pk_kpi_member_days'))
    )
    op.create_table('kpi_active_changes',
    sa.Column('window_days', sa.SmallInteger(), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('window_days', 'day', name=op.f('pk_kpi_active_changes'))
    )


def downgrade():
    op.drop_table('kpi_active_changes')
    op.drop_table('kpi_member_days')
    op.drop_table('kpi_days')
    op.execute("DELETE FROM event_cursors WHERE name = 'kpis'")
