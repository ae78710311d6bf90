"""halctl commands for BLE health devices: `measure bp|spo2|body` with live progress on stderr
(cuff pressure while it inflates, SpO2/pulse while the finger is in) and `health devices|pair|forget`.
`measure weight` (in cli.py) falls back to a BLE scale when the station has no serial one."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from halsvc.client import Client

OK = 0

STAGES = {
    "scanning": "looking for a {kind} device…",
    "connecting": "connecting to {name} ({address})…",
    "connected": "connected to {name}",
    "measuring": "measuring: the resident presses start on the device",
}


def _progress(args: argparse.Namespace) -> Any:
    def show(event: Mapping[str, Any]) -> None:
        if args.json:
            return
        topic, data = event.get("topic"), event.get("data", {})
        if topic == "health.progress" and data.get("stage") in STAGES:
            text = STAGES[data["stage"]].format(kind=str(data.get("kind", "")).replace("_", " "),
                                                name=data.get("name", ""), address=data.get("address", ""))
        elif topic == "health.cuff_pressure":
            text = f"cuff {data['pressure_mmhg']:.0f} mmHg"
        elif topic == "health.live" and data.get("spo2_percent") is not None:
            text = f"SpO2 {data['spo2_percent']:.0f} %  pulse {data['pulse_bpm']:.0f} bpm"
        else:
            return
        print(f"  {text}", file=sys.stderr, flush=True)

    return show


def _measure(hal: Client, args: argparse.Namespace, kind: str) -> dict[str, Any]:
    params: dict[str, Any] = {"kind": kind}
    for key in ("address", "device"):
        if getattr(args, key, None):
            params[key] = getattr(args, key)
    if getattr(args, "height", None):
        params["height_m"] = args.height
    if args.timeout:
        params["timeout_ms"] = int(args.timeout * 1000)
    return dict(hal.call("health.measure", params, on_progress=_progress(args)))


def _footer(result: Mapping[str, Any]) -> str:
    dev = result.get("device", {})
    parts = []
    if result.get("status"):
        parts.append("status: " + ", ".join(w.replace("_", " ") for w in result["status"]))
    if result.get("timestamp"):
        parts.append(f"at {result['timestamp']}")
    battery = dev.get("battery_percent")
    parts.append(f"on {dev.get('name', '?')}" + (f" (battery {battery} %)" if battery is not None else ""))
    return "\n".join(parts)


def _done(result: Mapping[str, Any], line: str, json_out: bool) -> int:
    if json_out:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(line + "\n" + _footer(result))
    return OK


def cmd_measure_bp(hal: Client, args: argparse.Namespace) -> int:
    r = _measure(hal, args, "blood_pressure")
    line = (f"blood pressure {r['systolic_mmhg']:.0f}/{r['diastolic_mmhg']:.0f} mmHg "
            f"(mean {r['mean_arterial_mmhg']:.0f})")
    if "pulse_bpm" in r:
        line += f", pulse {r['pulse_bpm']:.0f} bpm"
    if r.get("stored"):
        line += f"\n{len(r['stored'])} earlier reading(s) from the cuff's memory:"
        for s in r["stored"]:
            when = s.get("timestamp") or "?"
            line += f"\n  {s['systolic_mmhg']:.0f}/{s['diastolic_mmhg']:.0f} mmHg at {when}"
    return _done(r, line, args.json)


def cmd_measure_spo2(hal: Client, args: argparse.Namespace) -> int:
    r = _measure(hal, args, "spo2")
    line = f"SpO2 {r['spo2_percent']:.0f} %, pulse {r['pulse_bpm']:.0f} bpm"
    if "perfusion_index_percent" in r:
        line += f", perfusion index {r['perfusion_index_percent']} %"
    return _done(r, line, args.json)


def cmd_measure_body(hal: Client, args: argparse.Namespace) -> int:
    r = _measure(hal, args, "body_composition")
    line = f"body fat {r['body_fat_percent']:.1f} %"
    for key, label, unit in (("weight_kg", "weight", "kg"), ("muscle_percent", "muscle", "%"),
                             ("body_water_kg", "water", "kg"), ("bmi", "BMI", "")):
        if r.get(key) is not None:
            line += f", {label} {r[key]}{' ' + unit if unit else ''}"
    return _done(r, line, args.json)


def cmd_health_devices(hal: Client, args: argparse.Namespace) -> int:
    params = {"device": args.device} if args.device else {}
    result = hal.call("health.devices", params)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return OK
    from halsvc.cli import table
    rows = [[d["address"], d["name"], ",".join(d["kinds"]), "yes" if d["known"] else "",
             "yes" if d["paired"] else "", "yes" if d["connected"] else "",
             "" if d["battery_percent"] is None else f"{d['battery_percent']} %", d["last_seen"] or ""]
            for d in result["devices"]]
    print(table(rows, ("ADDRESS", "NAME", "KINDS", "KNOWN", "PAIRED", "CONNECTED", "BATTERY", "LAST SEEN"))
          if rows else "no BLE health devices seen yet")
    return OK


def cmd_health_pair(hal: Client, args: argparse.Namespace) -> int:
    params = {"address": args.address, **({"device": args.device} if args.device else {})}
    result = hal.call("health.pair", params, on_progress=_progress(args))
    print(json.dumps(result) if args.json else f"paired with {result['name']} ({result['address']})")
    return OK


def cmd_health_forget(hal: Client, args: argparse.Namespace) -> int:
    params = {"address": args.address, **({"device": args.device} if args.device else {})}
    result = hal.call("health.forget", params)
    print(json.dumps(result) if args.json else f"forgot {result['address']}")
    return OK


def register(sub: Any, common: argparse.ArgumentParser, groups: Mapping[str, Any]) -> None:
    measure = groups["measure"]
    commands = (("bp", ["blood-pressure"], cmd_measure_bp, "blood pressure on a BLE cuff"),
                ("spo2", ["oximeter"], cmd_measure_spo2, "SpO2 and pulse on an oximeter"),
                ("body", ["body-composition"], cmd_measure_body, "body composition on a BLE scale"))
    for name, aliases, fn, what in commands:
        p = measure.add_parser(name, aliases=aliases, parents=[common],
                               help=f"{what} (live progress on stderr)")
        p.add_argument("--address",
                       help="the BLE device: address or name (glob); default: the first of the kind")
        p.add_argument("--device", help="daemon device id of the adapter (default: the first health device)")
        p.add_argument("--timeout", type=float, help="give up after this many seconds")
        if name == "body":
            p.add_argument("--height", type=float, help="height in metres, for BMI")
        p.set_defaults(fn=fn)
    health = sub.add_parser("health", parents=[common], help="BLE health devices").add_subparsers(
        dest="health_command", metavar="ACTION", required=True)
    p = health.add_parser("devices", parents=[common], help="known, paired and seen devices, battery")
    p.add_argument("--device", help="daemon device id of the adapter")
    p.set_defaults(fn=cmd_health_devices)
    for name, fn, what in (("pair", cmd_health_pair, "bond with a device that demands it"),
                           ("forget", cmd_health_forget, "remove a device's bond")):
        p = health.add_parser(name, parents=[common], help=what)
        p.add_argument("address", help="BLE address, AA:BB:CC:DD:EE:FF")
        p.add_argument("--device", help="daemon device id of the adapter")
        p.set_defaults(fn=fn)
