"""The password policy: long enough, and not one that everybody picks (a list shipped with the package).

Hashing itself (scrypt, its cost, the cap on hashes at once) is in :mod:`wallet.members`.
"""
from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

from .errors import Invalid

MIN_LENGTH = 10
MAX_LENGTH = 128
_LIST = Path(__file__).with_name("data") / "common_passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = _LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def problems(password: str, *, email: str | None = None) -> list[str]:
    """What is wrong with this password as a new one (empty: it will do)."""
    found = []
    if len(password) < MIN_LENGTH:
        found.append(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        found.append(f"Use at most {MAX_LENGTH} characters.")
    folded = unicodedata.normalize("NFKC", password).strip().lower()
    if folded in common_passwords() or len(set(folded)) <= 2 or _a_run(folded):
        found.append("This password is too common; choose another.")
    elif email and folded in (email.strip().lower(), email.strip().lower().split("@")[0]):
        found.append("Do not use your email address as your password.")
    return found


def check_new_password(password: str, *, email: str | None = None, field: str = "password") -> None:
    """Invalid (422 ``validation_error``, naming ``field``) unless this password may be set."""
    found = problems(password, email=email)
    if found:
        raise Invalid("The password is too weak: " + " ".join(found), code="validation_error", errors={field: found})


def _a_run(text: str) -> bool:
    """abcdefghij, 0123456789, 9876543210: one step apart all the way."""
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:], strict=False)}
    return len(text) >= 4 and len(steps) == 1 and steps <= {1, -1}
