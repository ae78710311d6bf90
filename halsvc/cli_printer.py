"""`halctl print test | FILE.json` and `halctl printer status`: the thermal printer (issue 5).

A print carries a job id, the printer's idempotency key: halctl makes a fresh one unless
`--job-id` is given and prints it, so a technician can repeat the very same job (after a paper
jam, say) and be sure it does not come out twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from halsvc.cli import FAILED, OK, USAGE, table
from halsvc.client import Client

# The built-in test receipt: every kind of block a receipt uses, with Vietnamese that a printer
# without a Vietnamese code page gets wrong unless it is drawn (raster mode).
TEST_RECEIPT: dict[str, Any] = {"blocks": [
    {"type": "text", "text": "TRANG IN THỬ", "align": "center", "bold": True, "size": 2},
    {"type": "text", "text": "Trạm Công dân số — halctl print test", "align": "center"},
    {"type": "rule"},
    {"type": "text", "text": "Tiếng Việt: ă â đ ê ô ơ ư — Ầ Ẫ Ậ ộ ự ỹ Đ"},
    {"type": "columns", "label": "Lệ phí mẫu", "value": "150.000 ₫", "bold": True},
    {"type": "columns", "label": "Mã giao dịch", "value": "TEST-0001"},
    {"type": "rule", "style": "dashed"},
    {"type": "qr", "data": "HALSVC-TEST", "size": 4, "align": "center"},
    {"type": "cut"},
]}


def fresh_job_id() -> str:
    return f"halctl-{uuid.uuid4().hex[:16]}"


def load_job(path: str) -> dict[str, Any]:
    """FILE.json (or - for stdin): a document {"blocks": [...]}, a bare list of blocks, or
    {"template": NAME, "data": {...}}. Raises ValueError with a message for a human."""
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if isinstance(doc, list):
        return {"document": {"blocks": doc}}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object with \"blocks\", or \"template\" and \"data\"")
    if "template" in doc:
        return {"template": doc["template"], "data": doc.get("data", {})}
    if "document" in doc:
        return {"document": doc["document"]}
    if "blocks" in doc:
        return {"document": doc}
    raise ValueError(f"{path}: expected \"blocks\" (a document) or \"template\" and \"data\"")


def _progress(event: Mapping[str, Any]) -> None:
    data = event.get("data", {})
    phase = data.get("phase")
    if phase == "sending" and data.get("total"):
        print(f"  sending {data.get('sent', 0)}/{data['total']} bytes", file=sys.stderr, flush=True)
    elif phase:
        print(f"  {phase}", file=sys.stderr, flush=True)


def _print(hal: Client, args: argparse.Namespace, job: dict[str, Any]) -> int:
    job_id = args.job_id or fresh_job_id()
    params: dict[str, Any] = {"job_id": job_id, **job}
    if args.device:
        params["device"] = args.device
    if not args.json:
        print(f"job {job_id}", file=sys.stderr, flush=True)
    result = hal.call("printer.print", params, on_progress=None if args.json else _progress)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        line = f"job {result['job_id']}: {result['status']}"
        if result.get("reason"):
            line += f" ({result['reason']})"
        if result.get("repeated"):
            line += " — seen before, nothing printed now"
        print(line)
        if result["status"] != "printed" and not args.job_id:
            print(f"halctl: to repeat this very job: halctl print {args.what} --job-id {job_id}",
                  file=sys.stderr)
    return OK if result["status"] == "printed" else FAILED


def cmd_print(hal: Client, args: argparse.Namespace) -> int:
    if args.what == "test":
        return _print(hal, args, {"document": TEST_RECEIPT})
    try:
        job = load_job(args.what)
    except ValueError as exc:
        print(f"halctl: {exc}", file=sys.stderr)
        return USAGE
    return _print(hal, args, job)


def cmd_printer_status(hal: Client, args: argparse.Namespace) -> int:
    st = hal.call("printer.status", {"device": args.device} if args.device else {})
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=2))
    else:
        last = st.get("last_job")
        last_text = "-" if not last else (
            f"{last['job_id']} {last['status']}" + (f" ({last['reason']})" if last.get("reason") else ""))
        rows: list[list[Any]] = [["device", st.get("device")], ["state", st.get("state")],
                ["online", "yes" if st.get("online") else "no"], ["paper", st.get("paper", "?")],
                ["cover", st.get("cover", "?")], ["cutter", st.get("cutter", "?")],
                ["error", st.get("error") or "-"], ["last job", last_text]]
        if st.get("paper_mm"):
            rows.insert(4, ["paper width", f"{st['paper_mm']} mm"])
        print(table(rows, ("PRINTER", "")))
    return OK if st.get("error") is None and st.get("state") in ("online", "busy") else FAILED


def register(sub: Any, common: argparse.ArgumentParser, groups: Mapping[str, Any]) -> None:
    p = sub.add_parser("print", parents=[common], help="print the test receipt or a receipt file",
                       description="Print `test` (the built-in test receipt) or FILE.json: a document "
                                   "{\"blocks\": [...]} or {\"template\": NAME, \"data\": {...}} "
                                   "(- reads stdin).")
    p.add_argument("what", metavar="test|FILE.json", help="test, or a file (a file named test: ./test)")
    p.add_argument("--job-id", dest="job_id",
                   help="idempotency key: the same id never prints twice (default: a fresh one, shown)")
    p.add_argument("--device", help="printer device id (default: the only printer)")
    p.set_defaults(fn=cmd_print)
    printer = sub.add_parser("printer", parents=[common], help="the receipt printer").add_subparsers(
        dest="printer_command", metavar="ACTION", required=True)
    p = printer.add_parser("status", parents=[common],
                           help="paper, cover, online, cutter and the last job (exit 1 on a fault)")
    p.add_argument("--device", help="printer device id (default: the only printer)")
    p.set_defaults(fn=cmd_printer_status)
