"""The phone's wallet: the card and coupons as Apple Wallet passes and Google Wallet objects.

- ``downloads``: what a member takes into the wallet (a signed ``.pkpass``, a "save to Google Wallet" link);
- ``webservice``: Apple's PassKit web service (registrations, changed serials, the latest pass, logs);
- ``registry``: the passes handed out and their update tags; :func:`changed` marks a member's passes;
- ``updates``: the worker's side (events to pass updates, APNs pushes, Google Wallet API updates);
- ``uses``: pass codes at the till (a rotating code once per purpose and store, a static code's reuse flagged);
- ``apple``, ``google``, ``content``, ``images``, ``signing``, ``apns``: formats, words, images, keys, APNs.

Unconfigured (``program.apple_wallet`` / ``program.google_wallet`` None), every entry point raises
``PassUnavailable`` (404 ``wallet_pass_unavailable``) and nothing else changes.
"""
from .apns import ApnsSender, PushSender
from .downloads import Pkpass, card_google_link, card_pass, coupon_google_link, coupon_pass
from .google import HttpWalletApi, WalletApi
from .models import PassDevice, PassRegistration, PassScan, RotatingCodeUse, WalletPass
from .registry import changed
from .signing import Misconfigured, apple_or_off, google_or_off, load_apple, load_google
from .updates import follow_events, purge, push_due, sync_google
from .uses import flagged_scans, record_use

__all__ = [
    "ApnsSender", "HttpWalletApi", "Misconfigured", "PassDevice", "PassRegistration", "PassScan", "Pkpass",
    "PushSender", "RotatingCodeUse", "WalletApi", "WalletPass", "apple_or_off", "card_google_link", "card_pass",
    "changed", "coupon_google_link", "coupon_pass", "flagged_scans", "follow_events", "google_or_off", "load_apple",
    "load_google", "purge", "push_due", "record_use", "sync_google",
]
