"""segment activity: segment_activity, every member's spend and purchases over 30/90/365 days and accepted
check-ins over 90, exact as of a cutoff (the worker rewrites it hourly; the segments' compiler adds what changed
since); and ix_purchases_refunded_at, partial (refunded purchases only: a purchase's insert adds no entry), to find
what was refunded since the cutoff; and ix_members_city_lower on lower(city) (on PostgreSQL carrying id, city and
status: a city's members read from the index alone). The downgrade drops the three (segments count their windows
live again).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 09:00:00

"""
import sqlalchemy as sa
from alembic import op

import wallet.db

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'segment_activity',
        sa.Column('member_id', sa.String(length=32), nullable=False),
        sa.Column('spend_30d', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('spend_90d', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('spend_365d', sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column('purchases_90d', sa.Integer(), nullable=False),
        sa.Column('purchases_365d', sa.Integer(), nullable=False),
        sa.Column('visits_90d', sa.Integer(), nullable=False),
        sa.Column('as_of', wallet.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_segment_activity_member_id_members')),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_segment_activity')),
    )
    op.create_index('ix_purchases_refunded_at', 'purchases', ['refunded_at'], unique=False,
                    postgresql_where=sa.text('refunded_at IS NOT NULL'), sqlite_where=sa.text('refunded_at IS NOT NULL'))
    if op.get_bind().dialect.name == 'postgresql':  # SQLite cannot reflect an index on an expression: not there
        op.create_index('ix_members_city_lower', 'members', [sa.text('lower(city)')], unique=False,
                        postgresql_include=['id', 'city', 'status'])


def downgrade():
    op.execute('DROP INDEX IF EXISTS ix_members_city_lower')
    op.drop_index('ix_purchases_refunded_at', table_name='purchases')
    op.drop_table('segment_activity')
