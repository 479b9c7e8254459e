"""The phone's wallet from the app's configuration: Apple's and Google's settings for the programme (checked once
at start-up: a bad or expired certificate is one clear log line and 404s, not a crash), and the worker's jobs that
keep passes up to date (with the real APNs sender and Google Wallet API client)."""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app

from wallet import passes
from wallet.program import AppleWallet, GoogleWallet
from wallet.worker import PeriodicJob

log = logging.getLogger("loyalty.passes")

APPLE_SETTINGS = ("LOYALTY_APPLE_PASS_TYPE_ID", "LOYALTY_APPLE_TEAM_ID", "LOYALTY_APPLE_CERT", "LOYALTY_APPLE_KEY",
                  "LOYALTY_APPLE_WWDR")
GOOGLE_SETTINGS = ("LOYALTY_GOOGLE_ISSUER_ID", "LOYALTY_GOOGLE_SERVICE_ACCOUNT")


def _missing(cfg: dict, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not cfg.get(name)]


def apple_settings(cfg: dict, now: datetime | None = None) -> AppleWallet | None:
    """None (Apple passes off) when nothing is set; when something is, all of it must be right, or it is off with
    an error logged."""
    missing = _missing(cfg, APPLE_SETTINGS)
    if len(missing) == len(APPLE_SETTINGS):
        return None
    if missing:
        log.error("Apple Wallet passes are OFF: %s not set", ", ".join(missing))
        return None
    return passes.apple_or_off(pass_type_id=cfg["LOYALTY_APPLE_PASS_TYPE_ID"], team_id=cfg["LOYALTY_APPLE_TEAM_ID"],
                               cert_path=cfg["LOYALTY_APPLE_CERT"], key_path=cfg["LOYALTY_APPLE_KEY"],
                               wwdr_path=cfg["LOYALTY_APPLE_WWDR"],
                               key_password=cfg.get("LOYALTY_APPLE_KEY_PASSWORD") or None,
                               now=now or datetime.now(UTC))


def google_settings(cfg: dict) -> GoogleWallet | None:
    missing = _missing(cfg, GOOGLE_SETTINGS)
    if len(missing) == len(GOOGLE_SETTINGS):
        return None
    if missing:
        log.error("Google Wallet is OFF: %s not set", ", ".join(missing))
        return None
    return passes.google_or_off(issuer_id=cfg["LOYALTY_GOOGLE_ISSUER_ID"],
                                service_account_path=cfg["LOYALTY_GOOGLE_SERVICE_ACCOUNT"])


def program_settings(cfg: dict) -> dict[str, Any]:
    """The programme's fields for the phone's wallet (``Program(**...)``)."""
    public_url = cfg.get("LOYALTY_PUBLIC_URL") or "http://127.0.0.1:5000"
    apple = apple_settings(cfg)
    if apple is not None and not public_url.startswith("https://"):
        log.warning("LOYALTY_PUBLIC_URL is %s: Apple Wallet updates passes only over https (outside a device's "
                    "developer settings)", public_url)
    return {"public_url": public_url, "apple_wallet": apple, "google_wallet": google_settings(cfg)}


def jobs() -> list:
    """The worker's jobs for the phone's wallet, none when neither wallet is configured."""
    cfg, program = current_app.config, current_app.extensions["loyalty.program"]
    if program.apple_wallet is None and program.google_wallet is None:
        return []
    every = timedelta(seconds=cfg.get("LOYALTY_PASSES_EVERY_SECONDS", 5))
    found = [PeriodicJob("passes-follow-events", every, passes.follow_events),
             PeriodicJob("passes-purge", timedelta(hours=1), passes.purge)]
    if program.apple_wallet is not None:
        sender = passes.ApnsSender(cert_path=cfg["LOYALTY_APPLE_CERT"], key_path=cfg["LOYALTY_APPLE_KEY"],
                                   key_password=cfg.get("LOYALTY_APPLE_KEY_PASSWORD") or None,
                                   host=cfg.get("LOYALTY_APPLE_APNS_HOST") or passes.apns.PRODUCTION)
        found.append(PeriodicJob("passes-apns", every, lambda s, p: passes.push_due(s, p, sender)))
    if program.google_wallet is not None:
        client = passes.HttpWalletApi(program.google_wallet)
        found.append(PeriodicJob("passes-google", every, lambda s, p: passes.sync_google(s, p, client)))
    return found
