"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import admin, audit, auth, coupons, events, instore, kpis, me, passes, pos, rules, stores, webhooks  # noqa: F401
