"""The wires a printer hangs on: serial (pyserial for the line set-up, with flow control), the USB
printer class (/dev/usb/lp*), and raw TCP (port 9100). All three look the same to the driver:
`write()`, `await drain()`, replies to `on_data`, a dead link to `on_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import serial

DataCallback = Callable[[bytes], None]
LostCallback = Callable[[str], None]


class _Wire(asyncio.Protocol):
    """Flow control towards the transport (pause/resume_writing) and callbacks back."""

    def __init__(self, on_data: DataCallback, on_lost: LostCallback) -> None:
        self.on_data, self.on_lost = on_data, on_lost
        self.transport: asyncio.BaseTransport | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        # Once only, and not for a close of ours: a serial or USB link is two transports, and
        # a late report from a link already closed would tear down the next one.
        if self.closed:
            return
        self.closed = True
        self._writable.set()
        self.on_lost(f"connection lost ({exc})" if exc else "connection closed")

    def eof_received(self) -> bool | None:
        return False  # half-closed is closed for a printer


class PrinterLink:
    """One open wire to a printer."""

    def __init__(self, wire: _Wire, transport: asyncio.WriteTransport, describe: str) -> None:
        self._wire = wire
        self._transport = transport
        self.describe = describe
        self._limits = transport.get_write_buffer_limits()

    def write(self, data: bytes) -> None:
        if self._wire.closed:
            raise ConnectionError("printer link is closed")
        self._transport.write(data)

    async def drain(self) -> None:
        await self._wire._writable.wait()
        if self._wire.closed:
            raise ConnectionError("printer link is closed")

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """(0, 0): drain() waits until everything is written; no arguments: the link's own."""
        if high is None:
            low, high = self._limits  # asyncio gives (low, high)
        self._transport.set_write_buffer_limits(high=high, low=low)

    @property
    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self) -> None:
        self._wire.closed = True
        self._wire._writable.set()
        with contextlib.suppress(Exception):
            self._transport.abort() if hasattr(self._transport, "abort") else self._transport.close()


async def _fd_link(fd: int, on_data: DataCallback, on_lost: LostCallback, describe: str,
                   on_close: Callable[[], None] | None = None) -> PrinterLink:
    """A character device as a link: asyncio's own pipe transports read and write it (a dup
    each), so writes never block the loop and pause/resume_writing work."""
    loop = asyncio.get_running_loop()
    wire = _Wire(on_data, on_lost)
    rfile = os.fdopen(os.dup(fd), "rb", buffering=0)
    wfile = os.fdopen(os.dup(fd), "wb", buffering=0)
    try:
        read_transport, _ = await loop.connect_read_pipe(lambda: wire, rfile)
        wtransport, _ = await loop.connect_write_pipe(lambda: wire, wfile)
    except Exception:
        rfile.close()
        wfile.close()
        raise
    wtransport.set_write_buffer_limits(high=4096, low=1024)
    link = PrinterLink(wire, wtransport, describe)
    orig_close = link.close

    def close_all() -> None:
        orig_close()
        with contextlib.suppress(Exception):
            read_transport.close()
        if on_close is not None:
            with contextlib.suppress(Exception):
                on_close()

    link.close = close_all  # type: ignore[method-assign]
    return link


async def open_serial(opts: Mapping[str, Any], on_data: DataCallback, on_lost: LostCallback) -> PrinterLink:
    """pyserial sets the line up (rate, framing, XON/XOFF or RTS/CTS in termios, so the kernel
    stops sending when the printer says so); asyncio's pipe transports move the bytes.
    Not serial_asyncio_fast's transport: with its write_timeout=0, pyserial's write() retries
    EAGAIN in a busy loop, so a printer holding XOFF (or gone silent) with the kernel queue full
    froze the whole daemon; and its own writer path asserts on an empty buffer once used."""
    flow = str(opts.get("flow_control", "xonxoff"))
    loop = asyncio.get_running_loop()
    port = await loop.run_in_executor(None, lambda: serial.Serial(
        str(opts["port"]), baudrate=int(opts.get("baudrate", 115200)), bytesize=serial.EIGHTBITS,
        parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_ONE, timeout=0, write_timeout=0,
        xonxoff=flow == "xonxoff", rtscts=flow == "rtscts", dsrdtr=flow == "dsrdtr"))
    try:
        return await _fd_link(port.fileno(), on_data, on_lost, f"serial {opts['port']}", port.close)
    except Exception:
        port.close()
        raise


async def open_tcp(opts: Mapping[str, Any], on_data: DataCallback, on_lost: LostCallback) -> PrinterLink:
    loop = asyncio.get_running_loop()
    transport, wire = await asyncio.wait_for(
        loop.create_connection(lambda: _Wire(on_data, on_lost), str(opts["host"]),
                               int(opts.get("tcp_port", 9100))),
        float(opts.get("connect_timeout_s", 5)))
    transport.set_write_buffer_limits(high=16384, low=4096)
    return PrinterLink(wire, transport, f"tcp {opts['host']}:{opts.get('tcp_port', 9100)}")


async def open_usblp(opts: Mapping[str, Any], on_data: DataCallback, on_lost: LostCallback) -> PrinterLink:
    """/dev/usb/lpN: a character device; reads carry the printer's replies (bidirectional
    printers), writes block while the printer is busy."""
    path = str(opts.get("path", "/dev/usb/lp0"))
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        return await _fd_link(fd, on_data, on_lost, f"usb {path}")
    finally:
        os.close(fd)


OPENERS = {"serial": open_serial, "tcp": open_tcp, "usb": open_usblp}
