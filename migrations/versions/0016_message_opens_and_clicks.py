"""message opens and clicks: campaign_messages.tracked (the message as last handed over carried tracking: the member
had given the profiling consent), opened_at and clicked_at (the first open and the first click). The downgrade
drops the three columns (and with them the counts: reports say null again).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 09:00:00

"""
import sqlalchemy as sa
from alembic import op

import wallet.db

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('campaign_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracked', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('opened_at', wallet.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('clicked_at', wallet.db.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('campaign_messages', schema=None) as batch_op:
        batch_op.drop_column('clicked_at')
        batch_op.drop_column('opened_at')
        batch_op.drop_column('tracked')
