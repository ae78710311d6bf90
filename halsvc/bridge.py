"""The browser bridge: a WebSocket endpoint on 127.0.0.1 for kiosk front-ends (a browser cannot
open a Unix socket), plus the demo kiosk page over plain HTTP on the same port.

It is not a second RPC server: every admitted WebSocket becomes one `server.Connection`, fed
through `WebSocketTransport`, so claims, cancellation, limits, events and backpressure are the
socket's own. One WebSocket message carries one JSON-RPC message (or batch) each way.

Who gets in: the handshake must come from a configured Origin and carry the per-boot token (the
`token` query parameter, or `Authorization: Bearer …` for programs); anything else is refused
with HTTP 403 before a Connection exists. Everything admitted has the `kiosk` role.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import grp
import hmac
import http
import logging
import mimetypes
import os
import pathlib
import secrets
import urllib.parse
from typing import Any

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from halsvc.config import BridgeConfig, Config, ConfigError

log = logging.getLogger("halsvc.bridge")
# websockets logs request lines at DEBUG; the request line of /rpc holds the token.
_ws_log = logging.getLogger("halsvc.bridge.websockets")
_ws_log.setLevel(logging.WARNING)

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "kiosk"
STATIC_TYPES = {".html", ".js", ".css", ".png", ".svg", ".ico"}  # not the package's .py files
RPC_PATH = "/rpc"
ROLE = "kiosk"


def ensure_token(path: pathlib.Path, group: str | None) -> str:
    """The per-boot token: read it, or create it (mode 0640, group `group`) when absent.

    On a station the file lives on /run (tmpfs), so every boot gets a new one. The unit makes
    it as root before the daemon starts (`halsvc --bridge-token`, ExecStartPre=+), so it is
    root:<group> 0640: the daemon and the kiosk launcher, both in `group`, can read it.
    """
    try:
        return _read_or_create(path, group)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read or create the bridge token: {exc.strerror}") from None


def _read_or_create(path: pathlib.Path, group: str | None) -> str:
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text(encoding="ascii").strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.fchmod(fd, 0o640)  # whatever the umask
        if group:
            try:
                os.fchown(fd, -1, grp.getgrnam(group).gr_gid)
            except (KeyError, PermissionError) as exc:
                log.warning("cannot give the bridge token to group %s: %s", group, exc)
        os.write(fd, token.encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


class WebSocketTransport(asyncio.Transport):
    """The transport seam: what `Connection` writes becomes WebSocket messages, in order.

    Each `write()` from the Connection is exactly one encoded JSON-RPC message (with the
    socket's trailing newline, dropped here). The queue of unsent messages is the write
    buffer: its size drives `pause_writing` (the Connection stops reading requests) and the
    Connection's own overflow check, as the socket's kernel buffer does.
    """

    def __init__(self, ws: ServerConnection, role: str) -> None:
        super().__init__()
        self._ws = ws
        self._role = role
        self._protocol: Any = None
        self._queue: collections.deque[str] = collections.deque()
        self._queued_bytes = 0
        self._high, self._low = 64 * 1024, 16 * 1024
        self._paused = False
        self._closing = False
        self._wake = asyncio.Event()
        self.reading = asyncio.Event()
        self.reading.set()
        self.writer = asyncio.ensure_future(self._write_loop())

    # --- asyncio.Transport ----------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "halsvc_role":
            return self._role
        if name == "peername":
            return self._ws.remote_address
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is queued, then close the WebSocket."""
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        self._closing = True
        self._queue.clear()
        self._queued_bytes = 0
        self._ws.transport.abort()
        self._wake.set()
        self.reading.set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing and not self._queue and self.writer.done():
            return
        text = bytes(data).rstrip(b"\n").decode("utf-8")
        self._queue.append(text)
        self._queued_bytes += len(data)
        self._wake.set()
        if not self._paused and self._queued_bytes > self._high and self._protocol is not None:
            self._paused = True
            self._protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        return self._queued_bytes

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = high if high is not None else 64 * 1024
        self._low = low if low is not None else self._high // 4

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()

    def is_reading(self) -> bool:
        return self.reading.is_set()

    # --- the writer -----------------------------------------------------------------------
    async def _write_loop(self) -> None:
        ws = self._ws
        try:
            while True:
                while self._queue:
                    text = self._queue.popleft()
                    await ws.send(text)
                    self._queued_bytes -= len(text.encode()) + 1
                    if self._paused and self._queued_bytes <= self._low and self._protocol is not None:
                        self._paused = False
                        self._protocol.resume_writing()
                if self._closing:
                    await ws.close()
                    return
                self._wake.clear()
                await self._wake.wait()
        except ConnectionClosed:
            self._closing = True
        finally:
            self._queue.clear()
            self._queued_bytes = 0
            self.reading.set()  # a reader paused by backpressure must see the close


class Bridge:
    """The listening WebSocket/HTTP endpoint of one Server."""

    def __init__(self, server: Any, config: Config) -> None:
        self.server = server
        self.config: BridgeConfig = config.bridge
        self.token_path = self.config.token_path(config)
        self.token = ""
        self.port = 0
        self.origins: set[str] = set()
        self._ws_server: WsServer | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{RPC_PATH}"

    async def start(self) -> None:
        self.token = ensure_token(self.token_path, self.config.token_group)
        limit = self.server.config.max_message_bytes
        # websockets refuses (close 1009) only messages beyond twice the limit; those between
        # get the socket's own -32600 message_too_large answer from the Connection.
        self._ws_server = await serve(
            self._serve, "127.0.0.1", self.config.port, process_request=self._admit,
            max_size=2 * limit, server_header=None, logger=_ws_log, compression=None)
        sock = next(iter(self._ws_server.sockets))
        self.port = sock.getsockname()[1]
        self.origins = set(self.config.origins) or {f"http://127.0.0.1:{self.port}",
                                                    f"http://localhost:{self.port}"}
        log.info("bridge on http://127.0.0.1:%d/ (WebSocket %s) for origins %s", self.port, RPC_PATH,
                 ", ".join(sorted(self.origins)))

    def close(self) -> None:
        # Stop listening only: the Server fails what is in flight, then closes each Connection.
        if self._ws_server is not None:
            self._ws_server.close(close_connections=False)

    async def wait_closed(self) -> None:
        if self._ws_server is not None:
            await self._ws_server.wait_closed()

    # --- the handshake ----------------------------------------------------------------------
    def _admit(self, ws: ServerConnection, request: Request) -> Response | None:
        url = urllib.parse.urlsplit(request.path)
        host = request.headers.get("Host", "")
        if host not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            # A page on another name that resolves here (DNS rebinding) gets nothing.
            return _refuse(ws, "unknown Host")
        if url.path != RPC_PATH:
            return self._static(url.path)
        origin = request.headers.get("Origin")
        if origin not in self.origins:
            log.info("bridge: refused a WebSocket from origin %r", origin,
                     extra={"reason": "permission_denied"})
            return _refuse(ws, "Origin not allowed")
        token = urllib.parse.parse_qs(url.query).get("token", [""])[0]
        auth = request.headers.get("Authorization", "")
        if not token and auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            log.info("bridge: refused a WebSocket with a wrong or missing token",
                     extra={"reason": "permission_denied"})
            return _refuse(ws, "wrong or missing token")
        return None

    def _static(self, path: str) -> Response:
        name = path.lstrip("/") or "index.html"
        file = (STATIC_DIR / name).resolve()
        if STATIC_DIR not in file.parents or not file.is_file() or file.suffix not in STATIC_TYPES:
            return _response(http.HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        csp = (f"default-src 'self'; img-src 'self' data:; "
               f"connect-src ws://127.0.0.1:{self.port} ws://localhost:{self.port}; frame-ancestors 'none'")
        return _response(http.HTTPStatus.OK, file.read_bytes(), ctype, csp)

    # --- one admitted WebSocket ---------------------------------------------------------------
    async def _serve(self, ws: ServerConnection) -> None:
        from halsvc.server import Connection  # server imports this module lazily too

        transport = WebSocketTransport(ws, ROLE)
        conn = Connection(self.server)
        transport.set_protocol(conn)
        conn.connection_made(transport)
        try:
            while not conn.closing:
                if not transport.reading.is_set():
                    await transport.reading.wait()
                    continue
                message = await ws.recv()
                conn.message_received(message.encode() if isinstance(message, str) else message)
        except ConnectionClosed:
            pass
        finally:
            conn.connection_lost(None)
            transport.close()
            with contextlib.suppress(ConnectionClosed):
                await transport.writer


def _refuse(ws: ServerConnection, why: str) -> Response:
    return ws.respond(http.HTTPStatus.FORBIDDEN, f"{why}\n")


def _response(status: http.HTTPStatus, body: bytes, ctype: str, csp: str | None = None) -> Response:
    headers = Headers()
    headers["Content-Type"] = ctype
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Connection"] = "close"
    if csp:
        headers["Content-Security-Policy"] = csp
    return Response(status.value, status.phrase, headers, body)
