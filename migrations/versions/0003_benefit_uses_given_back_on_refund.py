"""benefit uses given back on refund: benefit_uses.returned_at, and an index to find a purchase's uses

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 02:13:32.086521

"""
import sqlalchemy as sa
from alembic import op

import wallet.db

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('benefit_uses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('returned_at', wallet.db.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_benefit_uses_event_source', ['event_source'], unique=False)



def downgrade():
    with op.batch_alter_table('benefit_uses', schema=None) as batch_op:
        batch_op.drop_index('ix_benefit_uses_event_source')
        batch_op.drop_column('returned_at')

