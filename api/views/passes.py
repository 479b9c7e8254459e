"""The phone's wallet, the member's side: the card and coupons as Apple Wallet passes and Google Wallet save links.
Unconfigured: 404 ``wallet_pass_unavailable``."""
from __future__ import annotations

from flask import Response
from marshmallow import fields
from werkzeug.http import http_date

from wallet import passes
from wallet.passes import apple

from ..auth import current_principal, member_required
from ..blueprints import me as blp
from ..extensions import db
from ..resource import Resource
from ..schemas import StrictSchema
from ..state import program

PKPASS_DOC = {"responses": {"200": {"description": "a signed Apple Wallet pass (PassKit package)",
                                    "content": {apple.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}}


class SaveLinkSchema(StrictSchema):
    save_url = fields.String(metadata={"description": "https://pay.google.com/gp/v/save/<jwt>: opens Google Wallet"})
    jwt = fields.String(metadata={"description": "the save JWT (RS256, aud google, typ savetowallet)"})


def _pkpass(made: passes.Pkpass) -> Response:
    response = Response(made.data, mimetype=apple.MEDIA_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{made.filename}"'
    response.headers["Last-Modified"] = http_date(made.modified)
    response.headers["Cache-Control"] = "no-store"  # it carries the member's pass code
    return response


@blp.route("/me/card/pass.pkpass")
class CardPass(Resource):
    decorators = [member_required]

    @blp.doc(**PKPASS_DOC)
    def get(self):
        """The card as an Apple Wallet ``storeCard`` pass (points, tier, name; its QR is the static pass code)."""
        return _pkpass(passes.card_pass(db.session, program(), current_principal().id))


@blp.route("/me/coupons/<string:coupon_id>/pass.pkpass")
class CouponPass(Resource):
    decorators = [member_required]

    @blp.doc(**PKPASS_DOC)
    def get(self, coupon_id):
        """A coupon as an Apple Wallet ``coupon`` pass; a used, cancelled or expired one comes voided."""
        return _pkpass(passes.coupon_pass(db.session, program(), current_principal().id, coupon_id))


@blp.route("/me/card/google-wallet")
class CardGoogleWallet(Resource):
    decorators = [member_required]

    @blp.response(200, SaveLinkSchema, headers={"Cache-Control": {"schema": {"type": "string"}}})
    def get(self):
        """A link that saves the card to Google Wallet, with a rotating QR code (a new value every 30 seconds)."""
        body = passes.card_google_link(db.session, program(), current_principal().id)
        return body, 200, {"Cache-Control": "no-store"}


@blp.route("/me/coupons/<string:coupon_id>/google-wallet")
class CouponGoogleWallet(Resource):
    decorators = [member_required]

    @blp.response(200, SaveLinkSchema, headers={"Cache-Control": {"schema": {"type": "string"}}})
    def get(self, coupon_id):
        """A link that saves a coupon to Google Wallet as an offer."""
        body = passes.coupon_google_link(db.session, program(), current_principal().id, coupon_id)
        return body, 200, {"Cache-Control": "no-store"}
