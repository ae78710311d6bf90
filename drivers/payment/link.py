"""The seam between the payment driver and the wire to the terminal.

`NexoLink` is what the driver needs: `open()`, `send(message)`, `close()`, and two callbacks —
every decoded message the terminal sends, and the link's end. `FramedTcpLink` speaks 4-byte
length-prefixed JSON on one persistent TCP connection (the terminal can push display prompts on
it). A terminal that takes HTTPS `POST /nexo` (Adyen-style) needs another class with the same
four members; the driver does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from protocols.errors import ProtocolError
from protocols.nexo import framing
from protocols.nexo import messages as m

OnMessage = Callable[[m.Message], None]
OnClosed = Callable[[str], None]


class LinkClosed(Exception):
    """The link ended before an answer came: whatever was sent may or may not have arrived."""


class NexoLink(Protocol):
    async def open(self) -> None: ...
    async def send(self, message: Mapping[str, Any]) -> None: ...
    async def close(self) -> None: ...


class FramedTcpLink:
    def __init__(self, host: str, port: int, on_message: OnMessage, on_closed: OnClosed,
                 connect_timeout: float = 5.0) -> None:
        self.host, self.port = host, port
        self._on_message, self._on_closed = on_message, on_closed
        self._connect_timeout = connect_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.malformed = 0  # frames from the terminal we could not decode (counted, never fatal)

    async def open(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                self._connect_timeout)
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read(reader), name=f"nexo-link:{self.port}")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = framing.FrameDecoder()
        why = "terminal closed the link"
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                decoder.receive_data(data)
                while (frame := decoder.next_frame()) is not None:
                    try:
                        msg = m.decode(frame)
                    except ProtocolError:
                        self.malformed += 1
                        continue
                    self._on_message(msg)
        except ProtocolError as exc:  # a frame length past the limit: the stream is out of step
            why = f"framing lost: {exc}"
        except (ConnectionError, OSError) as exc:
            why = f"link error: {type(exc).__name__}"
        except asyncio.CancelledError:
            return
        self._on_closed(why)

    async def send(self, message: Mapping[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise LinkClosed("not connected")
        try:
            self._writer.write(framing.encode_frame(m.encode(dict(message))))
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            raise LinkClosed(f"send failed: {type(exc).__name__}") from None

    async def close(self) -> None:
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
