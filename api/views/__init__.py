"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import (  # noqa: F401
    accounts,
    admin,
    audit,
    auth,
    coupons,
    events,
    instore,
    me,
    passes,
    pos,
    rules,
    stores,
    webhooks,
)
