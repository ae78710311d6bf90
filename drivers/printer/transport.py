"""The wires a printer hangs on: serial (pyserial-asyncio-fast, with flow control), the USB
printer class (/dev/usb/lp*), and raw TCP (port 9100). All three look the same to the driver:
`write()`, `await drain()`, replies to `on_data`, a dead link to `on_lost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any, cast

import serial
import serial_asyncio_fast

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

    def write(self, data: bytes) -> None:
        if self._wire.closed:
            raise ConnectionError("printer link is closed")
        self._transport.write(data)

    async def drain(self) -> None:
        await self._wire._writable.wait()
        if self._wire.closed:
            raise ConnectionError("printer link is closed")

    @property
    def write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._transport.abort() if hasattr(self._transport, "abort") else self._transport.close()


async def open_serial(opts: Mapping[str, Any], on_data: DataCallback, on_lost: LostCallback) -> PrinterLink:
    flow = str(opts.get("flow_control", "xonxoff"))
    loop = asyncio.get_running_loop()
    transport, wire = await serial_asyncio_fast.create_serial_connection(
        loop, lambda: _Wire(on_data, on_lost), str(opts["port"]),
        baudrate=int(opts.get("baudrate", 115200)), bytesize=serial.EIGHTBITS,
        parity=serial.PARITY_NONE, stopbits=serial.STOPBITS_ONE,
        xonxoff=flow == "xonxoff", rtscts=flow == "rtscts", dsrdtr=flow == "dsrdtr")
    # Keep little in user space: the printer's XOFF must stop data, not a big host buffer.
    transport.set_write_buffer_limits(high=4096, low=1024)
    # create_serial_connection is typed as giving a plain Protocol; it is the _Wire made above.
    return PrinterLink(cast(_Wire, wire), transport, f"serial {opts['port']}")


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
    loop = asyncio.get_running_loop()
    path = str(opts.get("path", "/dev/usb/lp0"))
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
    wfd = os.dup(fd)
    wire = _Wire(on_data, on_lost)
    rfile = os.fdopen(fd, "rb", buffering=0)
    wfile = os.fdopen(wfd, "wb", buffering=0)
    try:
        read_transport, _ = await loop.connect_read_pipe(lambda: wire, rfile)
        wtransport, _ = await loop.connect_write_pipe(lambda: wire, wfile)
    except Exception:
        rfile.close()
        wfile.close()
        raise
    wtransport.set_write_buffer_limits(high=4096, low=1024)
    link = PrinterLink(wire, wtransport, f"usb {path}")
    orig_close = link.close

    def close_both() -> None:
        orig_close()
        if read_transport is not None:
            with contextlib.suppress(Exception):
                read_transport.close()

    link.close = close_both  # type: ignore[method-assign]
    return link


OPENERS = {"serial": open_serial, "tcp": open_tcp, "usb": open_usblp}
