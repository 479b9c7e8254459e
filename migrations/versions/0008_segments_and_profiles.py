"""segments: a marketer's named groups of members (criteria compiled to one query); members gain the optional
profile fields gender and city; an offer may be restricted to a segment (segment_id); influence_scores, the
influence summary the worker keeps (the influencers' ranking reads it). BRIN indexes on the
purchases' and check-ins' times serve the segments' and influence's windows (``created_at >= now - 90 days``)
over tables written in time order: a BRIN index is a few pages and costs an insert next to nothing (the till's
purchase path keeps its indexes as they are). members.referred_by_id is indexed: a member's friends are read by it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 11:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import wallet.db

revision = '0008'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'segments',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('description', sa.String(length=500), nullable=False),
        sa.Column('criteria', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('created_by', sa.String(length=48), nullable=False),
        sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', wallet.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
        sa.UniqueConstraint('name', name=op.f('uq_segments_name')),
    )
    op.create_table(
        'influence_scores',
        sa.Column('member_id', sa.String(length=32), nullable=False),
        sa.Column('referrals', sa.Integer(), nullable=False),
        sa.Column('qualified_referrals', sa.Integer(), nullable=False),
        sa.Column('referred_spend', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('referral_value', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('own_value', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('influence', sa.String(length=16), nullable=False),
        sa.Column('computed_at', wallet.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_influence_scores_member_id_members')),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_influence_scores')),
    )
    op.create_index('ix_influence_scores_ranking', 'influence_scores', ['referral_value', 'member_id'], unique=False)
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gender', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('city', sa.String(length=80), nullable=True))
        batch_op.create_index('ix_members_referred_by_id', ['referred_by_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        # Segments compare cities ignoring case (lower(city) = 'haifa'): statistics on that expression let the
        # planner know how many members live there (without them it guesses 0.5% and reads purchases member by
        # member, 30 times slower for a big city).
        op.execute('CREATE STATISTICS IF NOT EXISTS members_city_lower ON (lower(city)) FROM members')
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segment_id', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_offers_segment_id_segments'), 'segments', ['segment_id'], ['id'])
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.create_index('ix_purchases_created_at_brin', ['created_at'], unique=False, postgresql_using='brin')
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.create_index('ix_check_ins_created_at_brin', ['created_at'], unique=False, postgresql_using='brin')


def downgrade():
    with op.batch_alter_table('check_ins', schema=None) as batch_op:
        batch_op.drop_index('ix_check_ins_created_at_brin')
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_index('ix_purchases_created_at_brin')
    with op.batch_alter_table('offers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_offers_segment_id_segments'), type_='foreignkey')
        batch_op.drop_column('segment_id')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP STATISTICS IF EXISTS members_city_lower')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_referred_by_id')
        batch_op.drop_column('city')
        batch_op.drop_column('gender')
    op.drop_index('ix_influence_scores_ranking', table_name='influence_scores')
    op.drop_table('influence_scores')
    op.drop_table('segments')
