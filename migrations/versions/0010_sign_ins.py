"""sign-ins: every token carries its sign-in's id; ending a sign-in (sign-out, password change, a deactivated or
closed account) stops its tokens on the next request, on any host.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02 11:30:00

"""
import sqlalchemy as sa
from alembic import op

import wallet.db

revision = '0010'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sign_ins',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('subject', sa.String(length=32), nullable=False),
        sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
        sa.Column('ended_at', wallet.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_ins')),
    )
    with op.batch_alter_table('sign_ins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_ins_subject'), ['subject'], unique=False)


def downgrade():
    with op.batch_alter_table('sign_ins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_ins_subject'))
    op.drop_table('sign_ins')
