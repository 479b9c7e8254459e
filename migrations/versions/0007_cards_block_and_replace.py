"""cards can be blocked and replaced: a member keeps one current card (partial unique index) and their replaced ones,
blocked, so the till refuses the old number and codes; ``blocked_at`` says since when.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:10:00

"""
import sqlalchemy as sa
from alembic import op

import wallet.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('blocked_at', wallet.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('replaced_by_id', sa.String(length=32), nullable=True))
        batch_op.drop_constraint('uq_cards_member_id', type_='unique')
        batch_op.create_index('ix_cards_member_id', ['member_id'], unique=False)
        batch_op.create_index('ix_cards_member_current', ['member_id'], unique=True,
                              postgresql_where=sa.text('replaced_by_id IS NULL'),
                              sqlite_where=sa.text('replaced_by_id IS NULL'))


def downgrade():
    op.execute("DELETE FROM cards WHERE replaced_by_id IS NOT NULL")
    with op.batch_alter_table('cards', schema=None) as batch_op:
        batch_op.drop_index('ix_cards_member_current')
        batch_op.drop_index('ix_cards_member_id')
        batch_op.create_unique_constraint('uq_cards_member_id', ['member_id'])
        batch_op.drop_column('replaced_by_id')
        batch_op.drop_column('blocked_at')
