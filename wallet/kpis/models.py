"""The KPI summaries the worker keeps from the event log (``summary.summarise``), so that ``GET /admin/kpis`` never
reads purchases: one row per club day and channel with that day's counts, the members' active days, and how the
30- and 90-day active-member counts change from day to day.

A ``day`` is a day number: days since 1970-01-01 in the club's timezone (``LOYALTY_TIMEZONE``), see ``days``.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

# The counters of a day and channel, in the order the summary writes them. Money in cents (the club's currency has
# two decimal places: purchase amounts are decimal strings with at most two), so sums are exact on every database.
COUNTERS = (
    "members_new",  # member.enrolled
    "members_erased",  # member.erased
    "purchases",  # purchase.recorded
    "revenue_cents",  # the amounts of purchase.recorded
    "refunds",  # purchase.refunded
    "refunded_cents",  # the refunded amount (the event's, else the purchase's whole amount)
    "points_issued",  # points.earned
    "points_redeemed",  # points.spent
    "points_expired",  # points.expired
    "points_adjusted",  # points.adjusted of kind adjust (staff; signed)
    "points_reversed",  # points.adjusted of kind reverse (a refund takes back, a void gives back; signed)
    "coupons_issued",  # coupon.issued
    "coupons_redeemed",  # coupon.redeemed minus coupon.redemption_rolled_back, on the day of each
    "coupons_redeemed_of_issued",  # the same, counted on the day the coupon was issued (the cohort's rate)
    "messages_sent",  # message.sent
    "actions",  # the channel's actions (summary.ACTION_TYPES): by_channel
)


class KpiDay(Base):
    """A club day's counts on one channel (the event's ``channel``)."""

    __tablename__ = "kpi_days"

    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    members_new: Mapped[int] = mapped_column(BigInteger, default=0)
    members_erased: Mapped[int] = mapped_column(BigInteger, default=0)
    purchases: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    points_issued: Mapped[int] = mapped_column(BigInteger, default=0)
    points_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    points_expired: Mapped[int] = mapped_column(BigInteger, default=0)
    points_adjusted: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    coupons_issued: Mapped[int] = mapped_column(BigInteger, default=0)
    coupons_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    coupons_redeemed_of_issued: Mapped[int] = mapped_column(BigInteger, default=0)
    messages_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    actions: Mapped[int] = mapped_column(BigInteger, default=0)


class KpiMemberDay(Base):
    """A day on which a member was active (bought or checked in). Read only by the summary job, by primary key."""

    __tablename__ = "kpi_member_days"

    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)


class KpiActiveChange(Base):
    """How the count of members active in the last ``window_days`` days changes on ``day``: the count on day D is
    the sum of the changes up to D, so an answer reads a few hundred small rows, never the members."""

    __tablename__ = "kpi_active_changes"

    window_days: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    delta: Mapped[int] = mapped_column(BigInteger, default=0)
