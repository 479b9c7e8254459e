"""Recording staff changes in the audit log from the admin views: who (the signed-in staff member), what (the
entity as its answer schema shows it, before and after), in the change's own transaction."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema

from wallet import audit

from .auth import current_principal
from .extensions import db


def record(action: str, entity: str, entity_id: str, *, before: Any = None, after: Any = None,
           schema: type[Schema] | None = None) -> None:
    """One audit entry; ``before`` and ``after`` are dicts as the answer schema dumped them, or objects that
    ``schema`` dumps."""
    def snapshot(value: Any) -> dict[str, Any] | None:
        if value is None or isinstance(value, dict):
            return value
        assert schema is not None, "give the schema that dumps the object"
        return schema().dump(value)
    audit.record(db.session, current_principal(), action, entity, entity_id, snapshot(before), snapshot(after))
