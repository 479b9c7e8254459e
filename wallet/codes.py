"""The codes people carry and type: card numbers (Luhn), coupon codes (Crockford base32 with a check symbol) and
referral codes. A typo is caught here, before the database is asked."""
from __future__ import annotations

import os
import secrets

from .db import new_id
from .errors import InvalidCoupon


def luhn_check_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) >= 2 and luhn_check_digit(number[:-1]) == number[-1]


def new_card_number() -> str:
    """16 digits: a club prefix, 14 random digits and a Luhn check digit, so a mistyped number is caught."""
    body = "8" + "".join(secrets.choice("0123456789") for _ in range(14))
    return body + luhn_check_digit(body)


_REFERRAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I


def new_referral_code() -> str:
    return "".join(secrets.choice(_REFERRAL_ALPHABET) for _ in range(8))

# Crockford's base32: no I, L, O or U, so what is read aloud or typed can't be two things.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_LETTERS = "ABCDEFGHJKMNPQRSTVWXYZ"


_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})


CODE_LENGTH = 12  # a letter, 10 random symbols (about 54 bits in all) and a check symbol


def _check_symbol(body: str) -> str:
    """Luhn mod 32: catches every single wrong symbol and most swapped neighbours before the database is asked."""
    factor, total = 2, 0
    for ch in reversed(body):
        addend = factor * CODE_ALPHABET.index(ch)
        factor = 3 - factor
        total += addend // 32 + addend % 32
    return CODE_ALPHABET[(32 - total % 32) % 32]


def new_code() -> str:
    """A fresh human code. It starts with a letter so a till never mistakes it for a card number."""
    return new_codes(1)[0]


# Each symbol's share of the check sum, by its distance from the end: Luhn mod 32 without a loop per symbol.
_CHECK_SHARE = [{ch: (f * v) // 32 + (f * v) % 32 for v, ch in enumerate(CODE_ALPHABET)}
                for f in (2, 1) * (CODE_LENGTH // 2)]


# A random byte's low 5 bits as a symbol (256 is a multiple of 32, so every symbol is equally likely).
_SYMBOL_OF_BYTE = bytes(ord(CODE_ALPHABET[b % 32]) for b in range(256))


def _random_symbols(n: int) -> str:
    """``n`` random Crockford symbols (5 bits each) from the OS's random source, in one C-level pass."""
    return os.urandom(n).translate(_SYMBOL_OF_BYTE).decode("ascii")


# The same sums by pairs of symbols (a symbol at an odd distance from the end, then one at an even distance), and
# the check symbol that completes a total: a code's check is 6 lookups.
_PAIR_SHARE = {a + b: _CHECK_SHARE[1][a] + _CHECK_SHARE[0][b] for a in CODE_ALPHABET for b in CODE_ALPHABET}


_FIRST_SHARE = [(ch, _CHECK_SHARE[0][ch]) for ch in _LETTERS]


_COMPLETES = [CODE_ALPHABET[(32 - total) % 32] for total in range(32)]


def new_codes(n: int) -> list[str]:
    """``n`` fresh human codes at once (bulk issue): the same shape as :func:`new_code`, about a µs each."""
    body_len = CODE_LENGTH - 2  # after the letter, before the check symbol
    symbols = _random_symbols(n * body_len)
    pair, first, completes = _PAIR_SHARE, _FIRST_SHARE, _COMPLETES
    codes = []
    for i, r in enumerate(memoryview(os.urandom(2 * n)).cast("H")):
        s = symbols[i * body_len:(i + 1) * body_len]
        letter, share = first[r % len(first)]
        total = share + pair[s[0:2]] + pair[s[2:4]] + pair[s[4:6]] + pair[s[6:8]] + pair[s[8:10]]
        codes.append(letter + s + completes[total % 32])
    return codes


def format_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def normalise_code(typed: str) -> str:
    """The stored form of a typed code: upper case, no spaces or dashes, O read as 0 and I/L as 1."""
    code = "".join(typed.split()).replace("-", "").upper().translate(_TYPOS)
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code) \
            or _check_symbol(code[:-1]) != code[-1]:
        raise InvalidCoupon("This is not a coupon code: check it and type it again", code="invalid_coupon_code",
                            errors={"coupon": ["Not a valid coupon code."]})
    return code
def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids in :func:`wallet.db.new_id`'s layout (this millisecond, then 80 random bits each)."""
    head = new_id(prefix)[:len(prefix) + 11]  # "cpn_" and the 10 symbols of the clock
    symbols = _random_symbols(n * 16)
    return [head + symbols[i * 16:(i + 1) * 16] for i in range(n)]
