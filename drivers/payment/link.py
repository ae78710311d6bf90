"""The seam between the payment driver and the wire to the terminal.

`NexoLink` is what the driver needs: `open()`, `send(message)`, `close()`, and two callbacks —
every decoded message the terminal sends, and the link's end. Two wires:

- `FramedTcpLink`: 4-byte length-prefixed JSON on one persistent TCP connection; the terminal
  pushes its display prompts on it.
- `HttpLink`: each request a `POST /nexo` whose answer is the response body (a payment's stays
  open until the cardholder is done), as Adyen's local Terminal API takes it, over HTTP or HTTPS;
  an AbortRequest gets an empty body. No prompts come this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
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


class HttpLink:
    """nexo over HTTP/1.1 POSTs, one connection per request (the terminal answers a payment only
    when it is over, so requests must not queue behind each other on one connection)."""

    def __init__(self, host: str, port: int, on_message: OnMessage, on_closed: OnClosed,
                 connect_timeout: float = 5.0, path: str = "/nexo", tls: ssl.SSLContext | None = None,
                 server_name: str | None = None, answer_timeout: float = 150.0) -> None:
        self.host, self.port, self.path = host, port, path
        self._on_message, self._on_closed = on_message, on_closed
        self._connect_timeout = connect_timeout
        self._tls, self._server_name = tls, server_name
        # A terminal drops a request after about 120 s; an answer later than this is not coming.
        self._answer_timeout = answer_timeout
        self._open = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.malformed = 0

    async def open(self) -> None:
        self._open = True  # nothing persistent: the first request (Login) shows the terminal is there

    async def send(self, message: Mapping[str, Any]) -> None:
        if not self._open:
            raise LinkClosed("not connected")
        body = m.encode(dict(message))
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._tls,
                                        server_hostname=self._server_name if self._tls else None),
                self._connect_timeout)
        except (OSError, TimeoutError) as exc:
            self._lost(f"terminal unreachable: {type(exc).__name__}")
            raise LinkClosed("connect failed") from None
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n")
        try:
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        except (ConnectionError, OSError) as exc:
            writer.close()
            self._lost(f"send failed: {type(exc).__name__}")
            raise LinkClosed("send failed") from None
        task = asyncio.create_task(self._answer(reader, writer), name=f"nexo-http:{self.port}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self._answer_timeout):
                status = (await reader.readline()).split(None, 2)
                if len(status) < 2 or not status[0].startswith(b"HTTP/1."):
                    raise ConnectionError("not an HTTP answer")
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if not 0 <= length <= framing.MAX_FRAME:
                    raise ConnectionError("answer too large")
                body = await reader.readexactly(length)
            if status[1] != b"200":
                self.malformed += 1  # the terminal refused the request itself (4xx/5xx)
            elif body:
                try:
                    msg = m.decode(body)
                except ProtocolError:
                    self.malformed += 1
                else:
                    self._on_message(msg)
        except TimeoutError:
            pass  # the driver's own timers ask the terminal what became of it
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError) as exc:
            self._lost(f"terminal closed the request: {type(exc).__name__}")
        finally:
            writer.close()

    def _lost(self, why: str) -> None:
        if self._open:
            self._open = False
            self._on_closed(why)

    async def close(self) -> None:
        self._open = False
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
