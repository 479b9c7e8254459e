"""KPIs for marketers and admins: ``GET /admin/kpis``, read from the summaries the worker keeps from the event log;
and ``loyalty kpis summarise|rebuild``."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from marshmallow import fields, validate

from wallet import kpis
from wallet.events import CHANNELS

from ..auth import marketer_required
from ..blueprints import admin as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import StrictSchema
from ..state import program

SIGNED_MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "example": "1234.50"}
MONEY = {"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "example": "1234.50"}
POINTS = {"format": "int64"}


def _text(description: str, **more) -> dict:
    return {"description": description, **more}


class KpiArgs(StrictSchema):
    from_ = fields.Date(data_key="from", load_default=None, metadata=_text(
        "first day of the period (YYYY-MM-DD, a club day in LOYALTY_TIMEZONE); default: 29 days before `to`"))
    to = fields.Date(load_default=None, metadata=_text(
        "last day of the period, inclusive; default: today in LOYALTY_TIMEZONE (or `from` + 29 days, not after "
        f"today); a period is at most {kpis.MAX_DAYS} days"))
    interval = fields.String(load_default=None, validate=validate.OneOf(kpis.INTERVALS), metadata=_text(
        "also answer a `series` with one item per day, ISO week (Monday to Sunday) or calendar month; the first and "
        "last buckets are cut to the period"))


class MembersKpiSchema(StrictSchema):
    total = fields.Integer(metadata=_text("members at the end of the period: enrolled (`member.enrolled`) minus "
                                          "erased (`member.erased`) since the club began"))
    new = fields.Integer(metadata=_text("members who enrolled in the period"))
    active_30d = fields.Integer(metadata=_text("members who bought (`purchase.recorded`) or checked in "
                                               "(`check_in.recorded`) in the 30 days ending on the period's last day"))
    active_90d = fields.Integer(metadata=_text("the same in the 90 days ending on the period's last day"))


class PurchasesKpiSchema(StrictSchema):
    count = fields.Integer(metadata=_text("receipts recorded at the tills in the period (a refunded one still counts "
                                          "here, and in `refunds` on its refund's day)"))
    revenue = fields.String(metadata=_text(
        "what the period's receipts amount to, less what was refunded in the period (a decimal string of the club's "
        "currency; negative in a period whose refunds exceed its sales)", **SIGNED_MONEY))
    per_active_member = fields.String(allow_none=True, metadata=_text(
        "revenue / active_30d (null when no member was active)", **SIGNED_MONEY))
    refunds = fields.Integer(metadata=_text("refunds recorded in the period (`purchase.refunded`)"))
    refunded = fields.String(metadata=_text("the amount those refunds gave back", **MONEY))


class PointsKpiSchema(StrictSchema):
    issued = fields.Integer(metadata=POINTS | _text("points credited in the period (`points.earned`: rules on purchases, "
                                           "check-ins, scans, enrolment, birthdays, referrals; pending points when "
                                           "they are released)"))
    redeemed = fields.Integer(metadata=POINTS | _text("points spent in the period (`points.spent`: coupons from the catalogue)"))
    expired = fields.Integer(metadata=POINTS | _text("points that expired in the period (`points.expired`)"))
    adjusted = fields.Integer(metadata=POINTS | _text("staff credits less debits in the period (`points.adjusted`, kind adjust)"))
    reversed = fields.Integer(metadata=POINTS | _text("reversals in the period, signed (`points.adjusted`, kind reverse): a "
                                             "refund takes points back (negative), a voided coupon gives them back"))
    outstanding = fields.Integer(metadata=POINTS | _text(
        "points members hold at the end of the period (spendable, not pending): every movement since the club began; "
        "over a period, outstanding changes by issued - redeemed - expired + adjusted + reversed"))
    liability = fields.String(metadata=_text("outstanding x LOYALTY_POINT_VALUE, in the club's currency", **MONEY))


class CouponsKpiSchema(StrictSchema):
    issued = fields.Integer(metadata=_text("coupons issued in the period (claimed, given by rules or by staff)"))
    redeemed = fields.Integer(metadata=_text("redemptions in the period less those rolled back in it"))
    redemption_rate = fields.Float(allow_none=True, metadata=_text(
        "of the coupons issued in the period, the share redeemed so far (0-1; null when none were issued)"))


class CampaignsKpiSchema(StrictSchema):
    sent = fields.Integer(metadata=_text("messages sent in the period (`message.sent`)"))
    response_rate = fields.Float(allow_none=True, metadata=_text(
        "responders / treated members of the campaigns of the period (API.md's campaign report); null when there "
        "are none"))


_BY_CHANNEL = _text("actions by the channel they came through, every channel listed: enrolments, purchases, refunds, "
                    "check-ins, scans, coupon redemptions and messages sent (the points, rewards and coupons an action "
                    "brings with it are not counted again)")


class KpiBlockSchema(StrictSchema):
    members = fields.Nested(MembersKpiSchema)
    purchases = fields.Nested(PurchasesKpiSchema)
    points = fields.Nested(PointsKpiSchema)
    coupons = fields.Nested(CouponsKpiSchema)
    campaigns = fields.Nested(CampaignsKpiSchema)
    by_channel = fields.Dict(keys=fields.String(validate=validate.OneOf(CHANNELS)), values=fields.Integer(),
                             metadata=_BY_CHANNEL)


class KpiBucketSchema(KpiBlockSchema):
    date = fields.Date(metadata=_text("the bucket's first day; its stocks (totals, active, outstanding) are as at "
                                      "its last day"))


class KpisSchema(KpiBlockSchema):
    from_ = fields.Date(data_key="from", metadata=_text("the period's first day"))
    to = fields.Date(metadata=_text("the period's last day (inclusive)"))
    timezone = fields.String(metadata=_text("the timezone of the club's days (LOYALTY_TIMEZONE)"))
    series = fields.List(fields.Nested(KpiBucketSchema), metadata={"x-optional": True} | _text(
        "with `interval`: one item per bucket; its flows sum to the period's, its stocks are at its end"))


@blp.route("/kpis")
class Kpis(Resource):
    decorators = [marketer_required]

    @blp.arguments(KpiArgs, location="query")
    @blp.response(200, KpisSchema)
    def get(self, args):
        """The club's figures for a period of club days (LOYALTY_TIMEZONE), read from the worker's summaries and the
        events it has not summarised yet: current to the last commit."""
        club = program()
        asked = kpis.period(club, args["from_"], args["to"], args["interval"])
        answer = kpis.kpis(db.session, club, asked)
        answer["from_"] = answer.pop("from")
        return answer


def register_cli(app: Flask) -> None:
    """``loyalty kpis summarise`` and ``loyalty kpis rebuild``."""
    group = click.Group("kpis", help="The KPI summaries the worker keeps from the event log.")

    @group.command("summarise")
    @with_appcontext
    def summarise():
        """Fold the events not yet summarised into the KPI summaries (the worker does this every minute)."""
        read = kpis.summarise_all(db.session, program(), db.session.commit)
        click.echo(f"summarised {read} events")

    @group.command("rebuild")
    @with_appcontext
    def rebuild():
        """Summarise the whole log again (after LOYALTY_TIMEZONE changed: the days are the club's days)."""
        kpis.forget(db.session)
        db.session.commit()
        read = kpis.summarise_all(db.session, program(), db.session.commit)
        click.echo(f"summarised {read} events from the start of the log")

    app.cli.add_command(group)
