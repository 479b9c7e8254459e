"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import (  # noqa: F401
    admin,
    audit,
    auth,
    campaigns,
    contact,
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
