"""consents per purpose with their history, contact rules, push devices, campaigns and their messages

Existing members' consents are kept only where they name a purpose of the fixed list with a true or false answer;
anything else (the old demo's "marketing", malformed values) is dropped, so nothing counts as a consent that was
never given. Each kept answer starts the member's consent history (source "migration").

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-02 11:00:00

"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wallet.db
from wallet.db import new_id

revision = '0013'
down_revision = '0010'
branch_labels = None
depends_on = None

PURPOSES = ("marketing_email", "marketing_sms", "marketing_push", "profiling", "social_data")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')


def upgrade():
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact_rules', JSON, nullable=False, server_default='{}'))

    op.create_table('consent_changes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('text_version', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_changes'))
    )
    with op.batch_alter_table('consent_changes', schema=None) as batch_op:
        batch_op.create_index('ix_consent_changes_member_at', ['member_id', 'at'], unique=False)

    op.create_table('member_devices',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('token', sa.String(length=512), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_devices_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_devices')),
    sa.UniqueConstraint('platform', 'token', name=op.f('uq_member_devices_platform_token'))
    )
    with op.batch_alter_table('member_devices', schema=None) as batch_op:
        batch_op.create_index('ix_member_devices_member', ['member_id'], unique=False)

    op.create_table('campaigns',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('segment_id', sa.String(length=32), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('offer_id', sa.String(length=32), nullable=True),
    sa.Column('send_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('holdout_percent', sa.Integer(), nullable=False),
    sa.Column('response_days', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seed', sa.String(length=32), nullable=False),
    sa.Column('audience', sa.Integer(), nullable=True),
    sa.Column('holdout', sa.Integer(), nullable=True),
    sa.Column('launched_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('launched_by', sa.String(length=48), nullable=True),
    sa.Column('cancelled_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('created_by', sa.String(length=48), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', wallet.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("channel IN ('email','sms','push')", name=op.f('ck_campaigns_channel_known')),
    sa.CheckConstraint('holdout_percent >= 0 AND holdout_percent <= 50',
                       name=op.f('ck_campaigns_holdout_percent_range')),
    sa.ForeignKeyConstraint(['offer_id'], ['offers.id'], name=op.f('fk_campaigns_offer_id_offers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )

    op.create_table('campaign_messages',
    sa.Column('campaign_id', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('holdout', sa.Boolean(), nullable=False),
    sa.Column('draw', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('sent_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.String(length=240), nullable=True),
    sa.Column('coupon_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('campaign_id', 'member_id', name=op.f('pk_campaign_messages'))
    )
    with op.batch_alter_table('campaign_messages', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_messages_due', ['next_attempt_at'], unique=False,
                              postgresql_where=sa.text("status = 'pending'"),
                              sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_campaign_messages_member_sent', ['member_id', 'sent_at'], unique=False,
                              postgresql_where=sa.text('sent_at IS NOT NULL'),
                              sqlite_where=sa.text('sent_at IS NOT NULL'))

    _keep_only_purposes()


def _keep_only_purposes():
    """Members' consents: only the fixed purposes' true/false answers stay, each the start of its history."""
    bind = op.get_bind()
    members = sa.table('members', sa.column('id', sa.String), sa.column('consents', JSON))
    changes = sa.table('consent_changes', sa.column('id', sa.String), sa.column('member_id', sa.String),
                       sa.column('purpose', sa.String), sa.column('granted', sa.Boolean),
                       sa.column('at', wallet.db.UTCDateTime()), sa.column('channel', sa.String),
                       sa.column('source', sa.String), sa.column('text_version', sa.String))
    after = ""
    while True:
        rows = bind.execute(sa.select(members.c.id, members.c.consents).where(members.c.id > after)
                            .order_by(members.c.id).limit(5000)).all()
        if not rows:
            return
        history = []
        for member_id, consents in rows:
            consents = consents if isinstance(consents, dict) else {}
            kept = {}
            for purpose, entry in consents.items():
                if purpose in PURPOSES and isinstance(entry, dict) and isinstance(entry.get("granted"), bool):
                    kept[purpose] = {k: v for k, v in entry.items() if k in ("granted", "at", "text_version")}
                    history.append({"id": new_id("cns"), "member_id": member_id, "purpose": purpose,
                                    "granted": entry["granted"], "at": _when(entry.get("at")), "channel": "app",
                                    "source": "migration", "text_version": None})
            if kept != consents:
                bind.execute(members.update().where(members.c.id == member_id).values(consents=kept))
        if history:
            bind.execute(changes.insert(), history)
        after = rows[-1][0]


def _when(value):
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    except ValueError:
        return datetime.now(UTC)


def downgrade():
    with op.batch_alter_table('campaign_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_messages_member_sent', postgresql_where=sa.text('sent_at IS NOT NULL'),
                            sqlite_where=sa.text('sent_at IS NOT NULL'))
        batch_op.drop_index('ix_campaign_messages_due', postgresql_where=sa.text("status = 'pending'"),
                            sqlite_where=sa.text("status = 'pending'"))
    op.drop_table('campaign_messages')
    op.drop_table('campaigns')
    with op.batch_alter_table('member_devices', schema=None) as batch_op:
        batch_op.drop_index('ix_member_devices_member')
    op.drop_table('member_devices')
    with op.batch_alter_table('consent_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_changes_member_at')
    op.drop_table('consent_changes')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('contact_rules')
