"""social profiles (networks, attributes, background imports) and contests (entries); members' phones indexed and
normalised to E.164 (LOYALTY_PHONE_REGION, default IL, for numbers without a country code; a phone that does not
read as a number stays as it was). The downgrade drops the tables and the index; phones stay in E.164.

Revision ID: 0015
Revises: 0007
Create Date: 2026-12-02 12:00:39

"""
import os

import phonenumbers
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import wallet.db

revision = '0015'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('social_imports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('report', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', wallet.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_social_imports'))
    )
    op.create_table('contests',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('opens_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('closes_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('draw_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('winner_count', sa.Integer(), nullable=False),
    sa.Column('prize_offer_id', sa.String(length=32), nullable=True),
    sa.Column('min_amount', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('commitment', sa.String(length=64), nullable=False),
    sa.Column('entry_list', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('entry_list_sha256', sa.String(length=64), nullable=True),
    sa.Column('drawn_at', wallet.db.UTCDateTime(), nullable=True),
    sa.Column('winner_aliases', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('winner_member_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['prize_offer_id'], ['offers.id'], name=op.f('fk_contests_prize_offer_id_offers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contests'))
    )
    with op.batch_alter_table('contests', schema=None) as batch_op:
        batch_op.create_index('ix_contests_due', ['drawn_at', 'draw_at'], unique=False)

    op.create_table('social_attributes',
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_social_attributes_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'key', name=op.f('pk_social_attributes'))
    )
    op.create_table('social_networks',
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('network', sa.String(length=16), nullable=False),
    sa.Column('handle', sa.String(length=64), nullable=False),
    sa.Column('linked_at', wallet.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_social_networks_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', 'network', name=op.f('pk_social_networks'))
    )
    op.create_table('contest_entries',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('contest_id', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.String(length=32), nullable=False),
    sa.Column('alias', sa.String(length=16), nullable=False),
    sa.Column('created_at', wallet.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contest_id'], ['contests.id'], name=op.f('fk_contest_entries_contest_id_contests')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_contest_entries_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contest_entries')),
    sa.UniqueConstraint('contest_id', 'alias', name=op.f('uq_contest_entries_contest_id_alias')),
    sa.UniqueConstraint('contest_id', 'member_id', name=op.f('uq_contest_entries_contest_id_member_id'))
    )
    with op.batch_alter_table('contest_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contest_entries_member_id'), ['member_id'], unique=False)



    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_phone'), ['phone'], unique=False)
    _normalise_phones()


def _e164(raw, region):
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalise_phones():
    region = os.environ.get("LOYALTY_PHONE_REGION", "IL").upper()
    members = sa.table("members", sa.column("id", sa.String), sa.column("phone", sa.String))
    bind = op.get_bind()
    last = ""
    while True:
        rows = bind.execute(sa.select(members.c.id, members.c.phone)
                            .where(members.c.phone.is_not(None), members.c.id > last)
                            .order_by(members.c.id).limit(5000)).all()
        if not rows:
            return
        changed = [{"key": id_, "value": e164} for id_, phone in rows
                   if (e164 := _e164(phone, region)) is not None and e164 != phone]
        if changed:
            bind.execute(members.update().where(members.c.id == sa.bindparam("key"))
                         .values(phone=sa.bindparam("value")), changed)
        last = rows[-1][0]


def downgrade():
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_phone'))
    with op.batch_alter_table('contest_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contest_entries_member_id'))

    op.drop_table('contest_entries')
    op.drop_table('social_networks')
    op.drop_table('social_attributes')
    with op.batch_alter_table('contests', schema=None) as batch_op:
        batch_op.drop_index('ix_contests_due')

    op.drop_table('contests')
    op.drop_table('social_imports')
