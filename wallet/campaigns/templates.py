"""A campaign's message: its fields (``{name}``, ``{first_name}``, ``{coupon_code}``), checked when the campaign is
written and filled in when each message is sent, escaped in HTML."""
from __future__ import annotations

import html
from dataclasses import dataclass
from string import Formatter

from ..errors import Invalid

FIELDS = ("name", "first_name", "coupon_code")
LIMITS = {"email": 20_000, "sms": 1_600, "push": 1_000}


def parse(template: str, field: str = "message.body") -> list[tuple[str, str | None]]:
    """The template as (literal text, field name or None) pieces; Invalid naming an unknown or malformed field."""
    try:
        pieces = list(Formatter().parse(template))
    except ValueError as error:
        raise Invalid(f"The {field} is not a valid template: {error}; write {{{{ and }}}} for braces",
                      code="invalid_template", errors={field: [f"{error}; write {{{{ and }}}} for literal braces."]}
                      ) from None
    out = []
    for literal, name, spec, conversion in pieces:
        if name is not None:
            if name not in FIELDS:
                raise Invalid(f"The {field} names an unknown field {{{name}}}; the fields are "
                              + ", ".join("{" + f + "}" for f in FIELDS), code="unknown_template_field",
                              errors={field: [f"Unknown field {{{name}}}; use one of "
                                              + ", ".join("{" + f + "}" for f in FIELDS) + "."]})
            if spec or conversion:
                raise Invalid(f"The {field} formats {{{name}}}: only plain fields are allowed",
                              code="invalid_template", errors={field: [f"Write {{{name}}} without a format."]})
        out.append((literal, name))
    return out


def fields_in(template: str | None) -> set[str]:
    return {name for _, name in parse(template) if name} if template else set()


@dataclass(frozen=True)
class Values:
    name: str
    coupon_code: str | None = None

    def get(self, field: str) -> str:
        if field == "name":
            return self.name
        if field == "first_name":
            return self.name.split()[0] if self.name.split() else self.name
        return self.coupon_code or ""


def render_text(template: str, values: Values) -> str:
    return "".join(literal + (values.get(name) if name else "") for literal, name in parse(template))


def render_html(template: str, values: Values) -> str:
    """The template as HTML: its text and every value escaped, line breaks kept."""
    out = "".join(html.escape(literal) + (html.escape(values.get(name)) if name else "")
                  for literal, name in parse(template))
    return out.replace("\r\n", "\n").replace("\n", "<br>\n")
