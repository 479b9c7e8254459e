"""The application's programme and key ring, built once by the factory (no per-process state beyond that)."""
from __future__ import annotations

from flask import current_app

from wallet.program import Program
from wallet.tokens import KeyRing


def program() -> Program:
    return current_app.extensions["loyalty.program"]


def keyring() -> KeyRing:
    return current_app.extensions["loyalty.keyring"]
