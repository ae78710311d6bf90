"""`halctl`: the technician's and script's view of a station.

Exit codes: 0 success, 1 the operation failed, 2 usage error, 3 the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from halsvc import DEFAULT_SYSTEM_SOCKET
from halsvc.client import Client, DaemonUnreachable, RpcError, default_socket

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3
HINT = ("is the daemon running? In a checkout: `make run`; on a station: `systemctl status halsvc`. "
        "Another socket: --socket PATH or HALSVC_SOCKET.")
DETAIL_SKIP = {"device", "kind", "state", "claimed"}


def _details(status: Mapping[str, Any]) -> str:
    parts = []
    for key, value in status.items():
        if key in DETAIL_SKIP or value is None:
            continue
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{key}={value}")
    if status.get("claimed"):
        parts.append("claimed")
    return " ".join(parts)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _device_rows(devices: list[Mapping[str, Any]]) -> list[list[Any]]:
    return [[d["device"], d["kind"], d["state"], _details(d)] for d in devices]


def cmd_status(hal: Client, args: argparse.Namespace) -> int:
    st = hal.call("hal.status")
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=2))
    else:
        print(f"halsvc {st['version']} up {st['uptime_s']:.0f}s, {st.get('connections', '?')} connection(s), "
              f"you are {st.get('role', '?')} on {hal.path}")
        print(table(_device_rows(st["devices"]), ("DEVICE", "KIND", "STATE", "DETAILS")) if st["devices"]
              else "no devices configured")
    bad = [d for d in st["devices"] if d["state"] not in ("online", "busy")]
    return FAILED if bad and args.strict else OK


def cmd_devices(hal: Client, args: argparse.Namespace) -> int:
    if args.hardware:
        hw = hal.call("device.hardware")["hardware"]
        if args.json:
            print(json.dumps(hw, ensure_ascii=False, indent=2))
        elif not hw:
            print("udev shows no hardware the daemon could drive")
        else:
            rows = [[h.get("devnode") or h.get("sys_path"), h.get("kind") or "?",
                     f"{h.get('vendor_id') or '-'}:{h.get('model_id') or '-'}",
                     " ".join(filter(None, [h.get("vendor"), h.get("model")])) or "-",
                     ",".join(h.get("matched") or []) or "-", h.get("driving") or "-"] for h in hw]
            print(table(rows, ("NODE", "KIND", "USB ID", "PRODUCT", "MATCHED BY", "DRIVEN BY")))
        return OK
    devices = hal.call("device.list")["devices"]
    if args.json:
        print(json.dumps(devices, ensure_ascii=False, indent=2))
    else:
        print(table(_device_rows(devices), ("DEVICE", "KIND", "STATE", "DETAILS")))
    return OK


def _print_event(event: Mapping[str, Any], as_json: bool, out: Any = sys.stdout) -> None:
    if as_json:
        print(json.dumps(event, ensure_ascii=False), file=out, flush=True)
        return
    data = json.dumps(event.get("data", {}), ensure_ascii=False)
    rid = f" (request {event['request_id']})" if "request_id" in event else ""
    print(f"{event.get('time', '')} #{event.get('seq')} {event.get('topic')} {event.get('device') or '-'}"
          f"{rid} {data}", file=out, flush=True)


def cmd_call(hal: Client, args: argparse.Namespace) -> int:
    try:
        params = json.loads(args.params) if args.params else {}
    except ValueError as exc:
        print(f"halctl: params are not JSON: {exc}", file=sys.stderr)
        return USAGE
    if not isinstance(params, dict):
        print("halctl: params must be a JSON object, e.g. '{\"device\": \"panel0\"}'", file=sys.stderr)
        return USAGE
    result = hal.call(args.method, params,
                      on_progress=None if args.quiet else lambda e: _print_event(e, args.json, sys.stderr))
    print(json.dumps(result, ensure_ascii=False, indent=None if args.json else 2))
    return OK


def cmd_events(hal: Client, args: argparse.Namespace) -> int:
    topics = hal.subscribe(*(args.topics or ["*"]))
    print(f"halctl: watching {' '.join(topics)} (Ctrl-C stops)", file=sys.stderr, flush=True)
    return follow_events(hal, lambda event: _print_event(event, args.json), args.count)


def follow_events(hal: Client, on_event: Callable[[Mapping[str, Any]], None], count: int = 0) -> int:
    """Hand each event to `on_event` until Ctrl-C, `count` events (0: no limit) or the daemon
    closing the connection (FAILED)."""
    seen = 0
    try:
        for event in hal.events():
            on_event(event)
            seen += 1
            if count and seen >= count:
                break
    except KeyboardInterrupt:
        pass
    except ConnectionError:
        print("halctl: the daemon closed the connection", file=sys.stderr)
        return FAILED
    return OK


def _common(top: bool) -> argparse.ArgumentParser:
    """--socket/--json, accepted before and after the command; a subcommand's copy must not
    reset what was given before it, hence SUPPRESS there."""
    common = argparse.ArgumentParser(add_help=False)
    default: Any = None if top else argparse.SUPPRESS
    common.add_argument("--socket", default=default, help="daemon socket (default $HALSVC_SOCKET, the "
                        f"checkout's run/halsvc.sock, then {DEFAULT_SYSTEM_SOCKET})")
    common.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="machine-readable output")
    return common


IDCARD_FIELDS = ("full_name", "id_number", "birth_date", "sex", "nationality", "ethnicity", "religion",
                 "place_of_origin", "place_of_residence", "identifying_marks", "issue_date", "expiry_date",
                 "father_name", "mother_name", "spouse_name")


def _idcard_progress(event: Mapping[str, Any]) -> None:
    data = event.get("data", {})
    if "datagroup" in data and "total" in data:
        print(f"  {data['datagroup']}: {data.get('bytes', 0)}/{data['total']} bytes", file=sys.stderr,
              flush=True)
    elif "step" in data:
        print(f"  {data['step'].replace('_', ' ')}", file=sys.stderr, flush=True)


def cmd_idcard_read(hal: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    for key in ("can", "id_number", "mrz", "qr", "document_number", "birth_date", "expiry_date", "device"):
        if getattr(args, key, None):
            params[key] = getattr(args, key)
    if args.datagroups:
        params["datagroups"] = [d.strip().upper() for d in args.datagroups.split(",") if d.strip()]
    if args.no_verify:
        params["verify"] = False
    if args.wait:
        params["wait_ms"] = int(args.wait * 1000)
    result = hal.call("idcard.read", params, on_progress=None if args.json else _idcard_progress)
    face = result.get("face") or {}
    if args.face and face.get("data"):
        with open(args.face, "wb") as fh:  # the technician asked for it, on their own machine
            fh.write(base64.b64decode(face["data"]))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return OK
    rows = [[k.replace("_", " "), result[k]] for k in IDCARD_FIELDS if result.get(k) is not None]
    print(table(rows, ("FIELD", "VALUE")))
    auth = result.get("authenticity", {})
    print(f"access {result.get('access')}; authenticity {auth.get('status')}"
          + (f" (active: {auth['active'].get('status')})" if isinstance(auth.get("active"), dict) else ""))
    stats = result.get("stats", {})
    print(f"{stats.get('apdus')} APDUs, {stats.get('bytes')} bytes, {stats.get('ms')} ms")
    if face:
        size = len(base64.b64decode(face.get("data", "")))
        saved = f" -> {args.face}" if args.face else " (--face FILE saves it)"
        print(f"face {face.get('mime')}, {size} bytes{saved}")
    return OK


def cmd_idcard_watch(hal: Client, args: argparse.Namespace) -> int:
    args.topics = ["idcard.*"]
    return cmd_events(hal, args)


def cmd_measure_weight(hal: Client, args: argparse.Namespace) -> int:
    """The configured scale: a serial scale or station (scale.read) if there is one, else a BLE
    scale (health.measure), as the station is fitted."""
    devices = hal.call("device.list")["devices"]
    kinds = {d["device"]: d["kind"] for d in devices}
    device = args.device or next((d for d, k in kinds.items() if k == "scale"), None)
    params: dict[str, Any] = {"stable": not args.unstable}
    if args.height:
        params["height_m"] = args.height

    def show(event: Mapping[str, Any]) -> None:
        if not args.json:
            data = event.get("data", {})
            if "weight_kg" in data:
                print(f"  {data['weight_kg']:.2f} kg{'' if data.get('stable') else ' …'}", file=sys.stderr,
                      flush=True)

    if device is not None and kinds.get(device) == "scale":
        result = hal.call("scale.read", {**params, "device": device}, on_progress=show)
    else:
        health = {"kind": "weight", **({"device": device} if device else {}),
                  **({"height_m": args.height} if args.height else {})}
        result = hal.call("health.measure", health, on_progress=show)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return OK
    line = f"weight {result['weight_kg']:.2f} kg" + ("" if result.get("stable", True) else " (not still)")
    if result.get("height_m"):
        line += f", height {result['height_m']:.2f} m"
    if result.get("bmi"):
        line += f", BMI {result['bmi']:.1f}"
    print(line)
    return OK


CLI_FAMILIES = ("printer", "health", "payment", "diag")


def parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    ap = argparse.ArgumentParser(prog="halctl", parents=[_common(top=True)],
                                 description="Inspect and drive a Digital Citizen Station through halsvc.",
                                 epilog="Exit codes: 0 ok, 1 operation failed, 2 usage, "
                                        "3 daemon unreachable.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("status", parents=[common], help="daemon and device states")
    p.add_argument("--strict", action="store_true", help="exit 1 if any device is not online")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("devices", parents=[common], help="configured devices (--hardware: what udev sees)")
    p.add_argument("--hardware", action="store_true",
                   help="list the hardware udev sees that the daemon could drive, matched or not")
    p.set_defaults(fn=cmd_devices)
    p = sub.add_parser("call", parents=[common],
                       help="call any method: halctl call buzzer.beep '{\"count\": 2}'")
    p.add_argument("method")
    p.add_argument("params", nargs="?", help="JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print progress events")
    p.set_defaults(fn=cmd_call)
    p = sub.add_parser("events", parents=[common], help="print events (default all topics) until Ctrl-C")
    p.add_argument("topics", nargs="*", help="topic globs, e.g. 'printer.*' presence.changed")
    p.add_argument("-n", "--count", type=int, default=0, help="stop after N events")
    p.set_defaults(fn=cmd_events)

    measure = sub.add_parser("measure", parents=[common], help="take a measurement").add_subparsers(
        dest="measure_command", metavar="WHAT", required=True)
    p = measure.add_parser("weight", parents=[common], help="weigh on the configured scale")
    p.add_argument("--device", help="scale device id (default: the serial scale, else a BLE scale)")
    p.add_argument("--height", type=float, help="height in metres, for BMI")
    p.add_argument("--unstable", action="store_true", help="answer at once, even while the weight moves")
    p.set_defaults(fn=cmd_measure_weight)

    idcard = sub.add_parser("idcard", parents=[common], help="the CCCD chip reader").add_subparsers(
        dest="idcard_command", metavar="ACTION", required=True)
    p = idcard.add_parser("read", parents=[common], help="read a card (exactly one key source)")
    keys = p.add_mutually_exclusive_group(required=True)
    keys.add_argument("--can", help="card access number (last 6 digits of the ID number)")
    keys.add_argument("--id-number", dest="id_number", help="the 12-digit ID number")
    keys.add_argument("--mrz", help="MRZ text (lines separated by \\n)")
    keys.add_argument("--qr", help="text of the QR code on the card front")
    keys.add_argument("--document-number", dest="document_number", help="with --birth-date and --expiry-date")
    p.add_argument("--birth-date", dest="birth_date", help="YYMMDD or YYYY-MM-DD")
    p.add_argument("--expiry-date", dest="expiry_date", help="YYMMDD or YYYY-MM-DD")
    p.add_argument("--datagroups", help="comma-separated, default DG1,DG2,DG13,SOD")
    p.add_argument("--no-verify", action="store_true", help="skip passive/active authentication")
    p.add_argument("--wait", type=float, default=0, help="seconds to wait for a card to be tapped")
    p.add_argument("--face", help="write the face image to this file")
    p.add_argument("--device", help="reader device id (default: the first)")
    p.set_defaults(fn=cmd_idcard_read)
    p = idcard.add_parser("watch", parents=[common], help="print card taps and removals until Ctrl-C")
    p.add_argument("-n", "--count", type=int, default=0, help="stop after N events")
    p.set_defaults(fn=cmd_idcard_watch)

    # Each device family's commands live in their own module (halsvc/cli_<family>.py) with
    # `register(sub, common, groups)`; `groups` holds the shared subcommand groups ("measure").
    groups = {"measure": measure}
    for family in CLI_FAMILIES:
        try:
            module = importlib.import_module(f"halsvc.cli_{family}")
        except ModuleNotFoundError as exc:
            if exc.name != f"halsvc.cli_{family}":
                raise
            continue
        module.register(sub, common, groups)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return USAGE if exc.code not in (0, None) else OK
    if not getattr(args, "fn", None):
        ap.print_help(sys.stderr)
        return USAGE
    path = args.socket or default_socket()
    try:
        if getattr(args, "own_client", False):  # doctor, report: they say why the daemon is not there
            return int(args.fn(path, args))
        with Client(path) as hal:
            return int(args.fn(hal, args))
    except DaemonUnreachable as exc:
        print(f"halctl: {exc}\nhalctl: {HINT}", file=sys.stderr)
        return UNREACHABLE
    except PermissionError:
        print(f"halctl: no permission to use {path}; join group halsvc (or halsvc-tech) and log in again",
              file=sys.stderr)
        return UNREACHABLE
    except RpcError as exc:
        if args.json:
            print(json.dumps({"error": {"code": exc.code, "message": exc.message, "data": exc.data}},
                             ensure_ascii=False))
        print(f"halctl: {exc.message} ({exc.reason})", file=sys.stderr)
        return FAILED
    except ConnectionError as exc:
        print(f"halctl: {exc}", file=sys.stderr)
        return FAILED
    except BrokenPipeError:
        return OK


if __name__ == "__main__":
    sys.exit(main())
