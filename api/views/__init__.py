"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import (  # noqa: F401
    admin,
    audit,
    auth,
    contests,
    coupons,
    events,
    instore,
    me,
    passes,
    pos,
    product_import,
    rules,
    social,
    stores,
    webhooks,
)
