"""Currencies: the club's exchange rates for stores that sell in their own currency.

A rate is club-currency units per unit of the currency (a store in USD, a club in ILS: ``3.7``). Every change is
kept per day (``currency_rates``), so a purchase earns through the rate of its own day, and the purchase row keeps
the rate it used (a return takes back through that rate, whatever the rate is on the day of the return).
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, String, cast, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .clock import utcnow
from .db import Base
from .errors import Conflict, Invalid, NotFound
from .program import Program

# ISO 4217 active codes (2024). A code outside the list is refused: a typo must not become a currency.
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF
CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR
LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT
TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XDR
XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWL
""".split())
MAX_RATE = Decimal("1000000")
CENT = Decimal("0.01")


class Currency(Base):
    """A currency the club takes, with today's rate."""

    __tablename__ = "currencies"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(18, 8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CurrencyRate(Base):
    """A rate from a day on (until the next change): the rate of the day of a purchase is the latest one up to it."""

    __tablename__ = "currency_rates"

    code: Mapped[str] = mapped_column(ForeignKey("currencies.code"), primary_key=True)
    effective_on: Mapped[date] = mapped_column(primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(18, 8))


def valid_code(code: str, *, field: str = "code") -> str:
    code = (code or "").strip().upper()
    if code not in ISO_4217:
        raise Invalid(f"{code or 'an empty code'} is not an ISO 4217 currency code", code="unknown_currency",
                      errors={field: ["Not an ISO 4217 currency code."]})
    return code


def valid_rate(rate: Decimal) -> Decimal:
    if not rate.is_finite() or rate <= 0 or rate > MAX_RATE:
        raise Invalid("A rate is a positive number of club-currency units per unit", code="invalid_rate",
                      errors={"rate": [f"Must be above 0 and at most {MAX_RATE}."]})
    return rate.quantize(Decimal("0.00000001"))


def set_rate(session: Session, program: Program, code: str, rate: Decimal, *, create: bool) -> tuple[Currency, bool]:
    """Add a currency (``create``) or change its rate from today on; ``(currency, created)``."""
    code, rate = valid_code(code), valid_rate(rate)
    if code == program.currency:
        raise Invalid(f"{code} is the club's own currency: its rate is 1", code="club_currency",
                      errors={"code": ["The club's own currency has no rate."]})
    now = program.now()
    today = now.astimezone(program.tz).date()
    currency = session.get(Currency, code, with_for_update=True)
    if currency is None and not create:
        raise NotFound(f"No currency {code}", code="currency_not_found")
    if currency is not None and create:
        raise Conflict(f"{code} is already a currency of the club; PATCH its rate", code="currency_exists")
    created = currency is None
    if currency is None:
        currency = Currency(code=code, rate=rate, created_at=now, updated_at=now)
        session.add(currency)
    else:
        currency.rate, currency.updated_at = rate, now
    day = session.get(CurrencyRate, (code, today))
    if day is None:
        session.add(CurrencyRate(code=code, effective_on=today, rate=rate))
    else:
        day.rate = rate
    session.flush()
    return currency, created


def get_currency(session: Session, code: str) -> Currency:
    currency = session.get(Currency, (code or "").strip().upper())
    if currency is None:
        raise NotFound(f"No currency {code}", code="currency_not_found")
    return currency


def list_currencies(session: Session) -> list[Currency]:
    return list(session.scalars(select(Currency).order_by(Currency.code)))


def rate_on_column(currency_column: Any, day_param: Any) -> Any:
    """The rate of a currency (a column, e.g. the store's) on a day, to read within another query: as text (the
    till's hand-made path reads no NUMERIC), made a Decimal by :func:`rate_of`."""
    return cast(select(CurrencyRate.rate).where(CurrencyRate.code == currency_column,
                                                CurrencyRate.effective_on <= day_param)
                .order_by(CurrencyRate.effective_on.desc()).limit(1).scalar_subquery(), String)


def rate_of(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text).normalize()


def to_club(amount: Decimal, rate: Decimal | None) -> Decimal:
    """An amount in the club's currency, rounded down to the cent (earning never rounds up)."""
    if rate is None:
        return amount
    return (amount * rate).quantize(CENT, rounding=ROUND_FLOOR)
