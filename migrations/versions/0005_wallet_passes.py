"""the phone's wallet: passes handed out (update tags, what is due for APNs and Google Wallet), devices registered
with the PassKit web service and their registrations, uses of pass codes at tills

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:50:25.308899

"""
import sqlalchemy as sa
from alembic import op

import wallet.db

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pass_devices',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('push_token', sa.String(length=200), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pass_devices'))
    )
    op.create_table('pass_scans',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('card_id', sa.String(length=32), nullable=False),
    sa.Column('store_id', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.Column('other_store_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pass_scans'))
    )
    with op.batch_alter_table('pass_scans', schema=None) as batch_op:
        batch_op.create_index('ix_pass_scans_card_id_at', ['card_id', 'at'], unique=False)

    op.create_table('rotating_code_uses',
    sa.Column('card_id', sa.String(length=32), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('store_id', sa.String(length=32), nullable=False),
    sa.Column('identified_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('purchased_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('card_id', 'step', name=op.f('pk_rotating_code_uses'))
    )
    with op.batch_alter_table('rotating_code_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rotating_code_uses_created_at'), ['created_at'], unique=False)

    op.create_table('wallet_passes',
    sa.Column('serial', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('apple', sa.Boolean(), nullable=False),
    sa.Column('google', sa.Boolean(), nullable=False),
    sa.Column('modified', sa.BigInteger(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('push_due', sa.Boolean(), nullable=False),
    sa.Column('google_due', sa.Boolean(), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_wallet_passes_member_id_members')),
    sa.PrimaryKeyConstraint('serial', name=op.f('pk_wallet_passes'))
    )
    with op.batch_alter_table('wallet_passes', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_passes_google_due', ['google_due'], unique=False, postgresql_where=sa.text('google_due'), sqlite_where=sa.text('google_due'))
        batch_op.create_index(batch_op.f('ix_wallet_passes_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_wallet_passes_push_due', ['push_due'], unique=False, postgresql_where=sa.text('push_due'), sqlite_where=sa.text('push_due'))

    op.create_table('pass_registrations',
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=32), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['pass_devices.id'], name=op.f('fk_pass_registrations_device_id_pass_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['serial'], ['wallet_passes.serial'], name=op.f('fk_pass_registrations_serial_wallet_passes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', 'serial', name=op.f('pk_pass_registrations'))
    )
    with op.batch_alter_table('pass_registrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pass_registrations_serial'), ['serial'], unique=False)



def downgrade():
    with op.batch_alter_table('pass_registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pass_registrations_serial'))

    op.drop_table('pass_registrations')
    with op.batch_alter_table('wallet_passes', schema=None) as batch_op:
        batch_op.drop_index('ix_wallet_passes_push_due', postgresql_where=sa.text('push_due'), sqlite_where=sa.text('push_due'))
        batch_op.drop_index(batch_op.f('ix_wallet_passes_member_id'))
        batch_op.drop_index('ix_wallet_passes_google_due', postgresql_where=sa.text('google_due'), sqlite_where=sa.text('google_due'))

    op.drop_table('wallet_passes')
    with op.batch_alter_table('rotating_code_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rotating_code_uses_created_at'))

    op.drop_table('rotating_code_uses')
    with op.batch_alter_table('pass_scans', schema=None) as batch_op:
        batch_op.drop_index('ix_pass_scans_card_id_at')

    op.drop_table('pass_scans')
    op.drop_table('pass_devices')
