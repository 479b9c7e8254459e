"""rules revision token: one row whose token changes with every rule change (the till caches rules by it)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 00:57:29.723187

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rules_revision',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules_revision'))
    )


def downgrade():
    op.drop_table('rules_revision')
