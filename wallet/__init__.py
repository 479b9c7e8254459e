"""The loyalty club's domain: members and cards, the points ledger, rules, the till, stores, coupons.

Plain Python over a SQLAlchemy ``Session``. Nothing here imports Flask; configuration arrives as a
:class:`wallet.program.Program`.
"""
