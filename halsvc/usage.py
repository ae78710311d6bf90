"""Usage figures for the city: how often each device kind and operation is used, when, how it
ends and how long it takes. Counts only; nobody is identified.

Counting happens at the dispatch layer (`Server.call` hands every driver-method reply to
`UsageStore.observe`), so a new device family is counted without its code knowing.

State is bounded whatever the traffic: durations go into a fixed set of log-spaced buckets
(median and p90 are read off them), failure reasons per cell are capped, hourly cells are kept
for `hourly_days` and daily cells for `daily_days`; all-time totals (what the OpenMetrics
counters show) are one cell per operation. The store is a JSON file in the state directory,
replaced atomically (write, fsync, rename, fsync the directory).

Beneficiary groups (off unless `usage.beneficiaries = true`): at the moment a card is read the
holder's 10-year age band and sex increment one monthly counter; the read result itself is not
kept. Every export (RPC, halctl, metrics) drops any cell under `min_cell` (at least 5) and, when
that leaves a single hidden cell, the smallest shown one too, so no hidden count can be had by
subtraction.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime
import json
import logging
import os
import pathlib
import re
import tempfile
import time
import unicodedata
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

log = logging.getLogger("halsvc.usage")

# Upper bounds in ms of the duration buckets; one more bucket holds everything above the last.
BUCKETS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000,
                               180_000)
MAX_REASONS = 16  # per cell; further reasons count as "other" (reasons come from drivers)
MIN_CELL = 5
FILE_VERSION = 1
USAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean", "description": "count uses at all (default true)"},
        "flush_s": {"type": "number", "minimum": 1, "description": "how often to save (default 60)"},
        "metrics_file": {"type": "string", "description": "OpenMetrics text file for node_exporter's "
                         "textfile collector, e.g. /var/lib/prometheus/node-exporter/halsvc.prom"},
        "metrics_format": {"enum": ["openmetrics", "prometheus"], "description": "openmetrics "
                           "(default) or prometheus: the 0.0.4 text format, where node_exporter keeps the "
                           "counters' type"},
        "beneficiaries": {"type": "boolean", "description": "count age band and sex at card reads "
                          "(default false)"},
        "min_cell": {"type": "integer", "minimum": MIN_CELL, "description": "smallest count shown"},
        "hourly_days": {"type": "integer", "minimum": 1, "maximum": 400},
        "daily_days": {"type": "integer", "minimum": 1, "maximum": 3660},
        "timezone": {"type": "string", "description": "IANA zone for hours and days (default: the "
                     "system's)"},
    },
}
TEST_CLOCK_ENV = "HALSVC_TEST_CLOCK_FILE"  # tests only: a file holding the ISO time "now" is


class Cell:
    """Uses, successes, failures by reason and a duration histogram of one operation in one slot."""

    __slots__ = ("failures", "hist", "ok", "sum_ms", "uses")

    def __init__(self) -> None:
        self.uses = 0
        self.ok = 0
        self.failures: dict[str, int] = {}
        self.hist = [0] * (len(BUCKETS_MS) + 1)
        self.sum_ms = 0.0

    def add(self, ok: bool, reason: str | None, ms: float) -> None:
        self.uses += 1
        if ok:  # durations of what worked: a card read's time, not how fast "no card" comes back
            self.ok += 1
            self.sum_ms += ms
            self.hist[bucket_of(ms)] += 1
            return
        reason = reason or "unknown"
        if reason not in self.failures and len(self.failures) >= MAX_REASONS:
            reason = "other"
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def merge(self, other: Cell) -> None:
        self.uses += other.uses
        self.ok += other.ok
        self.sum_ms += other.sum_ms
        for reason, n in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + n
        self.hist = [a + b for a, b in zip(self.hist, other.hist, strict=True)]

    @property
    def failed(self) -> int:
        return self.uses - self.ok

    def to_json(self) -> dict[str, Any]:
        return {"u": self.uses, "ok": self.ok, "f": self.failures, "h": self.hist, "s": round(self.sum_ms, 3)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Cell:
        cell = cls()
        cell.uses, cell.ok, cell.sum_ms = int(doc["u"]), int(doc["ok"]), float(doc.get("s", 0.0))
        cell.failures = {str(k): int(v) for k, v in dict(doc.get("f", {})).items()}
        hist = [int(x) for x in doc.get("h", [])]
        if len(hist) != len(cell.hist):
            raise ValueError("histogram of another bucket layout")
        cell.hist = hist
        return cell

    def summary(self) -> dict[str, Any]:
        return {"uses": self.uses, "ok": self.ok, "failed": self.failed, "failures": dict(self.failures),
                "median_ms": quantile(self.hist, 0.5), "p90_ms": quantile(self.hist, 0.9)}


def bucket_of(ms: float) -> int:
    return bisect.bisect_left(BUCKETS_MS, ms)  # first bound >= ms; past the last: the open bucket


def quantile(hist: list[int], q: float) -> float | None:
    """The q-quantile in ms, interpolated linearly inside its bucket (None without data; the
    open top bucket answers with its lower bound)."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(hist):
        if n and seen + n >= rank:
            if i == len(BUCKETS_MS):
                return float(BUCKETS_MS[-1])
            low = 0 if i == 0 else BUCKETS_MS[i - 1]
            high = BUCKETS_MS[i]
            return round(low + (high - low) * max(0.0, rank - seen) / n, 1)
        seen += n
    return float(BUCKETS_MS[-1])


# --- beneficiary groups -------------------------------------------------------------------------
SEX = {"nam": "male", "nu": "female", "male": "male", "female": "female", "m": "male", "f": "female"}


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in text if not unicodedata.combining(c)).strip().lower()


def sex_group(value: Any) -> str:
    return SEX.get(_fold(value), "other") if isinstance(value, str) and value.strip() else "unknown"


def age_band(birth_date: Any, today: datetime.date) -> str:
    """10-year band ("30-39", "90+") of a YYYY-MM-DD (or YYYY) birth date; "unknown" otherwise."""
    if not isinstance(birth_date, str):
        return "unknown"
    m = re.match(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$", birth_date.strip())
    if not m:
        return "unknown"
    year, month, day = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    age = today.year - year - ((today.month, today.day) < (month, day))
    if age < 0 or age > 130:
        return "unknown"
    if age >= 90:
        return "90+"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def suppress(cells: Mapping[tuple[str, str], int], min_cell: int = MIN_CELL
             ) -> tuple[list[dict[str, Any]], int]:
    """Cells safe to show, and how many were hidden. A cell under `min_cell` is hidden; if that
    hides exactly one, the smallest shown cell goes too, so the hidden one cannot be had from a
    total. Zero cells are not cells."""
    min_cell = max(min_cell, MIN_CELL)
    present = {k: v for k, v in cells.items() if v > 0}
    hidden = {k for k, v in present.items() if v < min_cell}
    shown = sorted((k for k in present if k not in hidden), key=lambda k: (present[k], k))
    if len(hidden) == 1 and shown:
        hidden.add(shown.pop(0))
    rows = [{"age_band": k[0], "sex": k[1], "count": present[k]} for k in sorted(shown)]
    return rows, len(hidden)


# --- the store ----------------------------------------------------------------------------------
def system_now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


def test_clock(path: str) -> Callable[[], datetime.datetime]:
    """A clock that reads the time from a file (tests move it to script a day); falls back to
    the system clock while the file is missing or unreadable."""
    def now() -> datetime.datetime:
        try:
            text = pathlib.Path(path).read_text(encoding="ascii").strip()
            when = datetime.datetime.fromisoformat(text)
        except (OSError, ValueError):
            return system_now()
        return when if when.tzinfo else when.astimezone()
    return now


def atomic_write(path: pathlib.Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that a reader or a crash sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


K = TypeVar("K")


def _cell(table: dict[K, Cell], key: K) -> Cell:
    cell = table.get(key)
    if cell is None:  # not setdefault: that would build a Cell for every reply
        cell = table[key] = Cell()
    return cell


class UsageStore:
    """Counters in memory, saved to `path` by `save()` (periodically and at shutdown)."""

    def __init__(self, path: pathlib.Path, *, now: Callable[[], datetime.datetime] = system_now,
                 kinds: Mapping[str, str] | None = None, beneficiaries: bool = False,
                 min_cell: int = MIN_CELL, hourly_days: int = 62, daily_days: int = 400,
                 timezone: str | None = None, metrics_file: str | None = None,
                 metrics_format: str = "openmetrics") -> None:
        self.path = path
        self._now = now
        self.kinds = dict(kinds or {})  # counted method -> device kind
        self.beneficiaries_enabled = beneficiaries
        self.min_cell = max(min_cell, MIN_CELL)
        self.hourly_days, self.daily_days = hourly_days, daily_days
        self.tz = zoneinfo.ZoneInfo(timezone) if timezone else None
        self.metrics_file = pathlib.Path(metrics_file) if metrics_file else None
        self.metrics_format = metrics_format
        self.created = self.now().isoformat(timespec="seconds")
        self.totals: dict[tuple[str, str], Cell] = {}
        self.hours: dict[tuple[str, int, str, str], Cell] = {}  # (date, hour, kind, method)
        self.days: dict[tuple[str, str, str], Cell] = {}  # (date, kind, method)
        self.groups: dict[tuple[str, str, str], int] = {}  # (YYYY-MM, age band, sex)
        self.dirty = False
        self._minute = -1
        self._slot_cache = ("", 0)

    @classmethod
    def from_config(cls, config: Any, kinds: Mapping[str, str]) -> UsageStore | None:
        opts: dict[str, Any] = dict(config.usage)
        if opts.get("enabled", True) is False:
            return None
        clock = os.environ.get(TEST_CLOCK_ENV)
        store = cls(pathlib.Path(config.state_dir) / "usage.json",
                    now=test_clock(clock) if clock else system_now,
                    kinds=kinds, beneficiaries=bool(opts.get("beneficiaries", False)),
                    min_cell=int(opts.get("min_cell", MIN_CELL)),
                    hourly_days=int(opts.get("hourly_days", 62)),
                    daily_days=int(opts.get("daily_days", 400)), timezone=opts.get("timezone"),
                    metrics_file=opts.get("metrics_file"),
                    metrics_format=opts.get("metrics_format", "openmetrics"))
        store.load()
        return store

    def now(self) -> datetime.datetime:
        t = self._now()
        return t.astimezone(self.tz) if self.tz else t

    # --- counting -------------------------------------------------------------------------------
    def observe(self, method: str, reply: Mapping[str, Any], seconds: float) -> None:
        """One finished request (its JSON-RPC reply). Only driver operations are counted."""
        kind = self.kinds.get(method)
        if kind is None:
            return
        error = reply.get("error")
        if error is None:
            self.record(kind, method, True, None, seconds)
            result = reply.get("result")
            if self.beneficiaries_enabled and kind == "idcard" and isinstance(result, Mapping):
                self.count_beneficiary(result.get("birth_date"), result.get("sex"))
        else:
            data = error.get("data") if isinstance(error, Mapping) else None
            reason = data.get("reason") if isinstance(data, Mapping) else None
            self.record(kind, method, False, str(reason) if reason else f"code_{error.get('code')}", seconds)

    def _slot(self) -> tuple[str, int]:
        """(date, hour) of now. The system clock's is cached per wall-clock minute (every zone's
        hours start on a whole minute), which keeps counting at a few µs per reply."""
        if self._now is system_now and self.tz is None:
            minute = int(time.time() // 60)
            if minute != self._minute:
                t = self.now()
                self._minute, self._slot_cache = minute, (t.date().isoformat(), t.hour)
            return self._slot_cache
        t = self.now()
        return t.date().isoformat(), t.hour

    def record(self, kind: str, method: str, ok: bool, reason: str | None, seconds: float) -> None:
        date, hour = self._slot()
        ms = max(0.0, seconds * 1000)
        _cell(self.totals, (kind, method)).add(ok, reason, ms)
        _cell(self.hours, (date, hour, kind, method)).add(ok, reason, ms)
        _cell(self.days, (date, kind, method)).add(ok, reason, ms)
        self.dirty = True

    def count_beneficiary(self, birth_date: Any, sex: Any) -> None:
        t = self.now()
        key = (t.strftime("%Y-%m"), age_band(birth_date, t.date()), sex_group(sex))
        self.groups[key] = self.groups.get(key, 0) + 1
        self.dirty = True

    # --- reading --------------------------------------------------------------------------------
    def report(self, by: str = "kind", since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """Aggregated rows for `by` in hour (of day), day, kind or method, from the date `since`
        (inclusive) to `until` (inclusive); beneficiary cells already suppressed."""
        merged: dict[tuple[Any, ...], Cell] = {}

        def add(key: tuple[Any, ...], cell: Cell) -> None:
            merged.setdefault(key, Cell()).merge(cell)

        def wanted(date: str) -> bool:
            return (since is None or date >= since) and (until is None or date <= until)

        if by == "hour":
            for (date, hour, kind, method), cell in self.hours.items():
                if wanted(date):
                    add((f"{hour:02d}", kind, method), cell)
        elif by == "day":
            for (date, kind, method), cell in self.days.items():
                if wanted(date):
                    add((date, kind, method), cell)
        elif since is None and until is None:
            for (kind, method), cell in self.totals.items():
                add((kind, kind if by == "kind" else method), cell)
        else:
            for (date, kind, method), cell in self.days.items():
                if wanted(date):
                    add((kind, kind if by == "kind" else method), cell)
        rows = []
        for key in sorted(merged):
            if by in ("hour", "day"):
                label, kind, method = key
            else:
                label, kind, method = key[0], key[0], key[1]
            row = {"key": label, "kind": kind, **merged[key].summary()}
            if by != "kind":
                row["method"] = method
            rows.append(row)
        out: dict[str, Any] = {"by": by, "since": since, "until": until, "counting_since": self.created,
                               "generated": self.now().isoformat(timespec="seconds"), "rows": rows,
                               "beneficiaries": self.beneficiary_report(since, until)}
        return out

    def beneficiary_report(self, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        if not self.beneficiaries_enabled:
            return {"enabled": False}
        cells: dict[tuple[str, str], int] = {}
        for (month, band, sex), n in self.groups.items():
            # Months are the finest grain kept; a month is in if any of its days is.
            if (since is None or month >= since[:7]) and (until is None or month <= until[:7]):
                cells[(band, sex)] = cells.get((band, sex), 0) + n
        rows, hidden = suppress(cells, self.min_cell)
        return {"enabled": True, "min_cell": self.min_cell, "granularity": "month", "cells": rows,
                "suppressed_cells": hidden}

    # --- persistence ----------------------------------------------------------------------------
    def prune(self) -> None:
        today = self.now().date()
        h_cut = (today - datetime.timedelta(days=self.hourly_days)).isoformat()
        d_cut = (today - datetime.timedelta(days=self.daily_days)).isoformat()
        self.hours = {k: v for k, v in self.hours.items() if k[0] > h_cut}
        self.days = {k: v for k, v in self.days.items() if k[0] > d_cut}
        self.groups = {k: v for k, v in self.groups.items() if k[0] > d_cut[:7]}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "created": self.created,
            "buckets_ms": list(BUCKETS_MS),
            "totals": [[k, m, c.to_json()] for (k, m), c in sorted(self.totals.items())],
            "hours": [[d, h, k, m, c.to_json()] for (d, h, k, m), c in sorted(self.hours.items())],
            "days": [[d, k, m, c.to_json()] for (d, k, m), c in sorted(self.days.items())],
            "groups": [[mo, b, s, n] for (mo, b, s), n in sorted(self.groups.items())],
        }

    def load(self) -> None:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self._set_aside(f"unreadable ({type(exc).__name__})")
            return
        try:
            if doc.get("version") != FILE_VERSION or doc.get("buckets_ms") != list(BUCKETS_MS):
                raise ValueError("another layout")
            totals = {(str(k), str(m)): Cell.from_json(c) for k, m, c in doc["totals"]}
            hours = {(str(d), int(h), str(k), str(m)): Cell.from_json(c) for d, h, k, m, c in doc["hours"]}
            days = {(str(d), str(k), str(m)): Cell.from_json(c) for d, k, m, c in doc["days"]}
            groups = {(str(mo), str(b), str(s)): int(n) for mo, b, s, n in doc.get("groups", [])}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._set_aside(f"not a usage file of this version ({type(exc).__name__})")
            return
        self.created = str(doc.get("created", self.created))
        self.totals, self.hours, self.days, self.groups = totals, hours, days, groups

    def _set_aside(self, why: str) -> None:
        aside = self.path.with_name(self.path.name + ".bad")
        with contextlib.suppress(OSError):
            os.replace(self.path, aside)
        log.warning("usage figures in %s are %s; set aside as %s, counting afresh", self.path, why,
                    aside.name, extra={"reason": "usage_file_bad"})

    def save(self) -> None:
        self.prune()
        atomic_write(self.path, json.dumps(self.to_json(), separators=(",", ":")).encode(), 0o640)
        if self.metrics_file is not None:
            try:
                text = openmetrics(self, classic=self.metrics_format == "prometheus")
                atomic_write(self.metrics_file, text.encode())
            except OSError as exc:
                log.warning("cannot write the metrics file %s: %s", self.metrics_file, exc.strerror,
                            extra={"reason": "metrics_file"})
        self.dirty = False

    async def run(self, every_s: float,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Save every `every_s` while something changed (from a thread: a slow disk must not
        hold up requests); `close()` saves the rest. A kill -9 loses at most `every_s` of uses."""
        first = True  # save at start too: the metrics file exists from the first minute
        while True:
            if self.dirty or first:
                try:
                    await asyncio.to_thread(self.save)
                except OSError as exc:
                    log.warning("cannot save usage figures: %s", exc.strerror, extra={"reason": "usage_save"})
            first = False
            await sleep(every_s)

    def close(self) -> None:
        try:
            self.save()
        except OSError as exc:
            log.warning("cannot save usage figures: %s", exc.strerror, extra={"reason": "usage_save"})


# --- OpenMetrics --------------------------------------------------------------------------------
def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def openmetrics(store: UsageStore, classic: bool = False) -> str:
    """All-time counters in the OpenMetrics text format (ends with `# EOF`), or with `classic`
    in Prometheus' 0.0.4 text format. node_exporter's textfile collector parses the classic
    format: it reads an OpenMetrics file too (`# UNIT` and `# EOF` are comments there) but sees
    its counters as untyped, since OpenMetrics names the family without `_total`."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, unit: str | None = None) -> None:
        if classic and kind == "counter":
            name += "_total"
        lines.append(f"# TYPE {name} {kind}")
        if unit and not classic:
            lines.append(f"# UNIT {name} {unit}")
        lines.append(f"# HELP {name} {help_text}")

    totals = sorted(store.totals.items())
    family("halsvc_operations", "counter", "Device operations finished, by device kind, method and result.")
    for (kind, method), cell in totals:
        op = f'kind="{_label(kind)}",method="{_label(method)}"'
        lines.append(f'halsvc_operations_total{{{op},result="ok"}} {cell.ok}')
        lines.append(f'halsvc_operations_total{{{op},result="error"}} {cell.failed}')
    family("halsvc_operation_failures", "counter", "Failed device operations by reason.")
    for (kind, method), cell in totals:
        op = f'kind="{_label(kind)}",method="{_label(method)}"'
        for reason, n in sorted(cell.failures.items()):
            lines.append(f'halsvc_operation_failures_total{{{op},reason="{_label(reason)}"}} {n}')
    family("halsvc_operation_duration_seconds", "histogram",
           "Time from request to reply of the operations that succeeded.", "seconds")
    for (kind, method), cell in totals:
        op = f'kind="{_label(kind)}",method="{_label(method)}"'
        cum = 0
        for bound, n in zip(BUCKETS_MS, cell.hist, strict=False):
            cum += n
            lines.append(f'halsvc_operation_duration_seconds_bucket{{{op},le="{bound / 1000!r}"}} {cum}')
        lines.append(f'halsvc_operation_duration_seconds_bucket{{{op},le="+Inf"}} {cell.ok}')
        lines.append(f"halsvc_operation_duration_seconds_count{{{op}}} {cell.ok}")
        lines.append(f"halsvc_operation_duration_seconds_sum{{{op}}} {_num(round(cell.sum_ms / 1000, 6))}")
    if store.beneficiaries_enabled:
        family("halsvc_beneficiary_reads", "gauge", "Card reads this month by age band and sex; cells "
               f"under {store.min_cell} are left out.")
        month = store.now().strftime("%Y-%m")
        cells = {(b, s): n for (mo, b, s), n in store.groups.items() if mo == month}
        rows, _hidden = suppress(cells, store.min_cell)
        for row in rows:
            cell_labels = f'age_band="{_label(row["age_band"])}",sex="{_label(row["sex"])}"'
            lines.append(f"halsvc_beneficiary_reads{{{cell_labels}}} {row['count']}")
    if not classic:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def counted_methods(methods: Iterable[tuple[str, str, bool]]) -> dict[str, str]:
    """method -> kind for the operations worth counting: driver methods that act, not the
    read-only look-ups (journals) nor status polls, which say nothing about demand."""
    return {name: kind for name, kind, readonly in methods if not readonly and not name.endswith(".status")}
