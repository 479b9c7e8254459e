"""Signed webhooks (Standard Webhooks 1.0): subscriptions, deliveries fanned out from the event log, the SSRF guard."""
from .deliveries import Delivery, Job, claim, fan_out, listed, record, release, remove_subscription, retry, send
from .settings import Settings
from .subscriptions import Created, Subscription, create, get, new_secret, rotate_secret, sign, update
from .urls import UrlNotAllowed

__all__ = ["Created", "Delivery", "Job", "Settings", "Subscription", "UrlNotAllowed", "claim", "create", "fan_out",
           "get", "listed", "new_secret", "record", "release", "remove_subscription", "retry", "rotate_secret",
           "send", "sign", "update"]
