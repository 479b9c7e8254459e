"""Feature modules adding routes to the audience blueprints; importing them registers the routes."""
from . import admin, auth, me, pos, rules  # noqa: F401
