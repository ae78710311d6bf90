"""`python -m halsvc.apidoc > docs/api.md`: the API reference, generated from the same OpenRPC
document `rpc.discover` returns — for a station with one device of every driver — so the
reference cannot drift from what the daemon dispatches (a test regenerates and compares).

The example exchanges below are checked by the same test against the methods' schemas; flows
whose methods this build does not have are left out.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import drivers
from drivers.base import Driver
from halsvc import builtins, openrpc
from halsvc.server import Method, _effective_schema

Exchange = list[tuple[str, Any]]  # ("->" request / "<-" answer or event, message)


def every_driver() -> list[type[Driver]]:
    """The DRIVER class of every module under drivers/ (a package without one is skipped)."""
    out: list[type[Driver]] = []
    for info in sorted(pkgutil.iter_modules(drivers.__path__), key=lambda i: i.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"drivers.{info.name}")
        cls = getattr(module, "DRIVER", None)
        if isinstance(cls, type) and issubclass(cls, Driver):
            out.append(cls)
    return out


def discover_document() -> dict[str, Any]:
    """What rpc.discover answers on a station with one device of every driver, built the way
    the Server builds its method table (built-ins first, then the drivers' in order)."""
    methods: dict[str, Method] = {}
    for spec, handler in builtins.BUILTINS:
        methods[spec.name] = Method(spec, _effective_schema(spec, False), handler=handler)
    classes = every_driver()
    for cls in classes:
        for spec in cls.rpc_methods():
            methods.setdefault(spec.name, Method(spec, _effective_schema(spec, True), driver_method=True))
    return openrpc.document(methods.values(), classes)


# --- example exchanges, one per resident flow -------------------------------------------------------
def _req(rid: Any, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": dict(params or {})}


def _ok(rid: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": dict(result)}


def _err(rid: Any, code: int, message: str, reason: str, **data: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message,
                                                    "data": {"reason": reason, **data}}}


def _ev(topic: str, device: str | None, seq: int, data: Mapping[str, Any], request_id: Any = None
        ) -> dict[str, Any]:
    params: dict[str, Any] = {"topic": topic, "device": device, "seq": seq,
                              "time": "2026-12-04T09:15:00.123+07:00", "data": dict(data)}
    if request_id is not None:
        params["request_id"] = request_id
    return {"jsonrpc": "2.0", "method": "event", "params": params}


FLOWS: list[tuple[str, str, Exchange]] = [
    ("Connect and subscribe",
     "Ask what the daemon offers, then subscribe to the broadcast topics the screen reacts to.", [
         ("->", _req(1, "hal.status")),
         ("<-", _ok(1, {"version": "0.1.0", "uptime_s": 3605.2, "connections": 2, "role": "kiosk",
                        "devices": [{"device": "idcard0", "kind": "idcard", "state": "online",
                                     "claimed": False}]})),
         ("->", _req(2, "events.subscribe", {"topics": ["idcard.*", "printer.status", "presence.*"]})),
         ("<-", _ok(2, {"topics": ["idcard.*", "printer.status", "presence.*"]})),
         ("<-", _ev("idcard.card_present", "idcard0", 1, {"reader": "Virtual PCD 00 00",
                                                          "atr": "3b8880014241524f4e0e0a09"})),
     ]),
    ("Claim a device",
     "While one resident is served, the front-end takes the reader for itself; another client now "
     "gets `device_busy`. The claim ends on release, lease expiry or disconnect.", [
         ("->", _req(3, "device.claim", {"device": "idcard0", "lease_ms": 120000})),
         ("<-", _ok(3, {"device": "idcard0", "lease_ms": 120000})),
         ("->", _req(4, "device.release", {"device": "idcard0"})),
         ("<-", _ok(4, {"device": "idcard0", "released": True})),
     ]),
    ("Read an ID card (CCCD)",
     "The card access number (CAN) is the last 6 digits of the ID number. Progress events go to "
     "this connection only; the result is citizen data (this connection only, never logged).", [
         ("->", _req(5, "idcard.read", {"can": "001234", "wait_ms": 30000, "timeout_ms": 60000})),
         ("<-", _ev("idcard.progress", "idcard0", 2, {"step": "waiting_for_card"}, 5)),
         ("<-", _ev("idcard.progress", "idcard0", 3, {"step": "access_granted", "access": "PACE-CAN"}, 5)),
         ("<-", _ev("idcard.progress", "idcard0", 4, {"step": "read", "datagroup": "DG2", "bytes": 11264,
                                                      "total": 15872}, 5)),
         ("<-", _ev("idcard.progress", "idcard0", 5, {"step": "verify"}, 5)),
         ("<-", _ok(5, {"access": "PACE-CAN", "id_number": "079203001234", "full_name": "Nguyễn Thị Thu Hà",
                        "birth_date": "1993-01-05", "sex": "Nữ", "nationality": "Việt Nam",
                        "face": {"mime": "image/jpeg", "data": "/9j/4AAQSkZJRgABAQ…"},
                        "authenticity": {"passive": "valid", "active": "valid"},
                        "stats": {"apdus": 96, "bytes": 17408, "ms": 812.5}})),
         ("->", _req(6, "idcard.read", {"can": "001234"})),
         ("<-", _err(6, -32005, "the card was taken away during the read", "card_removed")),
     ]),
    ("Measure blood pressure",
     "Live cuff pressure arrives as progress events while the cuff inflates and deflates.", [
         ("->", _req(7, "health.measure", {"kind": "blood_pressure", "timeout_ms": 120000})),
         ("<-", _ev("health.progress", "health0", 6, {"stage": "connected", "address": "AA:10:00:00:00:01",
                                                      "name": "HAL BP Cuff"}, 7)),
         ("<-", _ev("health.cuff_pressure", "health0", 7, {"pressure_mmhg": 152.0}, 7)),
         ("<-", _ok(7, {"kind": "blood_pressure", "device": {"address": "AA:10:00:00:00:01",
                                                            "name": "HAL BP Cuff", "battery_percent": 90},
                        "timestamp": "2026-12-04T09:15:40", "status": [], "systolic_mmhg": 118.0,
                        "diastolic_mmhg": 76.0, "mean_arterial_mmhg": 90.0, "pulse_bpm": 72.0})),
     ]),
    ("Weigh in, with BMI",
     "The scale reports each reading as progress until the weight is stable.", [
         ("->", _req(8, "scale.read", {"height_m": 1.6, "timeout_ms": 30000})),
         ("<-", _ev("scale.weight", "scale0", 7, {"weight_kg": 63.8, "stable": False}, 8)),
         ("<-", _ok(8, {"weight_kg": 64.0, "stable": True, "net": False, "height_m": 1.6, "bmi": 25.0})),
     ]),
    ("Pay a bill by card",
     "Choose an idempotency key per bill payment and keep it until you have an answer: the same key "
     "again (after a timeout, a reconnect or a daemon restart) returns the first outcome and never "
     "charges twice. A declined card is a result, not an error.", [
         ("->", _req(9, "payment.pay", {"amount": 150000, "currency": "VND", "reference": "NUOC-2026-11-0042",
                                        "idempotency_key": "kiosk7-NUOC-2026-11-0042-1"})),
         ("<-", _ev("payment.progress", "payment0", 8, {"phase": "prompt", "text": "PRESENT CARD"}, 9)),
         ("<-", _ok(9, {"status": "approved", "authorized_amount": 150000,
                        "terminal_transaction_id": "T0001-000123"})),
     ]),
    ("Pay a bill by VietQR",
     "The EMVCo/NAPAS payload and a PNG of its QR code for the resident's banking app.", [
         ("->", _req(10, "payment.vietqr", {"amount": 150000, "bin": "970436", "account": "0071000888888",
                                            "bill_number": "NUOC-2026-11-0042",
                                            "purpose": "Tien nuoc thang 11"})),
         ("<-", _ok(10, {"payload": "00020101021238…6304ABCD", "png": "iVBORw0KGgo…"})),
     ]),
    ("Print the receipt",
     "`job_id` is the print's idempotency key: the same id never prints twice. A paper-out is a "
     "result with `status: failed` and a reason. `printer.preview` draws the same receipt for the "
     "screen without printing.", [
         ("->", _req(11, "printer.print", {"job_id": "kiosk7-NUOC-2026-11-0042-receipt",
                                           "template": "payment_receipt",
                                           "data": {"amount": 150000, "method": "Thẻ",
                                                    "transaction_id": "T0001-000123",
                                                    "items": [{"label": "Tiền nước 11/2026",
                                                               "amount": 150000}]}})),
         ("<-", _ev("printer.progress", "printer0", 9,
                    {"job_id": "kiosk7-NUOC-2026-11-0042-receipt", "phase": "sending", "sent": 8192,
                     "total": 30311}, 11)),
         ("<-", _ok(11, {"job_id": "kiosk7-NUOC-2026-11-0042-receipt", "status": "printed", "reason": None,
                         "repeated": False})),
         ("->", _req(12, "printer.preview", {"template": "payment_receipt",
                                             "data": {"amount": 150000, "method": "Thẻ"}})),
         ("<-", _ok(12, {"mime": "image/png", "png": "iVBORw0KGgo…", "width": 576, "height": 530})),
     ]),
    ("Cancel a long operation",
     "Any request may carry `timeout_ms`; `hal.cancel` stops one of this connection's own requests.", [
         ("->", _req(13, "idcard.read", {"can": "001234", "wait_ms": 60000})),
         ("->", _req(14, "hal.cancel", {"request_id": 13})),
         ("<-", _ok(14, {"cancelled": True})),
         ("<-", _err(13, -32003, "cancelled by the client", "cancelled")),
     ]),
]


def flows(doc: Mapping[str, Any]) -> list[tuple[str, str, Exchange]]:
    """The flows whose every method this build dispatches."""
    names = {m["name"] for m in doc["methods"]}
    return [f for f in FLOWS if all(msg["method"] in names for d, msg in f[2]
                                    if d == "->" and "id" in msg and msg.get("method") != "event")]


# --- rendering ----------------------------------------------------------------------------------
def _type(schema: Mapping[str, Any]) -> str:
    if "const" in schema:
        return f"`{json.dumps(schema['const'], ensure_ascii=False)}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v, ensure_ascii=False)}`" for v in schema["enum"])
    if "oneOf" in schema or "anyOf" in schema:
        return " \\| ".join(_type(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    t = schema.get("type", "any")
    if isinstance(t, list):
        return " \\| ".join(t)
    if t == "array" and isinstance(schema.get("items"), Mapping):
        return f"array of {_type(schema['items'])}"
    return str(t)


def _limits(schema: Mapping[str, Any]) -> str:
    bits = []
    for key, word in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"),
                      ("maxLength", "length ≤"), ("minItems", "items ≥"), ("maxItems", "items ≤")):
        if key in schema:
            bits.append(f"{word} {schema[key]}")
    if "pattern" in schema:
        bits.append(f"pattern `{schema['pattern']}`")
    return "; ".join(bits)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _props_table(schema: Mapping[str, Any], required: Iterable[str]) -> list[str]:
    props = schema.get("properties", {})
    if not props:
        return []
    req = set(required)
    out = ["| name | type | required | description |", "|---|---|---|---|"]
    for name, sub in props.items():
        desc = sub.get("description", "")
        limits = _limits(sub)
        text = f"{desc} ({limits})" if desc and limits else desc or limits
        out.append(f"| `{name}` | {_cell(_type(sub))} | {'yes' if name in req else ''} | {_cell(text)} |")
    return out


def _details(title: str, value: Any) -> list[str]:
    return ["<details><summary>" + title + "</summary>", "", "```json", _json(value), "```", "", "</details>"]


def render(doc: Mapping[str, Any]) -> str:
    out: list[str] = []
    w = out.append
    info = doc["info"]
    methods = doc["methods"]
    topics = doc["components"]["x-topics"]
    reasons = doc["components"]["x-reasons"]
    w("# halsvc API reference")
    w("")
    w("<!-- Generated by `python -m halsvc.apidoc > docs/api.md` from rpc.discover; do not edit by "
      "hand. tests/test_apidoc.py fails when this file is stale. -->")
    w("")
    w(f"halsvc {info['version']}, OpenRPC {doc['openrpc']}. {info['description']}")
    w("")
    w("A running daemon returns the same document from `rpc.discover` (with the methods of the "
      "devices it has configured). The contract behind it — error families, device states, "
      "citizen-data rules — is DESIGN.md; how to use it step by step is [integrators.md](integrators.md).")
    w("")
    w("## Conventions")
    w("")
    w("- Requests are JSON-RPC 2.0 with params by name (an object); results are objects. A batch is "
      "an array. On the Unix socket one message is one line; on the WebSocket bridge one message is "
      "one WebSocket text message.")
    w("- Every request may carry `timeout_ms`; every driver method may carry `device` (default: the "
      "first device offering the method).")
    w("- Errors carry `data.reason`, a stable string to switch on (table at the end).")
    w("- Events are notifications `{\"method\": \"event\", \"params\": {topic, device, seq, time, data}}`; "
      "progress events of a long operation also carry its `request_id` and go to its caller only. "
      "`seq` is per connection and gap-free.")
    w("- Role: the least role that may call the method (`public` < `kiosk` < `technician` < `admin`). "
      "The WebSocket bridge admits clients as `kiosk`.")
    w("")
    w("## Example exchanges")
    w("")
    w("`->` is what the client sends, `<-` what it receives (long values abridged with …).")
    w("")
    for title, text, exchange in flows(doc):
        w(f"### {title}")
        w("")
        w(text)
        w("")
        w("```")
        for direction, msg in exchange:
            w(f"{direction} {json.dumps(msg, ensure_ascii=False, separators=(',', ':'))}")
        w("```")
        w("")
    w("## Methods")
    w("")
    w("| method | role | summary |")
    w("|---|---|---|")
    for m in methods:
        w(f"| [`{m['name']}`](#{m['name'].replace('.', '')}) | {m['x-role']} | {_cell(m['summary'])} |")
    w("")
    for m in methods:
        w(f"### {m['name']}")
        w("")
        w(m["summary"])
        w("")
        flags = [f"role `{m['x-role']}`"]
        if m["x-long"]:
            flags.append("long operation (progress events)")
        if m["x-citizen-data"]:
            flags.append("returns citizen data (to the caller only)")
        flags.append("device method" if m["x-driver-method"] else "daemon built-in")
        w("- " + "; ".join(flags))
        if m.get("x-events"):
            w("- events: " + ", ".join(f"`{t}`" for t in m["x-events"]))
        w("- errors: " + ", ".join(f"`{e['data']['reason']}` ({e['code']})" for e in m["errors"]))
        w("")
        schema = m["x-params-schema"]
        table = _props_table(schema, schema.get("required", ()))
        w("**Params**")
        w("")
        out.extend(table or ["none"])
        w("")
        alternatives = schema.get("oneOf") or schema.get("anyOf")
        if alternatives:
            w("Give exactly one of: " + ", ".join(
                " + ".join(f"`{r}`" for r in sub.get("required", [])) for sub in alternatives) + ".")
            w("")
        result = m["result"]["schema"]
        w("**Result**")
        w("")
        rtable = _props_table(result, result.get("required", ()))
        out.extend(rtable or [f"{result.get('description', 'an object')}"])
        w("")
        out.extend(_details("params and result as JSON Schema", {"params": schema, "result": result}))
        w("")
    w("## Events")
    w("")
    w("Broadcast topics reach connections subscribed to them (`events.subscribe`, globs allowed) and "
      "never carry citizen data; progress topics reach only the caller of the operation.")
    w("")
    w("| topic | delivery | from |")
    w("|---|---|---|")
    for topic, entry in topics.items():
        origin = ", ".join(f"`{n}`" for n in entry.get("methods", [])) or entry.get("description", "")
        w(f"| `{topic}` | {entry['delivery']} | {_cell(origin)} |")
    w("")
    w("Every event's `params`:")
    w("")
    w("```json")
    w(_json(doc["components"]["schemas"]["Event"]))
    w("```")
    w("")
    w("## Error reasons")
    w("")
    w("JSON-RPC's own codes: -32700 parse error, -32600 invalid request (also `message_too_large`), "
      "-32601 method not found, -32602 invalid params (`data.field` names the field), -32603 internal.")
    w("")
    w("| reason | code |")
    w("|---|---|")
    for reason, code in reasons.items():
        w(f"| `{reason}` | {code} |")
    w("")
    return "\n".join(out)


def main() -> int:
    sys.stdout.write(render(discover_document()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
