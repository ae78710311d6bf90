"""halctl's field diagnostics: doctor, selftest, watch, report, usage.

`doctor` and `report` open their own connection (`own_client`): they must work, and say what
is wrong, when the daemon cannot be reached.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from halsvc.cli import FAILED, OK, USAGE, _device_rows, follow_events, table
from halsvc.client import Client, RpcError

DOCTOR_EXIT = {"pass": OK, "warn": 4, "fail": FAILED}
MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}
COLOUR = {"pass": "\x1b[32m", "warn": "\x1b[33m", "fail": "\x1b[31m"}
BAR_WIDTH = 40


# --- doctor ---------------------------------------------------------------------------------------
def cmd_doctor(path: str, args: argparse.Namespace) -> int:
    from halsvc import doctor

    checks = doctor.run_all(path, args.config)
    result = doctor.worst(checks)
    if args.json:
        print(json.dumps({"result": result, "checks": [c.to_json() for c in checks]}, ensure_ascii=False,
                         indent=2))
        return DOCTOR_EXIT[result]
    tty = sys.stdout.isatty()
    for c in checks:
        mark = f"{COLOUR[c.status]}{MARK[c.status]}\x1b[0m" if tty else MARK[c.status]
        print(f"{mark}  {c.name:10} {c.summary}")
        if c.fix and c.status != "pass":
            print(f"      {'':10} fix: {c.fix}")
    counts = {s: sum(c.status == s for c in checks) for s in ("pass", "warn", "fail")}
    print(f"\n{counts['pass']} passed, {counts['warn']} warning(s), {counts['fail']} failed")
    return DOCTOR_EXIT[result]


# --- selftest -------------------------------------------------------------------------------------
def _checks_text(result: Mapping[str, Any]) -> str:
    checks = result.get("checks") or []
    bad = [str(c.get("name", "?")) for c in checks if isinstance(c, dict) and not c.get("passed", True)]
    return ("failed: " + ", ".join(bad)) if bad else f"{len(checks)} check(s)"


def cmd_selftest(hal: Client, args: argparse.Namespace) -> int:
    devices = hal.call("device.list")["devices"]
    if args.device:
        devices = [d for d in devices if d["device"] == args.device]
        if not devices:
            hal.call("device.status", {"device": args.device})  # the daemon's device_not_found
    rows, results = [], []
    for n, d in enumerate(devices, 1):
        dev = d["device"]
        print(f"[{n}/{len(devices)}] {dev} ({d['kind']}): {args.level} selftest …", file=sys.stderr,
              flush=True)

        def progress(event: Mapping[str, Any], dev: str = dev) -> None:
            data = event.get("data", {})
            step = data.get("stage") or data.get("step") or data.get("check")
            if step:
                print(f"      {dev}: {step}", file=sys.stderr, flush=True)

        try:
            res = hal.call("device.selftest", {"device": dev, "level": args.level}, on_progress=progress)
            outcome = "passed" if res.get("passed") else "FAILED"
            detail = _checks_text(res)
        except RpcError as exc:
            res = {"device": dev, "error": {"reason": exc.reason, "message": exc.message}}
            outcome = "skipped" if exc.reason == "not_supported" else "ERROR"
            detail = f"{exc.reason}: {exc.message}"
        print(f"      {dev}: {outcome}", file=sys.stderr, flush=True)
        results.append({**res, "device": dev, "kind": d["kind"], "outcome": outcome.lower()})
        rows.append([dev, d["kind"], args.level, outcome, detail])
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        print(table(rows, ("DEVICE", "KIND", "LEVEL", "RESULT", "DETAILS")) if rows else "no devices")
    return FAILED if any(r["outcome"] in ("failed", "error") for r in results) else OK


# --- watch ----------------------------------------------------------------------------------------
def _event_line(e: Mapping[str, Any]) -> str:
    stamp = str(e.get("time", ""))[11:23]
    data = json.dumps(e.get("data", {}), ensure_ascii=False, separators=(",", ":"))
    if len(data) > 100:
        data = data[:97] + "..."
    return f"{stamp} #{e.get('seq')} {e.get('topic')} {e.get('device') or '-'} {data}"


def frame(header: str, devices: Mapping[str, Mapping[str, Any]], events: Sequence[Mapping[str, Any]]) -> str:
    lines = [header, ""]
    lines.append(table(_device_rows(list(devices.values())), ("DEVICE", "KIND", "STATE", "DETAILS"))
                 if devices else "no devices configured")
    lines += ["", f"last {len(events)} event(s):" if events else "no events yet"]
    lines += [_event_line(e) for e in events]
    return "\n".join(lines)


def cmd_watch(hal: Client, args: argparse.Namespace) -> int:
    st = hal.call("hal.status")
    devices = {d["device"]: d for d in st["devices"]}
    events: deque[Mapping[str, Any]] = deque(maxlen=args.events)
    ansi = sys.stdout.isatty() and not args.plain

    def draw() -> None:
        header = (f"halsvc {st['version']} on {hal.path} — {time.strftime('%H:%M:%S')} — "
                  f"{len(devices)} device(s); Ctrl-C stops")
        text = frame(header, devices, list(events))
        if ansi:
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
        else:
            sys.stdout.write(text + "\n" + "-" * 40 + "\n")
        sys.stdout.flush()

    if args.once:
        draw()
        return OK
    hal.subscribe("*")
    draw()
    seen = 0

    def on_event(event: Mapping[str, Any]) -> None:
        nonlocal seen
        topic = str(event.get("topic", ""))
        data = event.get("data")
        if topic.endswith(".status") and isinstance(data, dict) and data.get("device") in devices:
            devices[data["device"]] = {**devices[data["device"]], **data}
        events.append(event)
        seen += 1
        if ansi or (args.count and seen >= args.count):
            draw()

    return follow_events(hal, on_event, args.count)


# --- report ---------------------------------------------------------------------------------------
def cmd_report(path: str, args: argparse.Namespace) -> int:
    from halsvc import report

    out = pathlib.Path(args.output or report.default_name())
    files = report.collect(path)
    report.write_bundle(out, files)
    errors = json.loads(files["errors.json"])
    print(str(out))
    missing = f"; not collected: {', '.join(errors)}" if errors else ""
    print(f"halctl: {len(files)} files in {out}{missing}", file=sys.stderr)
    return OK


# --- usage ----------------------------------------------------------------------------------------
def _date(text: str) -> str:
    if text in ("today", "yesterday"):
        day = datetime.date.today() - datetime.timedelta(days=text == "yesterday")
        return day.isoformat()
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD, today, yesterday): {text!r}") from None


def _ms(x: Any) -> str:
    return "-" if x is None else (f"{x / 1000:.1f}s" if x >= 1000 else f"{x:.0f}ms")


def bars(totals: Sequence[tuple[str, int]], width: int = BAR_WIDTH) -> list[str]:
    top = max((n for _, n in totals), default=0)
    label_w = max((len(k) for k, _ in totals), default=0)
    out = []
    for key, n in totals:
        length = round(n / top * width) if top else 0
        out.append(f"{key.rjust(label_w)} {'█' * length}{'▏' if n and not length else ''} {n}")
    return out


def cmd_usage(hal: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"by": args.by}
    if args.since:
        params["since"] = args.since
    if args.until:
        params["until"] = args.until
    rep = hal.call("diag.usage", params)
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2))
        return OK
    rows = rep["rows"]
    label = {"hour": "HOUR", "day": "DAY", "kind": "KIND", "method": "KIND"}[args.by]
    head = [label, *{"kind": [], "method": ["OPERATION"]}.get(args.by, ["KIND", "OPERATION"])]
    out_rows = []
    for r in rows:
        fails = ", ".join(f"{k} {v}" for k, v in sorted(r["failures"].items(), key=lambda kv: -kv[1])[:3])
        lead = [r["key"]] if args.by == "kind" else (
            [r["kind"], r["method"]] if args.by == "method" else [r["key"], r["kind"], r["method"]])
        out_rows.append([*lead, r["uses"], r["ok"], r["failed"], _ms(r["median_ms"]), _ms(r["p90_ms"]),
                         fails or "-"])
    span = f"from {rep['since'] or rep.get('counting_since', '?')[:10]}"
    if rep["until"]:
        span += f" to {rep['until']}"
    print(f"usage by {args.by}, {span} (station time)")
    if not rows:
        print("no uses counted yet")
    else:
        print(table(out_rows, (*head, "USES", "OK", "FAILED", "MEDIAN", "P90", "TOP FAILURES")))
        totals: dict[str, int] = {}
        for r in rows:
            key = r["key"] if args.by != "method" else r["method"]
            totals[key] = totals.get(key, 0) + r["uses"]
        keys = [f"{h:02d}" for h in range(24)] if args.by == "hour" else sorted(totals)
        print(f"\nuses by {args.by}")
        print("\n".join(bars([(k, totals.get(k, 0)) for k in keys])))
    ben = rep.get("beneficiaries") or {}
    if ben.get("enabled"):
        print(f"\nbeneficiaries (card reads by age band and sex, per {ben.get('granularity', 'month')}; "
              f"cells under {ben['min_cell']} not shown)")
        cells = ben.get("cells") or []
        if cells:
            print(table([[c["age_band"], c["sex"], c["count"]] for c in cells], ("AGE", "SEX", "READS")))
        print(f"{ben.get('suppressed_cells', 0)} cell(s) suppressed")
    return OK


def register(sub: Any, common: argparse.ArgumentParser, groups: Mapping[str, Any]) -> None:
    p = sub.add_parser("doctor", parents=[common], help="check the whole station; a fix for each problem",
                       epilog="Exit codes: 0 all passed, 4 warnings only, 1 something failed.")
    p.add_argument("--config", help="config file to check (default: the daemon's, else "
                   "/etc/halsvc/halsvc.toml)")
    p.set_defaults(fn=cmd_doctor, own_client=True)

    p = sub.add_parser("selftest", parents=[common], help="run device health checks with a summary table")
    p.add_argument("device", nargs="?", help="device id (default: every device)")
    p.add_argument("--level", choices=["internal", "external"], default="internal",
                   help="internal: no moving parts (default); external: prints, beeps or measures")
    p.set_defaults(fn=cmd_selftest)

    p = sub.add_parser("watch", parents=[common], help="live view of every device's state and the events")
    p.add_argument("--once", action="store_true", help="draw once and exit")
    p.add_argument("-n", "--count", type=int, default=0, help="stop after N events")
    p.add_argument("--events", type=int, default=15, help="how many recent events to show (default 15)")
    p.add_argument("--plain", action="store_true", help="no screen redraw, even on a terminal")
    p.set_defaults(fn=cmd_watch)

    p = sub.add_parser("report", parents=[common],
                       help="write a support bundle (tar.gz) without citizen data")
    p.add_argument("-o", "--output", help="bundle path (default halsvc-report-HOST-TIME.tar.gz here)")
    p.set_defaults(fn=cmd_report, own_client=True)

    p = sub.add_parser("usage", parents=[common], help="usage figures as a table and a bar chart")
    p.add_argument("--by", choices=["hour", "day", "kind", "method"], default="kind",
                   help="group by hour of day, day, device kind (default) or operation")
    p.add_argument("--since", type=_date, help="first day (YYYY-MM-DD, today, yesterday)")
    p.add_argument("--until", type=_date, help="last day (YYYY-MM-DD)")
    p.set_defaults(fn=cmd_usage)


__all__ = ["USAGE", "register"]
