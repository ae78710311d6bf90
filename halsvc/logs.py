"""Structured, journald-friendly logging that never carries citizen data.

Under systemd (JOURNAL_STREAM set) each line starts with `<priority>` so journald files it at
the right level; elsewhere lines carry a time. `device=` and `reason=` from a record's extra
fields follow the message, so `journalctl -u halsvc | grep reason=paper_out` works. The same
message for the same device is let through a few times a minute, then counted and summarised,
so a flapping cable cannot flood the journal.
"""

from __future__ import annotations

import collections
import datetime
import logging
import os
import sys
import time
from typing import Any

PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class StructuredFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        fields = [f"{k}={getattr(record, k)}" for k in ("device", "reason") if getattr(record, k, None)]
        line = f"{record.name}: {msg}" + (" " + " ".join(fields) if fields else "")
        if record.exc_info and record.levelno >= logging.ERROR:
            # The type and place only: an exception's text may quote device data.
            line += f" exc={record.exc_info[0].__name__ if record.exc_info[0] else '?'}"
        if self.journald:
            return f"<{PRIORITY.get(record.levelno, 6)}>{line}"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname.lower():7} {line}"


class RateLimit(logging.Filter):
    """At most `burst` records per (logger, template, device) per `window` seconds."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.burst, self.window = burst, window
        self._seen: dict[tuple[str, str, str], list[float]] = {}  # key -> [window start, count]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True
        key = (record.name, str(record.msg), str(getattr(record, "device", "")))
        now = time.monotonic()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] > self.window:
            dropped = int(entry[1]) - self.burst if entry and entry[1] > self.burst else 0
            self._seen[key] = [now, 1]
            if len(self._seen) > 1024:  # bounded: forget the oldest windows
                for k in sorted(self._seen, key=lambda k: self._seen[k][0])[:512]:
                    del self._seen[k]
            if dropped:
                record.msg = f"{record.msg} (and {dropped} more like it in the last minute)"
            return True
        entry[1] += 1
        return entry[1] <= self.burst


class LogRing(logging.Filter):
    """The last `size` records that passed the rate limit, kept in memory for `diag.logs` and
    support bundles (technicians get recent logs without journal access). Installed as the
    handler's last filter, so it sees exactly what reaches the journal."""

    def __init__(self, size: int = 1000) -> None:
        super().__init__()
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def filter(self, record: logging.LogRecord) -> bool:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created).astimezone().isoformat(
                timespec="milliseconds"),
            "priority": PRIORITY.get(record.levelno, 6), "level": record.levelname.lower(),
            "logger": record.name, "message": record.getMessage()}
        for key in ("device", "reason"):
            if getattr(record, key, None):
                entry[key] = str(getattr(record, key))
        if record.exc_info and record.exc_info[0]:
            entry["exc"] = record.exc_info[0].__name__
        self.records.append(entry)
        return True


RING = LogRing()


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    handler.addFilter(RateLimit())
    handler.addFilter(RING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("asyncio", "bleak", "dbus_fast"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
