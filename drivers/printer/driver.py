"""The thermal receipt printer driver (kind `printer`, driver name `printer`).

A job: render (in a thread) → record the job id durably → check status (DLE EOT 1-4) → send,
watching automatic status back for paper/cover/cutter faults and the wire for a stall → ask
`GS r 1`, which the printer answers only once everything before it has printed → record the
outcome durably → answer. A repeated job id gets the recorded outcome and prints nothing.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import pathlib
from collections.abc import Mapping
from typing import Any

from drivers.base import DeviceState, Driver, HalError, OperationContext, rpc_method
from drivers.printer.documents import BLOCK_SCHEMA, TEMPLATES, test_page
from drivers.printer.jobs import JobStore
from drivers.printer.preview import preview_png
from drivers.printer.render import FONT_DIR, DocumentError, ReceiptRenderer
from drivers.printer.transport import OPENERS, PrinterLink
from protocols.errors import ProtocolError
from protocols.escpos import status as st
from protocols.escpos.raster import MAX_BAND_ROWS

log = logging.getLogger("halsvc.printer")

INVALID_PARAMS = -32602
WIDTH_BYTES = {58: 48, 80: 72}  # a raster row of the paper, in bytes
CHUNK = 1024
_STATE_FOR_FAULT = {
    "cover_open": DeviceState.USER_ERROR,
    "paper_out": DeviceState.USER_ERROR,
    "cutter_error": DeviceState.HARDWARE_ERROR,
    "hardware_error": DeviceState.HARDWARE_ERROR,
    "printer_offline": DeviceState.HARDWARE_ERROR,
}

PRINT_RESULT = {
    "type": "object",
    "properties": {
        "job_id": {"type": "string", "description": "The client's idempotency key, echoed."},
        "status": {"type": "string", "enum": ["printed", "failed", "unknown"],
                   "description": "printed; failed (see reason); unknown: the daemon stopped mid-job."},
        "reason": {"type": ["string", "null"],
                   "description": "Why it failed: paper_out, cover_open, cutter_error, printer_offline, "
                                  "hardware_error, link_lost, cancelled, interrupted."},
        "repeated": {"type": "boolean",
                     "description": "True when this job id was seen before: nothing printed now."},
        "confirmed": {"type": "boolean",
                      "description": "False when the printer cannot say it printed (status_replies "
                                     "false): the job was only handed over whole."},
    },
    "required": ["job_id", "status", "reason"],
}

STATUS_RESULT = {
    "type": "object",
    "properties": {
        "device": {"type": "string", "description": "Device id."},
        "kind": {"type": "string", "description": "Always printer."},
        "state": {"type": "string", "description": "Device state (DESIGN §3)."},
        "paper": {"type": "string", "enum": ["ok", "near_end", "out", "unknown"],
                  "description": "Roll paper (unknown: a one-way printer)."},
        "cover": {"type": "string", "enum": ["closed", "open", "unknown"], "description": "Printer cover."},
        "error": {"type": ["string", "null"], "description": "The fault that stops printing, if any."},
        "online": {"type": "boolean", "description": "The printer reports itself online."},
        "cutter": {"type": "string", "enum": ["ok", "error", "unknown"], "description": "The autocutter."},
        "paper_mm": {"type": "integer", "description": "Paper width of the printer's profile."},
        "last_job": {"type": ["object", "null"],
                     "description": "The most recent job: job_id, status, reason, started, finished "
                                    "(epoch seconds)."},
    },
    "required": ["device", "state"],
}


def _invalid(exc: DocumentError, prefix: str = "") -> HalError:
    field = f"{prefix}{exc.field}" if exc.field else None
    return HalError("invalid_params", f"bad receipt: {exc}", code=INVALID_PARAMS,
                    **({"field": field} if field else {}))


class _LinkDead(Exception):
    """The printer stopped taking data and answering."""


class PrinterDriver(Driver):
    kind = "printer"
    options_schema = {
        "type": "object",
        "properties": {
            "driver": {"type": "string", "description": "printer"},
            "transport": {"type": "string", "enum": ["serial", "usb", "tcp"],
                          "description": "How the printer is attached."},
            "port": {"type": "string", "description": "Serial device path (transport serial)."},
            "baudrate": {"type": "integer", "minimum": 1200, "description": "Serial line rate."},
            "flow_control": {"type": "string", "enum": ["xonxoff", "rtscts", "dsrdtr", "none"],
                             "description": "Serial flow control; the printer's buffer needs one."},
            "path": {"type": "string",
                     "description": "USB printer class device, e.g. /dev/usb/lp0."},
            "host": {"type": "string", "description": "Network printer address (transport tcp)."},
            "tcp_port": {"type": "integer", "minimum": 1, "maximum": 65535,
                         "description": "Raw print port, 9100."},
            "paper_mm": {"type": "integer", "enum": [58, 80], "description": "Paper width."},
            "text_mode": {"type": "string", "enum": ["raster", "codepage"],
                          "description": "raster: Vietnamese drawn as an image (any printer); "
                                         "codepage: CP1258 text."},
            "codepage": {"type": "string",
                         "description": "Code page for text_mode codepage (CP1258)."},
            "native_qr": {"type": "boolean",
                          "description": "QR by the printer (GS ( k) rather than as an image."},
            "font_dir": {"type": "string",
                         "description": "Directory holding DejaVuSans.ttf and DejaVuSans-Bold.ttf."},
            "status_interval_s": {"type": "number", "minimum": 0.1,
                                  "description": "Idle status poll period."},
            "status_timeout_s": {"type": "number", "minimum": 0.05,
                                 "description": "Wait for a DLE EOT reply."},
            "stall_timeout_s": {"type": "number", "minimum": 0.1,
                                "description": "No data accepted for this long mid-job: the link is lost."},
            "finish_timeout_s": {"type": "number", "minimum": 0.1,
                                 "description": "Extra time, beyond the wire time, "
                                                "for the last data to print."},
            "status_replies": {"type": "boolean",
                               "description": "false for a one-way printer (many USB printer class "
                                              "interfaces send nothing back): no status is asked, "
                                              "and a job counts as printed once the printer took "
                                              "all of it (result confirmed=false). Default true."},
            "clear_after_fault": {"type": "boolean",
                                  "description": "After a job fails mid-way, clear the printer's "
                                                 "buffers (DLE DC4 8) so no remnant of it prints "
                                                 "once the fault is fixed (default true)."},
            "keep_jobs_days": {"type": "number", "minimum": 1,
                               "description": "How long job ids are remembered."},
        },
        "additionalProperties": True,
    }

    def __init__(self, device_id: str, options: Mapping[str, Any], events: Any) -> None:
        super().__init__(device_id, options, events)
        self._link: PrinterLink | None = None
        self._splitter = st.ReplySplitter()
        self._rt_waiters: collections.deque[asyncio.Future[st.RealtimeStatus]] = collections.deque()
        self._byte_waiters: collections.deque[asyncio.Future[int]] = collections.deque()
        self._printer = st.PrinterStatus()
        self._status_changed = asyncio.Event()
        self._query_lock = asyncio.Lock()
        self._print_lock = asyncio.Lock()
        self._store: JobStore | None = None
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._poll_task: asyncio.Task[None] | None = None
        self._rx_at = 0.0
        self._job_running = False
        self._job_sent = 0
        # A job failed or was cut short after data went out: what the printer holds of it must
        # go before anything else prints (a printer that keeps its buffer through a paper-out
        # would print the rest of it once refilled, ahead of the next receipt).
        self._needs_clear = False
        self._clear_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        o = self.options
        self._renderer = ReceiptRenderer(int(o.get("paper_mm", 80)), str(o.get("text_mode", "raster")),
                                         str(o.get("codepage", "CP1258")),
                                         pathlib.Path(o.get("font_dir", FONT_DIR)),
                                         bool(o.get("native_qr", True)))

    def plugged(self, options: Mapping[str, Any] | None = None) -> None:
        # Hot-plug names the node it found `port`; a USB printer class node (usbmisc lp*) is
        # this driver's `path`.
        if options and "port" in options and self.options.get("transport") == "usb":
            options = {**{k: v for k, v in options.items() if k != "port"}, "path": options["port"]}
        super().plugged(options)

    @property
    def _two_way(self) -> bool:
        return bool(self.options.get("status_replies", True))

    def _opt(self, name: str, default: float) -> float:
        return float(self.options.get(name, default))

    def _line_rate(self) -> float:
        """Baud of a serial line; USB and TCP are fast enough to count as instant."""
        serial = self.options.get("transport", "serial") == "serial"
        return self._opt("baudrate", 115200) if serial else 1e7

    # --- job store ---------------------------------------------------------------------------
    def _jobs(self) -> JobStore:
        if self._store is None:
            base = self.state_dir or pathlib.Path(".")
            base.mkdir(parents=True, exist_ok=True)
            self._store = JobStore(base / "printer-jobs.sqlite")
            self._store.prune(self._opt("keep_jobs_days", 30) * 86400)
        return self._store

    # --- link --------------------------------------------------------------------------------
    async def connect(self) -> None:
        transport = str(self.options.get("transport", "serial"))
        opener = OPENERS.get(transport)
        if opener is None:
            raise HalError("not_supported", f"unknown printer transport {transport!r}")
        self._splitter = st.ReplySplitter()
        self._printer = st.PrinterStatus()
        link = await opener(self.options, self._on_data, self._on_lost)
        self._link = link
        if not self._two_way:  # nothing to ask: an open node is all we know
            self._publish()
            self._jobs()
            return
        try:
            try:
                await self._refresh_status(self._opt("status_timeout_s", 1.0) * 2)
            except TimeoutError:
                if not self._needs_clear:
                    raise
                await self._finish_cut_off_band(link)
        except TimeoutError:
            why = f"no printer answers on {link.describe} (a one-way printer needs status_replies = false)"
            log.info("%s: %s", self.device_id, why)  # the base logs only the reason
            raise HalError("no_device", why) from None
        link.write(st.automatic_status_back(st.ASB_ALL))
        if self._needs_clear:  # the link went mid-job: the printer may still hold the rest
            await self._clear_buffer()
        self._publish()
        self._jobs()
        self._poll_task = asyncio.create_task(self._poll(), name=f"{self.device_id}:status")

    async def disconnect(self) -> None:
        if self._poll_task is not None:
            self._poll_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poll_task
            self._poll_task = None
        self._fail_waiters()
        if self._link is not None:
            self._link.close()
            self._link = None

    def _on_lost(self, reason: str) -> None:
        self.link_lost(reason)

    def _fail_waiters(self) -> None:
        for waiters in (self._rt_waiters, self._byte_waiters, self._clear_waiters):
            while waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.cancel()
        self._splitter.forget_pending()

    def _on_data(self, data: bytes) -> None:
        self._rx_at = asyncio.get_running_loop().time()
        self._splitter.receive_data(data)
        while True:
            try:
                ev = self._splitter.next_event()
            except ProtocolError as exc:
                log.debug("%s: %s", self.device_id, exc)
                continue
            if ev is None:
                return
            if isinstance(ev, st.RealtimeStatus):
                self._printer.update(ev.flags)
                if self._rt_waiters:
                    fut = self._rt_waiters.popleft()
                    if not fut.done():
                        fut.set_result(ev)
            elif isinstance(ev, st.AutomaticStatus):
                self._printer.update(ev.flags)
                self._publish()
                self._status_changed.set()
            elif isinstance(ev, st.BufferCleared):
                if self._clear_waiters:
                    cfut = self._clear_waiters.popleft()
                    if not cfut.done():
                        cfut.set_result(None)
            elif isinstance(ev, st.ByteReply):
                if self._byte_waiters:
                    bfut = self._byte_waiters.popleft()
                    if not bfut.done():
                        bfut.set_result(ev.byte)

    # --- status ------------------------------------------------------------------------------
    async def _realtime(self, n: int, timeout_s: float) -> st.RealtimeStatus:
        if self._link is None:  # the link went while a caller waited for the query lock
            raise HalError("link_lost", f"{self.device_id}: the printer link went away")
        fut: asyncio.Future[st.RealtimeStatus] = asyncio.get_running_loop().create_future()
        self._rt_waiters.append(fut)
        self._splitter.expect_realtime(n)
        self._link.write(st.realtime_status_request(n))
        try:
            return await asyncio.wait_for(fut, timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            # Replies are matched in order: after a lost one, start the queue afresh.
            self._fail_waiters()
            raise

    async def _refresh_status(self, timeout_s: float | None = None) -> st.PrinterStatus:
        if self._link is None:
            raise HalError("device_offline", f"{self.device_id} is not connected")
        timeout_s = timeout_s if timeout_s is not None else self._opt("status_timeout_s", 1.0)
        async with self._query_lock:
            for n in (st.PRINTER, st.OFFLINE_CAUSE, st.ERROR_CAUSE, st.ROLL_PAPER):
                await self._realtime(n, timeout_s)
        self._publish()
        return self._printer

    def _publish(self) -> None:
        fault = self._printer.fault()
        state: DeviceState | None = None
        if fault is not None:
            state = _STATE_FOR_FAULT.get(fault, DeviceState.HARDWARE_ERROR)
        elif self.state in (DeviceState.USER_ERROR, DeviceState.HARDWARE_ERROR, DeviceState.OFFLINE):
            state = DeviceState.BUSY if self._busy else DeviceState.ONLINE
        self.set_state(state, paper=self._printer.paper, cover=self._printer.cover, error=fault)

    async def _poll(self) -> None:
        misses = 0
        while True:
            await asyncio.sleep(self._opt("status_interval_s", 5.0))
            if self._job_running:
                continue
            try:
                await self._refresh_status()
                misses = 0
            except TimeoutError:
                misses += 1
                if misses >= 2:
                    self.link_lost("printer stopped answering status requests")
                    return
            except (HalError, ConnectionError):
                return

    async def _finish_cut_off_band(self, link: PrinterLink) -> None:
        """The link went mid-job and the printer, still on, answers nothing now: it is likely
        still inside the raster band it was cut off in, taking our status requests for image
        data. NULs (white dots; ignored between commands) complete the longest band there can
        be, then DLE DC4 8 drops what is left of that job and the status is asked again."""
        width_bytes = WIDTH_BYTES.get(int(self.options.get("paper_mm", 80)), 72)
        pad = width_bytes * MAX_BAND_ROWS
        log.info("%s: no answer after a job was cut off; finishing its raster band (%d NULs)",
                 self.device_id, pad)
        self._fail_waiters()
        link.write(bytes(pad))
        wire_s = pad * 10 / self._line_rate()
        await self._clear_buffer(wire_s * 1.5 + self._opt("status_timeout_s", 1.0) * 2)
        try:
            await self._refresh_status(self._opt("status_timeout_s", 1.0) * 2)
        except TimeoutError:
            self._needs_clear = True  # not heard from at all (still gone): again next time
            raise

    async def _clear_buffer(self, timeout_s: float | None = None) -> bool:
        """DLE DC4 8 and its 37h 25h 00h answer (Epson: send nothing else until it comes).
        Sent only between commands: after `_settle` or before a job, never inside a raster
        band, whose data would swallow it."""
        link = self._link
        if link is None or not bool(self.options.get("clear_after_fault", True)):
            self._needs_clear = False
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._clear_waiters.append(fut)
        try:
            link.write(st.buffer_clear_request())
            await asyncio.wait_for(fut, timeout_s or self._opt("status_timeout_s", 1.0) * 2)
        except (TimeoutError, asyncio.CancelledError, ConnectionError):
            with contextlib.suppress(ValueError):
                self._clear_waiters.remove(fut)
            # A printer without DLE DC4 8 (or one gone quiet) is not asked again for this job.
            log.warning("%s: the printer did not confirm clearing its buffer", self.device_id)
            self._needs_clear = False
            return False
        self._needs_clear = False
        log.info("%s: cleared what the printer held of the failed job", self.device_id)
        return True

    # --- printing ----------------------------------------------------------------------------
    def _blocks(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        try:
            if "document" in params:
                blocks = params["document"].get("blocks")
                if not isinstance(blocks, list) or not blocks:
                    raise DocumentError("document.blocks must be a non-empty list")
                return [dict(b) for b in blocks]
            template = TEMPLATES.get(str(params.get("template")))
            if template is None:
                raise DocumentError(f"give a document or a template of {sorted(TEMPLATES)}")
            return template(dict(params.get("data") or {}))
        except DocumentError as exc:
            raise _invalid(exc, "params.") from None
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            field = "params.document" if "document" in params else "params.data"
            raise HalError("invalid_params", f"bad receipt: {field}: {exc}", code=INVALID_PARAMS,
                           field=field) from None

    async def _render(self, blocks: list[dict[str, Any]], where: str = "params.document.blocks") -> bytes:
        try:
            return await asyncio.to_thread(self._renderer.render, blocks, where)
        except DocumentError as exc:
            raise _invalid(exc) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise HalError("invalid_params", f"bad receipt: {where}: {exc}", code=INVALID_PARAMS,
                           field=where) from None

    @rpc_method(
        "printer.print", "Print a receipt once per job_id (a repeated job_id returns the first outcome).",
        params={
            "type": "object",
            "properties": {
                "job_id": {"type": "string", "minLength": 1, "maxLength": 128,
                           "description": "Idempotency key chosen by the client; never prints twice."},
                "document": {"type": "object", "description": "A receipt: {\"blocks\": [...]}.",
                             "properties": {"blocks": {"type": "array", "items": BLOCK_SCHEMA,
                                                       "minItems": 1, "maxItems": 200,
                                                       "description": "Blocks, top to bottom."}},
                             "required": ["blocks"], "additionalProperties": False},
                "template": {"type": "string", "enum": sorted(TEMPLATES),
                             "description": "A built-in template."},
                "data": {"type": "object",
                         "description": "The template's fields (payment_receipt: amount, items, "
                                        "transaction_id, time, method, vietqr…; health_slip: "
                                        "blood_pressure, spo2, pulse, weight_kg, height_cm, bmi, time)."},
            },
            "required": ["job_id"],
            "oneOf": [{"required": ["document"]}, {"required": ["template"]}],
            "additionalProperties": False,
        },
        result=PRINT_RESULT, long=True, citizen_data=True,
        errors=("device_offline", "device_busy", "invalid_params", "cancelled", "timeout"),
        events=("printer.progress",))
    async def print_receipt(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        job_id = str(params["job_id"])
        blocks = self._blocks(params)
        running = self._inflight.get(job_id)
        if running is not None:
            return {**(await asyncio.shield(running)), "repeated": True}
        known = self._jobs().outcome(job_id)
        if known is not None:
            return {**known, "repeated": True}
        # In flight from here on, before the first await: a second call with the same job id
        # that arrives while this one renders or waits its turn must wait for this outcome.
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[job_id] = fut
        try:
            data = await self._render(blocks, "params.document.blocks" if "document" in params
                                      else f"template {params.get('template')} block")
            async with self._print_lock:  # one job on the wire at a time, never interleaved
                result = await self._print_once(job_id, data, ctx)
            fut.set_result(result)
            return result
        except BaseException as exc:
            if isinstance(exc, HalError):
                fut.set_exception(exc)
            else:
                fut.cancel()
            with contextlib.suppress(BaseException):
                fut.exception()
            raise
        finally:
            self._inflight.pop(job_id, None)

    @rpc_method(
        "printer.preview", "The receipt as this printer would print it, as a PNG, without printing.",
        params={
            "type": "object",
            "properties": {
                "document": {"type": "object", "description": "A receipt: {\"blocks\": [...]}.",
                             "properties": {"blocks": {"type": "array", "items": BLOCK_SCHEMA,
                                                       "minItems": 1, "maxItems": 200}},
                             "required": ["blocks"], "additionalProperties": False},
                "template": {"type": "string", "enum": sorted(TEMPLATES),
                             "description": "A built-in template."},
                "data": {"type": "object", "description": "The template's fields, as for printer.print."},
            },
            "oneOf": [{"required": ["document"]}, {"required": ["template"]}],
            "additionalProperties": False,
        },
        result={"type": "object", "required": ["mime", "png", "width", "height"], "properties": {
            "mime": {"const": "image/png"},
            "png": {"type": "string", "description": "base64 PNG, 1 bit, one pixel per printer dot"},
            "width": {"type": "integer"}, "height": {"type": "integer"}}},
        exclusive=False, readonly=True, citizen_data=True, errors=("invalid_params",))
    async def preview(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        # Drawn by the driver's renderer, not read back from the printer: it works offline and
        # on every printer, and needs no claim.
        blocks = self._blocks(params)
        where = ("params.document.blocks" if "document" in params
                 else f"template {params.get('template')} block")
        try:
            png, width, height = await asyncio.to_thread(
                preview_png, blocks, int(self.options.get("paper_mm", 80)), where)
        except DocumentError as exc:
            raise _invalid(exc) from None
        return {"mime": "image/png", "png": base64.b64encode(png).decode("ascii"),
                "width": width, "height": height}

    def _outcome(self, job_id: str, status: str, reason: str | None) -> dict[str, Any]:
        store = self._jobs()
        if status == "failed" and self._job_sent == 0:
            store.forget(job_id)  # nothing reached the printer: the same id may print later
        else:
            store.finish(job_id, status, reason)
        return {"job_id": job_id, "status": status, "reason": reason, "repeated": False}

    async def _print_once(self, job_id: str, data: bytes, ctx: OperationContext) -> dict[str, Any]:
        if self._link is None:
            raise HalError("device_offline", f"{self.device_id} is not connected", state=str(self.state))
        self.require_online()  # not while (re)connecting: connect() owns the link until online
        self._job_sent = 0
        lost: str | None = None
        result: dict[str, Any]
        try:
            async with self.operation():
                self._jobs().begin(job_id)
                ctx.progress("printer.progress", {"job_id": job_id, "phase": "checking"})
                self._job_running = True
                if not self._two_way:
                    return await self._print_one_way(job_id, data, ctx)
                try:
                    await self._refresh_status()
                except TimeoutError:
                    lost = "printer does not answer status requests"
                    return self._outcome(job_id, "failed", "link_lost")
                fault = self._printer.fault()
                if fault is not None:
                    return self._outcome(job_id, "failed", fault)
                if self._needs_clear:
                    await self._clear_buffer()
                try:
                    fault = await self._send(job_id, data, ctx)
                    if fault is None:
                        ctx.progress("printer.progress", {"job_id": job_id, "phase": "printing",
                                                          "sent": len(data), "total": len(data)})
                        fault = await self._await_printed(len(data))
                except (_LinkDead, ConnectionError) as exc:
                    lost = str(exc) or "printer went silent"
                    self._needs_clear = self._job_sent > 0
                    return self._outcome(job_id, "failed", "link_lost")
                if fault is not None:
                    await self._settle(data)
                    self._needs_clear = True
                    await self._clear_buffer()
                result = self._outcome(job_id, "printed" if fault is None else "failed", fault)
                ctx.progress("printer.progress",
                             {"job_id": job_id, "phase": "done", "status": result["status"]})
                return result
        except HalError as exc:
            if exc.reason != "link_lost":
                self._jobs().forget(job_id) if self._job_sent == 0 else None
                raise
            self._needs_clear = self._job_sent > 0
            return self._outcome(job_id, "failed", "link_lost")
        except asyncio.CancelledError:
            # The caller gave up (hal.cancel / timeout): stop the printer too, then record it.
            if self._link is not None and self._job_sent:
                self._needs_clear = True  # DLE DC4 8 goes before the next job, between commands
                with contextlib.suppress(Exception):
                    self._link.write(b"\x10\x05\x02")  # DLE ENQ 2: recover, clear the buffers
            self._outcome(job_id, "failed", "cancelled")
            raise
        finally:
            self._job_running = False
            if lost is not None:
                asyncio.get_running_loop().call_soon(self.link_lost, lost)

    async def _print_one_way(self, job_id: str, data: bytes, ctx: OperationContext) -> dict[str, Any]:
        """No replies to watch: send it all and wait until the printer has taken the last byte
        (a stall is still a lost link); "printed" then means handed over whole."""
        link = self._link
        assert link is not None
        try:
            await self._send(job_id, data, ctx)
            link.set_write_buffer_limits(0, 0)  # drain() now waits for an empty buffer
            try:
                await self._drain_watched(link)
            finally:
                link.set_write_buffer_limits()
        except (_LinkDead, ConnectionError) as exc:
            asyncio.get_running_loop().call_soon(self.link_lost, str(exc) or "printer went silent")
            return {**self._outcome(job_id, "failed", "link_lost"), "confirmed": False}
        result = {**self._outcome(job_id, "printed", None), "confirmed": False}
        ctx.progress("printer.progress", {"job_id": job_id, "phase": "done", "status": "printed"})
        return result

    async def _send(self, job_id: str, data: bytes, ctx: OperationContext) -> str | None:
        link = self._link
        assert link is not None
        total = len(data)
        reported = 0
        for start in range(0, total, CHUNK):
            fault = self._printer.fault()
            if fault is not None:
                return fault
            link.write(data[start:start + CHUNK])
            self._job_sent += min(CHUNK, total - start)
            fault = await self._drain_watched(link)
            if fault is not None:
                return fault
            if self._job_sent - reported >= 8192 or self._job_sent == total:
                reported = self._job_sent
                ctx.progress("printer.progress", {"job_id": job_id, "phase": "sending",
                                                  "sent": self._job_sent, "total": total})
        return self._printer.fault()

    async def _drain_watched(self, link: PrinterLink) -> str | None:
        """Wait until the link takes more data; a fault reported meanwhile wins; no progress
        for stall_timeout_s means the printer is gone."""
        loop = asyncio.get_running_loop()
        stall = self._opt("stall_timeout_s", 10.0)
        drain = asyncio.ensure_future(link.drain())
        try:
            last_size, last_t = link.write_buffer_size, loop.time()
            while not drain.done():
                self._status_changed.clear()
                changed = asyncio.ensure_future(self._status_changed.wait())
                await asyncio.wait({drain, changed}, timeout=min(0.25, stall / 4),
                                   return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                fault = self._printer.fault()
                if fault is not None:
                    return fault
                size, now = link.write_buffer_size, loop.time()
                if size != last_size or self._rx_at > last_t:
                    last_size, last_t = size, now
                elif now - last_t > stall:
                    raise _LinkDead(f"printer took no data for {stall:.1f} s")
            drain.result()
            return None
        finally:
            drain.cancel()

    async def _settle(self, data: bytes) -> None:
        """After a fault mid-job: send the rest of the job, so the printer's command parser is
        not left inside a raster band (it would take the status requests that follow for image
        data and answer none of them); the stopped printer drops it. Then wait until it has all
        crossed the wire: a real-time request queued after it is answered once the printer has
        read everything before it."""
        link = self._link
        if link is None or not self._job_sent:
            return
        rest = data[self._job_sent:]
        try:
            if rest:
                link.write(rest)
            wire_s = min(len(data), 70_000) * 10 / self._line_rate()
            budget = wire_s * 1.5 + self._opt("status_timeout_s", 1.0)
            async with self._query_lock:
                await self._realtime(st.PRINTER, budget)
        except TimeoutError:
            log.info("%s: the printer did not take the rest of the failed job", self.device_id)
        except ConnectionError:
            return
        self._publish()

    async def _await_printed(self, size: int) -> str | None:
        """GS r 1 is answered only after everything before it has been printed."""
        link = self._link
        assert link is not None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._byte_waiters.append(fut)
        self._splitter.expect_byte("paper_sensor")
        link.write(st.paper_sensor_request())
        baud = self._line_rate()
        # Data still queued in the kernel crosses the wire at the line rate, then prints.
        budget = min(size, 70_000) * 10 / baud * 1.5 + self._opt("finish_timeout_s", 10.0)
        deadline = loop.time() + budget
        try:
            while not fut.done():
                fault = self._printer.fault()
                if fault is not None:
                    return fault
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._status_changed.clear()
                changed = asyncio.ensure_future(self._status_changed.wait())
                waiters: set[asyncio.Future[Any]] = {fut, changed}
                await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            if fut.done() and not fut.cancelled():
                return self._printer.fault()
        finally:
            if not fut.done():
                fut.cancel()
            # A reply that never came must not leave its waiter queued: the next job's GS r 1
            # answer would go to it, and that job would wait in vain and fail.
            with contextlib.suppress(ValueError):
                self._byte_waiters.remove(fut)
        # No answer in time: a printer that still answers DLE EOT is stuck, else it is gone.
        try:
            await self._refresh_status()
        except (TimeoutError, asyncio.CancelledError):
            raise _LinkDead("printer stopped answering mid-job") from None
        return self._printer.fault() or "hardware_error"

    @rpc_method(
        "printer.status", "The printer's state: paper, cover, fault (asked afresh when idle).",
        params={"type": "object", "properties": {}, "additionalProperties": False},
        result=STATUS_RESULT, exclusive=False, errors=("device_offline", "link_lost"))
    async def printer_status(self, params: dict[str, Any], ctx: OperationContext) -> dict[str, Any]:
        if not self._two_way:
            return {**self.status(), "paper": "unknown", "cover": "unknown", "cutter": "unknown",
                    "error": None, "online": self._link is not None,
                    "paper_mm": int(self.options.get("paper_mm", 80)), "last_job": self._jobs().last()}
        if self._link is not None and not self._job_running:
            try:
                await self._refresh_status()
            except TimeoutError:
                raise HalError("link_lost", "the printer does not answer") from None
        return {**self.status(), "paper": self._printer.paper, "cover": self._printer.cover,
                "error": self._printer.fault(), "online": self._link is not None and self._printer.online,
                "cutter": "error" if self._printer.flags.get("cutter_error") else "ok",
                "paper_mm": int(self.options.get("paper_mm", 80)), "last_job": self._jobs().last()}

    async def selftest(self, level: str) -> dict[str, Any]:
        self.require_online()
        checks: list[dict[str, Any]] = []
        if not self._two_way:  # nothing to ask a one-way printer; the node is open
            checks.append({"name": "link", "passed": self._link is not None,
                           "detail": "one-way printer: no status replies (status_replies = false)"})
        else:
            try:
                printer = await self._refresh_status()
                checks.append({"name": "status", "passed": printer.fault() is None,
                               "detail": printer.summary()})
            except TimeoutError:
                checks.append({"name": "status", "passed": False, "detail": "no answer"})
        if level == "external" and all(c["passed"] for c in checks):
            import time

            job_id = f"selftest-{time.time():.0f}"
            page = await self._render(test_page(int(self.options.get("paper_mm", 80))))
            async with self._print_lock:
                result = await self._print_once(job_id, page, OperationContext())
            checks.append({"name": "test_page", "passed": result["status"] == "printed", "detail": result})
        return {"passed": all(c["passed"] for c in checks), "level": level, "checks": checks}

    async def print_test_page(self, job_id: str, ctx: OperationContext) -> dict[str, Any]:
        return await self.print_receipt({"job_id": job_id, "document": {"blocks": test_page(
            int(self.options.get("paper_mm", 80)))}}, ctx)
