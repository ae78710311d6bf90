"""The OpenRPC document, built from the same method table that dispatches (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from drivers.base import REASON_CODES
from halsvc import __version__

if TYPE_CHECKING:
    from halsvc.server import Method

EVENT_SCHEMA = {
    "type": "object",
    "required": ["topic", "device", "seq", "time", "data"],
    "properties": {
        "topic": {"type": "string"},
        "device": {"type": ["string", "null"]},
        "seq": {"type": "integer", "minimum": 1, "description": "per connection, gap-free"},
        "time": {"type": "string", "format": "date-time"},
        "request_id": {"description": "present on progress events of a long operation"},
        "data": {"type": "object"},
    },
}


def _method(m: Method) -> dict[str, Any]:
    spec = m.spec
    props = m.schema.get("properties", {})
    required = set(m.schema.get("required", ()))
    errors = [{"code": REASON_CODES.get(r, -32004), "message": r, "data": {"reason": r}}
              for r in dict.fromkeys((*spec.errors, "permission_denied", "timeout", "cancelled"))]
    return {
        "name": spec.name,
        "summary": spec.summary,
        "paramStructure": "by-name",
        "params": [{"name": k, "required": k in required, "schema": v} for k, v in props.items()],
        "result": {"name": "result", "schema": spec.result},
        "errors": errors,
        "x-params-schema": m.schema,
        "x-role": spec.role,
        "x-long": spec.long,
        "x-citizen-data": spec.citizen_data,
        "x-driver-method": m.driver_method,
    }


def document(methods: Iterable[Method]) -> dict[str, Any]:
    return {
        "openrpc": "1.2.6",
        "info": {"title": "halsvc", "version": __version__,
                 "description": "Hardware daemon of the Digital Citizen Station. Transport: AF_UNIX "
                                "stream, one JSON-RPC 2.0 message per line."},
        "methods": [_method(m) for m in sorted(methods, key=lambda m: m.spec.name)],
        "components": {"schemas": {"Event": EVENT_SCHEMA},
                       "x-reasons": dict(sorted(REASON_CODES.items()))},
    }
