"""A nexo payment terminal on loopback TCP, with its own durable ledger of what it charged.

    python -m simulators.payment_terminal --dir run/sim [--port 0] [--transport tcp|http]

Wire: 4-byte big-endian length + nexo JSON (`protocols.nexo.framing`) on a persistent TCP
connection; the terminal answers each request on the connection it came from and, during a
payment, sends its display prompts there as `DisplayRequest` (MessageClass Device). With
`transport=http` (`--part-option payment_terminal.transport=http`) it takes Adyen-style
`POST /nexo` instead: one request per connection, the answer in the response body (a payment's
when it is over), an empty body for an AbortRequest, and no prompts.

The ledger (`<dir>/payment_terminal/ledger.jsonl`, one fsynced JSON line per change) is the
terminal's truth: an approval is written there *before* the answer is sent, so a crash between
the two leaves a charge that only TransactionStatus can reveal — exactly what real terminals do.

Scenarios, chosen per payment by the control queue (`scenario`), else by the amount modulo 1000:
  …000 approve · …001 decline · …002 cardholder cancels · …003 busy · …004 slow · …005 silent
  …006 link dropped mid-transaction (finishes approved afterwards) · …007 crash after approval
  before answering (the terminal restarts; the approval survives in its ledger) · …008 partial
  approval (authorises 1000 less) · …009 garbled (approves, but the answer lacks its POIData, so
  the sale system must ask with TransactionStatus). Any other amount approves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import ssl
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from protocols.errors import ProtocolError
from protocols.nexo import framing
from protocols.nexo import messages as m
from simulators.base import StationPart, UnknownAction, serve_until_signalled, workdir_path

SCENARIOS = ("approve", "decline", "cancel", "busy", "slow", "silent", "drop", "crash", "partial", "garbled")
_BY_AMOUNT = dict(enumerate(SCENARIOS))  # amount % 1000 → scenario; approve is 0
ACTIONS = ("scenario", "clear_scenarios", "ledger", "stats", "set", "disconnect", "crash", "busy", "garbage")
GARBAGE = ("bytes", "json", "stray_answer", "oversize")

PROMPTS = ("PRESENT CARD", "ENTER PIN", "PROCESSING")


def _now_iso() -> str:
    import datetime
    return datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=7))).isoformat(timespec="seconds")


class Ledger:
    """Append-only, fsynced JSON lines; the latest line per key is the record's state."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        if path.exists():
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):  # a torn last line after a crash
                    rec = json.loads(line)
                    self._apply(rec)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _apply(self, rec: dict[str, Any]) -> None:
        key = rec["key"]
        if key not in self.records:
            self.order.append(key)
        self.records[key] = rec

    def write(self, rec: dict[str, Any]) -> None:
        os.write(self._fd, json.dumps(rec, separators=(",", ":")).encode() + b"\n")
        os.fsync(self._fd)
        self._apply(rec)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def charges(self) -> list[dict[str, Any]]:
        return [self.records[k] for k in self.order if self.records[k]["kind"] == "payment"]


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.closed = False

    def send(self, message: Mapping[str, Any]) -> None:
        if self.closed or self.writer.is_closing():
            return  # the answer is lost with the link; the ledger still knows
        self.writer.write(framing.encode_frame(m.encode(dict(message))))

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self.writer.close()


class HttpExchange(Connection):
    """One `POST /nexo`: the first response sent is its body; requests the terminal would push
    (display prompts) have no way back over HTTP and are dropped."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        self.done = asyncio.Event()

    def send(self, message: Mapping[str, Any]) -> None:
        if m.RESPONSE in message:
            self.answer(m.encode(dict(message)))

    def answer(self, body: bytes, status: str = "200 OK") -> None:
        if self.done.is_set():
            return
        self.done.set()
        if not self.closed and not self.writer.is_closing():
            self.writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        self.close()

    def close(self) -> None:
        self.done.set()
        super().close()


class PaymentTerminal:
    def __init__(self, ledger_path: pathlib.Path, poi_id: str = "TERM-01", host: str = "127.0.0.1",
                 port: int = 0, transport: str = "tcp", tls: ssl.SSLContext | None = None) -> None:
        if transport not in ("tcp", "http"):
            raise ValueError(f"transport {transport!r}: tcp or http")
        self.transport = transport
        self.tls = tls  # http only: HTTPS with this server context
        self.ledger_path = ledger_path
        self.poi_id = poi_id
        self.host, self.port = host, port
        self.ledger = Ledger(ledger_path)
        self.queue: list[str] = []
        self.prompt_ms = 20
        self.slow_ms = 1500
        self.crash_ms = 200
        self.drop_finish_ms = 300
        self.forced_busy = False
        self.running: dict[str, Any] | None = None  # the payment in progress
        self.conns: set[Connection] = set()
        self.server: asyncio.base_events.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.seen_service_ids: set[tuple[str, str]] = set()
        self.stats: dict[str, int] = {"connections": 0, "service_id_reuse": 0, "crashes": 0,
                                      "malformed": 0}
        self.next_poi = 1 + sum(1 for r in self.ledger.records.values() if r.get("poi_transaction_id"))
        self.reconciliation = 1000
        for rec in self.ledger.records.values():
            self.seen_service_ids.add((rec.get("sale_id", ""), rec["service_id"]))

    # --- life -------------------------------------------------------------------------------
    @property
    def _handler(self) -> Any:
        return self._serve if self.transport == "tcp" else self._serve_http

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handler, self.host, self.port, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for c in list(self.conns):
            c.close()
        for t in list(self.tasks):
            t.cancel()
        for t in list(self.tasks):
            with contextlib.suppress(BaseException):
                await t
        self.ledger.close()

    async def crash(self) -> None:
        """Power loss: every link and everything in memory is gone; the ledger file survives."""
        self.stats["crashes"] += 1
        if self.server is not None:
            self.server.close()
            self.server = None
        for c in list(self.conns):
            c.close()
        self.conns.clear()
        current = asyncio.current_task()
        for t in list(self.tasks):
            if t is not current:
                t.cancel()
        self.running = None
        self.ledger.close()
        await asyncio.sleep(self.crash_ms / 1000)  # the reboot
        self.ledger = Ledger(self.ledger_path)
        self.queue.clear()
        # Rebinding the same port: SO_REUSEADDR lets it through TIME_WAIT.
        self.server = await asyncio.start_server(self._handler, self.host, self.port, ssl=self.tls)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # --- wire -------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        self.conns.add(conn)
        self.stats["connections"] += 1
        decoder = framing.FrameDecoder()
        try:
            while not conn.closed:
                data = await reader.read(65536)
                if not data:
                    break
                decoder.receive_data(data)
                while True:
                    frame = decoder.next_frame()
                    if frame is None:
                        break
                    try:
                        msg = m.decode(frame)
                    except ProtocolError:
                        self.stats["malformed"] += 1
                        continue
                    await self._dispatch(conn, msg)
                await writer.drain()
        except (ConnectionError, ProtocolError, asyncio.CancelledError):
            pass
        finally:
            conn.close()
            self.conns.discard(conn)

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request per connection, as the driver sends them: POST /nexo, JSON body."""
        conn = HttpExchange(reader, writer)
        self.conns.add(conn)
        self.stats["connections"] += 1
        try:
            request = (await reader.readline()).split()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if request[:2] != [b"POST", b"/nexo"] or not 0 < length <= framing.MAX_FRAME:
                conn.answer(b"", "404 Not Found")
                return
            try:
                msg = m.decode(await reader.readexactly(length))
            except ProtocolError:
                self.stats["malformed"] += 1
                conn.answer(b"", "400 Bad Request")
                return
            await self._dispatch(conn, msg)
            if msg.category != "Payment":
                conn.answer(b"")  # nexo: an AbortRequest is answered with an empty body
            await conn.done.wait()  # a payment's answer comes when the cardholder is done
        except (ConnectionError, ValueError, IndexError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            conn.close()
            self.conns.discard(conn)

    async def _dispatch(self, conn: Connection, msg: m.Message) -> None:
        if not msg.is_request:
            return  # e.g. a DisplayResponse: nothing to do
        key = (msg.sale_id or "", msg.service_id)
        if key in self.seen_service_ids:
            self.stats["service_id_reuse"] += 1
            conn.send(m.envelope(m.response_header(msg.header),
                                 {"Response": m.response_part(m.FAILURE, "MessageFormat",
                                                              "message=ServiceID%20reused")}))
            return
        self.seen_service_ids.add(key)
        self.stats[msg.category] = self.stats.get(msg.category, 0) + 1
        handler = getattr(self, "_on_" + msg.category.lower(), None)
        if handler is None:
            conn.send(m.envelope(m.response_header(msg.header),
                                 {"Response": m.response_part(m.FAILURE, "NotAllowed")}))
            return
        try:
            await handler(conn, msg)
        except ProtocolError:
            self.stats["malformed"] += 1
            conn.send(m.envelope(m.response_header(msg.header),
                                 {"Response": m.response_part(m.FAILURE, "MessageFormat")}))
        except Exception:  # a simulator bug: say so on stderr, answer, keep the link
            traceback.print_exc()
            self.stats["errors"] = self.stats.get("errors", 0) + 1
            conn.send(m.envelope(m.response_header(msg.header),
                                 {"Response": m.response_part(m.FAILURE, "UnavailableService")}))

    # --- services ---------------------------------------------------------------------------
    async def _on_login(self, conn: Connection, msg: m.Message) -> None:
        conn.send(m.login_response(msg.header, m.SUCCESS))

    async def _on_payment(self, conn: Connection, msg: m.Message) -> None:
        amount, currency, sale_txn, reference = m.requested_amount(msg.body)
        scenario = self.queue.pop(0) if self.queue else _BY_AMOUNT.get(amount % 1000, "approve")
        if self.running is not None or self.forced_busy or scenario == "busy":
            conn.send(m.payment_response(msg.header, m.FAILURE, "Busy"))
            return
        if scenario == "silent":
            return  # swallowed: never started, so TransactionStatus will say NotFound
        rec = {"key": f"{msg.sale_id}/{msg.service_id}", "kind": "payment", "sale_id": msg.sale_id,
               "service_id": msg.service_id, "transaction_id": sale_txn, "amount": amount,
               "currency": currency, "reference": reference, "state": "in_progress", "reversed": False}
        self.running = {"rec": rec, "abort": asyncio.Event(), "conn": conn, "header": msg.header,
                        "sale_txn": msg.body["SaleData"]["SaleTransactionID"]}
        self.ledger.write(rec)
        self._spawn(self._run_payment(scenario))

    async def _prompt(self, text: str, delay_ms: int) -> bool:
        """Show a prompt and wait; False if the sale system aborted meanwhile."""
        run = self.running
        assert run is not None
        hdr = run["header"]
        run["conn"].send(m.display_request(hdr["ServiceID"], hdr.get("SaleID") or "", self.poi_id, text))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run["abort"].wait(), delay_ms / 1000)
        return not run["abort"].is_set()

    async def _run_payment(self, scenario: str) -> None:
        run = self.running
        assert run is not None
        rec = run["rec"]
        delay = self.slow_ms if scenario == "slow" else self.prompt_ms
        if not await self._prompt(PROMPTS[0], delay):
            return self._finish(run, "aborted", "Aborted")
        if scenario == "cancel":
            return self._finish(run, "aborted", "Cancel")
        if scenario == "drop":
            run["conn"].close()  # the link goes; the cardholder carries on
            await asyncio.sleep(self.drop_finish_ms / 1000)
            return self._finish(run, "approved", None)
        for text in PROMPTS[1:]:
            if not await self._prompt(text, delay):
                return self._finish(run, "aborted", "Aborted")
        if scenario == "decline":
            return self._finish(run, "declined", "Refusal")
        authorized = rec["amount"] - 1000 if scenario == "partial" and rec["amount"] > 1000 else rec["amount"]
        if scenario == "crash":
            self._finish(run, "approved", None, authorized, send=False)
            await self.crash()
            return None
        return self._finish(run, "approved", None, authorized, garble=scenario == "garbled")

    def _finish(self, run: dict[str, Any], state: str, condition: str | None, authorized: int | None = None,
                send: bool = True, garble: bool = False) -> None:
        rec = dict(run["rec"])
        if state == "approved" and authorized is None:
            authorized = rec["amount"]
        poi_id = f"P{self.next_poi:06d}"
        self.next_poi += 1
        ts = _now_iso()
        result = m.SUCCESS if state == "approved" else m.FAILURE
        if authorized is not None and authorized < rec["amount"]:
            result = m.PARTIAL
        response = m.payment_response(
            run["header"], result, condition, poi_transaction_id=poi_id, poi_timestamp=ts,
            sale_transaction=run["sale_txn"], authorized_amount=authorized if state == "approved" else None,
            currency=rec["currency"], reconciliation_id=str(self.reconciliation))
        rec.update(state=state, error_condition=condition, poi_transaction_id=poi_id, poi_timestamp=ts,
                   authorized_amount=authorized if state == "approved" else 0, response=response)
        self.ledger.write(rec)  # durable before the answer leaves
        if self.running is run:
            self.running = None
        if state == "approved":
            run["conn"].send(m.display_request(run["header"]["ServiceID"], run["header"].get("SaleID") or "",
                                               self.poi_id, "APPROVED"))
        if garble:  # what goes on the wire is broken; the ledger keeps the real answer
            response = json.loads(json.dumps(response))
            del response[m.RESPONSE]["PaymentResponse"]["POIData"]
        if send:
            run["conn"].send(response)

    async def _on_abort(self, conn: Connection, msg: m.Message) -> None:
        _category, service_id, _ = m.referenced_message(msg.body)
        run = self.running
        if run is not None and run["rec"]["service_id"] == service_id:
            run["abort"].set()
        # nexo: no answer of its own; the outcome comes as the payment's response.

    async def _on_transactionstatus(self, conn: Connection, msg: m.Message) -> None:
        category, service_id, sale_id = m.referenced_message(msg.body)
        rec = self.ledger.records.get(f"{sale_id or msg.sale_id}/{service_id}")
        if rec is None or (category == "Reversal") != (rec["kind"] == "reversal"):
            conn.send(m.transaction_status_response(msg.header, m.FAILURE, "NotFound"))
        elif rec["state"] == "in_progress":
            conn.send(m.transaction_status_response(msg.header, m.FAILURE, "InProgress",
                                                    additional="message=Uncompleted%20transaction"))
        else:
            conn.send(m.transaction_status_response(msg.header, m.SUCCESS, repeated=rec["response"]))

    async def _on_reversal(self, conn: Connection, msg: m.Message) -> None:
        poi_id, _ = m.reversal_target(msg.body)
        target = next((r for r in self.ledger.records.values()
                       if r["kind"] == "payment" and r.get("poi_transaction_id") == poi_id), None)
        rec = {"key": f"{msg.sale_id}/{msg.service_id}", "kind": "reversal", "sale_id": msg.sale_id,
               "service_id": msg.service_id, "poi_transaction_id": poi_id}
        if target is None or target["state"] != "approved" or target.get("reversed"):
            response = m.reversal_response(msg.header, m.FAILURE, "NotAllowed")
            rec.update(state="refused", response=response)
            self.ledger.write(rec)
        else:
            response = m.reversal_response(msg.header, m.SUCCESS, poi_transaction_id=poi_id,
                                           poi_timestamp=target.get("poi_timestamp"),
                                           reversed_amount=target["authorized_amount"])
            rec.update(state="reversed", amount=target["authorized_amount"], response=response)
            self.ledger.write(dict(target, reversed=True))
            self.ledger.write(rec)
        conn.send(response)

    async def _on_reconciliation(self, conn: Connection, msg: m.Message) -> None:
        since = self.reconciliation
        debit = [r for r in self.ledger.charges()
                 if r["state"] == "approved" and r["response"]["SaleToPOIResponse"]["PaymentResponse"]
                 ["POIData"].get("POIReconciliationID") == str(since)]
        reversed_ = [r for r in debit if r.get("reversed")]
        totals = [("Debit", len(debit), sum(r["authorized_amount"] for r in debit)),
                  ("ReverseDebit", len(reversed_), sum(r["authorized_amount"] for r in reversed_))]
        self.reconciliation += 1
        conn.send(m.reconciliation_response(msg.header, m.SUCCESS, str(since), totals))

    def _garbage(self, kind: str) -> int:
        """Send every connection something a terminal should never send."""
        if kind == "bytes":  # a frame that is not UTF-8 JSON
            data = framing.encode_frame(b"\xff\xfe{garbage")
        elif kind == "json":  # JSON, but not nexo
            data = framing.encode_frame(b'{"SaleToPOIResponse": {"MessageHeader": 7}}')
        elif kind == "stray_answer":  # a well-formed answer to a request nobody sent
            hdr = m.header("Payment", "ZZZZZZ", "KIOSK-01", self.poi_id, message_type="Response")
            data = framing.encode_frame(m.encode(m.envelope(hdr, {"Response": m.response_part(m.SUCCESS)})))
        elif kind == "oversize":  # a length prefix past any sane frame: the stream is out of step
            data = (framing.MAX_FRAME + 1).to_bytes(4, "big") + b"x" * 16
        else:
            raise ValueError(f"garbage kind {kind!r}; one of {GARBAGE}")
        for c in list(self.conns):
            if not c.closed and not c.writer.is_closing():
                c.writer.write(data)
        return len(self.conns)

    # --- control ----------------------------------------------------------------------------
    async def control(self, action: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if action == "scenario":
            name = str(args.get("name", "approve"))
            if name not in SCENARIOS:
                raise ValueError(f"scenario {name!r}; one of {SCENARIOS}")
            self.queue.extend([name] * int(args.get("count", 1)))
            return {"queued": list(self.queue)}
        if action == "clear_scenarios":
            self.queue.clear()
            return {}
        if action == "ledger":
            return {"records": [dict(r) for r in (self.ledger.records[k] for k in self.ledger.order)]}
        if action == "stats":
            return {"stats": dict(self.stats), "running": self.running is not None}
        if action == "set":
            for key in ("prompt_ms", "slow_ms", "crash_ms", "drop_finish_ms"):
                if key in args:
                    setattr(self, key, int(args[key]))
            return {}
        if action == "busy":
            self.forced_busy = bool(args.get("on", True))
            return {"busy": self.forced_busy}
        if action == "disconnect":
            n = len(self.conns)
            for c in list(self.conns):
                c.close()
            return {"closed": n}
        if action == "crash":
            await self.crash()
            return {}
        if action == "garbage":
            return {"sent": self._garbage(str(args.get("kind", "bytes")))}
        raise UnknownAction(action)


TLS_NAME = "terminal.local"


def self_signed(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A certificate for TLS_NAME signed by itself (the driver trusts it as its CA), and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "terminal-cert.pem", directory / "terminal-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def start_part(workdir: pathlib.Path, options: Mapping[str, Any]) -> StationPart:
    ledger = workdir_path(workdir, "payment_terminal/ledger.jsonl")
    transport = str(options.get("transport", "tcp"))
    tls: ssl.SSLContext | None = None
    extra: dict[str, Any] = {}
    if transport == "https":  # HTTP over TLS with a throwaway certificate the driver is told to trust
        cert, key = self_signed(ledger.parent)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        extra = {"tls_ca_file": str(cert), "tls_server_name": TLS_NAME}
    term = PaymentTerminal(ledger, poi_id=str(options.get("poi_id", "TERM-01")),
                           port=int(options.get("port", 0)),
                           transport="http" if transport == "https" else transport, tls=tls)
    await term.start()
    device = {"driver": "payment", "host": "127.0.0.1", "port": term.port, "poi_id": term.poi_id,
              "transport": transport, **extra,
              "sale_id": str(options.get("sale_id", "KIOSK-01")),
              # Short waits, so silence and InProgress are settled quickly on the simulated station.
              "response_timeout_s": float(options.get("response_timeout_s", 4.0)),
              "status_interval_s": float(options.get("status_interval_s", 0.2))}
    return StationPart(name="payment_terminal", devices={"payment0": device}, control=term.control,
                       stop=term.stop, actions=ACTIONS)


async def _main(workdir: pathlib.Path, port: int, transport: str) -> None:
    term = PaymentTerminal(workdir_path(workdir, "payment_terminal/ledger.jsonl"), port=port,
                           transport=transport)
    await term.start()
    print(f"ready {transport} 127.0.0.1:{term.port}", flush=True)
    await serve_until_signalled(term.stop)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.payment_terminal", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="run/sim")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--transport", choices=("tcp", "http"), default="tcp")
    ns = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(pathlib.Path(ns.dir), ns.port, ns.transport))
    return 0


if __name__ == "__main__":
    sys.exit(main())
