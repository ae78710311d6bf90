"""The serial link to a scale: pyserial-asyncio-fast underneath, `protocols.scale` on top.

`ScaleLink` owns the transport, turns received bytes into protocol events, and runs one command
transaction at a time (a polled scale answers in order, so a second command in flight would get
the first one's answer). Readings arriving unasked (continuous scales, stations) are kept as the
latest reading with a sequence number that waiters watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import serial
import serial_asyncio_fast

from drivers.base import HalError
from protocols.scale import Noise, Reading, Reply, ScaleCodec

log = logging.getLogger("halsvc.driver.scale")

Event = Reading | Reply


def line_kwargs(line: Mapping[str, Any], software_parity: bool) -> dict[str, Any]:
    """pyserial settings for a protocol's line; 7E1 becomes 8N1 when parity is carried in bit 7."""
    seven_e_one = line["bytesize"] == 7 and line["parity"] == "E"
    if software_parity and seven_e_one:
        return {"baudrate": line["baudrate"], "bytesize": serial.EIGHTBITS,
                "parity": serial.PARITY_NONE, "stopbits": serial.STOPBITS_ONE}
    return {"baudrate": line["baudrate"],
            "bytesize": serial.SEVENBITS if line["bytesize"] == 7 else serial.EIGHTBITS,
            "parity": {"E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}.get(line["parity"],
                                                                         serial.PARITY_NONE),
            "stopbits": serial.STOPBITS_TWO if line.get("stopbits") == 2 else serial.STOPBITS_ONE}


class ScaleLink(asyncio.Protocol):
    """One open serial port. `on_lost(reason)` is called once when the port dies."""

    def __init__(self, on_lost: Callable[[str], None]) -> None:
        self.on_lost = on_lost
        self.transport: serial_asyncio_fast.SerialTransport | None = None
        self.codec: ScaleCodec | None = None
        self.capture: bytearray | None = None  # raw bytes while auto-detecting
        self.received = asyncio.Event()
        self.latest: Reading | None = None
        self.latest_seq = 0
        self.latest_at = 0.0  # loop time of the last well-formed frame of any kind
        self.changed = asyncio.Event()
        self.noise_bytes = 0
        self._pending: asyncio.Future[Event] | None = None
        self._pending_for: tuple[str, str | None] = ("", None)
        self._io = asyncio.Lock()
        self._closed = False

    # --- opening --------------------------------------------------------------------------
    @classmethod
    async def open(cls, port: str, line: Mapping[str, Any], software_parity: bool,
                   on_lost: Callable[[str], None]) -> ScaleLink:
        link = cls(on_lost)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: link, port, **line_kwargs(line, software_parity), timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise HalError("no_device", f"cannot open {port}: {type(exc).__name__}") from None
        # connection_made comes on a later loop turn; the transport is usable now.
        link.transport = transport
        return link

    def reconfigure(self, line: Mapping[str, Any], software_parity: bool) -> None:
        """Change the line settings in place (auto-detection tries each protocol's)."""
        if self.transport is None:
            raise HalError("link_lost", "the serial port is closed")
        port = self.transport.serial
        try:
            for key, value in line_kwargs(line, software_parity).items():
                if getattr(port, key) != value:
                    setattr(port, key, value)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise HalError("hardware_error", f"line settings refused: {type(exc).__name__}") from None

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.abort()  # never wait to flush to a scale that may be gone
        self._fail_pending(HalError("link_lost", "the serial port was closed"))

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, serial_asyncio_fast.SerialTransport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail_pending(HalError("link_lost", "the scale's serial link was lost"))
        if not self._closed:
            self.on_lost(f"serial link lost ({type(exc).__name__})" if exc else "serial link closed")

    def data_received(self, data: bytes) -> None:
        self.received.set()
        if self.capture is not None:
            self.capture.extend(data)
            return
        if self.codec is None:
            return
        loop_time = asyncio.get_running_loop().time()
        for ev in self.codec.feed(data):
            if isinstance(ev, Noise):
                self.noise_bytes += ev.size
                continue
            self.latest_at = loop_time
            if isinstance(ev, Reading):
                self.latest = ev
                self.latest_seq += 1
                self.changed.set()
                self.changed = asyncio.Event()
            self._offer(ev)

    # --- transactions ---------------------------------------------------------------------
    def _offer(self, ev: Event) -> None:
        fut = self._pending
        if fut is None or fut.done():
            return
        command, kind = self._pending_for
        if isinstance(ev, Reply):
            # A bare ACK ("any", ok) answers only a command that expects one: a weight query
            # is answered by a weight or an error, and line noise can look like an ACK.
            if ev.command == command or (ev.command == "any" and (ev.outcome != "ok" or kind != "reading")):
                fut.set_result(ev)
        elif kind == "reading":
            fut.set_result(ev)

    def _fail_pending(self, error: HalError) -> None:
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(error)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise HalError("link_lost", "the serial port is closed")
        self.transport.write(data)

    async def transact(self, command: str, answer_timeout: float, command_delay: float = 0.05
                       ) -> Event | None:
        """Send `command` and return what answers it: a Reading, a Reply, or None when the
        protocol sends no answer (or an optional ACK did not come). Raises HalError("timeout")
        when an expected answer does not come."""
        assert self.codec is not None
        data = self.codec.command(command)
        kind = self.codec.reply_kind(command)
        async with self._io:
            loop = asyncio.get_running_loop()
            self._pending = loop.create_future()
            self._pending_for = (command, kind)
            try:
                self.write(data)
                if kind is None:
                    await asyncio.sleep(command_delay)  # the 8217 answers Z/T/C with nothing
                    return None
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
                    # arrives as the answer lands, and the cancelled task then runs on for ever.
                    async with asyncio.timeout(answer_timeout):
                        return await asyncio.shield(self._pending)
                except TimeoutError:
                    if kind == "ack":
                        return None  # ACK is a setting on A&D scales: silence is not a failure
                    raise HalError("timeout", f"the scale did not answer {command}") from None
            finally:
                fut, self._pending = self._pending, None
                if fut is not None and not fut.done():
                    fut.cancel()
                elif fut is not None and not fut.cancelled():
                    with contextlib.suppress(BaseException):
                        fut.exception()  # consumed: no "exception never retrieved" noise

    async def wait_reading(self, after_seq: int, within: float) -> Reading | None:
        """The next reading with a sequence number above `after_seq`, or None at the timeout."""
        if self.latest_seq > after_seq:
            return self.latest
        changed = self.changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await changed.wait()
        return self.latest if self.latest_seq > after_seq else None
