"""Field diagnostics over RPC (technician role): usage figures, the recent log ring, what the
daemon itself sees (versions, redacted config, environment, paths) and journal summaries.

`halctl doctor`, `report` and `usage` build on these; each answer is free of citizen data by
construction (usage cells are suppressed, logs never hold it, journals are counted by state).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import pathlib
import platform
import re
import sqlite3
import sys
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivers.base import HalError, OperationContext
from halsvc import __version__, logs
from halsvc.builtins import builtin

if TYPE_CHECKING:
    from halsvc.server import Connection

DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "YYYY-MM-DD (station time)"}
SECRET_KEY = re.compile(r"secret|passw|token|key|\bpin\b|_pin$|psk|credential|private|cert|auth",
                        re.IGNORECASE)
ENV_SHOWN = ("PCSCLITE_CSOCK_NAME", "DBUS_SYSTEM_BUS_ADDRESS", "TZ", "LANG", "INVOCATION_ID")
LIBRARIES = ("pyscard", "python-escpos", "bleak", "dbus-fast", "pyserial", "pyserial-asyncio-fast",
             "gpiozero", "pyudev", "cryptography", "asn1crypto", "Pillow")
USAGE_ROW = {"type": "object", "required": ["key", "kind", "uses", "ok", "failed"], "properties": {
    "key": {"type": "string", "description": "hour of day (00-23), date, kind or method, as grouped"},
    "kind": {"type": "string"}, "method": {"type": "string"},
    "uses": {"type": "integer"}, "ok": {"type": "integer"}, "failed": {"type": "integer"},
    "failures": {"type": "object", "additionalProperties": {"type": "integer"}},
    "median_ms": {"type": ["number", "null"]}, "p90_ms": {"type": ["number", "null"]}}}


def redact(value: Any, key: str = "") -> Any:
    """A config document with every value under a secret-looking key replaced."""
    if key and SECRET_KEY.search(key) and not isinstance(value, dict):
        return "<redacted>"
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    return value


def _redacted_config(path: str) -> tuple[Any, str | None]:
    try:
        return redact(tomllib.loads(pathlib.Path(path).read_text(encoding="utf-8"))), None
    except (OSError, ValueError) as exc:
        return None, type(exc).__name__


def versions() -> dict[str, Any]:
    libs: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libs[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            libs[name] = None
    return {"halsvc": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "kernel": platform.release(), "libraries": libs}


def journal_summary(state_dir: pathlib.Path, limit: int = 32) -> list[dict[str, Any]]:
    """Every SQLite file under the state dir with a table that has a `state` column, counted by
    state (payment journals: how many payments are in each state; nothing else is read)."""
    out: list[dict[str, Any]] = []
    if not state_dir.is_dir():
        return out
    files = [p for p in sorted(state_dir.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))]
    for path in files[:256]:
        if len(out) >= limit:
            break
        try:
            with open(path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    continue
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        except (OSError, sqlite3.Error):
            continue
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                cols = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
                if "state" not in cols:
                    continue
                counts = dict(db.execute(f'SELECT state, count(*) FROM "{table}" GROUP BY state'))
                out.append({"file": str(path.relative_to(state_dir)), "table": table,
                            "by_state": {str(k): int(v) for k, v in counts.items()}})
        except sqlite3.Error as exc:
            out.append({"file": str(path.relative_to(state_dir)), "error": type(exc).__name__})
        finally:
            db.close()
    return out


@builtin("diag.usage", "Usage figures: uses, successes, failures by reason and durations per device kind "
         "and operation, grouped by hour of day, day, kind or method; beneficiary groups (when enabled) "
         "with small cells suppressed.", role="technician",
         params={"type": "object", "additionalProperties": False, "properties": {
             "by": {"enum": ["hour", "day", "kind", "method"], "description": "default kind"},
             "since": DATE, "until": DATE}},
         result={"type": "object", "required": ["by", "rows", "beneficiaries"], "properties": {
             "by": {"type": "string"}, "rows": {"type": "array", "items": USAGE_ROW},
             "beneficiaries": {"type": "object"}, "counting_since": {"type": "string"}}},
         errors=("not_supported",))
async def diag_usage(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    store = conn.server.usage
    if store is None:
        raise HalError("not_supported", "usage counting is off (usage.enabled = false)")
    return store.report(params.get("by", "kind"), params.get("since"), params.get("until"))


@builtin("diag.logs", "The daemon's most recent log records (what reached the journal, rate-limited, "
         "never citizen data), oldest first.", role="technician",
         params={"type": "object", "additionalProperties": False, "properties": {
             "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "default 200"},
             "priority": {"type": "integer", "minimum": 0, "maximum": 7,
                          "description": "only records at this syslog priority or more urgent"}}},
         result={"type": "object", "required": ["records"], "properties": {
             "records": {"type": "array", "items": {"type": "object"}}}})
async def diag_logs(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    worst = params.get("priority", 7)
    records = [r for r in logs.RING.records if r["priority"] <= worst]
    return {"records": records[-params.get("limit", 200):]}


@builtin("diag.info", "What the daemon sees: versions, its config (secrets removed), paths, the "
         "environment that decides PC/SC and D-Bus, its uid and groups.", role="technician",
         result={"type": "object", "required": ["versions", "config_path", "state_dir"]})
async def diag_info(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    server = conn.server
    config = server.config
    doc, config_error = await asyncio.to_thread(_redacted_config, config.path)
    sockets = []
    for srv in server._servers:
        for sock in getattr(srv, "sockets", None) or ():
            with contextlib.suppress(OSError):
                sockets.append(str(sock.getsockname()))
    usage = server.usage
    return {
        "versions": versions(), "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
        "groups": sorted(os.getgroups()), "config_path": config.path, "config": doc,
        "config_error": config_error, "state_dir": str(config.state_dir.resolve()), "sockets": sockets,
        "env": {k: os.environ[k] for k in ENV_SHOWN if k in os.environ},
        "devices": [{"device": d.id, "driver": d.driver, "kind": d.kind, "options": redact(d.options),
                     "match": d.match} for d in config.devices],
        "usage": None if usage is None else {
            "file": str(usage.path), "metrics_file": str(usage.metrics_file) if usage.metrics_file else None,
            "beneficiaries": usage.beneficiaries_enabled},
    }


@builtin("diag.journals", "Journals in the state directory (payments) counted by state only.",
         role="technician",
         result={"type": "object", "required": ["journals"], "properties": {
             "journals": {"type": "array", "items": {"type": "object"}}}})
async def diag_journals(conn: Connection, params: dict[str, Any], ctx: OperationContext) -> Mapping[str, Any]:
    return {"journals": await asyncio.to_thread(journal_summary, conn.server.config.state_dir)}
