"""The wires to the simulated printer: a pty that behaves like a serial line at a baud rate,
and a TCP 9100 ("raw"/JetDirect) server.

The pty pulls bytes at the line rate, so the printer sees them as fast as a real UART would
deliver them. XON/XOFF: the kernel queue between the two pty ends is past any flow-control point,
so the wire itself stops when the printer has sent XOFF *and* the host's tty has IXON set (what
pyserial's `xonxoff=True` does), exactly as a host UART honouring XOFF would stop transmitting.
A host that did not enable it keeps sending, and the small-buffer fault then overruns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty

from simulators.escpos_printer.printer import SimulatedPrinter

WIRE_CHUNK = 32  # bytes pulled from the wire per step (≈2.8 ms at 115200 baud)


class PtyLink:
    def __init__(self, printer: SimulatedPrinter, baudrate: int = 115200) -> None:
        self.printer = printer
        self.baudrate = baudrate
        self.master, self._slave = os.openpty()
        # Raw at once: an echoing slave would hand our own replies back to us as commands.
        tty.setraw(self._slave)
        tty.setraw(self.master)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self._resume = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        printer.on_reply = self._write
        printer.on_flow = self._flow
        printer.on_drop = self._resume.clear
        printer.on_restore = self._discard_input

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name="escpos-pty")

    def _discard_input(self) -> None:
        """What the host wrote while the link was down never arrived."""
        with contextlib.suppress(termios.error, OSError):
            termios.tcflush(self.master, termios.TCIFLUSH)

    def _host_honours_xoff(self) -> bool:
        try:
            return bool(termios.tcgetattr(self._slave)[0] & termios.IXON)
        except termios.error:
            return False

    def _write(self, data: bytes) -> None:
        if self.printer.silent:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.master, data)

    def _flow(self, ready: bool) -> None:
        self._write(b"\x11" if ready else b"\x13")
        if ready:
            self._resume.set()

    def _wire_stopped(self) -> bool:
        if self.printer.silent:
            return True
        return self.printer.xoff and self._host_honours_xoff()

    async def _readable(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(self.master, ready)
        try:
            await fut
        finally:
            loop.remove_reader(self.master)

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        byte_time = 10.0 / self.baudrate  # start + 8 data + stop bits
        next_t = loop.time()
        while True:
            if self._wire_stopped():
                self._resume.clear()
                if self._wire_stopped():
                    # Re-check now and then as well: the host may change its termios.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._resume.wait(), 0.05)
                    continue
            try:
                data = os.read(self.master, WIRE_CHUNK)
            except BlockingIOError:
                await self._readable()
                next_t = max(next_t, loop.time())  # the wire was idle: no credit saved up
                continue
            except OSError:  # EIO while no one holds the slave: wait for a host
                await asyncio.sleep(0.05)
                continue
            self.printer.receive(data)
            next_t += len(data) * byte_time
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpLink:
    """Port 9100 style: one host at a time, TCP's own window is the flow control."""

    def __init__(self, printer: SimulatedPrinter, host: str = "127.0.0.1", port: int = 0) -> None:
        self.printer = printer
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def _write(self, data: bytes) -> None:
        if self._writer is not None and not self.printer.silent:
            self._writer.write(data)

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._lock:  # a second host waits, as on a real single-session printer
            self._writer = writer
            self.printer.on_reply = self._write
            self.printer.on_flow = lambda ready: None
            self.printer.on_drop = self._drop
            try:
                while True:
                    await self.printer.wait_room()
                    data = await reader.read(4096)
                    if not data:
                        break
                    self.printer.receive(data)
            except ConnectionError:
                pass
            finally:
                self._writer = None
                writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            if self._writer is not None:
                self._writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1)
