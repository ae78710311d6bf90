"""The payment journal: SQLite in WAL mode with a full fsync on every commit.

Written *before* any message leaves for the terminal, so that after a crash every payment that
might have reached the terminal is known and can be settled with TransactionStatus. It holds
amounts, bill references, ids and states only — never card data, never who paid.

Tables
- `service_ids`: every ServiceID ever issued to the terminal (primary key: never reused), and
  `meta.last_service_counter`, the high-water mark the next id is derived from.
- `payments`: one row per attempt. An idempotency key has at most one attempt that is not
  `not_charged`; a `not_charged` attempt (the terminal never ran it) may be followed by another.
- `state_changes`: every state an attempt went through, in order.
"""

from __future__ import annotations

import contextlib
import datetime
import pathlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

from protocols.nexo import service_id as sid
from protocols.nexo import transaction as tx

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS service_ids (
    service_id TEXT PRIMARY KEY,
    counter INTEGER NOT NULL UNIQUE,
    purpose TEXT NOT NULL,
    payment_id INTEGER,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    service_id TEXT NOT NULL UNIQUE REFERENCES service_ids(service_id),
    transaction_id TEXT NOT NULL,
    sale_id TEXT NOT NULL,
    poi_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    reference TEXT,
    state TEXT NOT NULL,
    authorized_amount INTEGER,
    poi_transaction_id TEXT,
    poi_timestamp TEXT,
    reconciliation_id TEXT,
    error_condition TEXT,
    reversal_service_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_by_key ON payments(idempotency_key);
CREATE INDEX IF NOT EXISTS payments_by_state ON payments(state);
CREATE TABLE IF NOT EXISTS state_changes (
    id INTEGER PRIMARY KEY,
    payment_id INTEGER NOT NULL REFERENCES payments(id),
    state TEXT NOT NULL,
    service_id TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reconciliations (
    id INTEGER PRIMARY KEY,
    service_id TEXT NOT NULL,
    reconciliation_id TEXT,
    totals TEXT NOT NULL,
    at TEXT NOT NULL
);
"""

PAYMENT_COLUMNS = ("id", "idempotency_key", "service_id", "transaction_id", "sale_id", "poi_id", "amount",
                   "currency", "reference", "state", "authorized_amount", "poi_transaction_id",
                   "poi_timestamp", "reconciliation_id", "error_condition", "reversal_service_id",
                   "created_at", "updated_at")

CommitHook = Callable[[str, dict[str, Any]], None]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class Journal:
    """A synchronous journal; each public write is one fsynced transaction.

    `on_commit(event, row)` runs right after each commit (tests use it to stop the process at
    an exact point).
    """

    def __init__(self, path: pathlib.Path, on_commit: CommitHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._on_commit = on_commit
        self._clock = clock
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"journal {path}: WAL mode refused ({mode})")
        # FULL: in WAL mode every commit fsyncs the WAL, so a committed state survives power loss.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _hook(self, event: str, row: dict[str, Any]) -> None:
        if self._on_commit is not None:
            self._on_commit(event, row)

    # --- ServiceIDs -------------------------------------------------------------------------
    def _issue(self, db: sqlite3.Connection, purpose: str, payment_id: int | None) -> str:
        got = db.execute("SELECT value FROM meta WHERE key='last_service_counter'").fetchone()
        last = int(got[0]) if got else None
        # The floor is the journal's own highest id too, should the meta row ever be lost.
        top = db.execute("SELECT MAX(counter) FROM service_ids").fetchone()[0]
        if top is not None and (last is None or top > last):
            last = int(top)
        counter = sid.next_counter(last, int(self._clock() * 100))
        text = sid.to_text(counter)
        db.execute("INSERT INTO service_ids(service_id, counter, purpose, payment_id, issued_at) "
                   "VALUES (?,?,?,?,?)", (text, counter, purpose, payment_id, _now()))
        db.execute("INSERT INTO meta(key, value) VALUES ('last_service_counter', ?) "
                   "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(counter),))
        return text

    def issue_service_id(self, purpose: str, payment_id: int | None = None) -> str:
        """A fresh ServiceID, durably recorded before the caller may use it."""
        with self._tx() as db:
            text = self._issue(db, purpose, payment_id)
        self._hook("service_id", {"service_id": text, "purpose": purpose, "payment_id": payment_id})
        return text

    # --- payments ---------------------------------------------------------------------------
    def begin_payment(self, key: str, sale_id: str, poi_id: str, amount: int, currency: str,
                      reference: str | None,
                      timestamp: str) -> tuple[int, tx.PaymentTransaction, dict[str, Any]]:
        """Create an attempt in state `pending` and return (id, transaction, PaymentRequest).

        When this returns, the journal already says the request may have left.
        """
        with self._tx() as db:
            service_id = self._issue(db, "Payment", None)
            txn = tx.PaymentTransaction(sale_id, poi_id, service_id, amount, currency, reference)
            request = txn.start(timestamp)
            now = _now()
            cur = db.execute(
                "INSERT INTO payments(idempotency_key, service_id, transaction_id, sale_id, poi_id, amount, "
                "currency, reference, state, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (key, service_id, txn.transaction_id, sale_id, poi_id, amount, currency, reference, txn.state,
                 now, now))
            pid = int(cur.lastrowid or 0)
            db.execute("UPDATE service_ids SET payment_id=? WHERE service_id=?", (pid, service_id))
            db.execute("INSERT INTO state_changes(payment_id, state, service_id, at) VALUES (?,?,?,?)",
                       (pid, txn.state, service_id, now))
        self._hook("payment:" + txn.state, {"id": pid, "service_id": service_id, "idempotency_key": key})
        return pid, txn, request

    def record(self, pid: int, txn: tx.PaymentTransaction, service_id: str | None = None) -> None:
        """Write the transaction's current state (and fields) as one state change."""
        snap = txn.snapshot()
        with self._tx() as db:
            now = _now()
            db.execute(
                "UPDATE payments SET state=?, authorized_amount=?, poi_transaction_id=?, poi_timestamp=?, "
                "reconciliation_id=?, error_condition=?, reversal_service_id=?, updated_at=? WHERE id=?",
                (snap["state"], snap["authorized_amount"], snap["poi_transaction_id"], snap["poi_timestamp"],
                 snap["reconciliation_id"], snap["error_condition"], snap["reversal_service_id"], now, pid))
            db.execute("INSERT INTO state_changes(payment_id, state, service_id, at) VALUES (?,?,?,?)",
                       (pid, snap["state"], service_id, now))
        self._hook("payment:" + snap["state"], {"id": pid, "service_id": txn.service_id})

    def record_reconciliation(self, service_id: str, reconciliation_id: str | None, totals: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO reconciliations(service_id, reconciliation_id, totals, at) "
                       "VALUES (?,?,?,?)",
                       (service_id, reconciliation_id, totals, _now()))

    # --- reading ----------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def get(self, pid: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM payments WHERE id=?", (pid,))
        return rows[0] if rows else None

    def latest_for_key(self, key: str) -> dict[str, Any] | None:
        """The attempt that speaks for an idempotency key: the newest one."""
        rows = self._rows("SELECT * FROM payments WHERE idempotency_key=? ORDER BY id DESC LIMIT 1", (key,))
        return rows[0] if rows else None

    def by_terminal_id(self, poi_transaction_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM payments WHERE poi_transaction_id=? ORDER BY id DESC LIMIT 1",
                          (poi_transaction_id,))
        return rows[0] if rows else None

    def unfinished(self) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(tx.UNFINISHED))
        return self._rows(f"SELECT * FROM payments WHERE state IN ({marks}) ORDER BY id",
                          tuple(tx.UNFINISHED))

    def entries(self, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
        if before_id is None:
            return self._rows("SELECT * FROM payments ORDER BY id DESC LIMIT ?", (limit,))
        return self._rows("SELECT * FROM payments WHERE id<? ORDER BY id DESC LIMIT ?", (before_id, limit))

    def history(self, pid: int) -> list[dict[str, Any]]:
        return self._rows("SELECT state, service_id, at FROM state_changes WHERE payment_id=? ORDER BY id",
                          (pid,))

    def all_payments(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM payments ORDER BY id")

    def service_ids(self) -> list[str]:
        return [r["service_id"] for r in self._rows("SELECT service_id FROM service_ids ORDER BY counter")]

    def attempts_for_key(self, key: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM payments WHERE idempotency_key=? ORDER BY id", (key,))

    def service_id_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM service_ids").fetchone()[0])

    def check(self) -> bool:
        """SQLite's own consistency check of the file."""
        try:
            return bool(self._db.execute("PRAGMA quick_check").fetchone()[0] == "ok")
        except sqlite3.Error:
            return False

    def totals_for_batch(self, reconciliation_id: str) -> dict[str, int]:
        """What the journal says the terminal's batch holds: every approval in it (reversed ones
        too, as the terminal counts them as debits) and the reversals."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(authorized_amount),0) FROM payments "
            "WHERE state IN ('approved','reversing','reversed') AND reconciliation_id=?",
            (reconciliation_id,)).fetchone()
        rev = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(authorized_amount),0) FROM payments "
            "WHERE state='reversed' AND reconciliation_id=?", (reconciliation_id,)).fetchone()
        return {"approved_count": row[0], "approved_amount": row[1], "reversed_count": rev[0],
                "reversed_amount": rev[1]}

    def totals_since(self, after_id: int = 0) -> dict[str, int]:
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(authorized_amount),0) FROM payments "
            "WHERE state IN ('approved','reversing') AND id>?", (after_id,)).fetchone()
        rev = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(authorized_amount),0) FROM payments "
            "WHERE state='reversed' AND id>?",
            (after_id,)).fetchone()
        return {"approved_count": row[0], "approved_amount": row[1], "reversed_count": rev[0],
                "reversed_amount": rev[1]}


def restore(row: dict[str, Any]) -> tx.PaymentTransaction:
    return tx.PaymentTransaction.restore(row["sale_id"], row["poi_id"], row)
