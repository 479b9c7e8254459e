"""The HTTP layer's shortcuts through its libraries' internals, kept in this one place for the till's speed.

A purchase shares one budget with every feature: at least half the throughput of a bare Flask endpoint doing
one write transaction. Profiles showed these per-request costs outside the view, each removed here:

- :class:`Parser`: webargs instantiates the argument schema anew on every request (marshmallow deep-copies every
  field) and parses the JSON body that the body guard parsed already. It overrides webargs' ``_get_schema`` and
  ``_raw_load_json`` (private methods of ``webargs.core.Parser``).
- :class:`Sessions`: Flask builds a signing serializer for every request, though this API keeps no cookie
  session. It overrides ``SecureCookieSessionInterface.open_session`` (public) and answers as the parent does.
- :func:`limit_only_limited_blueprints`: flask-limiter's hooks work out on every request which limits apply,
  and only /auth has any. It swaps the hooks for ones that skip requests no limit covers, reading the
  limiter's private state (``limit_manager._blueprint_limits`` and the other limit lists, ``_check_request_limit``,
  ``_Limiter__release_context``); where that state is not as expected it leaves the hooks alone.

``tests/api/test_overhead_http.py`` checks that each is engaged against the installed library (a renamed private
method would otherwise turn a shortcut silently off) and that answers are the same as the long way round.
"""
from __future__ import annotations

import functools
from typing import Any

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from marshmallow import Schema
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser, is_json_request

PARSED_BODY = "loyalty.parsed_json"  # request.environ key: the body the guard parsed, for the arguments parser


class Parser(FlaskParser):
    """webargs' parser, minus two costs it pays on every request: it instantiates the argument schema class
    anew (marshmallow deep-copies every field), and it parses the JSON body that ``_guard_bodies`` has parsed
    already. A schema's load keeps no state between calls, so one instance per class serves every request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._instances: dict[type, Schema] = {}

    def _get_schema(self, argmap, req):
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            schema = self._instances.get(argmap)
            if schema is None:
                schema = self._instances.setdefault(argmap, argmap())
            return schema
        return super()._get_schema(argmap, req)

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return webargs_core.missing
        parsed = req.environ.get(PARSED_BODY)
        if parsed is not None:
            return parsed[0]
        return webargs_core.parse_json(req.get_data(cache=True))


class Sessions(SecureCookieSessionInterface):
    """Flask's cookie sessions, without building a signing serializer for requests that carry no session
    cookie (all of them: this API keeps no cookie session). Same answers as the parent class."""

    def open_session(self, app, request):
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)


def limit_only_limited_blueprints(app: Flask, limiter: Limiter) -> None:
    """flask-limiter's hooks work out, on every request, which limits apply. Here the only limits are on
    blueprints (/auth): a request outside a limited blueprint has none, and its hooks find nothing to do, at
    some cost. Skip them there. With any other kind of limit (default, application, meta, or on a single route,
    whenever it is added) the hooks run on every request as before, and a flask-limiter whose internals are
    not as expected keeps its hooks untouched."""
    if not limiter.enabled:
        return
    manager = limiter.limit_manager

    def other_limits() -> bool:  # read afresh each time: set_default_limits and the like replace these
        return bool(manager._default_limits or manager._application_limits or manager._decorated_limits or
                    manager._endpoint_hints or limiter._meta_limits or limiter._marked_for_limiting)
    try:
        if other_limits():
            return
        manager._blueprint_limits.keys()
        check = limiter._check_request_limit
        release = limiter._Limiter__release_context
    except AttributeError:
        return
    before = app.before_request_funcs.get(None, [])
    after = app.after_request_funcs.get(None, [])
    teardown = app.teardown_request_funcs.get(None, [])
    inject = [f for f in after if isinstance(f, functools.partial) and f.args == (limiter,)]
    if before.count(check) != 1 or teardown.count(release) != 1 or len(inject) != 1:
        return

    def applies() -> bool:
        if other_limits():
            return True
        blueprint = request.blueprint
        return blueprint is not None and not manager._blueprint_limits.keys().isdisjoint(blueprint.split("."))

    def check_limits():
        return check() if applies() else None

    def inject_headers(response):
        return inject[0](response) if applies() else response

    def release_context(exc=None):
        if applies():
            release(exc)

    before[before.index(check)] = check_limits
    after[after.index(inject[0])] = inject_headers
    teardown[teardown.index(release)] = release_context
