"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import (  # noqa: F401
    admin,
    audit,
    auth,
    coupons,
    events,
    fraud,
    instore,
    kpis,
    me,
    passes,
    pos,
    product_import,
    rules,
    segments,
    stores,
    webhooks,
)
