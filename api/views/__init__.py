"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import admin, audit, auth, coupons, events, instore, me, passes, pos, rules, stores, tiers, webhooks  # noqa: F401
