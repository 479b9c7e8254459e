"""Retail barcodes: EAN-13, EAN-8 and UPC-A, check digits validated, stored as one 13-digit GTIN."""
from __future__ import annotations

from .errors import Invalid


def gtin_check_digit(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def normalise_barcode(code: str, field: str = "barcode") -> str:
    """The 13-digit GTIN of an EAN-13, EAN-8 or UPC-A code: a UPC-A and its EAN-13 form are one product."""
    code = code.strip() if isinstance(code, str) else ""
    if not code.isascii() or not code.isdigit() or len(code) not in (8, 12, 13):
        raise Invalid("A barcode is 8 (EAN-8), 12 (UPC-A) or 13 (EAN-13) digits", code="invalid_barcode",
                      errors={field: ["Must be 8, 12 or 13 digits."]})
    if gtin_check_digit(code[:-1]) != code[-1]:
        raise Invalid("The barcode's check digit is wrong", code="invalid_barcode",
                      errors={field: ["Check digit does not match."]})
    return code.zfill(13)
