"""A campaign's message: its fields (``{name}``, ``{first_name}``, ``{coupon_code}``), checked when the campaign is
written and filled in when each message is sent, escaped in HTML; and its links (``http(s)://...`` in the
template's own text, never in a value), which a tracked message carries through the club's redirect."""
from __future__ import annotations

import html
import re
from collections.abc import Callable
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


# A link: http:// or https:// and what follows up to a space, a control character, a quote, an angle bracket or a
# brace.
_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f<>\"'{}`]+", re.IGNORECASE)
_ENDS_A_SENTENCE = ".,;:!?"
# Where the n-th link of a message goes instead of the link itself: (n, link) -> URL (the tracked redirect).
LinkTo = Callable[[int, str], str]


def _trimmed(url: str) -> str:
    """A link without the punctuation after it ("see https://x.example/a." ends at "a"); a closing parenthesis
    stays when the link opened one (https://en.wikipedia.org/wiki/Foo_(bar))."""
    while url and (url[-1] in _ENDS_A_SENTENCE or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url = url[:-1]
    return url


def pieces(template: str) -> list[tuple[str, str]]:
    """The template as ``("text", literal)``, ``("link", url)`` and ``("field", name)`` pieces. Links are found in
    the template's own text only: a value (a member's name, a coupon code) never becomes one. A link that runs into
    a field (``https://shop.example/?code={coupon_code}``) is not one either: it differs per member, so it stays
    text and goes untracked."""
    out: list[tuple[str, str]] = []
    for literal, name in parse(template):
        at = 0
        for found in _URL.finditer(literal):
            if found.end() == len(literal) and name is not None:
                break  # runs on into the field
            url = _trimmed(found.group())
            if not url.partition("://")[2]:
                continue
            out += [("text", literal[at:found.start()]), ("link", url)]
            at = found.start() + len(url)
        out.append(("text", literal[at:]))
        if name is not None:
            out.append(("field", name))
    return [(kind, value) for kind, value in out if value]


def links_in(template: str | None) -> list[str]:
    """The links of a message's text, in order: the n-th is where its n-th tracked link redirects to."""
    return [value for kind, value in pieces(template or "") if kind == "link"]


def render_text(template: str, values: Values, link_to: LinkTo | None = None) -> str:
    """The template as text; with ``link_to``, each link is replaced by where it says."""
    out, n = [], 0
    for kind, value in pieces(template):
        if kind == "field":
            out.append(values.get(value))
        elif kind == "link" and link_to is not None:
            out.append(link_to(n, value))
            n += 1
        else:
            out.append(value)
    return "".join(out)


def render_html(template: str, values: Values, link_to: LinkTo | None = None) -> str:
    """The template as HTML: its text and every value escaped, line breaks kept; each link of its text an anchor
    (to where ``link_to`` says, or to the link itself), showing the link."""
    out, n = [], 0
    for kind, value in pieces(template):
        if kind == "field":
            out.append(html.escape(values.get(value)))
        elif kind == "link":
            href = link_to(n, value) if link_to is not None else value
            n += 1
            out.append(f'<a href="{html.escape(href, quote=True)}">{html.escape(value)}</a>')
        else:
            out.append(html.escape(value))
    return "".join(out).replace("\r\n", "\n").replace("\n", "<br>\n")
