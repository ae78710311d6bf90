"""The payment journal on its own: durable before the request leaves, ServiceIDs that never
repeat (not across restarts, not when the clock goes back, not when the high-water mark is
lost), and nothing but amounts, references, ids and states in the file."""

from __future__ import annotations

import pathlib
import sqlite3

from drivers.payment.journal import Journal, restore
from protocols.nexo import messages as m
from protocols.nexo import service_id as sid
from protocols.nexo import transaction as tx

TS = "2026-12-04T09:15:00+07:00"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_attempt_is_on_disk_as_pending_before_its_request_is_returned(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "j.sqlite"
    seen: list[tuple[str, list[str]]] = []

    def on_commit(event: str, row: dict[str, object]) -> None:
        # Another connection (another process, after a crash) already sees the commit.
        other = sqlite3.connect(path)
        seen.append((event, [r[0] for r in other.execute("SELECT state FROM payments")]))
        other.close()

    j = Journal(path, on_commit=on_commit)
    assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert j._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    pid, txn, request = j.begin_payment("key-1", "KIOSK-01", "TERM-01", 150000, "VND", "BILL-1", TS)
    assert seen == [("payment:pending", ["pending"])]
    msg = m.decode(m.encode(request))
    assert msg.category == "Payment" and msg.service_id == txn.service_id
    assert j.unfinished()[0]["id"] == pid
    answer = m.decode(m.encode(m.payment_response(msg.header, "Success", poi_transaction_id="P1",
                                                  poi_timestamp=TS, authorized_amount=150000)))
    txn.on_payment_response(answer)
    j.record(pid, txn)
    assert seen[-1] == ("payment:approved", ["approved"])
    assert j.unfinished() == []
    assert [h["state"] for h in j.history(pid)] == ["pending", "approved"]
    back = restore(j.get(pid) or {})
    assert (back.state, back.poi_transaction_id, back.authorized_amount) == ("approved", "P1", 150000)
    j.close()


def test_service_ids_never_repeat_across_restarts_and_a_clock_that_goes_back(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "j.sqlite"
    clock = Clock(1_796_000_000.0)
    j = Journal(path, clock=clock)
    ids = [j.issue_service_id("TransactionStatus") for _ in range(50)]  # faster than the clock ticks
    j.close()
    clock.now -= 3600  # NTP steps the clock back an hour
    j = Journal(path, clock=clock)
    ids += [j.issue_service_id("Login") for _ in range(5)]
    ids.append(j.begin_payment("k", "S", "P", 1000, "VND", None, TS)[1].service_id)
    assert len(set(ids)) == len(ids)
    counters = [sid.from_text(i) for i in ids]
    assert counters == sorted(counters)
    assert all(1 <= len(i) <= 10 for i in ids)
    # The high-water mark lost: the ids already in the journal still set the floor.
    j._db.execute("DELETE FROM meta")
    assert sid.from_text(j.issue_service_id("Login")) > max(counters)
    j.close()
    # A lost journal: the clock floor puts new ids above those issued before (clock back in step).
    clock.now += 3600 + 1
    fresh = Journal(tmp_path / "new.sqlite", clock=clock)
    assert sid.from_text(fresh.issue_service_id("Login")) > max(counters)
    fresh.close()


def test_the_file_holds_no_card_data(tmp_path: pathlib.Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    cols = {r[1] for t in ("payments", "state_changes", "service_ids", "reconciliations")
            for r in j._db.execute(f"PRAGMA table_info({t})")}
    for word in ("pan", "card", "track", "expiry", "cvv", "holder", "name", "pin"):
        assert not any(word in c.split("_") for c in cols), (word, cols)
    j.close()


def test_a_key_speaks_through_its_newest_attempt(tmp_path: pathlib.Path) -> None:
    j = Journal(tmp_path / "j.sqlite")
    pid1, t1, _ = j.begin_payment("k", "S", "P", 1000, "VND", "B", TS)
    t1.lost()
    j.record(pid1, t1)
    hdr = m.decode(t1.status_request(j.issue_service_id("TransactionStatus", pid1))).header
    t1.on_status_response(m.decode(m.transaction_status_response(hdr, "Failure", "NotFound")))
    j.record(pid1, t1)
    assert t1.state == tx.NOT_CHARGED
    pid2, _, _ = j.begin_payment("k", "S", "P", 1000, "VND", "B", TS)
    assert (j.latest_for_key("k") or {})["id"] == pid2
    assert [a["state"] for a in j.attempts_for_key("k")] == ["not_charged", "pending"]
    assert j.check()
    j.close()
