"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import admin, auth, coupons, instore, me, pos, rules, stores  # noqa: F401
