"""The durable job-id store: a repeated job id never prints twice, even after a restart.

One SQLite file under the driver's state dir, WAL with synchronous=FULL, written *before* the
first byte goes to the printer and again before the answer goes to the client. It holds the job
id, its outcome and times — never the receipt's text, which may carry citizen data.
"""

from __future__ import annotations

import pathlib
import sqlite3
import time
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id   TEXT PRIMARY KEY,
    state    TEXT NOT NULL,          -- printing | done
    status   TEXT,                   -- printed | failed | unknown
    reason   TEXT,
    started  REAL NOT NULL,
    finished REAL
)
"""


class JobStore:
    def __init__(self, path: pathlib.Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)
        # A job still "printing" at start-up was cut short by a crash: whether paper came out is
        # unknown, so it must not print again under the same id.
        self._db.execute("UPDATE jobs SET state='done', status='unknown', reason='interrupted', "
                         "finished=? WHERE state='printing'", (time.time(),))

    def outcome(self, job_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT state, status, reason FROM jobs WHERE job_id=?",
                               (job_id,)).fetchone()
        if row is None:
            return None
        state, status, reason = row
        if state == "printing":
            return {"job_id": job_id, "status": "printing", "reason": None}
        return {"job_id": job_id, "status": status, "reason": reason}

    def last(self) -> dict[str, Any] | None:
        """The most recent job: id, outcome and times (for `halctl printer status`)."""
        row = self._db.execute("SELECT job_id, state, status, reason, started, finished FROM jobs "
                               "ORDER BY started DESC LIMIT 1").fetchone()
        if row is None:
            return None
        job_id, state, status, reason, started, finished = row
        return {"job_id": job_id, "status": "printing" if state == "printing" else status,
                "reason": reason, "started": started, "finished": finished}

    def begin(self, job_id: str) -> None:
        self._db.execute("INSERT INTO jobs (job_id, state, started) VALUES (?, 'printing', ?)",
                         (job_id, time.time()))

    def finish(self, job_id: str, status: str, reason: str | None) -> None:
        self._db.execute("UPDATE jobs SET state='done', status=?, reason=?, finished=? WHERE job_id=?",
                         (status, reason, time.time(), job_id))

    def forget(self, job_id: str) -> None:
        """Nothing reached the printer: the same id may print later."""
        self._db.execute("DELETE FROM jobs WHERE job_id=?", (job_id,))

    def prune(self, keep_seconds: float) -> int:
        cur = self._db.execute("DELETE FROM jobs WHERE state='done' AND finished < ?",
                               (time.time() - keep_seconds,))
        return cur.rowcount

    def close(self) -> None:
        self._db.close()
