"""`halctl pay AMOUNT --reference REF [--key KEY]` and `halctl payment status|journal|reconcile|
abort|reverse|vietqr`: the card terminal (issue 8).

A payment carries an idempotency key. halctl makes a fresh one unless `--key` is given and
prints it *before* the terminal is asked, so after a timeout, a lost connection or a daemon
restart the technician repeats `halctl pay … --key KEY` and gets the first outcome — never a
second charge.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from halsvc.cli import FAILED, OK, USAGE, table
from halsvc.client import Client, RpcError


def fresh_key() -> str:
    return f"halctl-{uuid.uuid4().hex[:16]}"


def vnd(amount: Any) -> str:
    try:
        return f"{int(amount):,}".replace(",", ".") + " ₫"
    except (TypeError, ValueError):
        return str(amount)


def parse_amount(text: str) -> int:
    """`150000`, `150.000` or `150_000` (whole VND)."""
    digits = text.replace(".", "").replace("_", "").replace(",", "")
    if not digits.isdigit() or not digits.isascii() or int(digits) <= 0:
        raise ValueError(f"amount {text!r}: a whole number of VND, e.g. 150000")
    return int(digits)


def _progress(event: Mapping[str, Any]) -> None:
    data = event.get("data", {})
    phase = data.get("phase")
    if phase == "prompt":
        print(f"  terminal: {data.get('text', '')}", file=sys.stderr, flush=True)
    elif phase == "asking_terminal":
        print("  no answer yet: asking the terminal what happened", file=sys.stderr, flush=True)
    elif phase == "sent":
        print("  sent to the terminal", file=sys.stderr, flush=True)


def _dev(args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    if getattr(args, "device", None):
        params["device"] = args.device
    return params


def _outcome_line(r: Mapping[str, Any]) -> str:
    line = f"{r['status']} {vnd(r.get('authorized_amount') or 0)}"
    if r.get("status") == "approved" and r.get("authorized_amount") != r.get("amount"):
        line += f" of {vnd(r.get('amount'))}"
    if r.get("terminal_transaction_id"):
        line += f", terminal transaction {r['terminal_transaction_id']}"
    if r.get("error_condition"):
        line += f" ({r['error_condition']})"
    if r.get("repeated"):
        line += " — key seen before: this is its first outcome, nothing charged now"
    return line


def cmd_pay(hal: Client, args: argparse.Namespace) -> int:
    try:
        amount = parse_amount(args.amount)
    except ValueError as exc:
        print(f"halctl: {exc}", file=sys.stderr)
        return USAGE
    key = args.key or fresh_key()
    if not args.json:
        print(f"key {key}", file=sys.stderr, flush=True)  # before the terminal is asked: retry with it
    params = _dev(args, {"amount": amount, "idempotency_key": key, "reference": args.reference})
    try:
        r = hal.call("payment.pay", params, on_progress=None if args.json else _progress)
    except RpcError as exc:
        if exc.reason in ("timeout", "cancelled", "link_lost") or exc.data.get("status"):
            print(f"halctl: no outcome yet; ask again with: halctl pay {args.amount} --reference "
                  f"{args.reference} --key {key}", file=sys.stderr)
        raise
    if args.json:
        print(json.dumps(r, ensure_ascii=False))
    else:
        print(f"key {key}: {_outcome_line(r)}")
    return OK if r["status"] == "approved" else FAILED


def cmd_status(hal: Client, args: argparse.Namespace) -> int:
    params = _dev(args, {"idempotency_key": args.key} if args.key else {})
    st = hal.call("payment.status", params)
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=2))
        return OK
    if args.key:
        print(f"key {args.key}: {_outcome_line({**st, 'repeated': False})}"
              + (" — still being settled with the terminal" if st.get("settling") else ""))
        return OK
    rows: list[list[Any]] = [
        ["device", st.get("device")], ["state", st.get("state")], ["link", st.get("link")],
        ["payment running", "yes" if st.get("running") else "no"],
        ["unsettled attempts", st.get("unfinished")]]
    print(table(rows, ("TERMINAL", "")))
    return OK if st.get("link") == "up" else FAILED


def cmd_journal(hal: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.key:
        params = {"idempotency_key": args.key}
    j = hal.call("payment.journal", _dev(args, params))
    if args.json:
        print(json.dumps(j, ensure_ascii=False, indent=2))
        return OK
    rows = [[e["id"], e["idempotency_key"], vnd(e["amount"]), e["state"], e.get("reference") or "-",
             e.get("poi_transaction_id") or "-", e["service_id"],
             "→".join(h["state"] for h in e.get("history", [])), e["updated_at"]] for e in j["entries"]]
    print(table(rows, ("ID", "KEY", "AMOUNT", "STATE", "REFERENCE", "TERMINAL TX", "SERVICE ID", "HISTORY",
                       "UPDATED")) if rows else "the journal is empty")
    print(f"{j['unfinished']} unsettled, {j['service_ids']} ServiceIDs issued")
    return OK


def cmd_reconcile(hal: Client, args: argparse.Namespace) -> int:
    r = hal.call("payment.reconcile", _dev(args, {}))
    if args.json:
        print(json.dumps(r, ensure_ascii=False, indent=2))
    else:
        rows = [[t["type"], t["count"], vnd(t["amount"])] for t in r["terminal"]]
        print(f"batch {r['reconciliation_id']}")
        print(table(rows, ("TERMINAL", "COUNT", "AMOUNT")))
        ours = r.get("journal") or {}
        print(f"journal: {ours.get('approved_count')} approved {vnd(ours.get('approved_amount'))}, "
              f"{ours.get('reversed_count')} reversed {vnd(ours.get('reversed_amount'))}")
        print("totals match" if r["matches"] else "TOTALS DIFFER: check halctl payment journal")
    return OK if r["matches"] else FAILED


def cmd_abort(hal: Client, args: argparse.Namespace) -> int:
    r = hal.call("payment.abort", _dev(args, {"idempotency_key": args.key} if args.key else {}))
    print(json.dumps(r) if args.json else
          f"{'abort requested' if r['requested'] else 'nothing to abort'}; payment is {r['status']}")
    return OK


def cmd_reverse(hal: Client, args: argparse.Namespace) -> int:
    r = hal.call("payment.reverse", _dev(args, {"idempotency_key": args.key}))
    print(json.dumps(r, ensure_ascii=False) if args.json else f"key {args.key}: {_outcome_line(r)}")
    return OK if r["status"] == "reversed" else FAILED


def cmd_vietqr(hal: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"bin": args.bin, "account": args.account, "png": bool(args.png)}
    if args.amount:
        try:
            params["amount"] = parse_amount(args.amount)
        except ValueError as exc:
            print(f"halctl: {exc}", file=sys.stderr)
            return USAGE
    for key in ("bill_number", "purpose"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    r = hal.call("payment.vietqr", _dev(args, params))
    if args.png:
        with open(args.png, "wb") as fh:
            fh.write(base64.b64decode(r.pop("png")))
    print(json.dumps(r, ensure_ascii=False) if args.json else r["payload"])
    return OK


def register(sub: Any, common: argparse.ArgumentParser, groups: Mapping[str, Any]) -> None:
    p = sub.add_parser("pay", parents=[common], help="charge a card on the payment terminal",
                       description="Charge AMOUNT (whole VND) for a bill. The terminal's prompts show on "
                                   "stderr. Exit 0 approved, 1 declined/aborted/failed.")
    p.add_argument("amount", metavar="AMOUNT", help="whole VND, e.g. 150000 or 150.000")
    p.add_argument("--reference", required=True, help="the bill id (printable ASCII)")
    p.add_argument("--key", help="idempotency key: the same key never charges twice (default: a fresh "
                                 "one, shown first)")
    p.add_argument("--device", help="terminal device id (default: the only one)")
    p.set_defaults(fn=cmd_pay)

    payment = sub.add_parser("payment", parents=[common], help="the payment terminal and its journal"
                             ).add_subparsers(dest="payment_command", metavar="ACTION", required=True)
    p = payment.add_parser("status", parents=[common], help="link and unsettled attempts, or one key's state")
    p.add_argument("--key", help="a payment's idempotency key")
    p.add_argument("--device")
    p.set_defaults(fn=cmd_status)
    p = payment.add_parser("journal", parents=[common], help="the payment journal (technician)")
    p.add_argument("--key", help="only this idempotency key's attempts")
    p.add_argument("-n", "--limit", type=int, default=50, help="newest N entries (default 50)")
    p.add_argument("--device")
    p.set_defaults(fn=cmd_journal)
    p = payment.add_parser("reconcile", parents=[common],
                           help="end of day: terminal totals vs the journal (technician; exit 1 if "
                                "they differ)")
    p.add_argument("--device")
    p.set_defaults(fn=cmd_reconcile)
    p = payment.add_parser("abort", parents=[common], help="stop a running payment before approval")
    p.add_argument("--key", help="its idempotency key (default: the running one)")
    p.add_argument("--device")
    p.set_defaults(fn=cmd_abort)
    p = payment.add_parser("reverse", parents=[common], help="reverse (refund) an approved payment")
    p.add_argument("--key", required=True, help="its idempotency key")
    p.add_argument("--device")
    p.set_defaults(fn=cmd_reverse)
    p = payment.add_parser("vietqr", parents=[common], help="a VietQR transfer code (payload, PNG)")
    p.add_argument("--bin", required=True, help="the bank's 6-digit NAPAS BIN")
    p.add_argument("--account", required=True)
    p.add_argument("--amount", help="whole VND (without: a static code)")
    p.add_argument("--bill-number", dest="bill_number")
    p.add_argument("--purpose", help="ASCII letters, digits, space . _ - (no diacritics)")
    p.add_argument("--png", metavar="FILE", help="write the QR code as PNG")
    p.add_argument("--device")
    p.set_defaults(fn=cmd_vietqr)
