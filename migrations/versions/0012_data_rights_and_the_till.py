"""data rights and the till's missing cases: members.erased_at (erasure), balances.debt (points a return should
have taken back but that were spent), partial returns (purchase_returns; purchases.returned_amount and the rate a
foreign-currency purchase earned at), currencies and their rates by day (stores.currency), bulk adjustments by
batch, and the losing draws of surprise rules.

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-02 10:52:55.963452

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import wallet.db

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('adjustment_batches',
    sa.Column('batch', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('segment_id', sa.String(length=32), nullable=True),
    sa.Column('actor', sa.String(length=48), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('batch', name=op.f('pk_adjustment_batches'))
    )
    op.create_table('currencies',
    sa.Column('code', sa.String(length=3), nullable=False),
    sa.Column('rate', sa.Numeric(precision=18, scale=8), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_currencies'))
    )
    op.create_table('adjustment_targets',
    sa.Column('batch', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['batch'], ['adjustment_batches.batch'], name=op.f('fk_adjustment_targets_batch_adjustment_batches')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_adjustment_targets_member_id_members')),
    sa.PrimaryKeyConstraint('batch', 'member_id', name=op.f('pk_adjustment_targets'))
    )
    op.create_table('currency_rates',
    sa.Column('code', sa.String(length=3), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('rate', sa.Numeric(precision=18, scale=8), nullable=False),
    sa.ForeignKeyConstraint(['code'], ['currencies.code'], name=op.f('fk_currency_rates_code_currencies')),
    sa.PrimaryKeyConstraint('code', 'effective_on', name=op.f('pk_currency_rates'))
    )
    op.create_table('rule_losing_draws',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('rule_id', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('draw', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['rules.id'], name=op.f('fk_rule_losing_draws_rule_id_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_losing_draws'))
    )
    with op.batch_alter_table('rule_losing_draws', schema=None) as batch_op:
        batch_op.create_index('ix_rule_losing_draws_rule_day', ['rule_id', 'day'], unique=False)

    op.create_table('purchase_returns',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('purchase_id', sa.String(length=32), nullable=False),
    sa.Column('refund_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('items', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('points_reversed', sa.Integer(), nullable=False),
    sa.Column('points_debt', sa.Integer(), nullable=False),
    sa.Column('pending_cancelled', sa.Integer(), nullable=False),
    sa.Column('taken', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('rewards_taken_back', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('coupons_voided', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('last', sa.Boolean(), nullable=False),
    sa.Column('balance_after', sa.Integer(), nullable=False),
    sa.Column('debt_after', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=48), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['purchase_id'], ['purchases.id'], name=op.f('fk_purchase_returns_purchase_id_purchases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchase_returns')),
    sa.UniqueConstraint('purchase_id', 'refund_id', name=op.f('uq_purchase_returns_purchase_id_refund_id'))
    )
    with op.batch_alter_table('purchase_returns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_purchase_returns_purchase_id'), ['purchase_id'], unique=False)

    with op.batch_alter_table('balances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('debt', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.create_check_constraint(op.f('ck_balances_debt_not_negative'), 'debt >= 0')

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', wallet.db.UTCDateTime(), nullable=True))

    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rate', sa.Numeric(precision=18, scale=8), nullable=True))
        batch_op.add_column(sa.Column('returned_amount', sa.Numeric(precision=12, scale=2), nullable=False,
                                      server_default='0'))

    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.add_column(sa.Column('currency', sa.String(length=3), nullable=True))



def downgrade():
    with op.batch_alter_table('stores', schema=None) as batch_op:
        batch_op.drop_column('currency')

    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_column('returned_amount')
        batch_op.drop_column('rate')

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('erased_at')

    with op.batch_alter_table('balances', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_balances_debt_not_negative'), type_='check')
        batch_op.drop_column('debt')

    with op.batch_alter_table('purchase_returns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purchase_returns_purchase_id'))

    op.drop_table('purchase_returns')
    with op.batch_alter_table('rule_losing_draws', schema=None) as batch_op:
        batch_op.drop_index('ix_rule_losing_draws_rule_day')

    op.drop_table('rule_losing_draws')
    op.drop_table('currency_rates')
    op.drop_table('adjustment_targets')
    op.drop_table('currencies')
    op.drop_table('adjustment_batches')
