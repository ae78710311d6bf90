"""The simulated ESC/POS printer: receive buffer, real-time status, automatic status back, a
print engine that consumes the buffer, faults, and one PNG per job.

Transport-agnostic: a link (pty or TCP, see `links.py`) hands it the bytes that arrived on the
wire with `receive()`, and gets replies and XON/XOFF back through `on_reply` / `on_flow`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import pathlib
from collections.abc import Callable
from typing import Any

from protocols.errors import ProtocolError
from protocols.escpos import status as st
from protocols.escpos.commands import Command, CommandParser
from simulators.escpos_printer.paper import Paper

WIDTH_DOTS = {58: 384, 80: 576}
_STOPPING = ("cover_open", "paper_end", "offline", "cutter_error")


class SimulatedPrinter:
    def __init__(self, workdir: pathlib.Path, paper_mm: int = 80, buffer_size: int = 64 * 1024,
                 print_rate: float | None = None) -> None:
        self.workdir = workdir
        self.jobs_dir = workdir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.width = WIDTH_DOTS.get(paper_mm, 576)
        self.buffer_size = buffer_size
        self.print_rate = print_rate  # bytes/s the engine prints; None = as fast as it arrives
        self.flags = st.PrinterStatus().flags
        self.asb_mask = 0
        self.on_reply: Callable[[bytes], None] = lambda data: None
        self.on_flow: Callable[[bool], None] = lambda ready: None
        self.on_drop: Callable[[], None] = lambda: None
        self.on_restore: Callable[[], None] = lambda: None
        self.parser = CommandParser()
        self.queue: collections.deque[tuple[Command, int]] = collections.deque()
        self.queued = 0
        self.xoff = False
        self.silent = False
        self.overruns = 0
        self.received = 0
        self.protocol_errors = 0
        self.near_end_after: int | None = None
        self.out_after: int | None = None
        self.drop_after: int | None = None
        self.jobs: list[dict[str, Any]] = []
        # What a stop mid-job does to the rest of it: "abort" drops it (cheap printers);
        # "resume" keeps it in the buffer and prints it once the fault is cleared (Epson), so
        # half a failed receipt comes out ahead of the next one unless the host clears the
        # buffer (DLE DC4 8).
        self.stop_mode = "abort"
        self.stopped_in: str | None = None  # the fault that stopped the job now held
        self.buffer_clears = 0
        # A one-way printer (many cheap USB printer class interfaces): it prints, and sends
        # nothing back — no DLE EOT, ASB, GS r or buffer-clear answers.
        self.one_way = False
        self.paper = Paper(self.width)
        self._job_bytes = 0
        self._job_started = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._engine: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._engine = asyncio.create_task(self._run_engine(), name="escpos-engine")

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.cancel()
            try:
                await self._engine
            except asyncio.CancelledError:
                pass

    def _reply(self, data: bytes) -> None:
        if not self.one_way:
            self.on_reply(data)

    # --- buffer -----------------------------------------------------------------------------
    @property
    def used(self) -> int:
        return self.queued + self.parser.buffered

    @property
    def free(self) -> int:
        return self.buffer_size - self.used

    async def wait_room(self) -> None:
        """For links with their own flow control (TCP): wait until the buffer has room."""
        while self.free < self.buffer_size // 4:
            self._room.clear()
            await self._room.wait()

    def receive(self, data: bytes) -> None:
        """Bytes that arrived on the wire."""
        if self.silent:
            return
        if self.drop_after is not None:
            if self.received + len(data) >= self.drop_after:
                data = data[: max(0, self.drop_after - self.received)]
                self.received += len(data)
                self.drop_after = None
                self._feed(data)
                self.silent = True
                self.on_drop()
                return
        self.received += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        room = self.free
        if len(data) > room:
            # What a real printer does when the host ignores XOFF: the bytes are lost.
            self.overruns += len(data) - max(0, room)
            data = data[: max(0, room)]
        self.parser.receive_data(data)
        while True:
            before = self.parser.buffered
            try:
                cmd = self.parser.next_command()
            except ProtocolError:
                self.protocol_errors += 1
                continue
            if cmd is None:
                break
            size = before - self.parser.buffered
            if cmd.name == "realtime_status":
                self._reply(st.encode_realtime_status(cmd.value, self.flags))
            elif cmd.name == "realtime_request":
                if cmd.value == 2:  # recover and clear buffers
                    self.queue.clear()
                    self.queued = 0
                self._set(cutter_error=False, recoverable_error=False, error=False)
            elif cmd.name == "buffer_clear":
                self._clear_buffers()
                self._reply(st.BUFFER_CLEARED)
            elif cmd.name == "asb":
                self.asb_mask = cmd.value or 0
                if self.asb_mask:  # Epson sends the current status when ASB is enabled
                    self._reply(st.encode_automatic_status(self.flags))
            else:
                self.queue.append((cmd, size))
                self.queued += size
        self._update_flow()
        self._wake.set()

    def _update_flow(self) -> None:
        if not self.xoff and self.free < max(64, self.buffer_size // 4):
            self.xoff = True
            self.on_flow(False)
        elif self.xoff and (self.free > self.buffer_size // 2 or not self.queue):
            # Nothing left to print but a command still arriving (a raster band can be most
            # of a small buffer): it can only complete if the host may send again.
            self.xoff = False
            self.on_flow(True)
        if self.free >= self.buffer_size // 4:
            self._room.set()

    # --- status -----------------------------------------------------------------------------
    def _set(self, **changes: bool) -> None:
        before = dict(self.flags)
        self.flags.update(changes)
        f = self.flags
        f["offline"] = any(f[k] for k in ("cover_open", "paper_end", "cutter_error",
                                          "waiting_for_recovery"))
        f["error"] = f["cutter_error"] or f["recoverable_error"] or f["unrecoverable_error"]
        if f != before:
            if self.asb_mask and not self.silent:
                self._reply(st.encode_automatic_status(f))
            self._wake.set()

    @property
    def stopped(self) -> bool:
        return any(self.flags[k] for k in _STOPPING)

    # --- engine -----------------------------------------------------------------------------
    async def _run_engine(self) -> None:
        while True:
            if not self.queue or self.stopped:
                # A job stopped mid-way is lost, even when its rest has not arrived yet.
                if self.stopped and (self.queue or self._job_started):
                    if self.stop_mode == "abort":
                        self._abort_job()
                    elif self.stopped_in is None:
                        self.stopped_in = next(k for k in _STOPPING if self.flags[k])
                self._wake.clear()
                await self._wake.wait()
                continue
            cmd, size = self.queue.popleft()
            self.queued -= size
            if self.print_rate:
                await asyncio.sleep(size / self.print_rate)
            self._execute(cmd, size)
            self._update_flow()

    def _execute(self, cmd: Command, size: int) -> None:
        if cmd.name not in ("init", "asb", "paper_sensor_status", "printer_id", "nul"):
            self._job_started = True
        self._job_bytes += size
        if cmd.name == "cut":
            self._finish_job("complete")
            return
        if cmd.name == "paper_sensor_status":
            f = self.flags
            self._reply(bytes(((0x03 if f["near_end"] else 0) | (0x0C if f["paper_end"] else 0),)))
            return
        lines_before = self.paper.lines
        self.paper.execute(cmd)
        if self.paper.lines != lines_before:
            self._count_lines(self.paper.lines - lines_before)

    def _count_lines(self, n: int) -> None:
        if self.near_end_after is not None:
            self.near_end_after -= n
            if self.near_end_after <= 0:
                self.near_end_after = None
                self._set(near_end=True)
        if self.out_after is not None:
            self.out_after -= n
            if self.out_after <= 0:
                self.out_after = None
                self._set(near_end=True, paper_end=True, stopped_at_paper_end=True)

    def _abort_job(self) -> None:
        """A stop mid-job loses the rest of it (the driver reports the job failed; printing
        the remainder after the technician's fix would hand out half a receipt)."""
        self.queue.clear()
        self.queued = 0
        reason = next(k for k in _STOPPING if self.flags[k])
        if self._job_started:
            self._finish_job("aborted", reason)
        self._update_flow()

    def _clear_buffers(self) -> None:
        """DLE DC4 8: drop the receive and print buffers; a job held by a stop ends there."""
        self.buffer_clears += 1
        self.queue.clear()
        self.queued = 0
        if self._job_started:
            self._finish_job("aborted", self.stopped_in or "buffer_cleared")
        else:
            self.paper = Paper(self.width)
            self._job_bytes = 0
        self._update_flow()

    def _finish_job(self, outcome: str, reason: str | None = None) -> None:
        index = len(self.jobs) + 1
        png = self.jobs_dir / f"job-{index:04d}.png"
        self.paper.image().save(png)
        meta = {"index": index, "png": str(png), "status": outcome, "reason": reason,
                "lines": self.paper.lines, "raster_slices": self.paper.raster_slices,
                "symbols": self.paper.symbols, "text": self.paper.text, "bytes": self._job_bytes,
                "overruns": self.overruns, "protocol_errors": self.protocol_errors,
                # "resume" mode: the fault this job was held by before it came out after all.
                "resumed_after": self.stopped_in if outcome == "complete" else None}
        self.stopped_in = None
        (self.jobs_dir / f"job-{index:04d}.json").write_text(json.dumps(meta, ensure_ascii=False))
        self.jobs.append(meta)
        self.paper = Paper(self.width)
        self._job_bytes = 0
        self._job_started = False

    # --- faults (control actions) -----------------------------------------------------------
    def control(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        after = args.get("after_lines")
        if action == "paper_near_end":
            if after:
                self.near_end_after = int(after)
            else:
                self._set(near_end=True)
        elif action == "paper_out":
            if after:
                self.out_after = int(after)
            else:
                self._set(near_end=True, paper_end=True)
        elif action == "paper_refill":
            self.near_end_after = self.out_after = None
            self._set(near_end=False, paper_end=False, stopped_at_paper_end=False)
        elif action == "cover_open":
            self._set(cover_open=True)
        elif action == "cover_close":
            self._set(cover_open=False)
        elif action == "offline":
            self._set(waiting_for_recovery=True)
        elif action == "online":
            self._set(waiting_for_recovery=False)
        elif action == "cutter_error":
            self._set(cutter_error=True)
        elif action == "clear_error":
            self._set(cutter_error=False, recoverable_error=False, unrecoverable_error=False)
        elif action == "link_drop":
            after_bytes = args.get("after_bytes")
            if after_bytes:
                self.drop_after = self.received + int(after_bytes)
            else:
                self.silent = True
                self.on_drop()
        elif action == "link_restore":
            # What was on the wire while it was gone is lost. By default back as after a
            # power-cycle: the half command and half job it held are gone too. reset=false: the
            # cable came back to a printer that stayed on, still inside the command (a raster
            # band, say) it was cut off in.
            self.on_restore()
            if args.get("reset", True):
                self.parser = CommandParser()
                self.queue.clear()
                self.queued = 0
                self.paper = Paper(self.width)
                self._job_bytes = 0
                self._job_started = False
            self.silent = False
            self.drop_after = None
            self._update_flow()
        elif action == "small_buffer":
            self.buffer_size = int(args.get("size", 512))
            rate = args.get("print_rate", 4000)
            self.print_rate = float(rate) if rate else None
        elif action == "one_way":
            self.one_way = bool(args.get("on", True))
        elif action == "stop_mode":
            mode = str(args.get("mode", "abort"))
            if mode not in ("abort", "resume"):
                raise ValueError(f"stop_mode is abort or resume, not {mode!r}")
            self.stop_mode = mode
        elif action == "jobs":
            return {"jobs": self.jobs}
        elif action == "status":
            pass
        else:
            raise KeyError(action)
        return {"flags": dict(self.flags), "jobs": len(self.jobs), "overruns": self.overruns,
                "buffer_size": self.buffer_size, "received": self.received, "xoff": self.xoff,
                "buffered": self.used, "queued_commands": len(self.queue), "stop_mode": self.stop_mode,
                "buffer_clears": self.buffer_clears, "one_way": self.one_way}
