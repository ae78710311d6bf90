"""The daemon's own methods: discovery, status, events, claims, cancel and selftest.

Declared with the same `RpcMethod` as driver methods, so `rpc.discover` documents them alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivers.base import HalError, OperationContext, RpcMethod
from halsvc import openrpc

if TYPE_CHECKING:
    from halsvc.server import Connection, Handler

EMPTY: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
DEVICE_ID = {"type": "string", "minLength": 1, "description": "device id, e.g. printer0"}
STATUS = {
    "type": "object",
    "required": ["device", "kind", "state"],
    "properties": {
        "device": {"type": "string"},
        "kind": {"type": "string"},
        "state": {"enum": ["online", "offline", "busy", "starting", "no_device", "hardware_error",
                           "user_error"]},
        "claimed": {"type": "boolean"},
    },
    "description": "state plus the kind's own details (paper, cover, battery, link…)",
}
TOPICS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "maxItems": 64,
          "description": "topic globs, e.g. printer.* or idcard.card_present"}

BUILTINS: list[tuple[RpcMethod, Handler]] = []


def builtin(name: str, summary: str, *, params: Mapping[str, Any] | None = None,
            result: Mapping[str, Any] | None = None, role: str = "kiosk", long: bool = False,
            errors: tuple[str, ...] = (), events: tuple[str, ...] = ()) -> Any:
    def mark(fn: Handler) -> Handler:
        BUILTINS.append((RpcMethod(name=name, summary=summary, params=params or EMPTY,
                                   result=result or {"type": "object"}, attr=fn.__name__, role=role,
                                   exclusive=False, long=long, errors=errors, events=events), fn))
        return fn
    return mark


@builtin("rpc.discover", "The OpenRPC document of every method this daemon dispatches.", role="public",
         result={"type": "object", "required": ["openrpc", "info", "methods"]})
async def discover(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    drivers = {type(d) for d in conn.server.registry.devices.values()}
    return openrpc.document(conn.server.methods.values(), drivers)


@builtin("hal.ping", "Answer at once: a liveness check for front-ends and monitors.", role="public",
         result={"type": "object", "required": ["pong"], "properties": {"pong": {"const": True}}})
async def hal_ping(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    return {"pong": True}


@builtin("hal.status", "Daemon version, uptime, connections and every device's state.", role="public",
         result={"type": "object", "required": ["version", "uptime_s", "devices"], "properties": {
             "version": {"type": "string"}, "uptime_s": {"type": "number"},
             "connections": {"type": "integer"}, "role": {"type": "string"},
             "bridge": {"type": "string", "description": "the WebSocket bridge's URL, when enabled"},
             "devices": {"type": "array", "items": STATUS}}})
async def hal_status(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    return {**conn.server.status(), "role": conn.role}


@builtin("hal.cancel", "Cancel one of this connection's own requests; it answers with error `cancelled`.",
         params={"type": "object", "required": ["request_id"], "additionalProperties": False,
                 "properties": {"request_id": {"type": ["string", "number", "null"]}}},
         result={"type": "object", "required": ["cancelled"],
                 "properties": {"cancelled": {"type": "boolean",
                                              "description": "false: no such request in flight"}}})
async def hal_cancel(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    rid = params["request_id"]
    if rid == ctx.request_id:
        return {"cancelled": False}
    return {"cancelled": conn.server.cancel(conn, rid, HalError("cancelled", "cancelled by the client"))}


@builtin("events.subscribe", "Receive broadcast events whose topic matches one of the globs.",
         params={"type": "object", "required": ["topics"], "additionalProperties": False,
                 "properties": {"topics": TOPICS}},
         result={"type": "object", "required": ["topics"], "properties": {"topics": TOPICS}})
async def subscribe(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    for topic in params["topics"]:
        if topic not in conn.topics:
            if len(conn.topics) >= 64:
                raise HalError("overloaded", "at most 64 subscriptions per connection")
            conn.topics.append(topic)
    return {"topics": list(conn.topics)}


@builtin("events.unsubscribe", "Stop receiving the given topic globs (all of them when none are given).",
         params={"type": "object", "additionalProperties": False, "properties": {"topics": TOPICS}},
         result={"type": "object", "required": ["topics"], "properties": {"topics": TOPICS}})
async def unsubscribe(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    drop = params.get("topics")
    conn.topics = [] if drop is None else [t for t in conn.topics if t not in drop]
    return {"topics": list(conn.topics)}


@builtin("device.list", "Every configured device with its state.",
         result={"type": "object", "required": ["devices"],
                 "properties": {"devices": {"type": "array", "items": STATUS}}})
async def device_list(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    server = conn.server
    return {"devices": [server.device_status(d) for d in server.registry.devices.values()]}


@builtin("device.hardware", "What udev sees that the daemon could drive, matched by a device's `match` "
         "or not (technicians: is it plugged in, is it recognised).", role="technician",
         result={"type": "object", "required": ["hardware"],
                 "properties": {"hardware": {"type": "array", "items": {"type": "object"}},
                                "hotplug": {"type": "boolean"}}},
         errors=("not_supported",))
async def device_hardware(conn: Connection, params: dict[str, Any], ctx: OperationContext
                          ) -> Mapping[str, Any]:
    server = conn.server
    monitor = server.hotplug
    try:
        if monitor is not None:
            hardware = await asyncio.to_thread(monitor.hardware)
        else:
            from halsvc.hotplug import list_hardware

            selectors = {d.id: d.match for d in server.config.devices if d.match}
            hardware = await asyncio.to_thread(list_hardware, selectors)
    except Exception as exc:  # no udev here (a container, a CI runner without /run/udev)
        raise HalError("not_supported", f"udev is not available: {type(exc).__name__}") from None
    return {"hardware": hardware, "hotplug": monitor is not None}


@builtin("device.status", "One device's state and details.",
         params={"type": "object", "required": ["device"], "additionalProperties": False,
                 "properties": {"device": DEVICE_ID}},
         result=STATUS, errors=("device_not_found",))
async def device_status(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    return conn.server.device_status(conn.server.registry.get(params["device"]))


@builtin("device.claim", "Take a device for this connection alone until release, lease expiry or "
         "disconnect; others get `device_busy`. Claiming again renews the lease.",
         params={"type": "object", "required": ["device"], "additionalProperties": False,
                 "properties": {"device": DEVICE_ID,
                                "lease_ms": {"type": "integer", "minimum": 100, "maximum": 3_600_000,
                                             "description": "default 60000"}}},
         result={"type": "object", "required": ["device", "lease_ms"],
                 "properties": {"device": {"type": "string"}, "lease_ms": {"type": "integer"}}},
         errors=("device_not_found", "device_busy"))
async def device_claim(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    lease = int(params.get("lease_ms", 60_000))
    conn.server.registry.claim(params["device"], conn.id, lease)
    return {"device": params["device"], "lease_ms": lease}


@builtin("device.release", "Give back a device this connection claimed.",
         params={"type": "object", "required": ["device"], "additionalProperties": False,
                 "properties": {"device": DEVICE_ID}},
         result={"type": "object", "required": ["device", "released"],
                 "properties": {"device": {"type": "string"}, "released": {"type": "boolean"}}},
         errors=("device_not_found", "not_claimed"))
async def device_release(conn: Connection, params: dict[str, Any], ctx: OperationContext
                         ) -> Mapping[str, Any]:
    conn.server.registry.release(params["device"], conn.id)
    return {"device": params["device"], "released": True}


@builtin("device.selftest", "Run a device's health check: `internal` touches no moving parts, "
         "`external` prints, beeps or measures.", role="technician", long=True,
         params={"type": "object", "required": ["device"], "additionalProperties": False,
                 "properties": {"device": DEVICE_ID, "level": {"enum": ["internal", "external"]}}},
         result={"type": "object", "required": ["device", "level", "passed", "checks"],
                 "properties": {"device": {"type": "string"}, "level": {"type": "string"},
                                "passed": {"type": "boolean"}, "checks": {"type": "array"}}},
         errors=("device_not_found", "device_offline", "device_busy", "not_supported", "hardware_error"),
         events=("device.selftest",))
async def device_selftest(conn: Connection, params: dict[str, Any], ctx: OperationContext
                          ) -> Mapping[str, Any]:
    registry = conn.server.registry
    driver = registry.get(params["device"])
    registry.check_claim(driver.device_id, conn.id)
    level = params.get("level", "internal")
    if level not in driver.selftest_levels:
        raise HalError("not_supported", f"{driver.device_id} has no {level} selftest")
    ctx.progress("device.selftest", {"device": driver.device_id, "level": level, "stage": "started"})
    async with driver.operation():
        result = dict(await driver.selftest(level))
    result.setdefault("checks", [])
    result.setdefault("passed", all(c.get("passed", True) for c in result["checks"]))
    return {**result, "device": driver.device_id, "level": level}


from halsvc import diag as _diag  # noqa: E402,F401  field diagnostics (diag.*), registered like the rest
