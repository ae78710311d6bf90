"""The nexo payment terminal (kind `payment`, driver `payment`).

Money rules, in the order they bite:
- Journal first. Every attempt and every state change is committed to the SQLite journal
  (WAL, synchronous=FULL) *before* the message that could move money leaves, so a crash at any
  point leaves an entry that says what may have happened.
- An attempt that may have reached the terminal is settled only by the terminal: its own
  PaymentResponse, or TransactionStatus (found → that answer; NotFound → never charged;
  InProgress → ask again later). Nothing is guessed from silence.
- An idempotency key has at most one attempt that is not `not_charged`: the same key again
  returns that attempt's outcome (waiting for it if it is unsettled), never a second charge.

Attempts are driven to a final state by one task each (`_runs`), which outlives the RPC that
started it, the link (it waits for the reconnect) and the caller's patience; start-up recovery
starts one for every unfinished journal entry. The RPC just waits on it.

Display prompts the terminal shows ("PRESENT CARD", "ENTER PIN") go to the paying caller only,
as `payment.progress` events; broadcast `payment.status` carries link state and counts, never
amounts or references.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import io
import json
import logging
import os
import pathlib
import signal
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from drivers.base import DeviceState, Driver, HalError, OperationContext, rpc_method
from drivers.payment.journal import Journal, restore
from drivers.payment.link import FramedTcpLink, HttpLink, LinkClosed
from protocols import vietqr
from protocols.errors import ProtocolError
from protocols.nexo import messages as m
from protocols.nexo import transaction as tx

log = logging.getLogger("halsvc.driver.payment")

INVALID_PARAMS = -32602
# Test hook: `HALSVC_PAYMENT_KILL_AT=point[@n]` makes the daemon SIGKILL itself the n-th time it
# passes `point` (a journal commit such as `commit:payment:pending`, or `sent:Payment`,
# `answer:Payment`, `sent:TransactionStatus`…), so crash tests hit exact places.
KILL_ENV = "HALSVC_PAYMENT_KILL_AT"

OPTIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["host", "port"],
    "additionalProperties": False,
    "properties": {
        "driver": {"type": "string", "description": "always \"payment\""},
        "host": {"type": "string", "minLength": 1, "description": "the terminal's address on the LAN"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                 "description": "TCP port of its nexo service"},
        "transport": {"type": "string", "enum": ["tcp", "http", "https"],
                      "description": "tcp: 4-byte length-prefixed JSON on one connection, with display "
                                     "prompts (default); http/https: POST per request (Adyen-style), "
                                     "no prompts"},
        "path": {"type": "string", "pattern": "^/", "description": "HTTP path (default /nexo)"},
        "tls_ca_file": {"type": "string", "minLength": 1,
                        "description": "https: the CA that signed the terminal's certificate"},
        "tls_server_name": {"type": "string", "minLength": 1,
                            "description": "https: the name in the terminal's certificate"},
        "poi_id": {"type": "string", "minLength": 1, "maxLength": 32,
                   "description": "the terminal's POIID"},
        "sale_id": {"type": "string", "minLength": 1, "maxLength": 32,
                    "description": "this kiosk's SaleID"},
        "response_timeout_s": {"type": "number", "exclusiveMinimum": 0,
                               "description": "silence (no answer, no prompt) after which a payment "
                                              "is asked about with TransactionStatus (default 130: "
                                              "terminals expire requests after about 120 s)"},
        "request_timeout_s": {"type": "number", "exclusiveMinimum": 0,
                              "description": "wait for the answer to a short request (status, login, "
                                             "reversal, reconciliation); default 10"},
        "status_interval_s": {"type": "number", "exclusiveMinimum": 0,
                              "description": "pause between TransactionStatus questions while the "
                                             "terminal says InProgress (default 2)"},
        "pay_timeout_s": {"type": "number", "exclusiveMinimum": 0,
                          "description": "how long payment.pay waits for an outcome when the "
                                         "request has no timeout_ms (default 180); the attempt "
                                         "carries on and the same key returns it later"},
        "connect_timeout_s": {"type": "number", "exclusiveMinimum": 0,
                              "description": "TCP connect and Login timeout (default 5)"},
    },
}

KEY = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[ -~]+$",
       "description": "The client's idempotency key: the same key never charges twice."}

RESULT_PROPS: dict[str, Any] = {
    "status": {"type": "string",
               "enum": ["approved", "declined", "aborted", "not_charged", "reversed", "reversing",
                        "pending", "aborting", "unknown"],
               "description": "approved | declined | aborted are final outcomes of a payment"},
    "idempotency_key": {"type": "string"},
    "amount": {"type": "integer"},
    "currency": {"type": "string"},
    "reference": {"type": ["string", "null"]},
    "authorized_amount": {"type": "integer", "description": "what was charged (0 unless approved)"},
    "terminal_transaction_id": {"type": ["string", "null"], "description": "POITransactionID"},
    "reconciliation_id": {"type": ["string", "null"], "description": "the terminal's batch"},
    "service_id": {"type": "string", "description": "nexo ServiceID of the attempt"},
    "error_condition": {"type": ["string", "null"], "description": "nexo ErrorCondition, if any"},
    "repeated": {"type": "boolean", "description": "the key was seen before: this is the first outcome"},
}
PAY_RESULT: dict[str, Any] = {"type": "object",
                              "required": ["status", "authorized_amount"],
                              "properties": RESULT_PROPS}

PAY_PARAMS: dict[str, Any] = {
    "type": "object",
    "required": ["amount", "idempotency_key"],
    "additionalProperties": False,
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999,
                   "description": "whole VND"},
        "currency": {"type": "string", "enum": ["VND"], "description": "only VND (default)"},
        "reference": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[ -~]+$",
                      "description": "the bill id (printable ASCII), sent as SaleReferenceID"},
        "idempotency_key": KEY,
    },
}
KEY_PARAMS: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "required": ["idempotency_key"], "properties": {"idempotency_key": KEY}}

VIETQR_PARAMS: dict[str, Any] = {
    "type": "object",
    "required": ["bin", "account"],
    "additionalProperties": False,
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "maximum": 9_999_999_999_999,
                   "description": "whole VND; without it the code is static"},
        "bin": {"type": "string", "pattern": "^[0-9]{6}$", "description": "the bank's NAPAS BIN"},
        "account": {"type": "string", "pattern": "^[A-Za-z0-9]{1,19}$", "description": "account number"},
        "bill_number": {"type": "string", "minLength": 1, "maxLength": 25, "pattern": "^[A-Za-z0-9 ._-]+$"},
        "purpose": {"type": "string", "minLength": 1, "maxLength": 25, "pattern": "^[A-Za-z0-9 ._-]+$"},
        "to_card": {"type": "boolean", "description": "transfer to a card number (QRIBFTTC)"},
        "png": {"type": "boolean", "description": "include the PNG (default true)"},
        "box_size": {"type": "integer", "minimum": 1, "maximum": 20, "description": "PNG pixels per module"},
    },
}


def _local_now() -> str:
    tz = datetime.timezone(datetime.timedelta(hours=7))  # the stations are in Ho Chi Minh City
    return datetime.datetime.now(tz).isoformat(timespec="seconds")


def _result(row_or_txn: Any, key: str, repeated: bool) -> dict[str, Any]:
    txn = row_or_txn if isinstance(row_or_txn, tx.PaymentTransaction) else restore(row_or_txn)
    out = txn.result()
    state = out["status"]
    out["status"] = state
    out["authorized_amount"] = int(out["authorized_amount"] or 0)
    out.update(idempotency_key=key, reference=txn.reference, repeated=repeated)
    return out


class _Kill:
    """The crash-test hook (see KILL_ENV); does nothing unless the variable is set."""

    def __init__(self) -> None:
        spec = os.environ.get(KILL_ENV, "")
        point, _, nth = spec.partition("@")
        self.point = point
        self.left = int(nth or 1)

    def __call__(self, point: str) -> None:
        if self.point and point == self.point:
            self.left -= 1
            if self.left <= 0:
                os.kill(os.getpid(), signal.SIGKILL)


class PaymentDriver(Driver):
    kind: ClassVar[str] = "payment"
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA
    selftest_levels: ClassVar[tuple[str, ...]] = ("internal",)
    backoff_cap: ClassVar[float] = 5.0
    hotplug_option: ClassVar[str] = "host"

    def __init__(self, device_id: str, options: Mapping[str, Any], events: Any) -> None:
        super().__init__(device_id, options, events)
        self.sale_id = str(self.options.get("sale_id", "KIOSK-01"))
        self.poi_id = str(self.options.get("poi_id", "TERM-01"))
        self._journal: Journal | None = None
        self._link: FramedTcpLink | HttpLink | None = None
        self._up = asyncio.Event()
        self._waiters: dict[str, asyncio.Future[m.Message]] = {}
        self._activity = 0.0  # loop time of the last message from the terminal
        self._txns: dict[int, tx.PaymentTransaction] = {}  # attempts being driven, by journal id
        self._runs: dict[int, asyncio.Task[tx.PaymentTransaction]] = {}
        self._keys: dict[str, asyncio.Lock] = {}
        self._listeners: dict[int, list[OperationContext]] = {}
        self._on_terminal: int | None = None  # the attempt whose PaymentRequest the terminal may be running
        self._late: dict[int, asyncio.Future[m.Message]] = {}  # PaymentResponses that may still come
        self._busy_count = 0
        self._kill = _Kill()

    def _opt(self, name: str, default: float) -> float:
        return float(self.options.get(name, default))

    # --- journal ----------------------------------------------------------------------------
    @property
    def journal(self) -> Journal:
        if self._journal is None:
            base = self.state_dir or pathlib.Path(".")
            base.mkdir(parents=True, exist_ok=True)
            self._journal = Journal(base / "payment-journal.sqlite",
                                    on_commit=lambda event, _row: self._kill("commit:" + event))
        return self._journal

    def _record(self, pid: int, txn: tx.PaymentTransaction, service_id: str | None = None) -> None:
        self.journal.record(pid, txn, service_id)
        self._publish()

    def _publish(self) -> None:
        self.set_state(None, link="up" if self._up.is_set() else "down",
                       unfinished=len(self.journal.unfinished()))

    # --- link -------------------------------------------------------------------------------
    async def connect(self) -> None:
        self.journal  # noqa: B018 - opened (and its schema made) before anything is sent
        link = self._make_link()
        try:
            await link.open()
        except (OSError, TimeoutError) as exc:
            raise HalError("no_device", f"terminal unreachable: {type(exc).__name__}",
                           code=-32002) from None
        self._link = link
        self._up.set()
        try:
            sid = self.journal.issue_service_id("Login")
            answer = await self._request(m.login_request(sid, self.sale_id, self.poi_id, _local_now()),
                                         sid, self._opt("connect_timeout_s", 5.0))
            if answer.result == m.FAILURE:
                raise HalError("hardware_error", f"the terminal refused Login ({answer.error_condition})")
        except (LinkClosed, TimeoutError, ProtocolError):
            self._up.clear()
            raise HalError("no_device", "the terminal does not answer Login", code=-32002) from None
        self._publish()
        self._recover()

    def _make_link(self) -> FramedTcpLink | HttpLink:
        host, port = str(self.options["host"]), int(self.options["port"])
        timeout = self._opt("connect_timeout_s", 5.0)
        transport = str(self.options.get("transport", "tcp"))
        if transport == "tcp":
            return FramedTcpLink(host, port, self._on_message, self._on_closed, timeout)
        tls = None
        if transport == "https":
            tls = ssl.create_default_context(cafile=self.options.get("tls_ca_file"))
        return HttpLink(host, port, self._on_message, self._on_closed, timeout,
                        str(self.options.get("path", "/nexo")), tls, self.options.get("tls_server_name"),
                        answer_timeout=self._opt("response_timeout_s", 130.0) + 30.0)

    async def disconnect(self) -> None:
        self._up.clear()
        link, self._link = self._link, None
        self._fail_waiters("disconnected")
        if link is not None:
            await link.close()
        if self._journal is not None:
            self._publish()

    def _on_closed(self, why: str) -> None:
        self._up.clear()
        self._fail_waiters(why)
        self.link_lost(why)

    def _fail_waiters(self, why: str) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(LinkClosed(why))
                fut.exception()  # retrieved here: a waiter nobody awaits must not warn
        self._waiters.clear()

    def _on_message(self, msg: m.Message) -> None:
        self._activity = asyncio.get_running_loop().time()
        if msg.is_request:
            if msg.category == "Display":
                self._display(msg)
            return  # other device requests (Input, Print) are not used by an unattended kiosk
        fut = self._waiters.pop(msg.service_id, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)
        else:
            log.info("%s: unexpected %s answer", self.device_id, msg.category,
                     extra={"device": self.device_id, "reason": "unexpected_answer"})

    def _display(self, msg: m.Message) -> None:
        try:
            texts = m.display_texts(msg.body)
        except ProtocolError:
            return
        pid = self._on_terminal
        for ctx in self._listeners.get(pid, []) if pid is not None else []:
            for text in texts:
                ctx.progress("payment.progress", {"phase": "prompt", "text": text})

    def _expect(self, service_id: str) -> asyncio.Future[m.Message]:
        fut: asyncio.Future[m.Message] = asyncio.get_running_loop().create_future()
        self._waiters[service_id] = fut
        return fut

    async def _send(self, message: Mapping[str, Any], category: str) -> None:
        link = self._link
        if link is None or not self._up.is_set():
            raise LinkClosed("not connected")
        await link.send(message)
        self._activity = asyncio.get_running_loop().time()
        self._kill("sent:" + category)

    async def _request(self, message: Mapping[str, Any], service_id: str, wait_s: float) -> m.Message:
        """Send a request that has its own answer and wait for it (LinkClosed / TimeoutError)."""
        category = message[m.REQUEST]["MessageHeader"]["MessageCategory"]
        fut = self._expect(service_id)
        try:
            await self._send(message, category)
            async with asyncio.timeout(wait_s):
                msg = await asyncio.shield(fut)
        finally:
            if self._waiters.get(service_id) is fut:
                del self._waiters[service_id]
        self._kill("answer:" + category)
        return msg

    # --- driving an attempt to its end ------------------------------------------------------
    def _recover(self) -> None:
        """Start settling every unfinished journal entry (after a crash, or a link that went)."""
        for row in self.journal.unfinished():
            pid = int(row["id"])
            if pid not in self._runs:
                self._txns[pid] = restore(row)
                self._start_run(pid, None)

    def _start_run(self, pid: int, request: Mapping[str, Any] | None) -> asyncio.Task[tx.PaymentTransaction]:
        task = asyncio.create_task(self._drive(pid, request), name=f"{self.device_id}:attempt-{pid}")
        self._runs[pid] = task

        def done(t: asyncio.Task[tx.PaymentTransaction]) -> None:
            if self._runs.get(pid) is t:
                del self._runs[pid]
                self._txns.pop(pid, None)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s: attempt %d failed: %s", self.device_id, pid, type(t.exception()).__name__,
                          extra={"device": self.device_id, "reason": "internal_error"})

        task.add_done_callback(done)
        return task

    async def _drive(self, pid: int, request: Mapping[str, Any] | None) -> tx.PaymentTransaction:
        txn = self._txns[pid]
        if request is not None and request[m.REQUEST]["MessageHeader"]["MessageCategory"] == "Reversal":
            await self._exchange_reversal(pid, txn, request)
        elif request is not None:
            await self._exchange_payment(pid, txn, request)
        try:
            while not txn.finished:
                await self._settle(pid, txn)
        finally:
            late = self._late.pop(pid, None)
            if late is not None and self._waiters.get(txn.service_id) is late:
                del self._waiters[txn.service_id]
            if self._on_terminal == pid:
                self._on_terminal = None
        self._publish()
        return txn

    async def _exchange_payment(self, pid: int, txn: tx.PaymentTransaction,
                                request: Mapping[str, Any]) -> None:
        """Send the (already journalled) PaymentRequest and apply its answer, if one comes."""
        self._on_terminal = pid
        fut = self._expect(txn.service_id)
        loop = asyncio.get_running_loop()
        silence = self._opt("response_timeout_s", 130.0)
        try:
            await self._send(request, "Payment")
            for ctx in self._listeners.get(pid, []):
                ctx.progress("payment.progress", {"phase": "sent"})
            while not fut.done():  # every prompt from the terminal restarts the silence timer
                left = self._activity + silence - loop.time()
                if left <= 0:
                    break
                await asyncio.wait({fut}, timeout=left)
            if not fut.done():
                raise TimeoutError
            msg = fut.result()
        except (LinkClosed, TimeoutError):
            if not fut.done():
                self._late[pid] = fut  # the link is up but silent: its answer may still come
            txn.lost()  # it may have run: only the terminal can say
            self._record(pid, txn)
            return
        self._kill("answer:Payment")
        self._apply_payment(pid, txn, msg)

    async def _exchange_reversal(self, pid: int, txn: tx.PaymentTransaction,
                                 request: Mapping[str, Any]) -> None:
        """Send the (already journalled) ReversalRequest; without a usable answer the attempt
        stays `reversing` and TransactionStatus settles it (never a blind resend)."""
        sid = str(txn.reversal_service_id)
        try:
            answer = await self._request(request, sid, self._opt("request_timeout_s", 10.0))
            txn.on_reversal_response(answer)
        except (LinkClosed, TimeoutError, ProtocolError):
            return
        self._record(pid, txn, sid)

    def _apply_payment(self, pid: int, txn: tx.PaymentTransaction, msg: m.Message) -> None:
        before = txn.state
        try:
            txn.on_payment_response(msg)
        except ProtocolError as exc:  # a garbled or contradictory answer settles nothing
            log.warning("%s: attempt %d: unusable PaymentResponse (%s)", self.device_id, pid, exc,
                        extra={"device": self.device_id, "reason": "bad_answer"})
            txn.lost()
        if txn.state != before or txn.finished:
            self._record(pid, txn)

    async def _settle(self, pid: int, txn: tx.PaymentTransaction) -> None:
        """One round of TransactionStatus for an unfinished attempt; pauses when the terminal
        cannot say yet. A late PaymentResponse on a link that stayed up is taken too."""
        late = self._late.get(pid)
        if late is not None and late.done():
            del self._late[pid]
            if not late.cancelled() and late.exception() is None and txn.state in (
                    tx.PENDING, tx.ABORTING, tx.UNKNOWN):
                self._apply_payment(pid, txn, late.result())
                return
        await self._up.wait()
        for ctx in self._listeners.get(pid, []):
            ctx.progress("payment.progress", {"phase": "asking_terminal"})
        sid = self.journal.issue_service_id("TransactionStatus", pid)
        request = txn.status_request(sid)
        before = txn.state
        try:
            answer = await self._request(request, sid, self._opt("request_timeout_s", 10.0))
            outcome = txn.on_status_response(answer)
        except (LinkClosed, TimeoutError, ProtocolError):
            outcome = "unknown"
        if txn.state != before or txn.finished:
            self._record(pid, txn, sid)
        if not txn.finished:
            log.info("%s: attempt %d still %s (%s); asking again", self.device_id, pid, txn.state, outcome,
                     extra={"device": self.device_id, "reason": "payment_unsettled"})
            pause = self._opt("status_interval_s", 2.0)
            late = self._late.get(pid)
            if late is not None:
                await asyncio.wait({late}, timeout=pause)  # a late answer ends the pause
            else:
                await asyncio.sleep(pause)

    async def _outcome(self, pid: int, ctx: OperationContext, default_s: float) -> tx.PaymentTransaction:
        """Wait for the attempt's task (never cancelling it); `timeout` names what to do next."""
        task = self._runs.get(pid)
        if task is None:
            row = self.journal.get(pid)
            assert row is not None
            return restore(row)
        self._listeners.setdefault(pid, []).append(ctx)
        remaining = ctx.remaining()
        # End a little before the daemon's own deadline, so the caller hears `timeout` with the
        # attempt's state. The attempt itself goes on either way.
        budget = default_s if remaining is None else max(0.0, remaining - 0.2)
        try:
            async with asyncio.timeout(budget):
                return await asyncio.shield(task)
        except TimeoutError:
            txn = self._txns.get(pid)
            raise HalError("timeout", "no outcome from the terminal yet; call again with the same "
                           "idempotency_key for it", status=txn.state if txn else "unknown") from None
        finally:
            listeners = self._listeners.get(pid, [])
            with contextlib.suppress(ValueError):
                listeners.remove(ctx)
            if not listeners:
                self._listeners.pop(pid, None)

    @contextlib.asynccontextmanager
    async def _key(self, key: str) -> AsyncIterator[None]:
        lock = self._keys.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._keys.get(key) is lock:
                del self._keys[key]

    @contextlib.asynccontextmanager
    async def _shown_busy(self) -> AsyncIterator[None]:
        """`busy` while a payment runs. Not `operation()`: a lost link must not fail a payment,
        whose attempt carries on and is settled after the reconnect."""
        self._busy_count += 1
        if self._busy_count == 1 and self.state == DeviceState.ONLINE:
            self.set_state(DeviceState.BUSY)
        try:
            yield
        finally:
            self._busy_count -= 1
            if self._busy_count == 0 and self.state == DeviceState.BUSY:
                self.set_state(DeviceState.ONLINE)

    # --- RPC --------------------------------------------------------------------------------
    @rpc_method("payment.pay", "Charge a card on the terminal once per idempotency_key "
                "(the same key again returns the first outcome, also after a crash).",
                params=PAY_PARAMS, result=PAY_RESULT, long=True, citizen_data=True, exclusive=False,
                events=("payment.progress",),
                errors=("device_offline", "terminal_busy", "terminal_unreachable", "state_conflict",
                        "timeout", "cancelled"))
    async def pay(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        key = str(params["idempotency_key"])
        amount = int(params["amount"])
        currency = str(params.get("currency", "VND"))
        reference = params.get("reference")
        default_s = self._opt("pay_timeout_s", 180.0)
        async with self._key(key):
            row = self.journal.latest_for_key(key)
            if row is not None and (row["amount"] != amount or row["reference"] != reference):
                raise HalError("state_conflict", "this idempotency_key was used for another payment",
                               status=row["state"])
            if row is not None and row["state"] != tx.NOT_CHARGED:
                pid = int(row["id"])
                if row["state"] in tx.UNFINISHED and pid not in self._runs:
                    self._txns[pid] = restore(row)  # settle it now (it waits for the link)
                    self._start_run(pid, None)
                txn = await self._outcome(pid, ctx, default_s)
                if txn.state != tx.NOT_CHARGED:
                    return _result(txn, key, repeated=True)
            # Nothing charged under this key: a new attempt.
            self.require_online()
            if self._on_terminal is not None or any(
                    t.state in (tx.PENDING, tx.ABORTING, tx.UNKNOWN) for t in self._txns.values()):
                raise HalError("terminal_busy", "another payment is running on the terminal")
            async with self._shown_busy():
                pid, txn, request = self.journal.begin_payment(key, self.sale_id, self.poi_id, amount,
                                                               currency, reference, _local_now())
                self._txns[pid] = txn
                self._start_run(pid, request)
                # hal.cancel or a lost client connection ends this wait, not the payment (the
                # cardholder may be typing the PIN): the same key returns its outcome, and
                # payment.abort is what stops it on the terminal.
                txn = await self._outcome(pid, ctx, default_s)
        if txn.state == tx.NOT_CHARGED:
            cond = txn.error_condition
            if cond == "Busy":
                raise HalError("terminal_busy", "the terminal is busy; nothing was charged", charged=False)
            raise HalError("terminal_unreachable", f"the terminal did not run the payment ({cond}); "
                           "nothing was charged", charged=False, error_condition=cond)
        for_ctx = _result(txn, key, repeated=False)
        ctx.progress("payment.progress", {"phase": "done", "status": for_ctx["status"]})
        return for_ctx

    async def _abort(self, pid: int) -> str:
        txn = self._txns.get(pid)
        if txn is None or txn.state not in (tx.PENDING, tx.UNKNOWN, tx.ABORTING):
            return txn.state if txn else "unknown"
        sid = self.journal.issue_service_id("Abort", pid)
        request = txn.abort(sid)
        self._record(pid, txn, sid)  # `aborting` is journalled before the AbortRequest leaves
        with contextlib.suppress(LinkClosed):
            await self._send(request, "Abort")  # answered only by the payment's own response
        return txn.state

    @rpc_method("payment.abort", "Ask the terminal to stop a payment before approval; its outcome "
                "still comes from payment.pay (or the same key again).",
                params={"type": "object", "additionalProperties": False,
                        "properties": {"idempotency_key": KEY}},
                result={"type": "object", "required": ["status"], "properties": {
                    "status": RESULT_PROPS["status"],
                    "requested": {"type": "boolean", "description": "an AbortRequest was sent"}}},
                exclusive=False, errors=("not_found", "state_conflict"))
    async def abort(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        if "idempotency_key" in params:
            row = self.journal.latest_for_key(str(params["idempotency_key"]))
            if row is None:
                raise HalError("not_found", "no payment with this idempotency_key")
            pid = int(row["id"])
            state = str(row["state"])
        else:
            if self._on_terminal is None:
                raise HalError("not_found", "no payment is running")
            pid = self._on_terminal
            state = self._txns[pid].state if pid in self._txns else "unknown"
        if state in (tx.APPROVED, tx.REVERSING, tx.REVERSED):
            raise HalError("state_conflict", "the payment is approved: use payment.reverse", status=state)
        if pid not in self._txns or state not in (tx.PENDING, tx.UNKNOWN, tx.ABORTING):
            return {"status": state, "requested": False}
        return {"status": await self._abort(pid), "requested": True}

    @rpc_method("payment.status", "A payment's state by idempotency_key, or the terminal's link "
                "and unsettled attempts.",
                params={"type": "object", "additionalProperties": False,
                        "properties": {"idempotency_key": KEY}},
                result={"type": "object"}, readonly=True, exclusive=False, citizen_data=True,
                errors=("not_found",))
    async def payment_status(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        if "idempotency_key" in params:
            key = str(params["idempotency_key"])
            row = self.journal.latest_for_key(key)
            if row is None:
                raise HalError("not_found", "no payment with this idempotency_key")
            pid = int(row["id"])
            txn = self._txns.get(pid)
            out = _result(txn if txn is not None else row, key, repeated=True)
            out["settling"] = pid in self._runs
            return out
        return {**self.status(), "link": "up" if self._up.is_set() else "down",
                "unfinished": len(self.journal.unfinished()), "running": self._on_terminal is not None}

    @rpc_method("payment.reverse", "Reverse (refund) an approved payment, once.",
                params=KEY_PARAMS, result=PAY_RESULT, long=True, citizen_data=True, exclusive=False,
                errors=("device_offline", "not_found", "state_conflict", "timeout"),
                events=("payment.progress",))
    async def reverse(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        key = str(params["idempotency_key"])
        default_s = self._opt("pay_timeout_s", 180.0)
        async with self._key(key):
            row = self.journal.latest_for_key(key)
            if row is None:
                raise HalError("not_found", "no payment with this idempotency_key")
            pid = int(row["id"])
            if row["state"] in tx.UNFINISHED and pid not in self._runs:
                self._txns[pid] = restore(row)  # e.g. a reversal whose caller went away
                self._start_run(pid, None)
            if pid in self._runs:  # unsettled (or a reversal already under way): its end first
                await self._outcome(pid, ctx, default_s)
                row = self.journal.get(pid)
                assert row is not None
            if row["state"] == tx.REVERSED:
                return _result(row, key, repeated=True)
            if row["state"] != tx.APPROVED:
                raise HalError("state_conflict", f"the payment is {row['state']}: nothing to reverse",
                               status=row["state"])
            self.require_online()
            txn = restore(row)
            sid = self.journal.issue_service_id("Reversal", pid)
            request = txn.reverse(sid, _local_now())
            self._record(pid, txn, sid)  # `reversing` before the ReversalRequest leaves
            self._txns[pid] = txn
            self._start_run(pid, request)  # outlives this call, like a payment's
            txn = await self._outcome(pid, ctx, default_s)
        if txn.state != tx.REVERSED:
            raise HalError("state_conflict", f"the terminal refused the reversal ({txn.error_condition})",
                           status=txn.state, error_condition=txn.error_condition)
        return _result(txn, key, repeated=False)

    @rpc_method("payment.reconcile", "End of day: the terminal's totals for its batch, next to the "
                "journal's for the same batch.",
                result={"type": "object",
                        "required": ["reconciliation_id", "terminal", "journal", "matches"]},
                role="technician", exclusive=False,
                errors=("device_offline", "terminal_busy", "timeout", "hardware_error"))
    async def reconcile(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        self.require_online()
        if self._on_terminal is not None:
            raise HalError("terminal_busy", "a payment is running on the terminal")
        sid = self.journal.issue_service_id("Reconciliation")
        try:
            answer = await self._request(m.reconciliation_request(sid, self.sale_id, self.poi_id), sid,
                                         self._opt("request_timeout_s", 10.0))
            if answer.result == m.FAILURE:
                raise HalError("hardware_error",
                               f"the terminal refused reconciliation ({answer.error_condition})")
            batch = answer.body.get("POIReconciliationID")
            totals = m.reconciliation_totals(answer.body)
        except (LinkClosed, TimeoutError):
            raise HalError("timeout", "the terminal did not answer the reconciliation") from None
        except ProtocolError as exc:
            raise HalError("hardware_error", f"unusable ReconciliationResponse: {exc}") from None
        terminal = [{"instrument": k, "type": t, "count": c, "amount": a} for (k, t, c, a) in totals]
        self.journal.record_reconciliation(sid, str(batch) if batch is not None else None,
                                           json.dumps(terminal))
        ours = self.journal.totals_for_batch(str(batch)) if batch is not None else None
        debit = next((t for t in terminal if t["type"] == "Debit"), {"count": 0, "amount": 0})
        rev = next((t for t in terminal if t["type"] == "ReverseDebit"), {"count": 0, "amount": 0})
        matches = ours is not None and (debit["count"], debit["amount"], rev["count"], rev["amount"]) == (
            ours["approved_count"], ours["approved_amount"], ours["reversed_count"], ours["reversed_amount"])
        return {"reconciliation_id": batch, "terminal": terminal, "journal": ours, "matches": matches}

    @rpc_method("payment.journal", "The payment journal (amounts, references, ids and states; no "
                "card data), newest first, with each attempt's state changes.",
                params={"type": "object", "additionalProperties": False, "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "before_id": {"type": "integer", "minimum": 1},
                    "idempotency_key": KEY}},
                result={"type": "object", "required": ["entries"]},
                role="technician", readonly=True, exclusive=False)
    async def journal_entries(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        j = self.journal
        if "idempotency_key" in params:
            rows = j.attempts_for_key(str(params["idempotency_key"]))
        else:
            rows = j.entries(int(params.get("limit", 100)), params.get("before_id"))
        for row in rows:
            row["history"] = j.history(int(row["id"]))
        return {"entries": rows, "unfinished": len(j.unfinished()), "service_ids": j.service_id_count()}

    @rpc_method("payment.vietqr", "A VietQR (NAPAS 247) transfer code: the EMVCo payload and a PNG; "
                "print it with printer.print template payment_receipt, data.vietqr = payload.",
                params=VIETQR_PARAMS,
                result={"type": "object", "required": ["payload"], "properties": {
                    "payload": {"type": "string"}, "crc": {"type": "string"},
                    "png": {"type": "string", "description": "base64 PNG"},
                    "fields": {"type": "object"}}},
                readonly=True, exclusive=False, errors=("invalid_params",))
    async def make_vietqr(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        try:
            payload = vietqr.build(str(params["bin"]), str(params["account"]), params.get("amount"),
                                   params.get("bill_number"), params.get("purpose"),
                                   bool(params.get("to_card", False)))
        except ProtocolError as exc:
            raise HalError("invalid_params", str(exc), code=INVALID_PARAMS) from None
        parsed = vietqr.parse(payload)
        out: dict[str, Any] = {"payload": payload, "crc": parsed["crc"], "fields": parsed["fields"]}
        if params.get("png", True):
            out["png"] = base64.b64encode(_qr_png(payload, int(params.get("box_size", 8)))).decode()
        return out

    async def selftest(self, level: str) -> dict[str, Any]:
        checks = [{"name": "journal", "passed": self.journal.check()},
                  {"name": "link", "passed": self._up.is_set()}]
        return {"passed": all(c["passed"] for c in checks), "level": level, "checks": checks}

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for task in list(self._runs.values()):
                task.cancel()
            if self._journal is not None:
                self._journal.close()


def _qr_png(payload: str, box: int) -> bytes:
    import qrcode  # type: ignore[import-untyped]

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box, border=4)
    code.add_data(payload)
    code.make(fit=True)
    buf = io.BytesIO()
    code.make_image().save(buf)  # PIL image, PNG by default
    return buf.getvalue()
