"""The four audiences' blueprints; feature modules in api/views/ add their routes to them."""
from flask_smorest import Blueprint

auth = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Enrolment and tokens")
me = Blueprint("me", __name__, url_prefix="/api/v1", description="The shopper's wallet (role: member)")
pos = Blueprint("pos", __name__, url_prefix="/api/v1/pos", description="The till (role: cashier)")
admin = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="The marketers' side (marketer, admin)")

ALL = (auth, me, pos, admin)
