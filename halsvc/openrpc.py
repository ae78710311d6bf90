"""The OpenRPC document, built from the same method table that dispatches (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from drivers.base import REASON_CODES, Driver
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
        "x-events": list(spec.events),
    }


# Broadcast topics of the daemon itself; drivers declare theirs (`Driver.broadcasts`).
DAEMON_TOPICS = {
    "device.claimed": "a device was claimed or released (data: claimed, lease_ms)",
    "events.overflow": "the last event of a connection that did not read its events; it is then closed",
}


def topics(methods: Iterable[Method], drivers: Iterable[type[Driver]]) -> dict[str, dict[str, Any]]:
    """Every event topic: broadcast (to subscribers of the topic) or progress (to the caller of a
    long operation only, with its request_id)."""
    out: dict[str, dict[str, Any]] = {
        t: {"delivery": "broadcast", "description": d} for t, d in DAEMON_TOPICS.items()}
    for cls in drivers:
        out[f"{cls.kind}.status"] = {"delivery": "broadcast",
                                     "description": f"a {cls.kind} device's state or details changed "
                                                    "(data: as device.status)"}
        for topic in cls.broadcasts:
            out[topic] = {"delivery": "broadcast", "description": f"from {cls.kind} devices"}
    for m in methods:
        for topic in m.spec.events:
            entry = out.setdefault(topic, {"delivery": "progress", "methods": []})
            entry.setdefault("methods", []).append(m.spec.name)
    return dict(sorted(out.items()))


def document(methods: Iterable[Method], drivers: Iterable[type[Driver]] = ()) -> dict[str, Any]:
    methods = list(methods)
    return {
        "openrpc": "1.2.6",
        "info": {"title": "halsvc", "version": __version__,
                 "description": "Hardware daemon of the Digital Citizen Station. Transport: AF_UNIX "
                                "stream, one JSON-RPC 2.0 message per line; or, when enabled, the "
                                "WebSocket bridge on 127.0.0.1, one message per WebSocket message."},
        "methods": [_method(m) for m in sorted(methods, key=lambda m: m.spec.name)],
        "components": {"schemas": {"Event": EVENT_SCHEMA},
                       "x-reasons": dict(sorted(REASON_CODES.items())),
                       "x-topics": topics(methods, sorted(set(drivers), key=lambda c: c.kind))},
    }
