"""indexes on the purchase's path: a grant's (event, rule) key serves both uniqueness and look-ups by event, the
(rule, day) index goes (rule look-ups use rule, member, time), and an entry's one reversal is a partial unique index
(earned entries write no entry into it). Every purchase writes three events now; these pay for part of that.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:45:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('rule_grants', schema=None) as batch_op:
        batch_op.drop_constraint('uq_rule_grants_rule_id_event_source', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_rule_grants_event_source_rule_id'), ['event_source', 'rule_id'])
        batch_op.drop_index('ix_rule_grants_event_source')
        batch_op.drop_index('ix_rule_grants_rule_day')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_ledger_entries_reverses_id', type_='unique')
        batch_op.create_index('ix_ledger_entries_reverses', ['reverses_id'], unique=True,
                              postgresql_where=sa.text('reverses_id IS NOT NULL'),
                              sqlite_where=sa.text('reverses_id IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_reverses')
        batch_op.create_unique_constraint('uq_ledger_entries_reverses_id', ['reverses_id'])
    with op.batch_alter_table('rule_grants', schema=None) as batch_op:
        batch_op.create_index('ix_rule_grants_rule_day', ['rule_id', 'day'], unique=False)
        batch_op.create_index('ix_rule_grants_event_source', ['event_source'], unique=False)
        batch_op.drop_constraint('uq_rule_grants_event_source_rule_id', type_='unique')
        batch_op.create_unique_constraint('uq_rule_grants_rule_id_event_source', ['rule_id', 'event_source'])
